"""Resource tags (TagResource, UntagResource, ListTagsForResource, `tags` at creation) on the
taggable resources, kept across a restart and shown by the AWS CLI."""

import glob
import json
import os
import shutil
import subprocess
import time

import botocore.exceptions
import pytest

from test_jobs import code_of, iot

ARN = "arn:aws:iot:us-east-1:000000000000"
ROLE = "arn:aws:iam::000000000000:role/IoTLogging"


# ---------------------------------------------------------------------------------------------
# Helpers


def tag_string(tags):
    return "&".join(f"{t['Key']}={t['Value']}" for t in tags)


TEMPLATE = json.dumps({"Parameters": {"SerialNumber": {"Type": "String"}}, "Resources": {"thing": {
    "Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "SerialNumber"}}}}})
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]})

# Each taggable kind: how to create one with `tags`, returning its ARN.
CREATORS = {
    "thing-group": lambda c, tags: c.create_thing_group(thingGroupName="tagged-group", tags=tags)["thingGroupArn"],
    "thing-type": lambda c, tags: c.create_thing_type(thingTypeName="tagged-type", tags=tags)["thingTypeArn"],
    "policy": lambda c, tags: c.create_policy(policyName="tagged-policy", policyDocument=POLICY, tags=tags)["policyArn"],
    "topic-rule": lambda c, tags: (
        c.create_topic_rule(ruleName="tagged_rule", tags=tag_string(tags),
                            topicRulePayload={"sql": "SELECT * FROM 'tagged/in'", "actions": []}),
        c.get_topic_rule(ruleName="tagged_rule")["ruleArn"])[1],
    "job": lambda c, tags: c.create_job(
        jobId="tagged-job", targets=[c.create_thing(thingName="tagged-thing")["thingArn"]],
        document=json.dumps({"op": "x"}), tags=tags)["jobArn"],
    "provisioning-template": lambda c, tags: c.create_provisioning_template(
        templateName="tagged-template", templateBody=TEMPLATE, provisioningRoleArn=ROLE, tags=tags)["templateArn"],
}


def tags_of(c, arn):
    return sorted((t["Key"], t.get("Value")) for t in c.list_tags_for_resource(resourceArn=arn)["tags"])


@pytest.mark.parametrize("kind", list(CREATORS))
def test_tags_given_at_creation_are_listed_added_overwritten_and_removed(node, kind):
    """The tags given when a resource is created are listed for its ARN; TagResource adds
    tags and overwrites a key's value; UntagResource removes keys."""
    c = iot(node)
    arn = CREATORS[kind](c, [{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "a"}])
    assert tags_of(c, arn) == [("env", "prod"), ("team", "a")]
    c.tag_resource(resourceArn=arn, tags=[{"Key": "team", "Value": "b"}, {"Key": "owner", "Value": "ops"}])
    assert tags_of(c, arn) == [("env", "prod"), ("owner", "ops"), ("team", "b")]
    c.untag_resource(resourceArn=arn, tagKeys=["env", "team"])
    assert tags_of(c, arn) == [("owner", "ops")]
    c.untag_resource(resourceArn=arn, tagKeys=["owner"])
    assert tags_of(c, arn) == []


def test_tags_on_an_unknown_resource_are_resource_not_found(node):
    """TagResource, UntagResource and ListTagsForResource on an ARN naming no resource answer
    ResourceNotFoundException."""
    c = iot(node)
    for arn in (f"{ARN}:thinggroup/nope", f"{ARN}:policy/nope", f"{ARN}:rule/nope", f"{ARN}:job/nope"):
        for call in (lambda: c.list_tags_for_resource(resourceArn=arn),
                     lambda: c.tag_resource(resourceArn=arn, tags=[{"Key": "k", "Value": "v"}]),
                     lambda: c.untag_resource(resourceArn=arn, tagKeys=["k"])):
            with pytest.raises(botocore.exceptions.ClientError) as e:
                call()
            assert code_of(e.value) == "ResourceNotFoundException", arn


def test_tags_survive_a_restart_and_the_aws_cli_lists_them(node, tmp_path):
    """Tags are durable: after a restart ListTagsForResource (boto3 and
    `aws iot list-tags-for-resource`) shows them."""
    c = iot(node)
    group = c.create_thing_group(thingGroupName="durable", tags=[{"Key": "site", "Value": "north"}])["thingGroupArn"]
    policy = c.create_policy(policyName="durable-policy", policyDocument=POLICY)["policyArn"]
    c.tag_resource(resourceArn=policy, tags=[{"Key": "tier", "Value": "gold"}])
    node.restart()
    c = iot(node)
    assert tags_of(c, group) == [("site", "north")]
    assert tags_of(c, policy) == [("tier", "gold")]
    if not shutil.which("aws"):
        pytest.skip("the aws CLI is not installed")
    env = dict(os.environ, AWS_SHARED_CREDENTIALS_FILE=os.path.join(node.data_dir, "credentials"),
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=str(tmp_path / "none"))
    out = subprocess.run(["aws", "iot", "list-tags-for-resource", "--resource-arn", group,
                          "--endpoint-url", f"http://{node.host}:{node.http_port}"],
                         env=env, check=True, capture_output=True, text=True, timeout=60).stdout
    assert json.loads(out)["tags"] == [{"Key": "site", "Value": "north"}]
