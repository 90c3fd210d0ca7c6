"""IoT policies: the policy routes through boto3, and enforcement on CONNECT,
PUBLISH, SUBSCRIBE and delivery for certificate clients (paho-mqtt over TLS, MQTT 3.1.1 and
5), using the policy examples of the AWS IoT developer guide."""

import json
import queue
import time

import botocore.exceptions
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from conftest import Client, aws_client

ARN = "arn:aws:iot:us-east-1:000000000000"


def doc(*statements):
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, *resources):
    return {"Effect": "Allow", "Action": action, "Resource": list(resources)}


def deny(action, *resources):
    return {"Effect": "Deny", "Action": action, "Resource": list(resources)}


def code_of(e):
    return e.value.response["Error"]["Code"]


class Device:
    """A paho client over TLS with a certificate, recording what happens to it."""

    def __init__(self, node, cert, tmp_path, client_id, protocol=mqtt.MQTTv311, will=None):
        certfile, keyfile = tmp_path / f"{client_id}.pem", tmp_path / f"{client_id}.key"
        certfile.write_text(cert["certificatePem"])
        keyfile.write_text(cert["keyPair"]["PrivateKey"])
        self.v5 = protocol == mqtt.MQTTv5
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        self.c.tls_set(ca_certs=node.ca_path, certfile=str(certfile), keyfile=str(keyfile))
        if will:
            self.c.will_set(*will)
        self.connack, self.disconnects, self.messages = queue.Queue(), queue.Queue(), queue.Queue()
        self.subacks, self.pubacks = queue.Queue(), queue.Queue()
        self.c.on_connect = lambda c, u, f, rc, p: self.connack.put(rc.value if hasattr(rc, "value") else rc)
        self.c.on_disconnect = lambda c, u, f, rc, p: self.disconnects.put(rc)
        self.c.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.c.on_subscribe = lambda c, u, mid, codes, p: self.subacks.put([x.value for x in codes])
        self.c.on_publish = lambda c, u, mid, rc, p: self.pubacks.put(rc.value)
        self.c.connect("localhost", node.mqtts_port, keepalive=30)
        self.c.loop_start()

    def connected(self):
        return self.connack.get(timeout=10) == 0

    def subscribe(self, topic_filter, qos=1):
        self.c.subscribe(topic_filter, qos)
        return self.subacks.get(timeout=5)

    def stop(self):
        self.c.disconnect()
        self.c.loop_stop()


def cert_with_policy(iot, name, document, thing=None):
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.create_policy(policyName=name, policyDocument=document)
    iot.attach_policy(policyName=name, target=cert["certificateArn"])
    if thing:
        iot.create_thing(thingName=thing)
        iot.attach_thing_principal(thingName=thing, principal=cert["certificateArn"])
    return cert


def test_policy_routes_follow_aws(node):
    iot = aws_client(node, "iot")
    v1 = doc(allow("iot:Connect", f"{ARN}:client/a"))
    created = iot.create_policy(policyName="p1", policyDocument=v1)
    assert created["policyArn"].endswith(":policy/p1") and created["policyVersionId"] == "1"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.create_policy(policyName="p1", policyDocument=v1)
    assert code_of(e) == "ResourceAlreadyExistsException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.create_policy(policyName="bad", policyDocument='{\n  "Version": "2012-10-17",\n  "Statement": [\n    {"Effect": "Allow", "Action": "iot:Connect"}\n  ]\n}')
    assert code_of(e) == "MalformedPolicyException"
    assert "line 4, column" in e.value.response["Error"]["Message"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.create_policy(policyName="bad", policyDocument='{"Version": "2012-10-17", "Statement": [}')
    assert code_of(e) == "MalformedPolicyException" and "line 1, column 41" in e.value.response["Error"]["Message"]
    got = iot.get_policy(policyName="p1")
    assert got["defaultVersionId"] == "1" and json.loads(got["policyDocument"]) == json.loads(v1)
    # Versions: at most five; the default cannot be deleted.
    for i in range(2, 6):
        v = iot.create_policy_version(policyName="p1", policyDocument=doc(allow("iot:Connect", f"{ARN}:client/v{i}")),
                                      setAsDefault=(i == 3))
        assert v["policyVersionId"] == str(i) and v["isDefaultVersion"] == (i == 3)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.create_policy_version(policyName="p1", policyDocument=v1)
    assert code_of(e) == "VersionsLimitExceededException"
    versions = iot.list_policy_versions(policyName="p1")["policyVersions"]
    assert sorted(v["versionId"] for v in versions) == ["1", "2", "3", "4", "5"]
    assert [v["versionId"] for v in versions if v["isDefaultVersion"]] == ["3"]
    assert iot.get_policy(policyName="p1")["defaultVersionId"] == "3"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.delete_policy_version(policyName="p1", policyVersionId="3")
    assert code_of(e) == "DeleteConflictException"
    iot.set_default_policy_version(policyName="p1", policyVersionId="5")
    assert iot.get_policy_version(policyName="p1", policyVersionId="5")["isDefaultVersion"] is True
    iot.delete_policy_version(policyName="p1", policyVersionId="3")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.get_policy_version(policyName="p1", policyVersionId="3")
    assert code_of(e) == "ResourceNotFoundException"
    # Attachments to a certificate and a thing group.
    cert = iot.create_keys_and_certificate(setAsActive=True)
    group = iot.create_thing_group(thingGroupName="floor")
    iot.attach_policy(policyName="p1", target=cert["certificateArn"])
    iot.attach_policy(policyName="p1", target=group["thingGroupArn"])
    assert sorted(iot.list_targets_for_policy(policyName="p1")["targets"]) == \
        sorted([cert["certificateArn"], group["thingGroupArn"]])
    assert [p["policyName"] for p in iot.list_attached_policies(target=cert["certificateArn"])["policies"]] == ["p1"]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.attach_policy(policyName="nope", target=cert["certificateArn"])
    assert code_of(e) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.delete_policy(policyName="p1")
    assert code_of(e) == "DeleteConflictException"
    # A certificate with policies is deleted only with forceDelete.
    iot.update_certificate(certificateId=cert["certificateId"], newStatus="INACTIVE")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.delete_certificate(certificateId=cert["certificateId"])
    assert code_of(e) == "DeleteConflictException"
    iot.delete_certificate(certificateId=cert["certificateId"], forceDelete=True)
    iot.detach_policy(policyName="p1", target=group["thingGroupArn"])
    assert iot.list_targets_for_policy(policyName="p1")["targets"] == []
    # A policy with non-default versions cannot be deleted until they are.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        iot.delete_policy(policyName="p1")
    assert code_of(e) == "DeleteConflictException"
    for v in ("1", "2", "4"):
        iot.delete_policy_version(policyName="p1", policyVersionId=v)
    iot.delete_policy(policyName="p1")
    assert iot.list_policies()["policies"] == []


def test_list_policies_pages_and_effective_policies_include_thing_groups(node):
    iot = aws_client(node, "iot")
    for i in range(5):
        iot.create_policy(policyName=f"pol-{i}", policyDocument=doc(allow("iot:Connect", "*")))
    page = iot.list_policies(pageSize=2)
    assert [p["policyName"] for p in page["policies"]] == ["pol-0", "pol-1"]
    rest = iot.list_policies(pageSize=10, marker=page["nextMarker"])
    assert [p["policyName"] for p in rest["policies"]] == ["pol-2", "pol-3", "pol-4"]
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.create_thing(thingName="t1")
    parent = iot.create_thing_group(thingGroupName="building")
    child = iot.create_thing_group(thingGroupName="floor-1", parentGroupName="building")
    iot.add_thing_to_thing_group(thingGroupName="floor-1", thingName="t1")
    iot.attach_policy(policyName="pol-0", target=cert["certificateArn"])
    iot.attach_policy(policyName="pol-1", target=child["thingGroupArn"])
    iot.attach_policy(policyName="pol-2", target=parent["thingGroupArn"])
    effective = iot.get_effective_policies(principal=cert["certificateArn"], thingName="t1")["effectivePolicies"]
    assert sorted(p["policyName"] for p in effective) == ["pol-0", "pol-1", "pol-2"]
    assert all("Statement" in p["policyDocument"] for p in effective)
    only_cert = iot.get_effective_policies(principal=cert["certificateArn"])["effectivePolicies"]
    assert [p["policyName"] for p in only_cert] == ["pol-0"]
    attached = iot.list_attached_policies(target=child["thingGroupArn"], recursive=True)["policies"]
    assert sorted(p["policyName"] for p in attached) == ["pol-1", "pol-2"]


def test_test_authorization_names_the_deciding_policies(node):
    iot = aws_client(node, "iot")
    cert = cert_with_policy(iot, "client-topics", doc(
        allow("iot:Publish", f"{ARN}:topic/${{iot:ClientId}}/*"),
        deny("iot:Publish", f"{ARN}:topic/${{iot:ClientId}}/secret")))
    principal = cert["certificateArn"]
    results = iot.test_authorization(principal=principal, clientId="dev1", authInfos=[
        {"actionType": "PUBLISH", "resources": [f"{ARN}:topic/dev1/temp"]},
        {"actionType": "PUBLISH", "resources": [f"{ARN}:topic/dev1/secret"]},
        {"actionType": "PUBLISH", "resources": [f"{ARN}:topic/dev2/temp"]},
    ])["authResults"]
    assert [r["authDecision"] for r in results] == ["ALLOWED", "EXPLICIT_DENY", "IMPLICIT_DENY"]
    assert [p["policyName"] for p in results[0]["allowed"]["policies"]] == ["client-topics"]
    assert [p["policyName"] for p in results[1]["denied"]["explicitDeny"]["policies"]] == ["client-topics"]
    skipped = iot.test_authorization(principal=principal, clientId="dev1", policyNamesToSkip=["client-topics"],
                                     authInfos=[{"actionType": "PUBLISH", "resources": [f"{ARN}:topic/dev1/temp"]}])
    assert skipped["authResults"][0]["authDecision"] == "IMPLICIT_DENY"


def test_client_specific_topics_policy_is_enforced_on_every_packet(node, tmp_path):
    """AWS's example: a client may connect only as itself and use only topics under its id;
    a Deny statement carves out an exception."""
    iot = aws_client(node, "iot")
    cert = cert_with_policy(iot, "client-scoped", doc(
        allow("iot:Connect", f"{ARN}:client/sensor-1"),
        allow("iot:Publish", f"{ARN}:topic/sensors/${{iot:ClientId}}/*"),
        allow("iot:Subscribe", f"{ARN}:topicfilter/commands/${{iot:ClientId}}/*"),
        allow("iot:Receive", f"{ARN}:topic/commands/${{iot:ClientId}}/*"),
        deny("iot:Publish", f"{ARN}:topic/sensors/${{iot:ClientId}}/forbidden")))
    # Another client id with the same certificate: iot:Connect denied.
    other = Device(node, cert, tmp_path, "sensor-2")
    assert not other.connected()
    other.c.loop_stop()
    assert "Connect.AuthError" in node.log()
    # MQTT 5: refused publishes get PUBACK 0x87, refused subscriptions SUBACK 0x87.
    d = Device(node, cert, tmp_path, "sensor-1", protocol=mqtt.MQTTv5)
    assert d.connected()
    assert d.subscribe("commands/sensor-1/#") == [1]
    assert d.subscribe("commands/other/#") == [0x87]
    d.c.publish("sensors/sensor-1/temp", b"21", qos=1)
    assert d.pubacks.get(timeout=5) == 0
    d.c.publish("sensors/sensor-1/forbidden", b"x", qos=1)
    assert d.pubacks.get(timeout=5) == 0x87
    d.c.publish("sensors/sensor-9/temp", b"x", qos=1)
    assert d.pubacks.get(timeout=5) == 0x87
    # Delivery: a command the policy lets it receive arrives.
    app = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="app")
    app.connect("127.0.0.1", node.mqtt_port)
    app.loop_start()
    app.publish("commands/sensor-1/reboot", b"now", qos=1).wait_for_publish(5)
    assert d.messages.get(timeout=5) == ("commands/sensor-1/reboot", b"now")
    app.loop_stop()
    d.stop()
    assert node.metric("publish_in_auth_errors_total") >= 2
    assert node.metric("subscribe_auth_errors_total") >= 1
    log = node.log()
    assert "PublishIn.AuthError" in log and "Subscribe.AuthError" in log


def test_mqtt311_unauthorized_publish_disconnects_and_subscribe_gets_0x80(node, tmp_path):
    iot = aws_client(node, "iot")
    cert = cert_with_policy(iot, "narrow", doc(
        allow("iot:Connect", f"{ARN}:client/*"),
        allow("iot:Subscribe", f"{ARN}:topicfilter/ok/*"),
        allow("iot:Publish", f"{ARN}:topic/ok/*")))
    d = Device(node, cert, tmp_path, "narrow-1")
    assert d.connected()
    assert d.subscribe("ok/#") == [1]
    assert d.subscribe("nope/#") == [0x80]
    d.c.publish("nope/x", b"1", qos=1)
    d.disconnects.get(timeout=5)
    d.c.loop_stop()


def test_receive_is_checked_on_delivery(node, tmp_path):
    """Subscribing to a wildcard is allowed, but only topics with iot:Receive arrive; the
    rest are dropped and counted (PublishOut.AuthError)."""
    iot = aws_client(node, "iot")
    cert = cert_with_policy(iot, "receive-some", doc(
        allow("iot:Connect", "*"),
        allow("iot:Subscribe", f"{ARN}:topicfilter/data/#"),
        allow("iot:Receive", f"{ARN}:topic/data/public/*")))
    d = Device(node, cert, tmp_path, "reader")
    assert d.connected()
    assert d.subscribe("data/#") == [1]
    app = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="writer")
    app.connect("127.0.0.1", node.mqtt_port)
    app.loop_start()
    app.publish("data/private/x", b"secret", qos=1).wait_for_publish(5)
    app.publish("data/public/x", b"hello", qos=1).wait_for_publish(5)
    assert d.messages.get(timeout=5) == ("data/public/x", b"hello")
    time.sleep(0.3)
    assert d.messages.empty()
    app.loop_stop()
    d.stop()
    assert node.metric("publish_out_auth_errors_total") >= 1
    assert "PublishOut.AuthError" in node.log()


def test_thing_name_policy_variables_and_thing_group_policies(node, tmp_path):
    """AWS's thing-policy example: topics scoped by ${iot:Connection.Thing.ThingName} and an
    attribute, with the policy attached to the thing's group rather than the certificate."""
    iot = aws_client(node, "iot")
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.create_thing(thingName="lamp-7", attributePayload={"attributes": {"room": "kitchen"}})
    iot.attach_thing_principal(thingName="lamp-7", principal=cert["certificateArn"])
    group = iot.create_thing_group(thingGroupName="lamps")
    iot.add_thing_to_thing_group(thingGroupName="lamps", thingName="lamp-7")
    iot.create_policy(policyName="thing-scoped", policyDocument=doc(
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": f"{ARN}:client/${{iot:Connection.Thing.ThingName}}",
         "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}},
        allow("iot:Publish", f"{ARN}:topic/things/${{iot:Connection.Thing.ThingName}}/*",
              f"{ARN}:topic/rooms/${{iot:Connection.Thing.Attributes[room]}}")))
    iot.attach_policy(policyName="thing-scoped", target=group["thingGroupArn"])
    d = Device(node, cert, tmp_path, "lamp-7", protocol=mqtt.MQTTv5)
    assert d.connected()
    d.c.publish("things/lamp-7/state", b"on", qos=1)
    assert d.pubacks.get(timeout=5) == 0
    d.c.publish("rooms/kitchen", b"on", qos=1)
    assert d.pubacks.get(timeout=5) == 0
    d.c.publish("rooms/garage", b"on", qos=1)
    assert d.pubacks.get(timeout=5) == 0x87
    d.stop()
    # A client id that is not the attached thing gets no thing-group policies.
    other = Device(node, cert, tmp_path, "not-a-thing")
    assert not other.connected()
    other.c.loop_stop()


def test_retained_publishes_need_iot_retain_publish(node, tmp_path):
    iot = aws_client(node, "iot")
    cert = cert_with_policy(iot, "retain-policy", doc(
        allow("iot:Connect", "*"),
        allow("iot:Publish", f"{ARN}:topic/status/*"),
        allow("iot:RetainPublish", f"{ARN}:topic/status/retained-ok")))
    d = Device(node, cert, tmp_path, "retainer", protocol=mqtt.MQTTv5)
    assert d.connected()
    d.c.publish("status/retained-ok", b"1", qos=1, retain=True)
    assert d.pubacks.get(timeout=5) == 0
    d.c.publish("status/retained-no", b"1", qos=1, retain=True)
    assert d.pubacks.get(timeout=5) == 0x87
    d.c.publish("status/retained-no", b"1", qos=1, retain=False)
    assert d.pubacks.get(timeout=5) == 0
    d.stop()
    data = aws_client(node, "iot-data")
    assert data.get_retained_message(topic="status/retained-ok")["payload"] == b"1"
    with pytest.raises(botocore.exceptions.ClientError):
        data.get_retained_message(topic="status/retained-no")


def test_a_policy_change_reaches_live_connections(node, tmp_path):
    iot = aws_client(node, "iot")
    cert = cert_with_policy(iot, "changing", doc(allow("iot:Connect", "*"), allow("iot:Publish", f"{ARN}:topic/a")))
    d = Device(node, cert, tmp_path, "live", protocol=mqtt.MQTTv5)
    assert d.connected()
    d.c.publish("a", b"1", qos=1)
    assert d.pubacks.get(timeout=5) == 0
    iot.create_policy_version(policyName="changing", setAsDefault=True,
                              policyDocument=doc(allow("iot:Connect", "*"), allow("iot:Publish", f"{ARN}:topic/b")))
    d.c.publish("a", b"2", qos=1)
    assert d.pubacks.get(timeout=5) == 0x87
    d.c.publish("b", b"3", qos=1)
    assert d.pubacks.get(timeout=5) == 0
    iot.detach_policy(policyName="changing", target=cert["certificateArn"])
    d.c.publish("b", b"4", qos=1)
    assert d.pubacks.get(timeout=5) == 0x87
    d.stop()


def test_a_will_is_authorized_again_when_it_is_published(node, tmp_path):
    iot = aws_client(node, "iot")
    watcher = Client(node, "will-watcher")
    watcher.subscribe("lastwill/#", qos=1)
    for name, detach in (("keeps", False), ("loses", True)):
        cert = cert_with_policy(iot, f"will-{name}", doc(allow("iot:Connect", "*"), allow("iot:Publish", f"{ARN}:topic/lastwill/*")))
        d = Device(node, cert, tmp_path, f"will-{name}", will=(f"lastwill/{name}", b"gone", 1))
        assert d.connected()
        if detach:
            iot.detach_policy(policyName=f"will-{name}", target=cert["certificateArn"])
        d.c.loop_stop()
        d.c.socket().close()  # no DISCONNECT: the will is due
        if detach:
            watcher.expect_none(wait=2)
        else:
            assert watcher.get(timeout=5).topic == "lastwill/keeps"


def test_source_ip_condition(node, tmp_path):
    iot = aws_client(node, "iot")
    cert = cert_with_policy(iot, "from-lan", doc(
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}))
    d = Device(node, cert, tmp_path, "far-away")
    assert not d.connected()
    d.c.loop_stop()
    iot.create_policy_version(policyName="from-lan", setAsDefault=True, policyDocument=doc(
        {"Effect": "Allow", "Action": "iot:Connect", "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "127.0.0.0/8"]}}}))
    d = Device(node, cert, tmp_path, "near")
    assert d.connected()
    d.stop()


def test_the_aws_iot_device_sdk_connects_with_its_mtls_builder(node, tmp_path):
    from awscrt import mqtt as crt_mqtt
    from awsiot import mqtt_connection_builder
    iot = aws_client(node, "iot")
    cert = cert_with_policy(iot, "sdk", doc(allow("iot:*", "*")))
    certfile, keyfile = tmp_path / "sdk.pem", tmp_path / "sdk.key"
    certfile.write_text(cert["certificatePem"])
    keyfile.write_text(cert["keyPair"]["PrivateKey"])
    conn = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost", port=node.mqtts_port, cert_filepath=str(certfile), pri_key_filepath=str(keyfile),
        ca_filepath=node.ca_path, client_id="sdk-device", clean_session=True, keep_alive_secs=30)
    conn.connect().result(10)
    got = queue.Queue()
    sub, _ = conn.subscribe(topic="sdk/echo", qos=crt_mqtt.QoS.AT_LEAST_ONCE,
                            callback=lambda topic, payload, **kw: got.put((topic, payload)))
    sub.result(10)
    pub, _ = conn.publish(topic="sdk/echo", payload=b"hello from the SDK", qos=crt_mqtt.QoS.AT_LEAST_ONCE)
    pub.result(10)
    assert got.get(timeout=10) == ("sdk/echo", b"hello from the SDK")
    conn.disconnect().result(10)
