"""What an operator meets running a node: `serve --check`, range-checked limits, host names in
addresses, refused log levels, quiet and uncoloured logs, JSON logs, a failed start that
leaves nothing behind, metrics a Prometheus client parses, a broken rule file said at start,
and the tools (`bench`, `rules eval`, `cluster issue`) failing loudly."""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import paho.mqtt.client as mqtt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import ROOT, ferrite_bin


def ferrite(*args, timeout=60):
    return subprocess.run([ferrite_bin(), *args], capture_output=True, text=True, timeout=timeout)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ports_args(host="127.0.0.1"):
    return ["--mqtt-addr", f"{host}:0", "--ws-addr", f"{host}:0", "--http-addr", f"{host}:0",
            "--mqtts-addr", f"{host}:0", "--wss-addr", f"{host}:0", "--https-addr", f"{host}:0"]


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="ferrite-ops-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


# --- configuration ---------------------------------------------------------------------------

def test_check_accepts_a_valid_config_and_touches_nothing(workdir):
    data = os.path.join(workdir, "data")
    cfg = write(os.path.join(workdir, "ok.toml"),
                f'data_dir = "{data}"\nmqtt_addr = "localhost:1883"\nlog_json = true\n[limits]\nmax_payload_bytes = 1024\n')
    r = ferrite("serve", "--check", "--config", cfg)
    assert r.returncode == 0, r.stderr
    assert "configuration OK" in r.stdout and "mqtt=127.0.0.1:1883" in r.stdout, r.stdout
    assert not os.path.exists(data), "--check must not create the data directory"


def test_check_lists_every_problem_with_its_key(workdir):
    data = os.path.join(workdir, "data")
    cfg = write(os.path.join(workdir, "bad.toml"), "\n".join([
        f'data_dir = "{data}"',
        'mqt_addr = "0.0.0.0:1883"',
        'http_addr = "no-such-host.invalid:8080"',
        'workers = 0',
        'log_level = "verbose"',
        '[limits]',
        'max_payload_bytes = 0',
        'receive_maximum = 0',
        '',
    ]))
    # Unknown keys are reported first, all of them, with their line and a suggestion.
    r = ferrite("serve", "--check", "--config", cfg)
    assert r.returncode == 1
    assert "line 2: unknown key `mqt_addr` at the top level; did you mean `mqtt_addr`?" in r.stderr, r.stderr
    # Fixed, the values' problems are listed together.
    write(cfg, open(cfg).read().replace("mqt_addr", "mqtt_addr"))
    r = ferrite("serve", "--check", "--config", cfg)
    assert r.returncode == 1
    for expected in ['http_addr = "no-such-host.invalid:8080": the host name "no-such-host.invalid" does not resolve',
                     "workers = 0: must be from 1 to 1024",
                     'unknown log level "verbose"',
                     "[limits] max_payload_bytes = 0: must be from 1 to 268435455",
                     "[limits] receive_maximum = 0: must be from 1 to 65535"]:
        assert expected in r.stderr, f"{expected!r} not in {r.stderr}"
    assert not os.path.exists(data)
    # `serve` itself refuses the same configuration before touching anything.
    r = ferrite("serve", "--config", cfg)
    assert r.returncode == 1 and "max_payload_bytes = 0" in r.stderr
    assert not os.path.exists(data)


def test_check_names_certificate_files_it_cannot_read(workdir):
    cfg = write(os.path.join(workdir, "tls.toml"),
                '[tls]\nca_cert = "/nonexistent/ca.pem"\nca_key = "/nonexistent/ca.key"\n'
                '[cluster]\nnode_id = 1\naddr = "127.0.0.1:7000"\nca_cert = "/nonexistent/cluster-ca.pem"\n')
    r = ferrite("serve", "--check", "--config", cfg)
    assert r.returncode == 1
    for key in ["[tls] ca_cert", "[tls] ca_key", "[cluster] ca_cert"]:
        assert f'{key} = "/nonexistent/' in r.stderr and "cannot read it" in r.stderr, (key, r.stderr)


def test_flags_are_checked_like_keys(workdir):
    r = ferrite("serve", "--check", "--workers", "0")
    assert r.returncode == 1 and "--workers = 0: must be from 1 to 1024" in r.stderr, r.stderr
    r = ferrite("serve", "--data-dir", os.path.join(workdir, "d"), "--log-level", "verbose", *ports_args())
    assert r.returncode == 1 and 'unknown log level "verbose"' in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(workdir, "d"))
    r = ferrite("serve", "--check", "--mqtt-addr", "nowhere.invalid:1883")
    assert r.returncode == 1 and '--mqtt-addr = "nowhere.invalid:1883"' in r.stderr, r.stderr


def start(args, workdir, env=None):
    err = open(os.path.join(workdir, "stderr.log"), "wb")
    p = subprocess.Popen([ferrite_bin(), "serve", *args], stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    line = p.stdout.readline()
    return p, line


def stop(p):
    p.terminate()
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()


def stderr_of(workdir):
    with open(os.path.join(workdir, "stderr.log"), "rb") as f:
        return f.read().decode(errors="replace")


def test_host_names_work_in_listen_addresses(workdir):
    p, line = start(["--data-dir", os.path.join(workdir, "d"), *ports_args("localhost")], workdir)
    try:
        m = re.match(r"listening mqtt=127\.0\.0\.1:(\d+) ", line)
        assert m, line
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="by-name")
        c.connect("localhost", int(m.group(1)))
        c.disconnect()
    finally:
        stop(p)


def test_logs_are_quiet_uncoloured_in_files_and_start_with_the_version(workdir):
    rules = os.path.join(workdir, "rules")
    shutil.copytree(os.path.join(ROOT, "examples", "rules"), rules)
    p, line = start(["--data-dir", os.path.join(workdir, "d"), "--rules-dir", rules, *ports_args()], workdir)
    assert line.startswith("listening "), line
    time.sleep(0.5)
    stop(p)
    log = stderr_of(workdir)
    assert "\x1b[" not in log, "colour codes in a file"
    first = log.splitlines()[0]
    assert re.search(r"ferrite \d+\.\d+\.\d+ \((debug|release) build, ", first), first
    assert not [l for l in log.splitlines() if " raft" in l and " INFO " in l], "raft INFO lines at the default level"
    assert "function u0:0" not in log and "cranelift" not in log, "Cranelift output at the default level"
    assert len(log.splitlines()) < 40, log


def test_json_logs_give_every_line_as_an_object_with_fields(workdir):
    p, line = start(["--data-dir", os.path.join(workdir, "d"), "--log-json", "--log-level", "info,raft=info",
                     *ports_args()], workdir)
    assert line.startswith("listening "), line
    time.sleep(0.5)
    stop(p)
    lines = stderr_of(workdir).splitlines()
    docs = [json.loads(l) for l in lines]  # every line is JSON
    assert docs[0]["version"] and docs[0]["level"] == "INFO", docs[0]
    raft = [d for d in docs if d.get("target") == "raft"]
    assert raft and all(d.get("group") for d in raft), raft[:3]


def test_a_failed_start_leaves_nothing_behind_and_says_why_first(workdir):
    data = os.path.join(workdir, "d")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    taken = busy.getsockname()[1]
    args = ports_args()
    args[args.index("--https-addr") + 1] = f"127.0.0.1:{taken}"
    r = subprocess.run([ferrite_bin(), "serve", "--data-dir", data, *args], capture_output=True, text=True, timeout=30)
    busy.close()
    assert r.returncode == 1
    assert r.stderr.splitlines()[-1].startswith("error: cannot listen for HTTPS on 127.0.0.1:"), r.stderr
    assert "raft" not in r.stderr and "https_addr" in r.stderr
    assert not os.path.exists(data), "a refused start must not create the data directory"
    p, line = start(["--data-dir", data, *ports_args()], workdir)
    try:
        assert line.startswith("listening "), line
    finally:
        stop(p)


# --- metrics ---------------------------------------------------------------------------------

def scrape(node):
    _, body = node.http_get("/metrics")
    return body


def families(body):
    return {f.name: f for f in text_string_to_metric_families(body)}


def test_metrics_parse_without_duplicate_families_and_have_the_standard_ones(node):
    body = scrape(node)
    seen = set()
    for f in text_string_to_metric_families(body):  # raises on a malformed exposition
        assert f.name not in seen, f"duplicate family {f.name}"
        seen.add(f.name)
    for name in ["ferrite_connections_open", "ferrite_connections", "ferrite_build_info", "process_cpu_seconds",
                 "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
                 "process_start_time_seconds", "ferrite_publish_to_deliver_seconds",
                 "ferrite_api_request_duration_seconds", "ferrite_certificate_not_after_timestamp_seconds",
                 "ferrite_rules_config_errors"]:
        assert name in seen, f"{name} missing from {sorted(seen)}"
    fams = families(body)
    assert fams["ferrite_connections"].type == "counter" and fams["ferrite_connections_open"].type == "gauge"
    info = fams["ferrite_build_info"].samples[0]
    assert info.value == 1 and re.match(r"\d+\.\d+\.\d+", info.labels["version"]), info
    server = [s for s in fams["ferrite_certificate_not_after_timestamp_seconds"].samples
              if s.labels["certificate"] == "server"]
    assert server and server[0].value > time.time() + 86400, server


def test_latency_histograms_count_deliveries_and_api_calls(node):
    got = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hist-sub")
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.connect(node.host, node.mqtt_port)
    sub.subscribe("hist/t", qos=1)
    sub.loop_start()
    time.sleep(0.3)
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="hist-pub")
    pub.connect(node.host, node.mqtt_port)
    pub.loop_start()
    for i in range(5):
        pub.publish("hist/t", str(i), qos=1).wait_for_publish(5)
    deadline = time.time() + 5
    while len(got) < 5 and time.time() < deadline:
        time.sleep(0.05)
    pub.loop_stop()
    sub.loop_stop()
    assert len(got) == 5
    fams = families(scrape(node))
    deliver = {s.name: s for s in fams["ferrite_publish_to_deliver_seconds"].samples if not s.labels.get("le")}
    assert deliver["ferrite_publish_to_deliver_seconds_count"].value >= 5, deliver
    node.http_get("/health")
    api = families(scrape(node))["ferrite_api_request_duration_seconds"].samples
    counts = [s for s in api if s.name.endswith("_count")]
    assert any(s.labels.get("route") == "/health" and s.labels.get("method") == "GET" and s.value >= 1
               for s in counts), counts


def test_a_broken_rule_file_is_said_at_start_and_in_a_metric(make_node, workdir):
    rules = os.path.join(workdir, "rules")
    os.makedirs(rules)
    write(os.path.join(rules, "broken.sql"), "CREATE RULE broken AS SELECT temp FROM 'a/b' WHERE DO republish(topic = 'x');\n")
    n = make_node(["--rules-dir", rules])
    said = n.proc.stdout.readline()
    while said and not said.startswith("rules:"):
        said = n.proc.stdout.readline()
    assert said.startswith("rules: NOT LOADED: 1 error(s) in"), said
    assert n.metric("rules_config_errors") == 1
    write(os.path.join(rules, "broken.sql"), "CREATE RULE fixed AS SELECT temp FROM 'a/b' DO republish(topic = 'x');\n")
    deadline = time.time() + 10
    while n.metric("rules_config_errors") != 0 and time.time() < deadline:
        time.sleep(0.2)
    assert n.metric("rules_config_errors") == 0 and n.metric("rules_loaded") == 1


# --- tools -----------------------------------------------------------------------------------

def test_bench_names_an_unreachable_target():
    port = free_port()
    r = ferrite("bench", "--target", f"127.0.0.1:{port}", "--duration", "2", timeout=60)
    assert r.returncode == 1
    assert f"cannot connect to the broker at 127.0.0.1:{port}" in r.stderr, r.stderr


def test_bench_reports_progress_and_fails_loudly_when_the_broker_goes_away(make_node):
    n = make_node()
    p = subprocess.Popen([ferrite_bin(), "bench", "--target", f"127.0.0.1:{n.mqtt_port}", "--duration", "20",
                          "-n", "2", "--rate", "200"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    progress = []
    deadline = time.time() + 15
    while len(progress) < 2 and time.time() < deadline:
        line = p.stderr.readline()
        if line.startswith("["):
            progress.append(line)
    assert len(progress) == 2 and re.match(r"\[\s*\d+s/20s\] sent \d+ \(\d+/s\)  received \d+", progress[0]), progress
    n.kill9()
    out, err = p.communicate(timeout=30)
    assert p.returncode == 1, (out, err)
    assert f"the broker at 127.0.0.1:{n.mqtt_port}" in err and "no report" in err, err
    assert "msgs/s" not in out


def test_rules_eval_refuses_malformed_json():
    r = ferrite("rules", "eval", "--sql", "SELECT temp FROM 'd/+'", "--topic", "d/1", "--payload", '{"temp": 21')
    assert r.returncode == 1 and "the payload is not valid JSON" in r.stderr and "line 1, column" in r.stderr, r
    assert r.stdout == ""
    ok = ferrite("rules", "eval", "--sql", "SELECT temp FROM 'd/+'", "--topic", "d/1", "--payload", '{"temp": 21}')
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"temp": 21}


def test_cluster_issue_writes_a_node_certificate_once(workdir):
    ca = os.path.join(workdir, "ca")
    assert ferrite("cluster", "init", "--dir", ca).returncode == 0
    data = os.path.join(workdir, "node-2")
    r = ferrite("cluster", "issue", "--ca-dir", ca, "--node-id", "2", "--data-dir", data)
    assert r.returncode == 0 and "issued node 2's cluster certificate" in r.stdout, r
    pem = open(os.path.join(data, "cluster", "node.pem")).read()
    r = ferrite("cluster", "issue", "--ca-dir", ca, "--node-id", "2", "--data-dir", data)
    assert r.returncode == 0 and "already has" in r.stdout
    assert open(os.path.join(data, "cluster", "node.pem")).read() == pem
    bad = ferrite("cluster", "issue", "--ca-dir", os.path.join(workdir, "none"), "--node-id", "3", "--data-dir", data + "x")
    assert bad.returncode == 1 and "cluster CA" in bad.stderr, bad.stderr


def test_benchmark_results_are_not_tracked_files():
    tracked = subprocess.run(["git", "ls-files", "bench-results"], cwd=ROOT, capture_output=True, text=True).stdout
    assert tracked.strip() == "", tracked
    ignored = subprocess.run(["git", "check-ignore", "bench-results/results.jsonl"], cwd=ROOT, capture_output=True)
    assert ignored.returncode == 0


def test_startup_hints_name_an_address_that_reaches_a_node_on_every_interface(workdir):
    args = ports_args()
    args[args.index("--http-addr") + 1] = "0.0.0.0:0"
    p, line = start(["--data-dir", os.path.join(workdir, "d"), *args], workdir)
    try:
        port = re.search(r"http=0\.0\.0\.0:(\d+)", line).group(1)
        lines = [p.stdout.readline() for _ in range(3)]
        hint = next(l for l in lines if l.startswith("use it with"))
        assert f"--endpoint-url http://127.0.0.1:{port} " in hint, hint
        console = next(l for l in lines if l.startswith("web console"))
        assert f"http://127.0.0.1:{port}/console/" in console
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/console/", timeout=5) as r:
            assert r.status == 200 and b"<!doctype html>" in r.read()
    finally:
        stop(p)
