"""AWS IoT limits and malformed input: the right reason code, never a crash."""

import socket
import struct

import pytest
import paho.mqtt.client as mqtt

from conftest import Client, raw_connect, read_all, seconds_until_closed, v5_connect


def test_client_id_too_long_refused_with_0x85(node):
    c = Client(node, "x" * 129, connect=False)
    c.c.connect(node.host, node.mqtt_port)
    c.c.loop_start()
    _, rc, _ = c.connack.get(timeout=5)
    assert rc.value == 0x85


def test_oversized_payload_gets_packet_too_large(node):
    sub = Client(node, "sub")
    sub.subscribe("big", qos=1)
    pub = Client(node, "pub")
    pub.c.publish("big", b"x" * (128 * 1024 + 1), qos=1)
    assert pub.disconnects.get(timeout=5).value == 0x95
    sub.expect_none()
    pub2 = Client(node, "pub2")
    pub2.publish("big", b"x" * (128 * 1024), qos=1)
    assert len(sub.get().payload) == 128 * 1024


def test_oversized_payload_closes_v311_connection(node):
    pub = Client(node, "pub", v5=False)
    pub.c.publish("big", b"x" * (128 * 1024 + 1), qos=1)
    pub.disconnects.get(timeout=5)
    assert node.metric("protocol_errors_total") >= 1


def test_topic_with_too_many_slashes_refused_but_basic_ingest_prefix_free(node):
    sub = Client(node, "sub")
    sub.subscribe("#", qos=1)
    pub = Client(node, "pub")
    pub.c.publish("1/2/3/4/5/6/7/8/9", "x", qos=1).wait_for_publish(5)
    sub.expect_none()
    pub.publish("1/2/3/4/5/6/7/8", "ok", qos=1)
    assert sub.get().payload == b"ok"


def test_topic_longer_than_256_bytes_refused(node):
    c = Client(node, "sub")
    rcs = c.subscribe("t" * 257, qos=1)
    assert rcs[0].value == 0x8F


def test_fifty_first_subscription_gets_quota_exceeded(node):
    c = Client(node, "many")
    for i in range(50):
        assert c.subscribe(f"s/{i}", qos=0)[0].value == 0
    assert c.subscribe("s/50", qos=0)[0].value == 0x97


def v311_connect(cid=b"raw"):
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid
    return bytes([0x10, len(body)]) + body


def subscribe_packet(filt, qos=1, pid=1, v5=False):
    body = struct.pack("!H", pid) + (b"\x00" if v5 else b"") + struct.pack("!H", len(filt)) + filt + bytes([qos])
    return bytes([0x82, len(body)]) + body


def test_invalid_filter_gets_subscription_failure(node):
    s = raw_connect(node, v311_connect())
    assert s.recv(4) == b"\x20\x02\x00\x00"
    s.sendall(subscribe_packet(b"a/#/b"))
    assert s.recv(5) == b"\x90\x03\x00\x01\x80"
    s5 = raw_connect(node, v5_connect(b"raw5"))
    s5.recv(64)
    s5.sendall(subscribe_packet(b"a/#/b", v5=True))
    suback = s5.recv(64)
    assert suback[0] == 0x90 and suback[-1] == 0x8F


def test_malformed_packet_after_connect_gets_disconnect_0x81(node):
    s = raw_connect(node, v5_connect())
    assert s.recv(2)[0] == 0x20
    read_all(s, 0.3)
    s.sendall(b"\x30\x02\x00")  # PUBLISH whose topic length runs past the packet
    s.sendall(b"\x05")
    data = read_all(s)
    assert b"\xe0" in data[:1] and data[2] == 0x81


def test_wrong_fixed_header_flags_close_the_connection_v311(node):
    vh = b"\x00\x04MQTT\x04\x02\x00\x3c"
    body = vh + b"\x00\x01a"
    s = raw_connect(node, bytes([0x10, len(body)]) + body)
    assert s.recv(4) == b"\x20\x02\x00\x00"
    s.sendall(b"\x83\x06\x00\x01\x00\x01a\x00")  # SUBSCRIBE with flags 0011
    assert read_all(s) == b""


def test_invalid_utf8_topic_is_malformed(node):
    s = raw_connect(node, v5_connect())
    s.recv(64)
    topic = b"\xff\xfe"
    body = struct.pack("!H", len(topic)) + topic + b"\x00" + b"p"
    s.sendall(bytes([0x30, len(body)]) + body)
    data = read_all(s)
    assert data[:1] == b"\xe0" and data[2] == 0x81


def test_unsupported_protocol_version_refused(node):
    body = b"\x00\x04MQTT\x07\x02\x00\x3c\x00\x01a"
    s = raw_connect(node, bytes([0x10, len(body)]) + body)
    assert s.recv(4) == b"\x20\x02\x00\x01"


def test_first_packet_not_connect_closes(node):
    s = raw_connect(node, b"\xc0\x00")
    assert read_all(s) == b""


def test_garbage_and_truncated_input_never_crash_the_node(node):
    import random
    rng = random.Random(7)
    for i in range(200):
        s = raw_connect(node, bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 64))))
        s.close()
    for cut in range(1, 14):
        s = raw_connect(node, v5_connect()[:cut])
        s.close()
    c = Client(node, "still-alive")
    assert c.rc == 0


def test_keep_alive_timeout_closes_idle_connection(make_node):
    # AWS's minimum (30 s) lowered so the test runs in seconds.
    node = make_node(config_text="[limits]\nmin_keep_alive_secs = 1\n")
    vh = b"\x00\x04MQTT\x04\x02\x00\x01"  # keep alive 1 s
    body = vh + b"\x00\x02ka"
    s = raw_connect(node, bytes([0x10, len(body)]) + body)
    assert s.recv(4) == b"\x20\x02\x00\x00"
    assert 1.4 <= seconds_until_closed(s, 5) <= 3.0


def test_receive_maximum_exceeded_disconnects(make_node):
    node = make_node(config_text="[limits]\nreceive_maximum = 2\n")
    s = raw_connect(node, v5_connect())
    s.recv(64)
    # three QoS 2 publishes without releasing any: the third exceeds receive maximum 2
    for pid in (1, 2, 3):
        body = struct.pack("!H", 1) + b"t" + struct.pack("!H", pid) + b"\x00" + b"p"
        s.sendall(bytes([0x34, len(body)]) + body)
    data = read_all(s)
    assert b"\xe0" in data and data[data.index(b"\xe0") + 2] == 0x93


def test_payload_format_invalid_v5(node):
    from paho.mqtt.properties import Properties
    from paho.mqtt.packettypes import PacketTypes
    sub = Client(node, "sub")
    sub.subscribe("pf", qos=1)
    pub = Client(node, "pub")
    p = Properties(PacketTypes.PUBLISH)
    p.PayloadFormatIndicator = 1
    pub.c.publish("pf", b"\xff\xfe", qos=1, properties=p).wait_for_publish(5)
    sub.expect_none()


def test_config_file_limits_apply(make_node):
    node = make_node(config_text="[limits]\nmax_payload_bytes = 10\nmax_subscriptions_per_connection = 1\n")
    sub = Client(node, "sub")
    assert sub.subscribe("a", qos=1)[0].value == 1
    assert sub.subscribe("b", qos=1)[0].value == 0x97
    pub = Client(node, "pub")
    pub.c.publish("a", b"01234567890", qos=1).wait_for_publish(5)
    sub.expect_none()
