"""Retained messages, last will, and shared subscriptions."""

import time

import pytest
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from conftest import Client

BOTH = pytest.mark.parametrize("v5", [False, True], ids=["v311", "v5"])


@BOTH
def test_retained_message_delivered_to_new_subscriber_and_deleted_by_empty_payload(node, v5):
    pub = Client(node, "pub", v5=v5)
    pub.publish("r/a", "kept", qos=1, retain=True)
    sub = Client(node, "sub", v5=v5)
    sub.subscribe("r/#", qos=1)
    m = sub.get()
    assert m.payload == b"kept" and m.retain
    pub.publish("r/a", "", qos=1, retain=True)
    sub.get()  # the delete itself is forwarded to live subscribers
    late = Client(node, "late", v5=v5)
    late.subscribe("r/#", qos=1)
    late.expect_none()


def test_retain_handling_options(node):
    pub = Client(node, "pub")
    pub.publish("rh/t", "r", qos=1, retain=True)
    never = Client(node, "never")
    never.subscribe("rh/t", qos=1, retainHandling=2)
    never.expect_none()
    once = Client(node, "once")
    once.subscribe("rh/t", qos=1, retainHandling=1)
    assert once.get().payload == b"r"
    once.subscribe("rh/t", qos=1, retainHandling=1)
    once.expect_none()
    always = Client(node, "always")
    always.subscribe("rh/t", qos=1, retainHandling=0)
    always.get()
    always.subscribe("rh/t", qos=1, retainHandling=0)
    assert always.get().payload == b"r"


def test_retain_as_published(node):
    rap = Client(node, "rap")
    rap.subscribe("rap/t", qos=1, retainAsPublished=True)
    plain = Client(node, "plain")
    plain.subscribe("rap/t", qos=1)
    Client(node, "pub").publish("rap/t", "x", qos=1, retain=True)
    assert rap.get().retain is True
    assert plain.get().retain is False


@BOTH
def test_will_published_on_abnormal_disconnect_not_on_clean_one(node, v5):
    watcher = Client(node, "watcher", v5=v5)
    watcher.subscribe("will/#", qos=1)
    dying = Client(node, "dying", v5=v5, will=dict(topic="will/dying", payload="gone", qos=1))
    dying.drop()
    m = watcher.get(timeout=5)
    assert m.topic == "will/dying" and m.payload == b"gone"
    polite = Client(node, "polite", v5=v5, will=dict(topic="will/polite", payload="gone", qos=1))
    polite.close()
    watcher.expect_none(1.0)


def test_will_delay_interval_and_reconnect_cancels_it(node):
    watcher = Client(node, "watcher")
    watcher.subscribe("wd/#", qos=1)
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = 2
    c = Client(node, "delayed", session_expiry=60,
               will=dict(topic="wd/delayed", payload="late", qos=1, properties=wp))
    c.drop()
    watcher.expect_none(1.0)
    assert watcher.get(timeout=4).payload == b"late"
    # a reconnect within the delay cancels the will
    wp2 = Properties(PacketTypes.WILLMESSAGE)
    wp2.WillDelayInterval = 2
    c2 = Client(node, "delayed2", session_expiry=60,
                will=dict(topic="wd/delayed2", payload="never", qos=1, properties=wp2))
    c2.drop()
    Client(node, "delayed2", clean=False, session_expiry=60)
    watcher.expect_none(3.0)


def test_will_properties_forwarded(node):
    watcher = Client(node, "watcher")
    watcher.subscribe("wp/t", qos=1)
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.ContentType = "text/plain"
    wp.UserProperty = [("why", "crash")]
    c = Client(node, "wp", will=dict(topic="wp/t", payload="bye", qos=1, properties=wp))
    c.drop()
    m = watcher.get()
    assert m.properties.ContentType == "text/plain"
    assert m.properties.UserProperty == [("why", "crash")]


@BOTH
def test_shared_subscription_spreads_and_redistributes(node, v5):
    a = Client(node, "a", v5=v5)
    b = Client(node, "b", v5=v5)
    a.subscribe("$share/g/jobs/+", qos=1)
    b.subscribe("$share/g/jobs/+", qos=1)
    pub = Client(node, "pub", v5=v5)
    for i in range(10):
        pub.publish(f"jobs/{i}", str(i), qos=1)
    time.sleep(0.5)
    na, nb = a.messages.qsize(), b.messages.qsize()
    assert na + nb == 10 and na > 0 and nb > 0
    a.close()
    time.sleep(0.2)
    for i in range(4):
        pub.publish(f"jobs/{i}", "after", qos=1)
    deadline = time.time() + 5
    while b.messages.qsize() < nb + 4 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    assert b.messages.qsize() == nb + 4  # every message after a left went to b


def test_shared_subscription_no_local_is_refused(node):
    c = Client(node, "x")
    c.c.subscribe("$share/g/t", options=__import__("paho.mqtt.client", fromlist=["x"]).SubscribeOptions(qos=1, noLocal=True))
    rc = c.disconnects.get(timeout=5)
    assert rc.value == 0x82
