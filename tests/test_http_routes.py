"""The HTTP API's route table as a client meets it: each path answers only the methods of its
operations. A signed HEAD, PUT or OPTIONS that is not an operation of a resource's path gets
AWS's 405 and changes nothing; unknown operations and every refusal before a handler runs
carry `x-amzn-ErrorType`, so botocore and the AWS CLI can name the error."""

import configparser
import http.client
import json
import os

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import pytest

from conftest import aws_client


def signed(node, method, path, body=b"", service="iot", sign=True, headers=None):
    """Sends one request (signed with the node's root key unless `sign` is false) and returns
    (status, headers, body)."""
    url = f"http://{node.host}:{node.http_port}{path}"
    req = botocore.awsrequest.AWSRequest(method=method, url=url, data=body, headers=headers or {})
    if sign:
        creds = configparser.ConfigParser()
        creds.read(os.path.join(node.data_dir, "credentials"))
        key = botocore.credentials.Credentials(creds["default"]["aws_access_key_id"],
                                               creds["default"]["aws_secret_access_key"])
        botocore.auth.SigV4Auth(key, service, "eu-west-1").add_auth(req)
    conn = http.client.HTTPConnection(node.host, node.http_port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=dict(req.headers))
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def assert_aws_error(status, headers, body, want_status, want_type):
    assert status == want_status, (status, headers, body)
    assert headers.get("x-amzn-errortype") == want_type, headers
    assert "message" in json.loads(body), body


@pytest.fixture
def resources(node, tmp_path):
    """One of every resource kind the control plane has, created through boto3."""
    iot = aws_client(node, "iot")
    data = aws_client(node, "iot-data")
    iot.create_thing_type(thingTypeName="sensor")
    iot.create_thing(thingName="t1", thingTypeName="sensor")
    iot.create_thing_group(thingGroupName="g1")
    iot.create_policy(policyName="p1", policyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}))
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_thing_principal(thingName="t1", principal=cert["certificateArn"])
    iot.create_authorizer(authorizerName="a1", authorizerFunctionArn="http://127.0.0.1:9/auth", signingDisabled=True)
    iot.create_topic_rule(ruleName="r1", topicRulePayload={
        "sql": "SELECT * FROM 'a/b'", "actions": [{"republish": {"roleArn": "-", "topic": "c"}}]})
    data.update_thing_shadow(thingName="t1", payload=json.dumps({"state": {"reported": {"on": True}}}))
    return iot, data, cert["certificateId"]


def still_there(iot, data, cert_id):
    """Every resource of the fixture, described again: raises if any changed or vanished."""
    assert iot.describe_thing(thingName="t1")["thingTypeName"] == "sensor"
    iot.describe_thing_type(thingTypeName="sensor")
    iot.describe_thing_group(thingGroupName="g1")
    assert iot.get_policy(policyName="p1")["defaultVersionId"] == "1"
    assert iot.list_policy_versions(policyName="p1")["policyVersions"][0]["versionId"] == "1"
    assert iot.describe_certificate(certificateId=cert_id)["certificateDescription"]["status"] == "ACTIVE"
    assert iot.list_thing_principals(thingName="t1")["principals"]
    assert iot.describe_authorizer(authorizerName="a1")["authorizerDescription"]["status"] == "ACTIVE"
    assert iot.get_topic_rule(ruleName="r1")["rule"]["ruleDisabled"] is False
    assert json.loads(data.get_thing_shadow(thingName="t1")["payload"].read())["state"]["reported"] == {"on": True}


# Each resource path, and the methods of those three that are not one of its operations.
RESOURCE_PATHS = [
    ("iot", "/things/t1", ("HEAD", "PUT", "OPTIONS")),
    ("iot", "/thing-types/sensor", ("HEAD", "PUT", "OPTIONS")),
    ("iot", "/thing-groups/g1", ("HEAD", "PUT", "OPTIONS")),
    ("iot", "/policies/p1", ("HEAD", "PUT", "OPTIONS")),
    ("iot", "/policies/p1/version/1", ("HEAD", "PUT", "OPTIONS")),
    ("iot", "/certificates/{cert}", ("HEAD", "OPTIONS")),
    ("iot", "/things/t1/principals", ("HEAD", "OPTIONS")),
    ("iot", "/authorizer/a1", ("HEAD", "OPTIONS")),
    ("iot", "/rules/r1", ("HEAD", "PUT", "OPTIONS")),
    ("iotdata", "/things/t1/shadow", ("HEAD", "PUT", "OPTIONS")),
]


@pytest.mark.parametrize("service,path,methods", RESOURCE_PATHS, ids=[p for _, p, _ in RESOURCE_PATHS])
def test_a_method_that_is_not_an_operation_is_405_and_changes_nothing(node, resources, service, path, methods):
    iot, data, cert_id = resources
    path = path.replace("{cert}", cert_id)
    for method in methods:
        status, headers, body = signed(node, method, path, service=service)
        assert status == 405, (method, path, status, body)
        assert headers.get("x-amzn-errortype") == "MethodNotAllowedException", (method, path, headers)
        if method != "HEAD":
            assert method in json.loads(body)["message"]
    still_there(iot, data, cert_id)


def test_put_on_a_certificate_without_a_status_changes_nothing(node, resources):
    iot, data, cert_id = resources
    status, headers, body = signed(node, "PUT", f"/certificates/{cert_id}")
    assert_aws_error(status, headers, body, 400, "InvalidRequestException")
    still_there(iot, data, cert_id)


def test_unknown_operations_are_named_errors(node):
    for method, path in (("GET", "/no-such-operation"), ("POST", "/things/t1/unknown"), ("DELETE", "/")):
        status, headers, body = signed(node, method, path)
        assert_aws_error(status, headers, body, 404, "UnknownOperationException")
        assert path in json.loads(body)["message"]


def test_the_signature_is_checked_before_the_query_or_body(node, resources):
    iot, data, cert_id = resources
    # Unsigned: refused for the signature, whatever else is wrong.
    status, headers, body = signed(node, "GET", "/things?maxResults=lots", sign=False)
    assert_aws_error(status, headers, body, 403, "MissingAuthenticationTokenException")
    status, headers, body = signed(node, "DELETE", "/things/t1", sign=False)
    assert_aws_error(status, headers, body, 403, "MissingAuthenticationTokenException")
    status, headers, body = signed(node, "POST", "/things/t9", body=b"{not json", sign=False)
    assert_aws_error(status, headers, body, 403, "MissingAuthenticationTokenException")
    # Signed: the query and the body get AWS's 400.
    status, headers, body = signed(node, "GET", "/things?maxResults=lots")
    assert_aws_error(status, headers, body, 400, "InvalidRequestException")
    status, headers, body = signed(node, "POST", "/things/t9", body=b"{not json")
    assert_aws_error(status, headers, body, 400, "InvalidRequestException")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing(thingName="t9")
    still_there(iot, data, cert_id)


def test_an_oversized_body_is_refused_in_aws_shape_without_being_read(node):
    big = b"x" * (300 * 1024)
    for sign in (False, True):
        status, headers, body = signed(node, "POST", "/things/t2", body=big, sign=sign)
        assert_aws_error(status, headers, body, 413, "RequestEntityTooLargeException")
    status, headers, body = signed(node, "GET", "/things/t2")
    assert_aws_error(status, headers, body, 404, "ResourceNotFoundException")


def test_botocore_names_the_refusal(node):
    """The AWS SDK turns the 405 into a named exception, not `An error occurred (405)`."""
    import botocore.exceptions

    iot = aws_client(node, "iot")
    iot.create_thing(thingName="named")
    # DescribeThing's path with a method it does not have, sent through the SDK's own stack.
    iot.meta.events.register("before-sign.iot.DescribeThing",
                             lambda request, **_: setattr(request, "method", "OPTIONS"))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.describe_thing(thingName="named")
    assert e.value.response["Error"]["Code"] == "MethodNotAllowedException"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 405
