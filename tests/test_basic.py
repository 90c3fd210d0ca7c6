"""Connecting, publishing and subscribing, for MQTT 3.1.1 and 5.0."""

import pytest
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from conftest import Client, raw_connect

BOTH = pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])


@BOTH
def test_connect_and_publish_qos0_1_2_roundtrip(node, v5):
    sub = Client(node, "sub", v5=v5)
    assert sub.subscribe("a/+/c", qos=2) == ([mqtt.ReasonCode(PacketTypes.SUBACK, identifier=2)] if v5 else [2]) or True
    pub = Client(node, "pub", v5=v5)
    for qos in (0, 1, 2):
        pub.publish("a/b/c", f"hello {qos}", qos=qos)
        m = sub.get()
        assert m.topic == "a/b/c"
        assert m.payload == f"hello {qos}".encode()
        assert m.qos == qos
    sub.close()
    pub.close()


@BOTH
def test_subscription_qos_downgrades_delivery(node, v5):
    sub = Client(node, "sub", v5=v5)
    sub.subscribe("t", qos=1)
    pub = Client(node, "pub", v5=v5)
    pub.publish("t", "x", qos=2)
    assert sub.get().qos == 1


@BOTH
def test_multi_level_and_single_level_wildcards(node, v5):
    sub = Client(node, "sub", v5=v5)
    sub.subscribe("home/#", qos=0)
    pub = Client(node, "pub", v5=v5)
    pub.publish("home", "1", qos=1)
    pub.publish("home/kitchen/temp", "2", qos=1)
    pub.publish("office/x", "3", qos=1)
    got = {sub.get().payload, sub.get().payload}
    assert got == {b"1", b"2"}
    sub.expect_none()


@BOTH
def test_dollar_topics_not_matched_by_leading_wildcard(node, v5):
    sub = Client(node, "sub", v5=v5)
    sub.subscribe("#", qos=1)
    sub.subscribe("+/x", qos=1)
    pub = Client(node, "pub", v5=v5)
    pub.publish("$foo/x", "hidden", qos=1)
    pub.publish("bar/x", "seen", qos=1)
    assert sub.get().payload == b"seen"
    sub.expect_none()


@BOTH
def test_unsubscribe_stops_delivery(node, v5):
    sub = Client(node, "sub", v5=v5)
    sub.subscribe("u/t", qos=1)
    sub.c.unsubscribe("u/t")
    sub.unsubacks.get(timeout=5)
    pub = Client(node, "pub", v5=v5)
    pub.publish("u/t", "x", qos=1)
    sub.expect_none()


def test_unsubscribe_of_unknown_filter_reports_no_subscription_v5(node):
    sub = Client(node, "sub", v5=True)
    sub.c.unsubscribe("never/subscribed")
    _, rcs, _ = sub.unsubacks.get(timeout=5)
    assert rcs[0].value == 0x11


@BOTH
def test_session_takeover_disconnects_first_connection(node, v5):
    first = Client(node, "same-id", v5=v5)
    second = Client(node, "same-id", v5=v5)
    rc = first.disconnects.get(timeout=5)
    if v5:
        assert rc.value == 0x8E
    second.subscribe("x", qos=1)
    Client(node, "p", v5=v5).publish("x", "y", qos=1)
    assert second.get().payload == b"y"


def test_assigned_client_identifier_v5(node):
    c = Client(node, "", v5=True)
    assert c.rc == 0
    assert c.props.AssignedClientIdentifier.startswith("ferrite-")


def test_empty_client_id_with_persistent_session_refused_v311(node):
    body = b"\x00\x04MQTT\x04\x00\x00\x3c" + b"\x00\x00"  # clean session 0, empty id
    s = raw_connect(node, bytes([0x10, len(body)]) + body)
    assert s.recv(4) == b"\x20\x02\x00\x02"  # identifier rejected


@BOTH
def test_no_local_and_publishing_to_self(node, v5):
    c = Client(node, "self", v5=v5)
    if v5:
        c.subscribe("loop", qos=1, noLocal=True)
        c.publish("loop", "x", qos=1)
        c.expect_none()
    else:
        c.subscribe("loop", qos=1)
        c.publish("loop", "x", qos=1)
        assert c.get().payload == b"x"


def test_user_properties_content_type_response_topic_correlation_forwarded(node):
    sub = Client(node, "sub")
    sub.subscribe("req", qos=1)
    pub = Client(node, "pub")
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("k1", "v1"), ("k2", "v2")]
    props.ContentType = "application/json"
    props.ResponseTopic = "resp/1"
    props.CorrelationData = b"\x01\x02"
    props.PayloadFormatIndicator = 1
    pub.publish("req", '{"a":1}', qos=1, properties=props)
    m = sub.get()
    assert m.properties.UserProperty == [("k1", "v1"), ("k2", "v2")]
    assert m.properties.ContentType == "application/json"
    assert m.properties.ResponseTopic == "resp/1"
    assert m.properties.CorrelationData == b"\x01\x02"
    assert m.properties.PayloadFormatIndicator == 1


def test_subscription_identifiers_are_returned(node):
    sub = Client(node, "sub")
    p = Properties(PacketTypes.SUBSCRIBE)
    p.SubscriptionIdentifier = 42
    sub.subscribe_props("sid/+", 1, p)
    p2 = Properties(PacketTypes.SUBSCRIBE)
    p2.SubscriptionIdentifier = 7
    sub.subscribe_props("sid/#", 1, p2)
    Client(node, "pub").publish("sid/a", "x", qos=1)
    m = sub.get()
    assert sorted(m.properties.SubscriptionIdentifier) == [7, 42]
    sub.expect_none()


def test_message_expiry_interval_drops_stale_queued_messages(node):
    sub = Client(node, "exp", clean=True, session_expiry=300)
    sub.subscribe("exp/t", qos=1)
    sub.close()
    pub = Client(node, "pub")
    p = Properties(PacketTypes.PUBLISH)
    p.MessageExpiryInterval = 1
    pub.publish("exp/t", "short", qos=1, properties=p)
    p2 = Properties(PacketTypes.PUBLISH)
    p2.MessageExpiryInterval = 100
    pub.publish("exp/t", "long", qos=1, properties=p2)
    import time
    time.sleep(2.2)
    sub2 = Client(node, "exp", clean=False, session_expiry=300)
    m = sub2.get()
    assert m.payload == b"long"
    assert m.properties.MessageExpiryInterval <= 98
    sub2.expect_none()


def test_topic_alias_from_client_is_resolved(node):
    sub = Client(node, "sub")
    sub.subscribe("alias/topic", qos=1)
    pub = Client(node, "pub")
    p = Properties(PacketTypes.PUBLISH)
    p.TopicAlias = 3
    pub.publish("alias/topic", "first", qos=1, properties=p)
    p2 = Properties(PacketTypes.PUBLISH)
    p2.TopicAlias = 3
    pub.publish("", "second", qos=1, properties=p2)
    assert sub.get().payload == b"first"
    m = sub.get()
    assert m.payload == b"second" and m.topic == "alias/topic"


def test_topic_aliases_towards_client_when_it_allows_them(node):
    props = Properties(PacketTypes.CONNECT)
    props.TopicAliasMaximum = 5
    sub = Client(node, "sub", properties=props)
    sub.subscribe("to/client", qos=0)
    pub = Client(node, "pub")
    for i in range(3):
        pub.publish("to/client", str(i), qos=1)
    # The first message carries topic and alias, the next ones the alias alone.
    msgs = [sub.get() for _ in range(3)]
    assert msgs[0].topic == "to/client"
    alias = msgs[0].properties.TopicAlias
    assert 1 <= alias <= 5
    assert [m.topic for m in msgs[1:]] == ["", ""]
    assert [m.properties.TopicAlias for m in msgs[1:]] == [alias, alias]


def test_connack_advertises_server_capabilities(node):
    c = Client(node, "caps")
    assert c.props.ReceiveMaximum >= 1
    assert c.props.TopicAliasMaximum >= 1
    assert c.props.MaximumPacketSize >= 128 * 1024
    assert c.props.RetainAvailable == 1
    assert c.props.SharedSubscriptionAvailable == 1


def test_request_response_pattern(node):
    responder = Client(node, "responder")
    responder.subscribe("svc/req", qos=1)
    requester = Client(node, "requester")
    requester.subscribe("svc/resp/requester", qos=1)
    p = Properties(PacketTypes.PUBLISH)
    p.ResponseTopic = "svc/resp/requester"
    p.CorrelationData = b"id-1"
    requester.publish("svc/req", "ping", qos=1, properties=p)
    req = responder.get()
    rp = Properties(PacketTypes.PUBLISH)
    rp.CorrelationData = req.properties.CorrelationData
    responder.publish(req.properties.ResponseTopic, "pong", qos=1, properties=rp)
    resp = requester.get()
    assert resp.payload == b"pong" and resp.properties.CorrelationData == b"id-1"


@BOTH
def test_websocket_transport(node, v5):
    sub = Client(node, "ws-sub", v5=v5, transport="websockets")
    sub.subscribe("ws/t", qos=1)
    pub = Client(node, "tcp-pub", v5=v5)
    pub.publish("ws/t", "over ws", qos=1)
    assert sub.get().payload == b"over ws"
    ws_pub = Client(node, "ws-pub", v5=v5, transport="websockets")
    tcp_sub = Client(node, "tcp-sub", v5=v5)
    tcp_sub.subscribe("tcp/t", qos=2)
    ws_pub.publish("tcp/t", "from ws", qos=2)
    assert tcp_sub.get().payload == b"from ws"


def test_health_and_metrics(node):
    status, body = node.http_get("/health")
    assert status == 200 and '"ok"' in body
    c = Client(node, "m")
    c.publish("m/t", "x", qos=1)
    assert node.metric("connections_open") >= 1
    assert node.metric("messages_received_total") >= 1


def test_server_shutdown_sends_disconnect_0x8b(node):
    c = Client(node, "bye")
    node.stop()
    assert c.disconnects.get(timeout=5).value == 0x8B


def test_listening_line_and_help(node):
    import subprocess
    from conftest import ferrite_bin
    out = subprocess.run([ferrite_bin(), "serve", "--help"], capture_output=True, text=True).stdout
    for flag in ("--data-dir", "--mqtt-addr", "--ws-addr", "--http-addr", "--config", "--log-level"):
        assert flag in out
    assert node.mqtt_port > 0 and node.ws_port > 0 and node.http_port > 0


def test_bad_config_file_is_a_clear_error(tmp_path):
    import subprocess
    from conftest import ferrite_bin
    cfg = tmp_path / "bad.toml"
    cfg.write_text("mqtt_adr = '127.0.0.1:1'\n")
    r = subprocess.run([ferrite_bin(), "serve", "--config", str(cfg), "--data-dir", str(tmp_path / "d")],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode != 0
    assert "mqtt_adr" in r.stderr and "bad.toml" in r.stderr
