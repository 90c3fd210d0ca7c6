"""`ferrite bench` as users run it (the cluster benchmarks): the shadow scenario counts
accepted updates and their latency, and `--sub-target` puts subscribers on another node of a
cluster so every message crosses nodes."""

import json
import subprocess

from conftest import ferrite_bin
from test_cluster import cluster  # noqa: F401  (the fixture)


def bench(*flags):
    out = subprocess.run([ferrite_bin(), "bench", "--json", *flags], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_the_shadow_scenario_counts_accepted_updates_and_their_latency(make_node):
    node = make_node(config_text="[limits]\nshadow_requests_per_second_per_thing = 0\n")
    r = bench("--target", f"127.0.0.1:{node.mqtt_port}", "--scenario", "shadow", "-n", "4", "--inflight", "10",
              "--qos", "1", "--duration", "2")
    assert r["scenario"] == "shadow"
    assert r["sent"] > 100 and r["received"] == r["sent"], r
    assert r["lost"] == 0 and r["rejected"] == 0 and r["duplicates"] == 0, r
    assert 0 < r["latency_ms_p50"] <= r["latency_ms_p99"], r


def test_the_shadow_scenario_reports_rejections_from_the_per_thing_rate_limit(node):
    # AWS's default of 20 requests per second per thing: one device with ten unanswered
    # updates at a time goes over it, and the rejections are counted, not lost.
    r = bench("--target", f"127.0.0.1:{node.mqtt_port}", "--scenario", "shadow", "-n", "1", "--inflight", "10",
              "--duration", "2")
    assert r["rejected"] > 0 and r["lost"] == 0, r
    assert r["received"] + r["rejected"] == r["sent"], r


def test_subscribers_on_another_node_receive_every_qos1_message(cluster):  # noqa: F811
    a, c = cluster.members[0], cluster.members[2]
    r = bench("--target", f"127.0.0.1:{a.mqtt_port}", "--sub-target", f"127.0.0.1:{c.mqtt_port}",
              "--scenario", "p2p", "-n", "3", "--qos", "1", "--duration", "2")
    assert r["sent"] > 100 and r["lost"] == 0 and r["received"] == r["sent"], r


def test_every_subscriber_of_a_mesh_gets_every_publishers_messages_once(node):
    # Several publishers on one topic, several subscribers: each message leaves as copies of
    # one shared encoding (the packet id patched per subscriber at QoS 1), and subscribers
    # are woken once per run of publishes; neither may lose or repeat a message.
    for version in ("4", "5"):
        r = bench("--target", f"127.0.0.1:{node.mqtt_port}", "--scenario", "mesh", "-n", "3", "--qos", "1",
                  "--mqtt-version", version, "--duration", "2")
        assert r["sent"] > 100 and r["expected"] == 3 * r["sent"], r
        assert r["received"] == r["expected"] and r["lost"] == 0 and r["duplicates"] == 0, r
