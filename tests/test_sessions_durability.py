"""Persistent sessions, QoS redelivery and durability across restarts and kill -9."""

import time

import pytest

from conftest import Client

BOTH = pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])


def persistent(node, cid, v5, clean=False):
    if v5:
        return Client(node, cid, v5=True, clean=clean, session_expiry=3600)
    # MQTT 3.1.1 has no separate clean start: clean_session=0 both creates and resumes.
    return Client(node, cid, v5=False, clean=False)


@BOTH
def test_offline_persistent_session_receives_queued_qos1_and_qos2(node, v5):
    sub = persistent(node, "p-sub", v5, clean=True)
    sub.subscribe("q/#", qos=2)
    sub.close()
    time.sleep(0.3)  # the node has seen the DISCONNECT: the session is offline
    pub = Client(node, "pub", v5=v5)
    pub.publish("q/0", "zero", qos=0)  # QoS 0 is not kept for offline clients
    pub.publish("q/1", "one", qos=1)
    pub.publish("q/2", "two", qos=2)
    back = persistent(node, "p-sub", v5)
    assert back.flags.session_present
    got = [back.get().payload, back.get().payload]
    assert got == [b"one", b"two"]
    back.expect_none()


@BOTH
def test_clean_session_discards_previous_session(node, v5):
    sub = persistent(node, "c-sub", v5, clean=True)
    sub.subscribe("c/#", qos=1)
    sub.close()
    Client(node, "pub", v5=v5).publish("c/1", "x", qos=1)
    fresh = Client(node, "c-sub", v5=v5, clean=True)
    assert not fresh.flags.session_present
    fresh.expect_none()


@BOTH
@pytest.mark.parametrize("kill", [False, True], ids=["restart", "kill9"])
def test_persistent_session_and_queue_survive_restart(node, v5, kill):
    sub = persistent(node, "d-sub", v5, clean=True)
    sub.subscribe("d/#", qos=1)
    sub.close()
    pub = Client(node, "pub", v5=v5)
    for i in range(50):
        pub.publish(f"d/{i}", str(i), qos=1)
    pub.close()
    node.restart(kill=kill)
    back = persistent(node, "d-sub", v5)
    assert back.flags.session_present
    got = [back.get().payload.decode() for _ in range(50)]
    assert got == [str(i) for i in range(50)]
    # subscriptions survived too
    Client(node, "pub2", v5=v5).publish("d/new", "after", qos=1)
    assert back.get().payload == b"after"


@BOTH
@pytest.mark.parametrize("kill", [False, True], ids=["restart", "kill9"])
def test_a_persistent_session_connected_when_the_node_stops_survives(node, v5, kill):
    """Found by ferrite-chaos: a session whose client was still connected when the node
    went down was taken for one that disconnected in 1970, and expired at the restart."""
    sub = persistent(node, "live-sub", v5, clean=True)
    sub.subscribe("live/#", qos=1)
    node.restart(kill=kill)
    sub.c.loop_stop()
    Client(node, "pub", v5=v5).publish("live/1", "queued while away", qos=1)
    back = persistent(node, "live-sub", v5)
    assert back.flags.session_present
    assert back.get().payload == b"queued while away"


@BOTH
@pytest.mark.parametrize("kill", [False, True], ids=["restart", "kill9"])
def test_retained_messages_survive_restart(node, v5, kill):
    pub = Client(node, "pub", v5=v5)
    pub.publish("ret/a", "A", qos=1, retain=True)
    pub.publish("ret/b", "B", qos=1, retain=True)
    pub.publish("ret/b", "", qos=1, retain=True)
    pub.close()
    node.restart(kill=kill)
    sub = Client(node, "sub", v5=v5)
    sub.subscribe("ret/#", qos=1)
    m = sub.get()
    assert (m.topic, m.payload, m.retain) == ("ret/a", b"A", True)
    sub.expect_none()


def test_acknowledged_messages_are_not_lost_under_kill9_while_publishing(node):
    sub = persistent(node, "k-sub", True, clean=True)
    sub.subscribe("k/t", qos=1)
    sub.close()
    pub = Client(node, "k-pub")
    infos = [pub.publish("k/t", str(i), qos=1, wait=False) for i in range(300)]
    time.sleep(0.05)
    node.kill9()
    acked = {str(i) for i, info in enumerate(infos) if info.is_published()}
    pub.c.loop_stop()
    node.restart()
    back = persistent(node, "k-sub", True)
    got = set()
    try:
        while True:
            got.add(back.get(timeout=2).payload.decode())
    except Exception:
        pass
    missing = acked - got
    assert not missing, f"{len(missing)} acknowledged messages lost"


def test_unacknowledged_inflight_is_redelivered_with_dup(node):
    import socket, struct
    # A raw v3.1.1 client that receives a QoS 1 message and never acknowledges it.
    def connect_raw(cid, clean):
        s = socket.create_connection((node.host, node.mqtt_port), timeout=5)
        vh = b"\x00\x04MQTT\x04" + bytes([0x00 if not clean else 0x02]) + b"\x00\x3c"
        payload = struct.pack("!H", len(cid)) + cid
        body = vh + payload
        s.sendall(bytes([0x10, len(body)]) + body)
        assert s.recv(4)[:2] == b"\x20\x02"
        return s
    s = connect_raw(b"raw", clean=True)
    s.close()
    s = connect_raw(b"raw", clean=False)
    topic = b"dup/t"
    body = b"\x00\x01" + struct.pack("!H", len(topic)) + topic + b"\x01"
    s.sendall(bytes([0x82, len(body)]) + body)
    time.sleep(0.2)
    s.recv(16)  # SUBACK
    Client(node, "pub", v5=False).publish("dup/t", "m", qos=1)
    first = s.recv(64)
    assert first[0] & 0xF0 == 0x30 and first[0] & 0x08 == 0  # PUBLISH without DUP
    s.close()
    s = connect_raw(b"raw", clean=False)
    again = s.recv(64)
    assert again[0] & 0xF0 == 0x30 and again[0] & 0x08 == 0x08  # DUP set on redelivery
    s.close()


def test_session_expiry_removes_session(node):
    sub = Client(node, "short", session_expiry=1)
    sub.subscribe("se/t", qos=1)
    sub.close()
    time.sleep(2.5)
    back = Client(node, "short", clean=False, session_expiry=1)
    assert not back.flags.session_present


def test_full_persistent_queue_refuses_instead_of_dropping_acknowledged_messages(make_node):
    node = make_node(config_text="[limits]\nmax_queued_messages = 5\n")
    sub = Client(node, "slow", session_expiry=600)
    sub.subscribe("full/t", qos=1)
    sub.close()
    time.sleep(0.3)
    pub = Client(node, "pub")
    infos = [pub.publish("full/t", str(i), qos=1) for i in range(7)]
    time.sleep(0.3)
    codes = [pub.published[i.mid].value for i in infos]
    assert codes[:5] == [0] * 5 and codes[5:] == [0x97, 0x97]
    back = Client(node, "slow", clean=False, session_expiry=600)
    assert [back.get().payload for _ in range(5)] == [str(i).encode() for i in range(5)]
    back.expect_none()
