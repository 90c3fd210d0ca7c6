"""Fleet provisioning, the way AWS IoT Core does it: provisioning templates and their
versions over the API (boto3 and the AWS CLI), the MQTT API of `$aws/certificates/create*`
and `$aws/provisioning-templates/{name}/provision` (JSON and CBOR) driven by a device
holding a claim certificate (paho-mqtt over TLS and the AWS IoT Device SDK v2), ownership
tokens, pre-provisioning hooks served by the test over HTTP, CreateProvisioningClaim and
RegisterThing."""

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import time
import uuid
from datetime import datetime, timezone

import cbor2
import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import Client, JsonEndpoint, aws_client
from test_iot_policies import Device

ROLE = "arn:aws:iam::123456789012:role/Provision"
DEVICE_POLICY = "fleet-device"
ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}

# AWS's fleet provisioning template, in the shape of the developer guide's example.
FLEET_TEMPLATE = {
    "Parameters": {
        "SerialNumber": {"Type": "String"},
        "DeviceLocation": {"Type": "String", "Default": "Seattle"},
        "AWS::IoT::Certificate::Id": {"Type": "String"},
    },
    "Conditions": {"InSeattle": {"Fn::Equals": [{"Ref": "DeviceLocation"}, "Seattle"]}},
    "Resources": {
        "thing": {
            "Type": "AWS::IoT::Thing",
            "Properties": {
                "ThingName": {"Fn::Join": ["", ["device-", {"Ref": "SerialNumber"}]]},
                "AttributePayload": {"location": {"Ref": "DeviceLocation"}, "serial": {"Ref": "SerialNumber"}},
                "ThingGroups": ["fleet"],
            },
            "OverrideSettings": {"AttributePayload": "MERGE", "ThingTypeName": "REPLACE", "ThingGroups": "DO_NOTHING"},
        },
        "certificate": {
            "Type": "AWS::IoT::Certificate",
            "Properties": {"CertificateId": {"Ref": "AWS::IoT::Certificate::Id"}, "Status": "ACTIVE"},
        },
        "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": DEVICE_POLICY}},
    },
    "DeviceConfiguration": {"FallbackUrl": "https://example.com/fw", "Location": {"Ref": "DeviceLocation"}},
}


# ---------------------------------------------------------------------------------------------
# Helpers


def iot(node):
    return aws_client(node, "iot")


def message_of(error):
    return error.value.response["Error"]["Message"]


def template_body(**changes):
    """FLEET_TEMPLATE as a JSON string, with top-level sections replaced by `changes`."""
    return json.dumps({**FLEET_TEMPLATE, **changes})


def thing_template(properties):
    """A template of one thing resource with these Properties (and a SerialNumber parameter)."""
    return json.dumps({"Parameters": {"SerialNumber": {"Type": "String"}},
                       "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": properties}}})


def fleet_template(c, name="fleet", hook=None, **kw):
    """Creates FLEET_TEMPLATE as `name` (enabled), with what it refers to: the thing group
    `fleet` and the allow-all policy DEVICE_POLICY. The CreateProvisioningTemplate answer."""
    if DEVICE_POLICY not in [p["policyName"] for p in c.list_policies()["policies"]]:
        c.create_policy(policyName=DEVICE_POLICY, policyDocument=json.dumps(ALLOW_ALL))
        c.create_thing_group(thingGroupName="fleet")
    args = dict(templateName=name, templateBody=template_body(), provisioningRoleArn=ROLE, enabled=True, **kw)
    if hook:
        args["preProvisioningHook"] = {"targetArn": hook, "payloadVersion": "2020-04-01"}
    return c.create_provisioning_template(**args)


def arn_prefix(arn):
    """`arn:aws:iot:REGION:ACCOUNT:` of a resource ARN."""
    return ":".join(arn.split(":")[:5]) + ":"


def claim_certificate(c, *templates):
    """A new active certificate with AWS's claim policy: connect, and the provisioning topics
    (create, create-from-csr, and provision of `templates`) only."""
    cert = c.create_keys_and_certificate(setAsActive=True)
    prefix = arn_prefix(cert["certificateArn"])
    topics = ["$aws/certificates/create/*", "$aws/certificates/create-from-csr/*"] + \
        [f"$aws/provisioning-templates/{t}/provision/*" for t in templates]
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"},
        {"Effect": "Allow", "Action": ["iot:Publish", "iot:Receive"], "Resource": [f"{prefix}topic/{t}" for t in topics]},
        {"Effect": "Allow", "Action": "iot:Subscribe", "Resource": [f"{prefix}topicfilter/{t}" for t in topics]}]}
    name = f"claim-{cert['certificateId'][:12]}"
    c.create_policy(policyName=name, policyDocument=json.dumps(policy))
    c.attach_policy(policyName=name, target=cert["certificateArn"])
    return cert


def connected_device(node, cert, tmp_path, client_id, protocol=mqtt.MQTTv311):
    """A paho client over TLS presenting `cert`, asserted connected."""
    d = Device(node, cert, tmp_path, client_id, protocol=protocol)
    assert d.connected(), f"{client_id} was refused"
    return d


def as_cert(pem, key_pem):
    """The shape Device takes for a certificate and its key."""
    return {"certificatePem": pem, "keyPair": {"PrivateKey": key_pem}}


def encode(body, base):
    return cbor2.dumps(body) if base.endswith("/cbor") else json.dumps(body).encode()


def decode(payload, base):
    return cbor2.loads(payload) if base.endswith("/cbor") else json.loads(payload)


def answer(dev, base, timeout=10):
    """("accepted" or "rejected", the decoded answer) of the next answer on `base`/+."""
    deadline = time.time() + timeout
    while True:
        try:
            topic, payload = dev.messages.get(timeout=max(0.01, deadline - time.time()))
        except queue.Empty:
            raise AssertionError(f"no answer on {base}/accepted or {base}/rejected within {timeout}s")
        if topic in (f"{base}/accepted", f"{base}/rejected"):
            return topic.rsplit("/", 1)[1], decode(payload, base)


def request(dev, base, body):
    """Subscribes to `base`/+ and publishes `body` (JSON or CBOR by the topic) to `base`."""
    assert dev.subscribe(f"{base}/+") == [1], f"subscribe {base}/+"
    dev.c.publish(base, encode(body, base), qos=1)
    return answer(dev, base)


def create_keys(dev, fmt="json"):
    """CreateKeysAndCertificate over MQTT; the accepted answer."""
    outcome, got = request(dev, f"$aws/certificates/create/{fmt}", {})
    assert outcome == "accepted", got
    return got


def provision(dev, template, token, parameters, fmt="json"):
    """RegisterThing over MQTT: ("accepted" or "rejected", the answer)."""
    return request(dev, f"$aws/provisioning-templates/{template}/provision/{fmt}",
                   {"certificateOwnershipToken": token, "parameters": parameters})


def certificate(c, cert_id):
    return c.describe_certificate(certificateId=cert_id)["certificateDescription"]


def thing_exists(c, name):
    try:
        c.describe_thing(thingName=name)
        return True
    except c.exceptions.ResourceNotFoundException:
        return False


def same_key(cert_pem, key_pem):
    """Whether the private key belongs to the certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(*der) == key.public_key().public_bytes(*der)


def new_csr(common_name):
    """(CSR PEM, private key PEM) of a new P-256 key."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return csr.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def publishes(node, cert, tmp_path, client_id, topic):
    """Connects with `cert` over TLS and publishes to `topic`: whether an anonymous
    subscriber on plain MQTT received it."""
    watcher = Client(node, f"watch-{client_id}")
    watcher.subscribe(topic, qos=1)
    d = Device(node, cert, tmp_path, client_id)
    try:
        if not d.connected():
            return False
        d.c.publish(topic, b"provisioned", qos=1)
        try:
            m = watcher.get(timeout=5)
        except queue.Empty:
            return False
        return (m.topic, m.payload) == (topic, b"provisioned")
    finally:
        d.stop()
        watcher.close()


def assert_provisioned(c, thing, cert_id, location="Seattle", serial=None):
    """The thing exists with the template's attributes, the certificate is ACTIVE, attached to
    it and has the template's policy."""
    described = c.describe_thing(thingName=thing)
    assert described["attributes"]["location"] == location
    if serial is not None:
        assert described["attributes"]["serial"] == serial
    desc = certificate(c, cert_id)
    assert desc["status"] == "ACTIVE"
    assert c.list_thing_principals(thingName=thing)["principals"] == [desc["certificateArn"]]
    policies = [p["policyName"] for p in c.list_attached_policies(target=desc["certificateArn"])["policies"]]
    assert DEVICE_POLICY in policies


class Hook(JsonEndpoint):
    """A pre-provisioning hook served over HTTP: records each request's JSON body and answers
    with `answer`."""

    def __init__(self, answer):
        self.answer = answer
        super().__init__(lambda _request: self.answer, "/hook")


@pytest.fixture
def hook():
    h = Hook({"allowProvisioning": True})
    yield h
    h.close()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------------------------------------
# Templates over the API


def test_provisioning_template_routes_follow_aws(node, hook):
    """Create, describe, list (paged), update (description, enabled, hook added and removed) and
    delete a template, with AWS's fields and errors."""
    c = iot(node)
    made = fleet_template(c, "fleet", description="first fleet")
    assert made["templateName"] == "fleet" and made["defaultVersionId"] == 1
    assert re.fullmatch(r"arn:aws:iot:us-east-1:\d{12}:provisioningtemplate/fleet", made["templateArn"]), made
    desc = c.describe_provisioning_template(templateName="fleet")
    assert (desc["templateArn"], desc["templateName"], desc["description"]) == \
        (made["templateArn"], "fleet", "first fleet")
    assert (desc["defaultVersionId"], desc["enabled"], desc["provisioningRoleArn"], desc["type"]) == \
        (1, True, ROLE, "FLEET_PROVISIONING")
    assert json.loads(desc["templateBody"]) == FLEET_TEMPLATE
    assert isinstance(desc["creationDate"], datetime) and isinstance(desc["lastModifiedDate"], datetime)
    assert not desc.get("preProvisioningHook")

    with pytest.raises(c.exceptions.ResourceAlreadyExistsException):
        fleet_template(c, "fleet")
    fleet_template(c, "fleet-b")
    fleet_template(c, "fleet-c", hook=hook.url)
    hooked = c.describe_provisioning_template(templateName="fleet-c")["preProvisioningHook"]
    assert hooked == {"targetArn": hook.url, "payloadVersion": "2020-04-01"}

    first = c.list_provisioning_templates(maxResults=2)
    assert len(first["templates"]) == 2 and first.get("nextToken")
    rest = c.list_provisioning_templates(maxResults=2, nextToken=first["nextToken"])
    assert not rest.get("nextToken")
    listed = first["templates"] + rest["templates"]
    assert sorted(t["templateName"] for t in listed) == ["fleet", "fleet-b", "fleet-c"]
    summary = next(t for t in listed if t["templateName"] == "fleet")
    assert (summary["templateArn"], summary["description"], summary["enabled"], summary["type"]) == \
        (made["templateArn"], "first fleet", True, "FLEET_PROVISIONING")

    time.sleep(1.1)
    c.update_provisioning_template(templateName="fleet", description="second", enabled=False,
                                   preProvisioningHook={"targetArn": hook.url, "payloadVersion": "2020-04-01"})
    desc = c.describe_provisioning_template(templateName="fleet")
    assert (desc["description"], desc["enabled"]) == ("second", False)
    assert desc["preProvisioningHook"]["targetArn"] == hook.url
    assert desc["lastModifiedDate"] > desc["creationDate"]
    c.update_provisioning_template(templateName="fleet", removePreProvisioningHook=True)
    assert not c.describe_provisioning_template(templateName="fleet").get("preProvisioningHook")

    c.delete_provisioning_template(templateName="fleet")
    for call in (lambda: c.describe_provisioning_template(templateName="fleet"),
                 lambda: c.delete_provisioning_template(templateName="fleet"),
                 lambda: c.update_provisioning_template(templateName="fleet", description="x")):
        with pytest.raises(c.exceptions.ResourceNotFoundException):
            call()
    assert sorted(t["templateName"] for t in c.list_provisioning_templates()["templates"]) == ["fleet-b", "fleet-c"]


def test_template_versions_have_one_default_and_at_most_five(node):
    """CreateProvisioningTemplateVersion adds versions (optionally the default); the default
    version is the template's body, cannot be deleted, and a template holds at most 5."""
    c = iot(node)
    fleet_template(c, "fleet")
    v2_body = template_body(DeviceConfiguration={"FallbackUrl": "https://example.com/v2"})
    v3_body = template_body(DeviceConfiguration={"FallbackUrl": "https://example.com/v3"})
    v2 = c.create_provisioning_template_version(templateName="fleet", templateBody=v2_body, setAsDefault=False)
    assert (v2["templateName"], v2["versionId"], v2["isDefaultVersion"]) == ("fleet", 2, False)
    assert v2["templateArn"].endswith(":provisioningtemplate/fleet")
    assert c.describe_provisioning_template(templateName="fleet")["defaultVersionId"] == 1
    v3 = c.create_provisioning_template_version(templateName="fleet", templateBody=v3_body, setAsDefault=True)
    assert (v3["versionId"], v3["isDefaultVersion"]) == (3, True)
    desc = c.describe_provisioning_template(templateName="fleet")
    assert desc["defaultVersionId"] == 3 and json.loads(desc["templateBody"]) == json.loads(v3_body)

    got = c.describe_provisioning_template_version(templateName="fleet", versionId=2)
    assert (got["versionId"], got["isDefaultVersion"]) == (2, False)
    assert json.loads(got["templateBody"]) == json.loads(v2_body) and isinstance(got["creationDate"], datetime)
    versions = c.list_provisioning_template_versions(templateName="fleet")["versions"]
    assert sorted(v["versionId"] for v in versions) == [1, 2, 3]
    assert [v["versionId"] for v in versions if v["isDefaultVersion"]] == [3]

    with pytest.raises(c.exceptions.DeleteConflictException):
        c.delete_provisioning_template_version(templateName="fleet", versionId=3)
    c.update_provisioning_template(templateName="fleet", defaultVersionId=1)
    desc = c.describe_provisioning_template(templateName="fleet")
    assert desc["defaultVersionId"] == 1 and json.loads(desc["templateBody"]) == FLEET_TEMPLATE
    c.delete_provisioning_template_version(templateName="fleet", versionId=3)
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.describe_provisioning_template_version(templateName="fleet", versionId=3)
    assert sorted(v["versionId"] for v in
                  c.list_provisioning_template_versions(templateName="fleet")["versions"]) == [1, 2]

    with pytest.raises(c.exceptions.InvalidRequestException):
        c.create_provisioning_template_version(templateName="fleet", templateBody="{not json")
    for _ in range(3):
        c.create_provisioning_template_version(templateName="fleet", templateBody=v2_body)
    assert len(c.list_provisioning_template_versions(templateName="fleet")["versions"]) == 5
    with pytest.raises(c.exceptions.VersionsLimitExceededException):
        c.create_provisioning_template_version(templateName="fleet", templateBody=v2_body)
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.create_provisioning_template_version(templateName="nope", templateBody=v2_body)


BROKEN_TEMPLATES = {
    "unknown-resource-type": (json.dumps({"Resources": {"w": {"Type": "AWS::IoT::Widget", "Properties": {}}}}),
                              "AWS::IoT::Widget"),
    "ref-to-an-undeclared-parameter": (thing_template({"ThingName": {"Ref": "Undeclared"}}), "Undeclared"),
    "unknown-intrinsic-function": (thing_template({"ThingName": {"Fn::Foo": ["a", "b"]}}), "Fn::Foo"),
    "thing-without-thing-name": (thing_template({"AttributePayload": {"a": "b"}}), "ThingName"),
    "invalid-json": ('{"Resources": {"thing": ', "json"),
}


@pytest.mark.parametrize("case", sorted(BROKEN_TEMPLATES))
def test_a_template_that_cannot_work_is_refused_with_the_reason(node, case):
    """CreateProvisioningTemplate checks the body: InvalidRequestException naming the problem."""
    body, reason = BROKEN_TEMPLATES[case]
    c = iot(node)
    with pytest.raises(c.exceptions.InvalidRequestException) as e:
        c.create_provisioning_template(templateName="broken", templateBody=body, provisioningRoleArn=ROLE,
                                       enabled=True)
    assert reason.lower() in message_of(e).lower(), message_of(e)
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.describe_provisioning_template(templateName="broken")


def test_the_aws_cli_creates_and_describes_a_provisioning_template(node, tmp_path):
    """`aws iot create-provisioning-template` and `describe-provisioning-template` against the node."""
    if shutil.which("aws") is None:
        pytest.skip("the aws CLI is not installed")
    body = json.dumps({"Parameters": {"SerialNumber": {"Type": "String"}}, "Resources": {"thing": {
        "Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "SerialNumber"}}}}})
    env = dict(os.environ, AWS_SHARED_CREDENTIALS_FILE=os.path.join(node.data_dir, "credentials"),
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=str(tmp_path / "none"))
    endpoint = ["--endpoint-url", f"http://{node.host}:{node.http_port}"]
    out = subprocess.run(["aws", "iot", "create-provisioning-template", "--template-name", "cli-fleet",
                          "--template-body", body, "--provisioning-role-arn", ROLE, "--enabled"] + endpoint,
                         env=env, check=True, capture_output=True, text=True, timeout=60).stdout
    made = json.loads(out)
    assert (made["templateName"], made["defaultVersionId"]) == ("cli-fleet", 1)
    assert made["templateArn"].endswith(":provisioningtemplate/cli-fleet")
    out = subprocess.run(["aws", "iot", "describe-provisioning-template", "--template-name", "cli-fleet"] + endpoint,
                         env=env, check=True, capture_output=True, text=True, timeout=60).stdout
    desc = json.loads(out)
    assert (desc["enabled"], desc["provisioningRoleArn"]) == (True, ROLE)
    assert json.loads(desc["templateBody"]) == json.loads(body)


# ---------------------------------------------------------------------------------------------
# The MQTT API with a claim certificate


def test_a_claim_certificate_provisions_a_device_over_mqtt(node, tmp_path):
    """AWS's provisioning by claim: CreateKeysAndCertificate gives a new key pair and a
    PENDING_ACTIVATION certificate, RegisterThing with its ownership token creates the thing
    from the template, activates and attaches the certificate, attaches the template's
    policy and answers the evaluated device configuration; the device then connects with
    its new certificate and publishes."""
    c = iot(node)
    fleet_template(c)
    claim = connected_device(node, claim_certificate(c, "fleet"), tmp_path, "claim-1")
    created = create_keys(claim)
    assert set(created) == {"certificateId", "certificatePem", "privateKey", "certificateOwnershipToken"}
    assert same_key(created["certificatePem"], created["privateKey"])
    desc = certificate(c, created["certificateId"])
    assert desc["status"] == "PENDING_ACTIVATION"
    assert desc["certificatePem"].strip() == created["certificatePem"].strip()

    outcome, registered = provision(claim, "fleet", created["certificateOwnershipToken"], {"SerialNumber": "1234"})
    assert outcome == "accepted", registered
    assert registered == {"thingName": "device-1234",
                          "deviceConfiguration": {"FallbackUrl": "https://example.com/fw", "Location": "Seattle"}}
    claim.stop()
    assert_provisioned(c, "device-1234", created["certificateId"], serial="1234")
    groups = [g["groupName"] for g in c.list_thing_groups_for_thing(thingName="device-1234")["thingGroups"]]
    assert groups == ["fleet"]
    assert publishes(node, as_cert(created["certificatePem"], created["privateKey"]), tmp_path, "device-1234",
                     "fleet/device-1234/hello")


def test_the_cbor_topics_provision_the_same_way(node, tmp_path):
    """`$aws/certificates/create/cbor` and `.../provision/cbor` take and answer CBOR maps with
    the JSON API's keys."""
    c = iot(node)
    fleet_template(c)
    claim = connected_device(node, claim_certificate(c, "fleet"), tmp_path, "claim-cbor")
    created = create_keys(claim, "cbor")
    assert set(created) == {"certificateId", "certificatePem", "privateKey", "certificateOwnershipToken"}
    assert certificate(c, created["certificateId"])["status"] == "PENDING_ACTIVATION"
    outcome, registered = provision(claim, "fleet", created["certificateOwnershipToken"],
                                    {"SerialNumber": "77", "DeviceLocation": "Oslo"}, fmt="cbor")
    assert outcome == "accepted", registered
    assert registered == {"thingName": "device-77",
                          "deviceConfiguration": {"FallbackUrl": "https://example.com/fw", "Location": "Oslo"}}
    claim.stop()
    assert_provisioned(c, "device-77", created["certificateId"], location="Oslo", serial="77")
    assert publishes(node, as_cert(created["certificatePem"], created["privateKey"]), tmp_path, "device-77",
                     "fleet/device-77/hello")


def test_a_device_keeping_its_own_key_provisions_from_a_csr(node, tmp_path):
    """CreateCertificateFromCsr over MQTT signs the device's CSR (no private key in the
    answer); RegisterThing with its token provisions it, and the device connects with the key
    it never sent."""
    c = iot(node)
    fleet_template(c)
    csr, key_pem = new_csr("csr-device")
    claim = connected_device(node, claim_certificate(c, "fleet"), tmp_path, "claim-csr")
    outcome, created = request(claim, "$aws/certificates/create-from-csr/json", {"certificateSigningRequest": csr})
    assert outcome == "accepted", created
    assert set(created) == {"certificateId", "certificatePem", "certificateOwnershipToken"}
    assert same_key(created["certificatePem"], key_pem)
    assert certificate(c, created["certificateId"])["status"] == "PENDING_ACTIVATION"
    outcome, registered = provision(claim, "fleet", created["certificateOwnershipToken"], {"SerialNumber": "csr-9"})
    assert outcome == "accepted", registered
    assert registered["thingName"] == "device-csr-9"
    claim.stop()
    assert_provisioned(c, "device-csr-9", created["certificateId"])
    assert publishes(node, as_cert(created["certificatePem"], key_pem), tmp_path, "device-csr-9",
                     "fleet/device-csr-9/hello")


def test_answers_go_only_to_the_requesting_connection(node, tmp_path):
    """Two connections of the same claim certificate subscribe to the accepted topic; only the
    one that asked gets the new key pair."""
    c = iot(node)
    cert = claim_certificate(c, "fleet")
    a = connected_device(node, cert, tmp_path, "claim-a")
    b = connected_device(node, cert, tmp_path, "claim-b")
    assert b.subscribe("$aws/certificates/create/json/+") == [1]
    create_keys(a)
    time.sleep(1.0)
    assert b.messages.empty(), f"the other connection got {b.messages.get()}"
    a.stop()
    b.stop()


def assert_rejected(outcome, got, status, error_code=None):
    assert outcome == "rejected", got
    assert set(got) == {"statusCode", "errorCode", "errorMessage"}, got
    assert isinstance(got["errorMessage"], str) and isinstance(got["errorCode"], str)
    assert got["statusCode"] == status, got
    if error_code:
        assert got["errorCode"] == error_code, got


def test_forged_and_foreign_ownership_tokens_are_rejected(node, tmp_path):
    """An ownership token is the node's and the requesting connection's: a made-up token, or
    one another connection received, is rejected (400 InvalidCertificateOwnershipToken) and
    provisions nothing."""
    c = iot(node)
    fleet_template(c)
    cert = claim_certificate(c, "fleet")
    a = connected_device(node, cert, tmp_path, "claim-a")
    b = connected_device(node, cert, tmp_path, "claim-b")
    assert_rejected(*provision(a, "fleet", "forged-" + uuid.uuid4().hex, {"SerialNumber": "1"}),
                    400, "InvalidCertificateOwnershipToken")
    token = create_keys(a)["certificateOwnershipToken"]
    assert_rejected(*provision(b, "fleet", token, {"SerialNumber": "2"}), 400, "InvalidCertificateOwnershipToken")
    assert not thing_exists(c, "device-1") and not thing_exists(c, "device-2")
    # The token still works where it was given.
    outcome, got = provision(a, "fleet", token, {"SerialNumber": "3"})
    assert outcome == "accepted", got
    assert thing_exists(c, "device-3")
    a.stop()
    b.stop()


def test_an_expired_ownership_token_is_rejected(make_node, tmp_path):
    """Ownership tokens expire (`[provisioning] ownership_token_secs`, AWS: one hour)."""
    node = make_node(config_text="[provisioning]\nownership_token_secs = 2\n")
    c = iot(node)
    fleet_template(c)
    claim = connected_device(node, claim_certificate(c, "fleet"), tmp_path, "claim-exp")
    token = create_keys(claim)["certificateOwnershipToken"]
    time.sleep(3)
    assert_rejected(*provision(claim, "fleet", token, {"SerialNumber": "5"}), 400, "InvalidCertificateOwnershipToken")
    assert not thing_exists(c, "device-5")
    claim.stop()


def test_missing_parameters_unknown_and_disabled_templates_are_rejected(node, tmp_path):
    """RegisterThing's rejections: a required parameter missing (400 InvalidParameters), no
    such template (404), a disabled template (400, "disabled")."""
    c = iot(node)
    fleet_template(c)
    claim = connected_device(node, claim_certificate(c, "fleet", "nope"), tmp_path, "claim-rej")
    assert_rejected(*provision(claim, "fleet", create_keys(claim)["certificateOwnershipToken"], {}),
                    400, "InvalidParameters")
    assert_rejected(*provision(claim, "nope", create_keys(claim)["certificateOwnershipToken"], {"SerialNumber": "6"}),
                    404)
    c.update_provisioning_template(templateName="fleet", enabled=False)
    outcome, got = provision(claim, "fleet", create_keys(claim)["certificateOwnershipToken"], {"SerialNumber": "6"})
    assert_rejected(outcome, got, 400)
    assert "disabled" in got["errorMessage"].lower(), got
    assert not thing_exists(c, "device-6")
    assert c.list_things()["things"] == []
    claim.stop()


def test_a_claim_certificate_may_use_only_the_provisioning_topics(node, tmp_path):
    """The claim policy holds: the claim certificate provisions, but what it publishes
    elsewhere reaches nobody and it cannot subscribe elsewhere."""
    c = iot(node)
    claim = connected_device(node, claim_certificate(c, "fleet"), tmp_path, "claim-lim", protocol=mqtt.MQTTv5)
    create_keys(claim)
    watcher = Client(node, "watcher")
    watcher.subscribe("elsewhere/#", qos=1)
    claim.c.publish("elsewhere/x", b"sneaky", qos=1)
    watcher.expect_none(1.5)
    try:
        granted = claim.subscribe("elsewhere/#")
    except queue.Empty:
        granted = None  # the node closed the connection instead of answering
    assert granted != [1]
    claim.c.loop_stop()
    watcher.close()


# ---------------------------------------------------------------------------------------------
# Pre-provisioning hooks


def test_a_pre_provisioning_hook_sees_the_request_and_overrides_parameters(node, tmp_path, hook):
    """The hook gets AWS's request (claim and new certificate, template ARN, client id,
    parameters); its parameterOverrides replace the device's parameters."""
    hook.answer = {"allowProvisioning": True, "parameterOverrides": {"DeviceLocation": "Berlin"}}
    c = iot(node)
    arn = fleet_template(c, hook=hook.url)["templateArn"]
    claim_cert = claim_certificate(c, "fleet")
    claim = connected_device(node, claim_cert, tmp_path, "claim-hook")
    created = create_keys(claim)
    outcome, registered = provision(claim, "fleet", created["certificateOwnershipToken"],
                                    {"SerialNumber": "42", "DeviceLocation": "Paris"})
    assert outcome == "accepted", registered
    assert registered["deviceConfiguration"]["Location"] == "Berlin"
    claim.stop()
    assert_provisioned(c, "device-42", created["certificateId"], location="Berlin", serial="42")
    assert len(hook.requests) == 1
    seen = hook.requests[0]
    assert seen["claimCertificateId"] == claim_cert["certificateId"]
    assert seen["certificateId"] == created["certificateId"]
    assert seen["certificatePem"].strip() == created["certificatePem"].strip()
    assert seen["templateArn"] == arn
    assert seen["clientId"] == "claim-hook"
    assert seen["parameters"]["SerialNumber"] == "42" and seen["parameters"]["DeviceLocation"] == "Paris"


def test_a_pre_provisioning_hook_that_refuses_or_cannot_be_reached_stops_provisioning(node, tmp_path, hook):
    """`allowProvisioning: false` is a 403 rejection naming the hook; a hook that cannot be
    reached rejects too; neither creates the thing."""
    hook.answer = {"allowProvisioning": False}
    c = iot(node)
    fleet_template(c, "fleet", hook=hook.url)
    fleet_template(c, "unreachable", hook=f"http://127.0.0.1:{closed_port()}/hook")
    claim = connected_device(node, claim_certificate(c, "fleet", "unreachable"), tmp_path, "claim-no")
    outcome, got = provision(claim, "fleet", create_keys(claim)["certificateOwnershipToken"], {"SerialNumber": "8"})
    assert_rejected(outcome, got, 403)
    assert "hook" in got["errorMessage"].lower(), got
    assert len(hook.requests) == 1
    outcome, got = provision(claim, "unreachable", create_keys(claim)["certificateOwnershipToken"],
                             {"SerialNumber": "9"})
    assert outcome == "rejected", got
    claim.stop()
    assert not thing_exists(c, "device-8") and not thing_exists(c, "device-9")


# ---------------------------------------------------------------------------------------------
# CreateProvisioningClaim (provisioning by trusted user)


def test_a_provisioning_claim_is_a_temporary_certificate_for_one_template(node, tmp_path):
    """CreateProvisioningClaim returns a certificate valid for about five minutes that, with
    no policy attached, may run fleet provisioning for its template and nothing else."""
    c = iot(node)
    fleet_template(c, "fleet")
    fleet_template(c, "other")
    made = c.create_provisioning_claim(templateName="fleet")
    left = (made["expiration"] - datetime.now(timezone.utc)).total_seconds()
    assert 4 * 60 <= left <= 6 * 60, made["expiration"]
    assert same_key(made["certificatePem"], made["keyPair"]["PrivateKey"])
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.create_provisioning_claim(templateName="nope")

    claim = connected_device(node, made, tmp_path, "trusted-claim", protocol=mqtt.MQTTv5)
    created = create_keys(claim)
    outcome, got = provision(claim, "fleet", created["certificateOwnershipToken"], {"SerialNumber": "tu-1"})
    assert outcome == "accepted", got
    assert_provisioned(c, "device-tu-1", created["certificateId"])

    # Another template's topics are not the claim's.
    token = create_keys(claim)["certificateOwnershipToken"]
    base = "$aws/provisioning-templates/other/provision/json"
    try:
        claim.subscribe(f"{base}/+")  # refused or not: what matters is that nothing is provisioned
    except queue.Empty:
        pass
    claim.c.publish(base, json.dumps({"certificateOwnershipToken": token, "parameters": {"SerialNumber": "tu-2"}}),
                    qos=1)
    time.sleep(1.5)
    assert not any(t == f"{base}/accepted" for t, _ in list(claim.messages.queue))
    assert not thing_exists(c, "device-tu-2")

    # Nor is an ordinary topic.
    watcher = Client(node, "watcher")
    watcher.subscribe("ordinary/#", qos=1)
    claim.c.publish("ordinary/topic", b"nope", qos=1)
    watcher.expect_none(1.5)
    claim.c.loop_stop()
    watcher.close()


# ---------------------------------------------------------------------------------------------
# The AWS IoT Device SDK v2


def sdk_connection(node, certfile, keyfile, client_id):
    from awsiot import mqtt_connection_builder
    conn = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost", port=node.mqtts_port, cert_filepath=str(certfile), pri_key_filepath=str(keyfile),
        ca_filepath=node.ca_path, client_id=client_id, clean_session=True, keep_alive_secs=30)
    conn.connect().result(10)
    return conn


@pytest.mark.parametrize("method", ["keys", "csr"])
def test_the_device_sdk_provisions_by_claim(node, tmp_path, method):
    """AWS's fleet_provisioning sample, with the SDK's IotIdentityClient: subscribe to the
    answers, CreateKeysAndCertificate (or CreateCertificateFromCsr), RegisterThing; then
    the SDK connects with the new certificate and publishes."""
    from awscrt import mqtt as crt_mqtt
    from awsiot import iotidentity

    c = iot(node)
    fleet_template(c)
    claim = claim_certificate(c, "fleet")
    certfile, keyfile = tmp_path / "claim.pem", tmp_path / "claim.key"
    certfile.write_text(claim["certificatePem"])
    keyfile.write_text(claim["keyPair"]["PrivateKey"])
    conn = sdk_connection(node, certfile, keyfile, f"sdk-claim-{method}")
    qos = crt_mqtt.QoS.AT_LEAST_ONCE
    try:
        identity = iotidentity.IotIdentityClient(conn)
        created, registered, rejected = queue.Queue(), queue.Queue(), queue.Queue()
        if method == "keys":
            sub = iotidentity.CreateKeysAndCertificateSubscriptionRequest()
            subscriptions = [(identity.subscribe_to_create_keys_and_certificate_accepted, sub, created.put),
                             (identity.subscribe_to_create_keys_and_certificate_rejected, sub, rejected.put)]
        else:
            sub = iotidentity.CreateCertificateFromCsrSubscriptionRequest()
            subscriptions = [(identity.subscribe_to_create_certificate_from_csr_accepted, sub, created.put),
                             (identity.subscribe_to_create_certificate_from_csr_rejected, sub, rejected.put)]
        register_sub = iotidentity.RegisterThingSubscriptionRequest(template_name="fleet")
        subscriptions += [(identity.subscribe_to_register_thing_accepted, register_sub, registered.put),
                          (identity.subscribe_to_register_thing_rejected, register_sub, rejected.put)]
        for subscribe, req, callback in subscriptions:
            future, _ = subscribe(request=req, qos=qos, callback=callback)
            future.result(10)

        if method == "keys":
            identity.publish_create_keys_and_certificate(
                request=iotidentity.CreateKeysAndCertificateRequest(), qos=qos).result(10)
            response = created.get(timeout=10)
            pem, key_pem = response.certificate_pem, response.private_key
        else:
            csr, key_pem = new_csr("sdk-csr")
            identity.publish_create_certificate_from_csr(
                request=iotidentity.CreateCertificateFromCsrRequest(certificate_signing_request=csr), qos=qos).result(10)
            response = created.get(timeout=10)
            pem = response.certificate_pem
        assert response.certificate_id and response.certificate_ownership_token
        assert same_key(pem, key_pem)

        identity.publish_register_thing(iotidentity.RegisterThingRequest(
            template_name="fleet", certificate_ownership_token=response.certificate_ownership_token,
            parameters={"SerialNumber": f"sdk-{method}"}), qos).result(10)
        thing = registered.get(timeout=10)
        assert thing.thing_name == f"device-sdk-{method}"
        assert thing.device_configuration == {"FallbackUrl": "https://example.com/fw", "Location": "Seattle"}
        assert rejected.empty(), rejected.get()
    finally:
        conn.disconnect().result(10)
    assert_provisioned(c, f"device-sdk-{method}", response.certificate_id)

    (tmp_path / "new.pem").write_text(pem)
    (tmp_path / "new.key").write_text(key_pem)
    watcher = Client(node, "watcher")
    watcher.subscribe("fleet/sdk/+", qos=1)
    device = sdk_connection(node, tmp_path / "new.pem", tmp_path / "new.key", f"device-sdk-{method}")
    try:
        device.publish(topic=f"fleet/sdk/{method}", payload=b"hello", qos=qos)[0].result(10)
        m = watcher.get(timeout=10)
        assert (m.topic, m.payload) == (f"fleet/sdk/{method}", b"hello")
    finally:
        device.disconnect().result(10)
        watcher.close()


# ---------------------------------------------------------------------------------------------
# RegisterThing over HTTP


def test_register_thing_over_http_creates_the_templates_resources(node):
    """RegisterThing with a template body and parameters: the thing is created, the existing
    certificate activated and attached, and the answer holds the certificate and the ARNs
    keyed by the template's logical resource ids."""
    c = iot(node)
    cert = c.create_keys_and_certificate(setAsActive=False)
    body = json.dumps({
        "Parameters": {"ThingName": {"Type": "String"}, "CertificateId": {"Type": "String"}},
        "Resources": {
            "lamp": {"Type": "AWS::IoT::Thing",
                     "Properties": {"ThingName": {"Ref": "ThingName"}, "AttributePayload": {"model": "x1"}}},
            "lampCert": {"Type": "AWS::IoT::Certificate",
                         "Properties": {"CertificateId": {"Ref": "CertificateId"}, "Status": "ACTIVE"}}}})
    made = c.register_thing(templateBody=body,
                            parameters={"ThingName": "http-lamp", "CertificateId": cert["certificateId"]})
    assert made["certificatePem"].strip() == cert["certificatePem"].strip()
    thing = c.describe_thing(thingName="http-lamp")
    assert thing["attributes"] == {"model": "x1"}
    assert made["resourceArns"] == {"lamp": thing["thingArn"], "lampCert": cert["certificateArn"]}
    assert certificate(c, cert["certificateId"])["status"] == "ACTIVE"
    assert c.list_thing_principals(thingName="http-lamp")["principals"] == [cert["certificateArn"]]

    with pytest.raises(c.exceptions.InvalidRequestException):
        c.register_thing(templateBody=thing_template({"ThingName": {"Fn::Foo": []}}),
                         parameters={"SerialNumber": "1"})
    with pytest.raises(c.exceptions.InvalidRequestException):
        c.register_thing(templateBody="{broken", parameters={})


def mqtt_string(s):
    b = s.encode()
    return len(b).to_bytes(2, "big") + b


def packet(first, body):
    """One MQTT packet: its first byte, the remaining length, the body."""
    n, length = len(body), b""
    while True:
        byte, n = n % 128, n // 128
        length += bytes([byte | (0x80 if n else 0)])
        if not n:
            return bytes([first]) + length + body


def test_a_client_cannot_have_more_than_eight_provisioning_requests_under_way(node):
    """A burst of 40 CreateKeysAndCertificate requests in one write: the node takes 8 at a
    time from one client and answers the rest `rejected` 429 Throttling, so a client
    cannot make it issue certificates faster than it commits them."""
    from conftest import split_packets
    s = socket.create_connection((node.host, node.mqtt_port), timeout=10)
    s.sendall(packet(0x10, b"\x00\x04MQTT\x04\x02\x00\x3c" + mqtt_string("burst")))
    assert s.recv(4)[:1] == b"\x20"
    s.sendall(packet(0x82, b"\x00\x01" + mqtt_string("$aws/certificates/create/json/+") + b"\x00"))
    assert s.recv(5)[:1] == b"\x90"
    burst = packet(0x30, mqtt_string("$aws/certificates/create/json") + b"{}") * 40
    s.sendall(burst)
    answers, data, deadline = [], b"", time.time() + 30
    s.settimeout(1)
    while len(answers) < 40 and time.time() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        assert chunk, "the node closed the connection"
        data += chunk
        # Keep only whole packets.
        whole, i = [], 0
        try:
            whole = split_packets(data)
        except IndexError:
            continue
        answers = [p for p in whole if p[0] >> 4 == 3]
    topics = []
    for p in answers:
        i, n, mult = 1, 0, 1
        while True:
            n += (p[i] & 0x7F) * mult
            mult *= 128
            i += 1
            if not p[i - 1] & 0x80:
                break
        tlen = int.from_bytes(p[i:i + 2], "big")
        topic = p[i + 2:i + 2 + tlen].decode()
        qos = (p[0] >> 1) & 3
        payload = p[i + 2 + tlen + (2 if qos else 0):]
        topics.append((topic, json.loads(payload)))
    s.close()
    assert len(topics) == 40, f"{len(topics)} answers"
    rejected = [d for t, d in topics if t.endswith("/rejected")]
    accepted = [d for t, d in topics if t.endswith("/accepted")]
    assert len(accepted) >= 8 and rejected, (len(accepted), len(rejected))
    assert all((d["statusCode"], d["errorCode"]) == (429, "Throttling") for d in rejected), rejected
