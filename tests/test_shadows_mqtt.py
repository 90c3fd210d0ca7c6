"""Device shadows over their reserved MQTT topics, with a real client, as a device and an
application would use them."""

import json
import queue

from conftest import Client, next_json_on as next_on

SHADOW = "$aws/things/lamp/shadow"


def request(client, op, body, prefix=SHADOW):
    client.publish(f"{prefix}/{op}", json.dumps(body) if body is not None else "", qos=1)



def test_reported_then_desired_gives_the_device_a_delta(node):
    device = Client(node, "lamp")
    device.subscribe(f"{SHADOW}/update/delta", qos=1)
    device.subscribe(f"{SHADOW}/update/accepted", qos=1)
    request(device, "update", {"state": {"reported": {"temp": 21, "mode": "eco"}}, "clientToken": "d1"})
    accepted = next_on(device, f"{SHADOW}/update/accepted")
    assert accepted["state"] == {"reported": {"temp": 21, "mode": "eco"}}
    assert accepted["version"] == 1
    assert accepted["clientToken"] == "d1"
    assert accepted["metadata"]["reported"]["temp"]["timestamp"] == accepted["timestamp"]

    app = Client(node, "app")
    request(app, "update", {"state": {"desired": {"temp": 25, "mode": "eco"}}})
    delta = next_on(device, f"{SHADOW}/update/delta")
    assert delta["state"] == {"temp": 25}
    assert delta["version"] == 2
    assert set(delta["metadata"]) == {"temp"}


def test_get_returns_state_metadata_and_delta(node):
    c = Client(node, "app")
    c.subscribe(f"{SHADOW}/get/accepted", qos=1)
    request(c, "update", {"state": {"reported": {"on": False}, "desired": {"on": True}}})
    request(c, "get", {"clientToken": "g1"})
    doc = next_on(c, f"{SHADOW}/get/accepted")
    assert doc["state"] == {"desired": {"on": True}, "reported": {"on": False}, "delta": {"on": True}}
    assert doc["version"] == 1
    assert doc["clientToken"] == "g1"
    assert set(doc["metadata"]) == {"desired", "reported"}


def test_version_conflicts_and_bad_documents_are_rejected_with_aws_codes(node):
    c = Client(node, "app")
    c.subscribe(f"{SHADOW}/update/rejected", qos=1)
    request(c, "update", {"state": {"reported": {"a": 1}}})
    request(c, "update", {"state": {"reported": {"a": 2}}, "version": 7, "clientToken": "v"})
    rejected = next_on(c, f"{SHADOW}/update/rejected")
    assert (rejected["code"], rejected["message"], rejected["clientToken"]) == (409, "Version conflict", "v")
    c.publish(f"{SHADOW}/update", "not json", qos=1)
    assert next_on(c, f"{SHADOW}/update/rejected")["message"] == "Invalid JSON"
    request(c, "update", {"state": {"reported": {"blob": "x" * 9000}}})
    rejected = next_on(c, f"{SHADOW}/update/rejected")
    assert (rejected["code"], rejected["message"]) == (413, "The payload exceeds the maximum size allowed")
    request(c, "update", {"state": {"delta": {"a": 1}}})
    assert next_on(c, f"{SHADOW}/update/rejected")["message"] == "State contains an invalid node"


def test_named_shadows_are_separate_and_missing_ones_are_404(node):
    named = "$aws/things/lamp/shadow/name/config"
    c = Client(node, "app")
    c.subscribe(f"{named}/get/rejected", qos=1)
    c.subscribe(f"{named}/update/accepted", qos=1)
    c.subscribe(f"{named}/delete/accepted", qos=1)
    request(c, "get", None, prefix=named)
    rejected = next_on(c, f"{named}/get/rejected")
    assert (rejected["code"], rejected["message"]) == (404, "No shadow exists with name: 'config'")
    request(c, "update", {"state": {"desired": {"brightness": 3}}}, prefix=named)
    assert next_on(c, f"{named}/update/accepted")["version"] == 1
    request(c, "delete", {"clientToken": "del"}, prefix=named)
    deleted = next_on(c, f"{named}/delete/accepted")
    assert (deleted["version"], deleted["clientToken"]) == (1, "del")


def test_shadows_survive_a_restart(node):
    c = Client(node, "app")
    c.subscribe(f"{SHADOW}/update/accepted", qos=1)
    request(c, "update", {"state": {"reported": {"fw": "1.2"}}})
    assert next_on(c, f"{SHADOW}/update/accepted")["version"] == 1
    c.close()
    node.restart(kill=True)
    c = Client(node, "app")
    c.subscribe(f"{SHADOW}/get/accepted", qos=1)
    request(c, "get", {})
    doc = next_on(c, f"{SHADOW}/get/accepted")
    assert doc["state"] == {"reported": {"fw": "1.2"}}
    assert doc["version"] == 1


def test_requests_over_the_per_thing_rate_are_rejected_with_429(make_node):
    node = make_node(config_text="[limits]\nshadow_requests_per_second_per_thing = 2\n")
    c = Client(node, "app")
    c.subscribe(f"{SHADOW}/get/rejected", qos=1)
    other = "$aws/things/fan/shadow"
    c.subscribe(f"{other}/get/rejected", qos=1)
    for i in range(6):
        request(c, "get", {"clientToken": f"t{i}"})
    codes = set()
    try:
        while True:
            codes.add(next_on(c, f"{SHADOW}/get/rejected", timeout=1)["code"])
    except queue.Empty:
        pass
    assert 429 in codes and 404 in codes
    request(c, "get", {}, prefix=other)
    assert next_on(c, f"{other}/get/rejected")["code"] == 404


def test_a_connection_with_ten_requests_in_flight_gets_429_for_more(node):
    # Updates of 60 different things (no per-thing rate applies), sent at QoS 0 without waiting:
    # more than ten are in flight at once, as AWS allows per connection.
    c = Client(node, "burst")
    c.subscribe("$aws/things/+/shadow/update/accepted", qos=1)
    c.subscribe("$aws/things/+/shadow/update/rejected", qos=1)
    body = json.dumps({"state": {"reported": {"x": "y" * 2000}}})
    for i in range(60):
        c.publish(f"$aws/things/t{i}/shadow/update", body, qos=0)
    answers = {}
    while len(answers) < 60:
        msg = c.get(timeout=10)
        topic, payload = msg.topic, msg.payload
        thing, outcome = topic.split("/")[2], topic.rsplit("/", 1)[1]
        assert thing not in answers, f"{thing} answered twice"
        answers[thing] = (outcome, json.loads(payload))
    rejected = [doc for outcome, doc in answers.values() if outcome == "rejected"]
    assert all((d["code"], d["message"]) == (429, "Too Many Requests") for d in rejected)
    assert rejected, "no request was refused: the in-flight limit did not apply"
    accepted = [t for t, (outcome, _) in answers.items() if outcome == "accepted"]
    assert len(accepted) >= 10
    c.subscribe(f"$aws/things/{accepted[-1]}/shadow/get/accepted", qos=1)
    request(c, "get", {}, prefix=f"$aws/things/{accepted[-1]}/shadow")
    assert next_on(c, f"$aws/things/{accepted[-1]}/shadow/get/accepted")["state"]["reported"]["x"] == "y" * 2000
