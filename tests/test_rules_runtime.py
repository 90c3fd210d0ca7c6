"""Rules running in the node: rule files in a temp dir, publishes from a real client, outputs
observed on republish topics, on a local HTTP server, in the NDJSON file and at /metrics; hot
reload, Basic Ingest and error actions."""

import base64
import http.server
import json
import os
import queue
import socket
import tempfile
import threading
import time

import pytest

from conftest import Client, Node

REPUBLISH = """
CREATE RULE hot
AS SELECT topic(2) AS device, temperature AS t FROM 'device/+/data' WHERE temperature > 30
DO republish(topic = 'alerts/${topic(2)}', qos = 1);
"""


@pytest.fixture
def rules_node():
    created = []

    def make(files):
        d = tempfile.mkdtemp(prefix="ferrite-rules-")
        rules = os.path.join(d, "rules")
        os.makedirs(rules)
        for name, text in files.items():
            with open(os.path.join(rules, name), "w") as f:
                f.write(text)
        n = Node(d, ["--rules-dir", rules]).start()
        n.rules_dir = rules
        created.append(n)
        return n

    yield make
    for n in created:
        n.stop()


class Collector(http.server.BaseHTTPRequestHandler):
    received = None
    status = 200

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Collector.received.put((self.path, self.headers, body))  # case-insensitive lookups
        self.send_response(Collector.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def http_collector():
    Collector.received = queue.Queue()
    Collector.status = 200
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(predicate, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_republish_rule_transforms_and_filters(rules_node):
    n = rules_node({"alerts.sql": REPUBLISH})
    sub = Client(n, "watcher")
    sub.subscribe("alerts/#", qos=1)
    pub = Client(n, "dev-7")
    pub.publish("device/7/data", json.dumps({"temperature": 31, "humidity": 80}), qos=1)
    pub.publish("device/8/data", json.dumps({"temperature": 20}), qos=1)
    msg = sub.get()
    assert msg.topic == "alerts/7"
    assert json.loads(msg.payload) == {"device": "7", "t": 31}
    sub.expect_none()
    assert n.metric('rule_matched_total{rule="hot"}') == 2
    assert n.metric('rule_passed_total{rule="hot"}') == 1
    assert n.metric('rule_filtered_total{rule="hot"}') == 1


def test_subscribers_still_get_the_original_message(rules_node):
    n = rules_node({"alerts.sql": REPUBLISH})
    sub = Client(n, "raw")
    sub.subscribe("device/+/data")
    Client(n, "dev").publish("device/1/data", '{"temperature": 50}')
    assert json.loads(sub.get().payload) == {"temperature": 50}


def test_http_action_posts_the_output_with_templated_headers(rules_node, http_collector):
    port = http_collector.server_address[1]
    n = rules_node({"http.sql": f"""
CREATE RULE to_http AS SELECT *, clientid() AS client FROM 'sensors/+'
DO http(url = 'http://127.0.0.1:{port}/ingest/${{topic(2)}}', headers = {{'x-sensor': '${{topic(2)}}'}});
"""})
    Client(n, "s-1").publish("sensors/abc", '{"v": 1}', qos=1)
    path, headers, body = Collector.received.get(timeout=5)
    assert path == "/ingest/abc"
    assert headers["x-sensor"] == "abc"
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"v": 1, "client": "s-1"}
    assert wait_for(lambda: n.metric('rule_action_succeeded_total{rule="to_http",action="http#0"}') == 1)


def test_file_action_appends_ndjson(rules_node):
    n = rules_node({"file.sql": """
CREATE RULE archive AS SELECT topic(2) AS id, v FROM 'meters/+'
DO file(path = 'out/${topic(2)}.ndjson');
"""})
    c = Client(n, "m")
    for i in range(3):
        c.publish("meters/m1", json.dumps({"v": i}), qos=1)
    path = os.path.join(n.data_dir, "out", "m1.ndjson")
    assert wait_for(lambda: os.path.exists(path) and len(open(path).read().splitlines()) == 3)
    lines = [json.loads(line) for line in open(path).read().splitlines()]
    assert lines == [{"id": "m1", "v": 0}, {"id": "m1", "v": 1}, {"id": "m1", "v": 2}]


def test_error_action_gets_awss_document_when_the_http_target_is_down(rules_node):
    port = free_port()
    n = rules_node({"down.sql": f"""
CREATE RULE flaky AS SELECT * FROM 'jobs/+'
DO http(url = 'http://127.0.0.1:{port}/x', maxRetries = 1, timeoutMs = 500)
ON ERROR republish(topic = 'errors/${{topic(2)}}');
"""})
    sub = Client(n, "ops")
    sub.subscribe("errors/#")
    Client(n, "worker-3").publish("jobs/42", '{"n": 1}', qos=1)
    msg = sub.get(timeout=10)
    assert msg.topic == "errors/42"
    doc = json.loads(msg.payload)
    assert doc["ruleName"] == "flaky"
    assert doc["topic"] == "jobs/42"
    assert doc["clientId"] == "worker-3"
    assert base64.b64decode(doc["base64OriginalPayload"]) == b'{"n": 1}'
    assert doc["failures"][0]["failedAction"] == "HttpAction"
    assert doc["failures"][0]["failedResource"] == f"http://127.0.0.1:{port}/x"
    assert "connect" in doc["failures"][0]["errorMessage"]
    assert n.metric('rule_action_retried_total{rule="flaky",action="http#0"}') == 1
    assert n.metric('rule_action_failed_total{rule="flaky",action="http#0"}') == 1


def test_hot_reload_swaps_valid_sets_and_keeps_the_old_one_on_errors(rules_node):
    n = rules_node({"alerts.sql": REPUBLISH})
    sub = Client(n, "watch")
    sub.subscribe("#")
    pub = Client(n, "dev")
    # A broken file: the running rules stay and the error is logged with its position.
    with open(os.path.join(n.rules_dir, "broken.sql"), "w") as f:
        f.write("CREATE RULE bad AS SELECT lenght(x) FROM 'a' DO log();\n")
    assert wait_for(lambda: "broken.sql:1:27" in n.log())
    pub.publish("device/1/data", '{"temperature": 40}')
    topics = {sub.get().topic, sub.get().topic}
    assert topics == {"device/1/data", "alerts/1"}
    # Fix it and change the first rule: the new set runs.
    os.remove(os.path.join(n.rules_dir, "broken.sql"))
    with open(os.path.join(n.rules_dir, "alerts.sql"), "w") as f:
        f.write(REPUBLISH.replace("alerts/", "hot/"))
    assert wait_for(lambda: "rules loaded" in n.log() and n.log().count("rules loaded") >= 2)
    pub.publish("device/2/data", '{"temperature": 40}')
    topics = {sub.get().topic, sub.get().topic}
    assert topics == {"device/2/data", "hot/2"}


def test_basic_ingest_reaches_only_the_named_rule(rules_node):
    n = rules_node({"ingest.sql": """
CREATE RULE ingest_me AS SELECT topic() AS t, v FROM 'never/matches'
DO republish(topic = 'ingested');
"""})
    sub = Client(n, "s")
    sub.subscribe("ingested")
    spy = Client(n, "spy")
    spy.subscribe("$aws/rules/ingest_me/#")
    Client(n, "p").publish("$aws/rules/ingest_me/plant/7", '{"v": 3}', qos=1)
    assert json.loads(sub.get().payload) == {"t": "plant/7", "v": 3}
    spy.expect_none()


def test_non_json_payload_gives_undefined_fields_and_counts_a_parse_error(rules_node):
    n = rules_node({"parse.sql": """
CREATE RULE reads AS SELECT v, encode(*, 'base64') AS raw FROM 'bin/+'
DO republish(topic = 'decoded');
"""})
    sub = Client(n, "s")
    sub.subscribe("decoded")
    Client(n, "p").publish("bin/1", b"\x00\x01not json", qos=1)
    assert json.loads(sub.get().payload) == {"raw": base64.b64encode(b"\x00\x01not json").decode()}
    assert n.metric('rule_parse_errors_total{rule="reads"}') == 1


def test_disabled_rules_do_not_run(rules_node):
    n = rules_node({"off.sql": REPUBLISH.replace("CREATE RULE hot", "CREATE RULE hot DISABLED")})
    sub = Client(n, "s")
    sub.subscribe("alerts/#")
    Client(n, "p").publish("device/1/data", '{"temperature": 99}')
    sub.expect_none()
    assert n.metric("rules_loaded") == 1


def test_a_rule_republishing_to_its_own_topic_stops_after_a_bounded_chain(rules_node):
    n = rules_node({"loop.sql": """
CREATE RULE echo AS SELECT * FROM 'loop/#' DO republish(topic = 'loop/again');
"""})
    sub = Client(n, "s")
    sub.subscribe("loop/#")
    Client(n, "p").publish("loop/start", '{"n": 1}')
    got = [sub.get().topic]
    got += [sub.get().topic for _ in range(8)]
    sub.expect_none(wait=1.0)
    # The republished copies run on the actions thread and may overtake the original.
    assert sorted(got) == sorted(["loop/start"] + ["loop/again"] * 8)
    assert n.metric("rule_loops_stopped_total") == 1
