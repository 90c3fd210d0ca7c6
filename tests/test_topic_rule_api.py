"""Topic rules through the `iot` API with boto3: created, described, listed, replaced, disabled,
enabled and deleted, running on real publishes as soon as the call answers, kept across a
restart, and listed next to (but never changing) the rules from --rules-dir."""

import json
import os
import shutil
import tempfile

import pytest

from conftest import Client, Node, aws_client, next_json_on

ROLE = "arn:aws:iam::000000000000:role/unused"


def republish(topic, qos=1):
    return {"republish": {"roleArn": ROLE, "topic": topic, "qos": qos}}


@pytest.fixture
def rules_node():
    d = tempfile.mkdtemp(prefix="ferrite-topic-rules-")
    rules = os.path.join(d, "rules")
    os.makedirs(rules)
    with open(os.path.join(rules, "files.sql"), "w") as f:
        f.write("CREATE RULE from_file DESCRIPTION 'kept in a file'\n"
                "AS SELECT * FROM 'file/in' DO republish(topic = 'file/out'), log(level = 'info');\n")
    n = Node(d, ["--rules-dir", rules]).start()
    yield n
    n.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_a_created_rule_runs_at_once_and_follows_replace_disable_enable_and_delete(rules_node):
    iot = aws_client(rules_node, "iot")
    sub = Client(rules_node)
    sub.subscribe("alerts/#", qos=1)
    pub = Client(rules_node)

    iot.create_topic_rule(ruleName="hot", topicRulePayload={
        "sql": "SELECT temperature AS t, topic(2) AS device FROM 'sensors/+/data' WHERE temperature > 30",
        "description": "hot sensors", "actions": [republish("alerts/${topic(2)}")],
        "awsIotSqlVersion": "2016-03-23"})
    pub.publish("sensors/s1/data", json.dumps({"temperature": 35}), qos=1)
    assert next_json_on(sub, "alerts/s1") == {"t": 35, "device": "s1"}

    got = iot.get_topic_rule(ruleName="hot")
    assert got["ruleArn"] == "arn:aws:iot:us-east-1:000000000000:rule/hot"
    rule = got["rule"]
    assert (rule["ruleName"], rule["description"], rule["ruleDisabled"], rule["awsIotSqlVersion"]) == \
        ("hot", "hot sensors", False, "2016-03-23")
    assert rule["actions"] == [republish("alerts/${topic(2)}")]
    assert rule["createdAt"].year >= 2024

    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException):
        iot.create_topic_rule(ruleName="hot", topicRulePayload={"sql": "SELECT * FROM 'x'", "actions": []})

    iot.replace_topic_rule(ruleName="hot", topicRulePayload={
        "sql": "SELECT temperature AS celsius FROM 'sensors/+/data'", "actions": [republish("alerts/replaced")],
        "awsIotSqlVersion": "2016-03-23"})
    pub.publish("sensors/s2/data", json.dumps({"temperature": 1}), qos=1)
    assert next_json_on(sub, "alerts/replaced") == {"celsius": 1}
    assert iot.get_topic_rule(ruleName="hot")["rule"]["createdAt"] == rule["createdAt"], "replace keeps createdAt"

    iot.disable_topic_rule(ruleName="hot")
    assert iot.get_topic_rule(ruleName="hot")["rule"]["ruleDisabled"] is True
    pub.publish("sensors/s3/data", json.dumps({"temperature": 2}), qos=1)
    sub.expect_none(wait=0.5)
    iot.enable_topic_rule(ruleName="hot")
    pub.publish("sensors/s4/data", json.dumps({"temperature": 3}), qos=1)
    assert next_json_on(sub, "alerts/replaced") == {"celsius": 3}

    iot.delete_topic_rule(ruleName="hot")
    pub.publish("sensors/s5/data", json.dumps({"temperature": 4}), qos=1)
    sub.expect_none(wait=0.5)
    with pytest.raises(iot.exceptions.UnauthorizedException):
        iot.get_topic_rule(ruleName="hot")
    for call in (iot.delete_topic_rule, iot.enable_topic_rule, iot.disable_topic_rule):
        with pytest.raises(iot.exceptions.UnauthorizedException):
            call(ruleName="hot")
    sub.close()
    pub.close()


def test_bad_rules_are_refused_with_aws_errors_and_change_nothing(rules_node):
    iot = aws_client(rules_node, "iot")
    with pytest.raises(iot.exceptions.SqlParseException) as e:
        iot.create_topic_rule(ruleName="broken", topicRulePayload={
            "sql": "SELECT temperature\nFROM 'a' WHERE temperature >", "actions": []})
    assert e.value.response["Error"]["Message"].startswith("Line 2:")
    with pytest.raises(iot.exceptions.InvalidRequestException) as e:
        iot.create_topic_rule(ruleName="lambda_rule", topicRulePayload={
            "sql": "SELECT * FROM 'a'", "actions": [{"lambda": {"functionArn": "arn:aws:lambda:x"}}]})
    assert "lambda" in e.value.response["Error"]["Message"]
    with pytest.raises(iot.exceptions.InvalidRequestException):
        iot.create_topic_rule(ruleName="old_sql", topicRulePayload={
            "sql": "SELECT * FROM 'a'", "actions": [], "awsIotSqlVersion": "2099-01-01"})
    with pytest.raises(iot.exceptions.UnauthorizedException):
        iot.replace_topic_rule(ruleName="never_made", topicRulePayload={"sql": "SELECT * FROM 'a'", "actions": []})
    names = [r["ruleName"] for r in iot.list_topic_rules()["rules"]]
    assert names == ["from_file"], "nothing refused was stored"


def test_file_rules_are_listed_and_described_but_read_only(rules_node):
    iot = aws_client(rules_node, "iot")
    iot.create_topic_rule(ruleName="api_rule", topicRulePayload={
        "sql": "SELECT * FROM 'api/in'", "actions": [republish("api/out", 0)], "ruleDisabled": True})
    listed = iot.list_topic_rules()["rules"]
    assert [(r["ruleName"], r["topicPattern"], r["ruleDisabled"]) for r in listed] == \
        [("api_rule", "api/in", True), ("from_file", "file/in", False)]
    assert [r["ruleName"] for r in iot.list_topic_rules(ruleDisabled=True)["rules"]] == ["api_rule"]
    assert [r["ruleName"] for r in iot.list_topic_rules(topic="file/in")["rules"]] == ["from_file"]
    first = iot.list_topic_rules(maxResults=1)
    assert [r["ruleName"] for r in first["rules"]] == ["api_rule"]
    assert [r["ruleName"] for r in iot.list_topic_rules(maxResults=1, nextToken=first["nextToken"])["rules"]] == \
        ["from_file"]

    described = iot.get_topic_rule(ruleName="from_file")["rule"]
    assert (described["sql"], described["description"]) == ("SELECT * FROM 'file/in'", "kept in a file")
    assert described["actions"] == [{"republish": {"topic": "file/out"}}], "log has no AWS shape"
    with pytest.raises(iot.exceptions.ResourceAlreadyExistsException):
        iot.create_topic_rule(ruleName="from_file", topicRulePayload={"sql": "SELECT * FROM 'x'", "actions": []})
    for call in (iot.delete_topic_rule, iot.disable_topic_rule):
        with pytest.raises(iot.exceptions.ConflictingResourceUpdateException) as e:
            call(ruleName="from_file")
        assert "files.sql" in e.value.response["Error"]["Message"]


def test_api_rules_survive_a_restart(rules_node):
    iot = aws_client(rules_node, "iot")
    iot.create_topic_rule(ruleName="kept", topicRulePayload={
        "sql": "SELECT v FROM 'keep/in'", "actions": [republish("keep/out")]})
    rules_node.restart(kill=True)
    iot = aws_client(rules_node, "iot")
    assert iot.get_topic_rule(ruleName="kept")["rule"]["sql"] == "SELECT v FROM 'keep/in'"
    sub = Client(rules_node)
    sub.subscribe("keep/out", qos=1)
    pub = Client(rules_node)
    pub.publish("keep/in", json.dumps({"v": 7}), qos=1)
    assert next_json_on(sub, "keep/out") == {"v": 7}
    sub.close()
    pub.close()


def test_an_unsigned_request_changes_no_rule(rules_node):
    import urllib.request
    req = urllib.request.Request(f"http://{rules_node.host}:{rules_node.http_port}/rules/sneaky", method="POST",
                                 data=json.dumps({"sql": "SELECT * FROM 'a'", "actions": []}).encode(),
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 403
    assert [r["ruleName"] for r in aws_client(rules_node, "iot").list_topic_rules()["rules"]] == ["from_file"]
