"""`ferrite backup` against a running node and `ferrite restore` into a fresh data directory:
the restored node answers the API and MQTT exactly as the original did (registry, identity,
shadows, rules, jobs, retained messages, persistent sessions with their queued messages, and
the same TLS endpoint and access key)."""

import json
import os
import queue
import shutil
import subprocess
import tempfile
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from conftest import Node, aws_client, ferrite_bin
from test_tls_certificates import ALLOW_ALL, tls_client


def ferrite(*args):
    return subprocess.run([ferrite_bin(), *args], capture_output=True, text=True, timeout=120)


def strip(answer):
    answer = dict(answer)
    answer.pop("ResponseMetadata", None)
    return answer


def persistent_client(node, client_id, messages):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.on_message = lambda c_, u, m: messages.put((m.topic, m.payload, m.retain))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    c.connect(node.host, node.mqtt_port, clean_start=False, properties=props)
    c.loop_start()
    return c


def populate(node, tmp):
    iot, data = aws_client(node, "iot"), aws_client(node, "iot-data")
    iot.create_thing_type(thingTypeName="lamp", thingTypeProperties={"searchableAttributes": ["room"]})
    iot.create_thing_group(thingGroupName="floor-1", thingGroupProperties={"attributePayload": {"attributes": {"b": "1"}}})
    for i in range(20):
        iot.create_thing(thingName=f"lamp-{i}", thingTypeName="lamp",
                         attributePayload={"attributes": {"room": str(i), "fw": "1.0"}})
        if i % 2 == 0:
            iot.add_thing_to_thing_group(thingGroupName="floor-1", thingName=f"lamp-{i}")
    iot.create_policy(policyName="AllowAll", policyDocument=ALLOW_ALL)
    cert = iot.create_keys_and_certificate(setAsActive=True)
    iot.attach_policy(policyName="AllowAll", target=cert["certificateArn"])
    iot.attach_thing_principal(thingName="lamp-0", principal=cert["certificateArn"])
    iot.create_topic_rule(ruleName="copy", topicRulePayload={
        "sql": "SELECT * FROM 'in/#'", "ruleDisabled": False,
        "actions": [{"republish": {"roleArn": "arn:aws:iam::000000000000:role/r", "topic": "out/copy"}}]})
    iot.create_job(jobId="update-fw", targets=[iot.describe_thing(thingName="lamp-1")["thingArn"]],
                   document=json.dumps({"fw": "2.0"}))
    data.update_thing_shadow(thingName="lamp-0", payload=json.dumps({"state": {"desired": {"on": True}}}))
    data.update_thing_shadow(thingName="lamp-0", shadowName="config",
                             payload=json.dumps({"state": {"reported": {"level": 7}}}))
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="retainer")
    pub.connect(node.host, node.mqtt_port)
    pub.loop_start()
    pub.publish("status/lamp-0", b"online", qos=1, retain=True).wait_for_publish(5)
    # A persistent session, subscribed, then offline with three messages queued for it.
    messages = queue.Queue()
    keeper = persistent_client(node, "keeper", messages)
    keeper.subscribe("keep/#", qos=1)
    time.sleep(0.3)
    keeper.disconnect()
    keeper.loop_stop()
    time.sleep(0.3)
    for i in range(3):
        pub.publish(f"keep/{i}", f"queued-{i}".encode(), qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()
    return cert


def snapshot(node):
    """Everything the API says about the state, normalised for comparison."""
    iot, data = aws_client(node, "iot"), aws_client(node, "iot-data")
    things = sorted(iot.list_things(maxResults=100)["things"], key=lambda t: t["thingName"])
    return {
        "things": [strip(iot.describe_thing(thingName=t["thingName"])) for t in things],
        "type": {k: v for k, v in strip(iot.describe_thing_type(thingTypeName="lamp")).items()},
        "group": strip(iot.describe_thing_group(thingGroupName="floor-1")),
        "members": sorted(iot.list_things_in_thing_group(thingGroupName="floor-1")["things"]),
        "policy": strip(iot.get_policy(policyName="AllowAll")),
        "certificates": strip(iot.list_certificates()),
        "principals": iot.list_thing_principals(thingName="lamp-0")["principals"],
        "rule": strip(iot.get_topic_rule(ruleName="copy")),
        "job": {k: v for k, v in strip(iot.describe_job(jobId="update-fw"))["job"].items()
                if k not in ("jobProcessDetails",)},
        "shadow": json.loads(data.get_thing_shadow(thingName="lamp-0")["payload"].read())["state"],
        "named": json.loads(data.get_thing_shadow(thingName="lamp-0", shadowName="config")["payload"].read())["state"],
    }


def test_a_restored_node_answers_as_the_original(make_node, tmp_path):
    original = make_node()
    cert = populate(original, tmp_path)
    before = snapshot(original)
    backup = str(tmp_path / "node.backup")
    r = ferrite("backup", "--http", f"{original.host}:{original.http_port}", "--out", backup,
                "--credentials", os.path.join(original.data_dir, "credentials"))
    assert r.returncode == 0, r.stderr
    assert "backup of" in r.stdout and "written to" in r.stdout, r.stdout
    assert os.stat(backup).st_mode & 0o077 == 0, "a backup holds keys: owner-only"
    original.stop()

    restored_dir = tempfile.mkdtemp(prefix="ferrite-restored-")
    shutil.rmtree(restored_dir)
    try:
        r = ferrite("restore", backup, "--data-dir", restored_dir)
        assert r.returncode == 0, r.stderr
        assert "registry=" in r.stdout and "credentials" in r.stdout, r.stdout
        again = ferrite("restore", backup, "--data-dir", restored_dir)
        assert again.returncode == 1 and "already holds a node's data" in again.stderr
        node = Node(restored_dir).start()
        try:
            # The same access key works: the restored credentials file is the original's.
            after = snapshot(node)
            assert after == before
            # Retained message, and the persistent session's queued messages.
            got = queue.Queue()
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="reader")
            c.on_message = lambda c_, u, m: got.put((m.topic, m.payload, m.retain))
            c.connect(node.host, node.mqtt_port)
            c.loop_start()
            c.subscribe("status/#", qos=1)
            assert got.get(timeout=5) == ("status/lamp-0", b"online", True)
            c.loop_stop()
            messages = queue.Queue()
            keeper = persistent_client(node, "keeper", messages)
            seen = sorted(messages.get(timeout=5)[1] for _ in range(3))
            assert seen == [b"queued-0", b"queued-1", b"queued-2"]
            keeper.disconnect()
            keeper.loop_stop()
            # The device certificate still connects, trusting the same (restored) CA.
            device, connack, _ = tls_client(node, cert["certificatePem"], cert["keyPair"]["PrivateKey"], tmp_path,
                                            client_id="lamp-0")
            assert connack.get(timeout=5) == 0
            device.loop_stop()
            device.disconnect()
            # The topic rule runs.
            out = queue.Queue()
            s = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="rule-reader")
            s.on_message = lambda c_, u, m: out.put(m.payload)
            s.connect(node.host, node.mqtt_port)
            s.loop_start()
            s.subscribe("out/copy", qos=1)
            time.sleep(0.3)
            s.publish("in/x", b'{"a":1}', qos=1).wait_for_publish(5)
            assert json.loads(out.get(timeout=5)) == {"a": 1}
            s.loop_stop()
        finally:
            node.stop()
    finally:
        shutil.rmtree(restored_dir, ignore_errors=True)


def test_a_damaged_or_cut_short_backup_is_refused_and_writes_nothing(node, tmp_path):
    aws_client(node, "iot").create_thing(thingName="one")
    backup = str(tmp_path / "b.backup")
    r = ferrite("backup", "--http", f"{node.host}:{node.http_port}", "--out", backup,
                "--credentials", os.path.join(node.data_dir, "credentials"))
    assert r.returncode == 0, r.stderr
    raw = open(backup, "rb").read()
    damaged = str(tmp_path / "damaged.backup")
    with open(damaged, "wb") as f:
        f.write(raw[:40] + bytes([raw[40] ^ 0xFF]) + raw[41:])
    cut = str(tmp_path / "cut.backup")
    with open(cut, "wb") as f:
        f.write(raw[: len(raw) // 2])
    for bad, why in [(damaged, ""), (cut, "cut short")]:
        target = str(tmp_path / f"restore-{os.path.basename(bad)}")
        r = ferrite("restore", bad, "--data-dir", target)
        assert r.returncode == 1, r.stdout
        assert why in r.stderr, r.stderr
        assert not os.path.exists(target)


def test_backup_needs_a_signed_request_and_names_an_unreachable_node(node, tmp_path):
    wrong = tmp_path / "credentials"
    wrong.write_text("[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = nope\n")
    r = ferrite("backup", "--http", f"{node.host}:{node.http_port}", "--out", str(tmp_path / "x"),
                "--credentials", str(wrong))
    assert r.returncode == 1 and "answered 403" in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "x") and not os.path.exists(tmp_path / "x.partial")
    r = ferrite("backup", "--http", "127.0.0.1:1", "--out", str(tmp_path / "y"),
                "--credentials", os.path.join(node.data_dir, "credentials"))
    assert r.returncode == 1 and "127.0.0.1:1" in r.stderr, r.stderr


def test_the_same_backup_seeds_a_new_cluster(make_node, tmp_path):
    from test_cluster import LocalCluster

    original = make_node()
    iot = aws_client(original, "iot")
    for i in range(10):
        iot.create_thing(thingName=f"seed-{i}", attributePayload={"attributes": {"n": str(i)}})
    aws_client(original, "iot-data").update_thing_shadow(
        thingName="seed-0", payload=json.dumps({"state": {"reported": {"on": True}}}))
    backup = str(tmp_path / "seed.backup")
    r = ferrite("backup", "--http", f"{original.host}:{original.http_port}", "--out", backup,
                "--credentials", os.path.join(original.data_dir, "credentials"))
    assert r.returncode == 0, r.stderr
    base = tempfile.mkdtemp(prefix="ferrite-seeded-")
    for node_id in (1, 2, 3):
        extra = [] if node_id == 1 else ["--skip-sessions"]
        r = ferrite("restore", backup, "--data-dir", os.path.join(base, f"node-{node_id}", "data"), *extra)
        assert r.returncode == 0, r.stderr
    cluster = LocalCluster(base).start()
    try:
        cluster.wait_for_leaders()
        with open(os.path.join(base, "node-1", "ferrite.log"), "rb") as f:
            assert b"\x1b[" not in f.read(), "colour codes in a node's log file"
        for m in cluster.members:
            api = aws_client(m, "iot")
            names = sorted(t["thingName"] for t in api.list_things()["things"])
            assert names == [f"seed-{i}" for i in range(10)], (m.node_id, names)
            shadow = json.loads(aws_client(m, "iot-data").get_thing_shadow(thingName="seed-0")["payload"].read())
            assert shadow["state"]["reported"] == {"on": True}
        # The seeded cluster replicates new writes like any other.
        aws_client(cluster.member(1), "iot").create_thing(thingName="after-seed")
        deadline = time.time() + 10
        while True:
            names = [t["thingName"] for t in aws_client(cluster.member(3), "iot").list_things()["things"]]
            if "after-seed" in names:
                break
            assert time.time() < deadline, names
            time.sleep(0.1)
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
