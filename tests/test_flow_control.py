"""MQTT 5 flow control and limits the client sets: receive maximum, maximum packet
size, server keep alive, and exactly-once on inbound QoS 2 resends."""

import struct
import time

from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from conftest import Client, raw_connect, read_all, split_packets


def v5_connect(cid, props=b""):
    vh = b"\x00\x04MQTT\x05\x02\x00\x3c" + bytes([len(props)]) + props
    body = vh + struct.pack("!H", len(cid)) + cid
    return bytes([0x10, len(body)]) + body


def v5_subscribe(filt, qos, pid=1):
    body = struct.pack("!H", pid) + b"\x00" + struct.pack("!H", len(filt)) + filt + bytes([qos])
    return bytes([0x82, len(body)]) + body


def test_client_receive_maximum_bounds_unacknowledged_deliveries(node):
    s = raw_connect(node, v5_connect(b"rm", props=b"\x21\x00\x02"))  # receive maximum 2
    s.recv(64)
    s.sendall(v5_subscribe(b"rm/t", 1))
    s.recv(64)
    pub = Client(node, "pub")
    for i in range(5):
        pub.publish("rm/t", str(i), qos=1)
    got = [p for p in split_packets(read_all(s, 1.0)) if p[0] & 0xF0 == 0x30]
    assert len(got) == 2
    # acknowledging one lets exactly one more through
    pid = struct.unpack("!H", got[0][2 + 2 + 4:2 + 2 + 4 + 2])[0]
    s.sendall(b"\x40\x02" + struct.pack("!H", pid))
    more = [p for p in split_packets(read_all(s, 1.0)) if p[0] & 0xF0 == 0x30]
    assert len(more) == 1


def test_messages_larger_than_client_maximum_packet_size_are_not_sent(node):
    props = Properties(PacketTypes.CONNECT)
    props.MaximumPacketSize = 100
    sub = Client(node, "small", properties=props)
    sub.subscribe("mps/t", qos=1)
    pub = Client(node, "pub")
    pub.publish("mps/t", "x" * 200, qos=1)
    pub.publish("mps/t", "small", qos=1)
    assert sub.get().payload == b"small"
    sub.expect_none()
    assert node.metric("messages_dropped_too_large_total") == 1


def test_server_keep_alive_replaces_zero_keep_alive(node):
    c = Client(node, "ka0", keepalive=0)
    assert c.props.ServerKeepAlive == 1200


def test_resent_qos2_publish_is_routed_once(node):
    sub = Client(node, "sub")
    sub.subscribe("eo/t", qos=2)
    s = raw_connect(node, v5_connect(b"eo"))
    s.recv(64)
    body = struct.pack("!H", 4) + b"eo/t" + struct.pack("!H", 7) + b"\x00" + b"once"
    s.sendall(bytes([0x34, len(body)]) + body)
    s.sendall(bytes([0x3C, len(body)]) + body)  # the same packet id again, with DUP
    acks = split_packets(read_all(s, 0.5))
    assert [a[0] for a in acks] == [0x50, 0x50]  # PUBREC twice
    s.sendall(b"\x62\x02\x00\x07")  # PUBREL
    assert split_packets(read_all(s, 0.5))[0][:4] == b"\x70\x02\x00\x07"  # PUBCOMP
    assert sub.get().payload == b"once"
    sub.expect_none()
