"""How devices reach the node with the AWS IoT Device SDK v2 (MQTT 3.1.1 connections and
MQTT 5 clients): SigV4-signed secure WebSocket with the node's access keys, custom
authorizers on the HTTPS port with ALPN "mqtt"; the principal named in lifecycle events;
and the node's region in every ARN whatever region a caller signs for."""

import concurrent.futures
import configparser
import os
import queue

import paho.mqtt.client as mqtt
import pytest

from conftest import Client, aws_client, next_json_on
from test_custom_auth import authorizer, connect_tls  # noqa: F401  (authorizer: the fixture)
from test_iot_policies import Device, allow, cert_with_policy, doc

AUTH_USER = "alice?x-amz-customauthorizer-name=http-auth"


# ---------------------------------------------------------------------------------------------
# Helpers


def keys_of(node):
    """The node's access key id and secret, from the credentials file it wrote."""
    creds = configparser.ConfigParser()
    creds.read(os.path.join(node.data_dir, "credentials"))
    return creds["default"]["aws_access_key_id"], creds["default"]["aws_secret_access_key"]


def iot_signing_for(node, region):
    """A boto3 `iot` client of the node that signs for `region`."""
    import boto3

    key_id, secret = keys_of(node)
    session = boto3.session.Session(aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=region)
    return session.client("iot", endpoint_url=f"http://{node.host}:{node.http_port}")


def credentials_provider(key_id, secret):
    from awscrt.auth import AwsCredentialsProvider
    return AwsCredentialsProvider.new_static(key_id, secret)


def v3_round_trip(conn, topic):
    """Subscribes to `topic` on an SDK MQTT 3.1.1 connection and publishes to it: the echo."""
    from awscrt import mqtt as crt_mqtt
    got = queue.Queue()
    future, _ = conn.subscribe(topic=topic, qos=crt_mqtt.QoS.AT_LEAST_ONCE,
                               callback=lambda topic, payload, **kw: got.put((topic, payload)))
    assert future.result(10)["qos"] == crt_mqtt.QoS.AT_LEAST_ONCE
    conn.publish(topic=topic, payload=b"round trip", qos=crt_mqtt.QoS.AT_LEAST_ONCE)[0].result(10)
    return got.get(timeout=10)


class Mqtt5:
    """An SDK MQTT 5 client built by `builder(**kwargs)`, started, with its lifecycle events
    and received publishes in queues."""

    def __init__(self, builder, **kwargs):
        self.lifecycle, self.received = queue.Queue(), queue.Queue()
        self.client = builder(
            on_publish_received=lambda data: self.received.put(data.publish_packet),
            on_lifecycle_connection_success=lambda data: self.lifecycle.put(("connected", data)),
            on_lifecycle_connection_failure=lambda data: self.lifecycle.put(("failed", data.exception)),
            on_lifecycle_stopped=lambda data: self.lifecycle.put(("stopped", data)),
            **kwargs)
        self.client.start()

    def outcome(self, timeout=10):
        """"connected" or "failed", whichever comes first."""
        return self.lifecycle.get(timeout=timeout)

    def round_trip(self, topic):
        from awscrt import mqtt5
        qos = mqtt5.QoS.AT_LEAST_ONCE
        suback = self.client.subscribe(mqtt5.SubscribePacket(
            subscriptions=[mqtt5.Subscription(topic_filter=topic, qos=qos)])).result(10)
        assert suback.reason_codes == [mqtt5.SubackReasonCode.GRANTED_QOS_1]
        puback = self.client.publish(mqtt5.PublishPacket(topic=topic, payload=b"round trip", qos=qos)).result(10)
        assert puback.puback.reason_code == mqtt5.PubackReasonCode.SUCCESS
        packet = self.received.get(timeout=10)
        return packet.topic, bytes(packet.payload)

    def publish(self, topic, payload):
        """PUBLISH QoS 1: the PUBACK reason code."""
        from awscrt import mqtt5
        done = self.client.publish(mqtt5.PublishPacket(topic=topic, payload=payload, qos=mqtt5.QoS.AT_LEAST_ONCE))
        return done.result(10).puback.reason_code

    def stop(self):
        self.client.stop()


# ---------------------------------------------------------------------------------------------
# SigV4-signed WebSocket


def test_the_sdk_connects_over_websocket_signed_with_the_nodes_access_keys(node):
    """`websockets_with_default_aws_signing` (MQTT 3.1.1): the node checks the SigV4
    query-string signature of the WebSocket upgrade, then the connection subscribes and
    publishes; a wrong secret gets no connection."""
    from awsiot import mqtt_connection_builder
    key_id, secret = keys_of(node)

    def connection(secret, client_id):
        return mqtt_connection_builder.websockets_with_default_aws_signing(
            endpoint="localhost", port=node.wss_port, region="us-east-1",
            credentials_provider=credentials_provider(key_id, secret), ca_filepath=node.ca_path,
            client_id=client_id, clean_session=True, keep_alive_secs=30)

    conn = connection(secret, "sigv4-ws")
    conn.connect().result(10)
    try:
        assert v3_round_trip(conn, "sigv4/echo") == ("sigv4/echo", b"round trip")
    finally:
        conn.disconnect().result(10)

    wrong = connection("x" * len(secret), "sigv4-wrong")
    with pytest.raises(Exception) as refused:
        wrong.connect().result(10)
    assert not isinstance(refused.value, concurrent.futures.TimeoutError), "refused, not left hanging"


def test_the_mqtt5_sdk_connects_over_websocket_signed_with_the_nodes_access_keys(node):
    """The MQTT 5 builder `websockets_with_default_aws_signing`: connects, subscribes, publishes."""
    from awsiot import mqtt5_client_builder
    key_id, secret = keys_of(node)
    client = Mqtt5(mqtt5_client_builder.websockets_with_default_aws_signing, endpoint="localhost",
                   port=node.wss_port, region="us-east-1", credentials_provider=credentials_provider(key_id, secret),
                   ca_filepath=node.ca_path, client_id="sigv4-ws5")
    try:
        event, detail = client.outcome()
        assert event == "connected", detail
        assert client.round_trip("sigv4/echo5") == ("sigv4/echo5", b"round trip")
    finally:
        client.stop()


# ---------------------------------------------------------------------------------------------
# Custom authorizers through the SDK


def test_the_mqtt5_sdk_connects_to_a_custom_authorizer_on_the_https_port(node, authorizer):  # noqa: F811
    """`direct_with_custom_authorizer` negotiates ALPN "mqtt" on the HTTPS port: the
    authorizer decides the CONNECT and its policy scopes what the client publishes."""
    from awscrt import mqtt5
    from awsiot import mqtt5_client_builder
    aws_client(node, "iot").create_authorizer(authorizerName="http-auth", authorizerFunctionArn=authorizer.url,
                                              signingDisabled=True)
    watcher = Client(node, "watcher")
    watcher.subscribe("devices/#", qos=1)
    client = Mqtt5(mqtt5_client_builder.direct_with_custom_authorizer, endpoint="localhost", port=node.https_port,
                   auth_authorizer_name="http-auth", auth_username="alice", auth_password="open-sesame",
                   ca_filepath=node.ca_path, client_id="ca-sdk5")
    try:
        event, detail = client.outcome()
        assert event == "connected", detail
        assert client.publish("devices/ca-sdk5/temp", b"21") == mqtt5.PubackReasonCode.SUCCESS
        m = watcher.get(timeout=5)
        assert (m.topic, m.payload) == ("devices/ca-sdk5/temp", b"21")
        assert client.publish("devices/someone-else/temp", b"1") == mqtt5.PubackReasonCode.NOT_AUTHORIZED
    finally:
        client.stop()
        watcher.close()
    event = authorizer.events[-1]
    assert event["protocolData"]["mqtt"]["clientId"] == "ca-sdk5"
    assert event["protocolData"]["mqtt"]["username"].startswith(AUTH_USER)


def test_the_mqtt311_sdk_connects_to_a_custom_authorizer_on_the_https_port(node, authorizer):  # noqa: F811
    """The MQTT 3.1.1 `direct_with_custom_authorizer` connection (ALPN "mqtt") connects and publishes."""
    from awscrt import mqtt as crt_mqtt
    from awsiot import mqtt_connection_builder
    aws_client(node, "iot").create_authorizer(authorizerName="http-auth", authorizerFunctionArn=authorizer.url,
                                              signingDisabled=True)
    watcher = Client(node, "watcher")
    watcher.subscribe("devices/#", qos=1)
    conn = mqtt_connection_builder.direct_with_custom_authorizer(
        endpoint="localhost", auth_authorizer_name="http-auth", auth_username="alice", auth_password="open-sesame",
        ca_filepath=node.ca_path, client_id="ca-sdk3", clean_session=True, keep_alive_secs=30)
    conn.port = node.https_port  # the builder pins AWS's 443; the node's HTTPS port plays it
    conn.connect().result(10)
    try:
        conn.publish(topic="devices/ca-sdk3/temp", payload=b"22", qos=crt_mqtt.QoS.AT_LEAST_ONCE)[0].result(10)
        m = watcher.get(timeout=5)
        assert (m.topic, m.payload) == ("devices/ca-sdk3/temp", b"22")
    finally:
        conn.disconnect().result(10)
        watcher.close()
    assert authorizer.events[-1]["protocolData"]["mqtt"]["clientId"] == "ca-sdk3"


# ---------------------------------------------------------------------------------------------
# Principals in lifecycle events


def test_lifecycle_events_name_the_certificate_or_the_authorizers_principal(node, tmp_path, authorizer):  # noqa: F811
    """`principalIdentifier` of a connected event: the certificate id for a certificate
    client, the authorizer's principalId for a custom-authorizer client."""
    c = aws_client(node, "iot")
    watcher = Client(node, "watcher")
    watcher.subscribe("$aws/events/presence/connected/+", qos=1)

    cert = cert_with_policy(c, "all", doc(allow("iot:*", "*")))
    device = Device(node, cert, tmp_path, "cert-client")
    assert device.connected()
    event = next_json_on(watcher, "$aws/events/presence/connected/cert-client")
    assert event["principalIdentifier"] == cert["certificateId"]
    device.stop()

    c.create_authorizer(authorizerName="http-auth", authorizerFunctionArn=authorizer.url, signingDisabled=True)
    client, rc, _ = connect_tls(node, "auth-client", username=AUTH_USER, password="open-sesame")
    assert rc == 0
    event = next_json_on(watcher, "$aws/events/presence/connected/auth-client")
    assert event["principalIdentifier"] == "user42"
    client.disconnect()
    client.loop_stop()
    watcher.close()


# ---------------------------------------------------------------------------------------------
# The node's region


def test_arns_carry_the_nodes_region_whatever_region_signed(make_node, tmp_path):
    """A node started with `--region eu-central-1` answers a caller signing for us-west-2
    with eu-central-1 ARNs, and policies match resources by those ARNs."""
    node = make_node(extra_args=["--region", "eu-central-1"])
    c = iot_signing_for(node, "us-west-2")
    thing_arn = c.create_thing(thingName="region-thing")["thingArn"]
    cert = c.create_keys_and_certificate(setAsActive=True)
    prefix = thing_arn.split("thing/")[0]
    assert prefix.startswith("arn:aws:iot:eu-central-1:"), thing_arn
    policy = c.create_policy(policyName="regional", policyDocument=doc(
        allow("iot:Connect", "*"),
        allow("iot:Publish", f"{prefix}topic/regional/*", prefix.replace("eu-central-1", "us-west-2") + "topic/other/*")))
    arns = [thing_arn, cert["certificateArn"], policy["policyArn"],
            c.describe_thing(thingName="region-thing")["thingArn"],
            c.describe_certificate(certificateId=cert["certificateId"])["certificateDescription"]["certificateArn"],
            c.get_policy(policyName="regional")["policyArn"]]
    assert all(":eu-central-1:" in arn for arn in arns), arns
    c.attach_policy(policyName="regional", target=cert["certificateArn"])

    watcher = Client(node, "watcher")
    watcher.subscribe("regional/#", qos=1)
    watcher.subscribe("other/#", qos=1)
    device = Device(node, cert, tmp_path, "regional-device", protocol=mqtt.MQTTv5)
    assert device.connected()
    device.c.publish("regional/a", b"here", qos=1)
    assert device.pubacks.get(timeout=5) == 0
    m = watcher.get(timeout=5)
    assert (m.topic, m.payload) == ("regional/a", b"here")
    # A resource in the signing region's ARN is not this node's topic.
    device.c.publish("other/a", b"there", qos=1)
    assert device.pubacks.get(timeout=5) == 0x87
    watcher.expect_none(0.5)
    device.stop()
    watcher.close()
