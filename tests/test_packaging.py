"""The packaging and monitoring examples, checked the way an operator would use them: the
container image's Dockerfile and config, the three-node compose file, the systemd unit and its
sysusers file, the Prometheus scrape config and alerting rules (promtool), and the Grafana
dashboard, whose every metric a running node must export. No Docker daemon is needed: the
Dockerfile and the compose file are read, and the image's config is run with the real binary."""

import json
import os
import re
import shutil
import socket
import subprocess
import tomllib
import urllib.request

import pytest
import yaml

from conftest import ROOT, Client, aws_client, ferrite_bin, v5_connect

CLUSTER = os.path.join(ROOT, "examples", "cluster")
DOCKERFILE = os.path.join(CLUSTER, "Dockerfile")
COMPOSE = os.path.join(CLUSTER, "docker-compose.yml")
UNIT = os.path.join(CLUSTER, "ferrite.service")
SYSUSERS = os.path.join(CLUSTER, "ferrite.sysusers")
ALERTS = os.path.join(ROOT, "examples", "prometheus", "alerts.yml")
PROMETHEUS = os.path.join(ROOT, "examples", "prometheus", "prometheus.yml")
DASHBOARD = os.path.join(ROOT, "examples", "grafana", "ferrite-dashboard.json")

LISTENERS = ("mqtt_addr", "ws_addr", "http_addr", "mqtts_addr", "wss_addr", "https_addr")
DEVICE_AND_HTTP_PORTS = {1883, 8083, 8080, 8883, 8443, 8444}

# The metrics a node exports: what the dashboard and the alerts may use.
EXPORTED = {
    # counters
    "ferrite_connections_total", "ferrite_connections_refused_at_limit_total",
    "ferrite_accept_failures_total", "ferrite_connects_refused_total",
    "ferrite_messages_received_total", "ferrite_messages_sent_total",
    "ferrite_messages_dropped_queue_full_total", "ferrite_messages_expired_total",
    "ferrite_messages_dropped_too_large_total", "ferrite_messages_dropped_slow_client_total",
    "ferrite_clients_disconnected_stalled_total", "ferrite_bytes_received_total",
    "ferrite_bytes_sent_total", "ferrite_protocol_errors_total", "ferrite_keepalive_timeouts_total",
    "ferrite_session_takeovers_total", "ferrite_publisher_backpressure_total",
    "ferrite_storage_errors_total", "ferrite_connect_auth_errors_total",
    "ferrite_publish_in_auth_errors_total", "ferrite_publish_out_auth_errors_total",
    "ferrite_subscribe_auth_errors_total", "ferrite_certificate_disconnects_total",
    "ferrite_stored_records_undecodable_total", "ferrite_cluster_proposals_retried_total",
    "ferrite_cluster_proposals_failed_total",
    "ferrite_rule_matched_total", "ferrite_rule_passed_total", "ferrite_rule_filtered_total",
    "ferrite_rule_errors_total",
    "ferrite_rule_action_succeeded_total", "ferrite_rule_action_failed_total",
    "ferrite_rule_action_retried_total", "ferrite_rule_action_throttled_total",
    # gauges
    "ferrite_sessions", "ferrite_session_replicas", "ferrite_subscriptions",
    "ferrite_retained_messages", "ferrite_rules_loaded", "ferrite_cluster_ready",
    "ferrite_cluster_group_leader", "ferrite_cluster_group_is_leader", "ferrite_cluster_group_term",
    "ferrite_cluster_group_commit_index", "ferrite_cluster_group_applied_index",
    "ferrite_cluster_group_apply_lag", "ferrite_cluster_group_member_lag",
    "ferrite_connections_open", "ferrite_build_info", "ferrite_rules_config_errors",
    "ferrite_certificate_not_after_timestamp_seconds",
    # histograms (their _bucket, _sum and _count series)
    "ferrite_publish_to_deliver_seconds", "ferrite_api_request_duration_seconds",
    # the process
    "process_cpu_seconds_total", "process_resident_memory_bytes", "process_virtual_memory_bytes",
    "process_open_fds", "process_max_fds", "process_start_time_seconds", "process_threads",
}
HISTOGRAMS = {"ferrite_publish_to_deliver_seconds", "ferrite_api_request_duration_seconds"}


def metric_names(expr):
    """The ferrite_ and process_ metric names a PromQL expression reads (a histogram's _bucket,
    _sum and _count series count as the histogram)."""
    names = set()
    for name in re.findall(r"\b((?:ferrite|process)_[A-Za-z0-9_]+)", expr):
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and name[: -len(suffix)] in HISTOGRAMS:
                name = name[: -len(suffix)]
        names.add(name)
    return names


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def alert_rules():
    return [r for g in load_yaml(ALERTS)["groups"] for r in g["rules"]]


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def dashboard_panels():
    """Every panel, rows' collapsed panels included, except the rows themselves."""
    out = []
    for p in dashboard()["panels"]:
        out += p.get("panels", []) if p.get("type") == "row" else [p]
    return out


def dashboard_exprs():
    return [t["expr"] for p in dashboard_panels() for t in p.get("targets", []) if t.get("expr")]


def dashboard_variable_queries():
    out = []
    for v in dashboard()["templating"]["list"]:
        if v.get("type") == "query":
            q = v.get("query")
            out.append(q["query"] if isinstance(q, dict) else q)
    return out


def promtool():
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package prometheus; scripts/install-deps installs it)")
    return path


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kw)


# --- Prometheus ---------------------------------------------------------------------------------


def test_promtool_accepts_the_alerting_rules_and_the_scrape_config():
    tool = promtool()
    rules = run([tool, "check", "rules", ALERTS])
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = run([tool, "check", "config", PROMETHEUS])
    assert config.returncode == 0, config.stdout + config.stderr
    assert "alerts.yml" in load_yaml(PROMETHEUS)["rule_files"]


def test_prometheus_scrapes_every_compose_node_as_job_ferrite():
    jobs = {j["job_name"]: j for j in load_yaml(PROMETHEUS)["scrape_configs"]}
    targets = {t for c in jobs["ferrite"]["static_configs"] for t in c["targets"]}
    compose = load_yaml(COMPOSE)["services"]
    assert targets == {f"{name}:8080" for name in node_services(compose)}


def test_every_alert_has_a_severity_a_summary_and_a_description():
    rules = alert_rules()
    assert rules
    for r in rules:
        assert r["labels"]["severity"] in ("critical", "warning", "info"), r["alert"]
        assert r["annotations"]["summary"].strip(), r["alert"]
        assert r["annotations"]["description"].strip(), r["alert"]


def test_alerts_watch_nodes_quorum_drops_rules_and_certificates():
    used = set()
    for r in alert_rules():
        used |= metric_names(r["expr"])
    watched = {"ferrite_cluster_ready", "ferrite_cluster_group_leader",
               "ferrite_messages_dropped_queue_full_total", "ferrite_rule_errors_total",
               "ferrite_rule_action_failed_total", "ferrite_rules_config_errors",
               "ferrite_certificate_not_after_timestamp_seconds"}
    assert watched <= used, f"no alert on {watched - used}"
    assert any(re.search(r'\bup\{job="ferrite"\}\s*==\s*0', r["expr"]) for r in alert_rules())


def series(name, value, **labels):
    labels = {"job": "ferrite", "instance": "n2:8080", **labels}
    text = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{text}}}", "values": value}


def test_alerts_fire_on_the_failures_they_name_and_not_on_a_healthy_node(tmp_path):
    """promtool's rule unit tests over made-up series: which alerts fire with which labels.
    (Annotations are prose, left out of the comparison.)"""
    tool = promtool()
    doc = load_yaml(ALERTS)
    for g in doc["groups"]:
        for r in g["rules"]:
            r.pop("annotations", None)
    (tmp_path / "alerts.yml").write_text(yaml.safe_dump(doc))
    ten_days = 10 * 86400  # the series' values are seconds since the test's start, time 0
    inputs = [
        series("up", "0x5", instance="n1:8080"),
        series("up", "1x5"),
        series("ferrite_cluster_ready", "0x5"),
        series("ferrite_cluster_ready", "1x5", instance="n3:8080"),
        series("ferrite_cluster_group_leader", "0x5", group="meta"),
        series("ferrite_cluster_group_leader", "2x5", group="shard-0"),
        series("ferrite_messages_dropped_queue_full_total", "0+10x5"),
        series("ferrite_messages_dropped_queue_full_total", "7x5", instance="n3:8080"),
        series("ferrite_rule_errors_total", "0+1x5", rule="hot"),
        series("ferrite_rule_errors_total", "3x5", rule="cold"),
        series("ferrite_rule_action_failed_total", "0+1x5", rule="hot", action="http#1"),
        series("ferrite_rules_config_errors", "2x5"),
        series("ferrite_rules_config_errors", "0x5", instance="n3:8080"),
        series("ferrite_certificate_not_after_timestamp_seconds", f"{ten_days}x5", certificate="server"),
        series("ferrite_certificate_not_after_timestamp_seconds", "1e10x5", certificate="cluster"),
        series("ferrite_storage_errors_total", "4x5"),
    ]
    n2 = {"instance": "n2:8080"}
    expected = {
        "FerriteNodeDown": [{"severity": "critical", "job": "ferrite", "instance": "n1:8080"}],
        "FerriteNotReady": [{"severity": "critical", "job": "ferrite", **n2}],
        "FerriteGroupWithoutLeader": [{"severity": "critical", "job": "ferrite", "group": "meta", **n2}],
        "FerriteQueueDrops": [{"severity": "warning", **n2}],
        "FerriteRuleErrors": [{"severity": "warning", "rule": "hot", **n2}],
        "FerriteRuleActionFailures": [{"severity": "warning", "rule": "hot", "action": "http#1", **n2}],
        "FerriteRuleSetBroken": [{"severity": "warning", "job": "ferrite", **n2}],
        "FerriteCertificateExpiresSoon": [{"severity": "warning", "job": "ferrite", "certificate": "server", **n2}],
        "FerriteCertificateExpiresVerySoon": [],
        "FerriteStorageErrors": [],
    }
    assert set(expected) == {r["alert"] for r in alert_rules()}, "an alert without a case here"
    tests = {
        "rule_files": ["alerts.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": inputs,
            "alert_rule_test": [
                {"eval_time": "4m", "alertname": name, "exp_alerts": [{"exp_labels": l} for l in labels]}
                for name, labels in expected.items()
            ],
        }],
    }
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    r = run([tool, "test", "rules", "tests.yml"], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


# --- Grafana ------------------------------------------------------------------------------------


def test_the_dashboard_imports_with_any_prometheus_data_source():
    d = dashboard()
    assert d.get("uid") and d.get("title")
    assert "__inputs" not in d or all(i.get("pluginId") == "prometheus" for i in d["__inputs"])
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard_panels()
    assert len(panels) >= 10
    for p in panels:
        assert p.get("targets"), f"panel {p['title']!r} has no query"
        for where in [p] + p["targets"]:
            uid = (where.get("datasource") or {}).get("uid")
            assert uid in ("${datasource}", "$datasource"), f"panel {p['title']!r}: data source {uid!r}"
        assert all(t.get("expr") for t in p["targets"]), p["title"]
    ids = [p["id"] for p in d["panels"]] + [c["id"] for p in d["panels"] for c in p.get("panels", [])]
    assert len(ids) == len(set(ids)), "panel ids repeat"


def test_dashboard_panels_do_not_overlap():
    cells = {}
    for p in dashboard()["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = p["title"]


def test_the_dashboard_shows_what_an_operator_watches():
    used = set()
    for e in dashboard_exprs():
        used |= metric_names(e)
    for name in ("ferrite_connections_open", "ferrite_connections_total", "ferrite_messages_received_total",
                 "ferrite_messages_sent_total", "ferrite_messages_dropped_queue_full_total",
                 "ferrite_publish_to_deliver_seconds", "ferrite_api_request_duration_seconds",
                 "ferrite_rule_matched_total", "ferrite_rule_errors_total", "ferrite_rule_action_failed_total",
                 "ferrite_cluster_ready", "ferrite_cluster_group_leader", "ferrite_cluster_group_apply_lag",
                 "process_resident_memory_bytes", "process_cpu_seconds_total",
                 "ferrite_certificate_not_after_timestamp_seconds"):
        assert name in used, f"no panel shows {name}"
    quantiles = [e for e in dashboard_exprs() if "histogram_quantile" in e]
    assert any("0.5," in e and "ferrite_publish_to_deliver_seconds_bucket" in e for e in quantiles)
    assert any("0.99," in e and "ferrite_publish_to_deliver_seconds_bucket" in e for e in quantiles)
    assert any("route" in e and "ferrite_api_request_duration_seconds_bucket" in e for e in quantiles)


def test_promtool_parses_every_dashboard_query(tmp_path):
    """Each panel's query, with Grafana's variables filled in, as a recording rule promtool checks."""
    tool = promtool()
    rules = []
    for i, expr in enumerate(dashboard_exprs()):
        expr = expr.replace("$__rate_interval", "5m").replace("$instance", ".*")
        assert "$" not in expr, f"a variable promtool cannot check in {expr}"
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = run([tool, "check", "rules", str(tmp_path / "queries.yml")])
    assert r.returncode == 0, r.stdout + r.stderr


def used_metric_names():
    names = set()
    for expr in dashboard_exprs() + dashboard_variable_queries() + [r["expr"] for r in alert_rules()]:
        names |= metric_names(expr)
    return names


def test_the_dashboard_and_alerts_use_only_metrics_a_node_exports():
    unknown = used_metric_names() - EXPORTED
    assert not unknown, f"not exported by a node: {sorted(unknown)}"


def test_a_node_exports_every_metric_the_dashboard_and_alerts_use(make_node, tmp_path):
    """After a publish that reached a subscriber and a rule, and an API call, GET /metrics names
    every metric the dashboard and the alerts read."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "echo.sql").write_text(
        "CREATE RULE echo AS SELECT * FROM 'sensors/+' DO republish(topic = 'echoed/${topic(2)}');\n")
    node = make_node(extra_args=["--rules-dir", str(rules)])
    sub = Client(node, "packaging-sub")
    sub.subscribe("echoed/#", qos=1)
    pub = Client(node, "packaging-pub")
    pub.publish("sensors/t1", b'{"t": 21.5}', qos=1)
    assert sub.get(timeout=10).topic == "echoed/t1"
    aws_client(node, "iot").list_things()
    _, body = node.http_get("/metrics")
    pub.close()
    sub.close()
    exported = set()
    for line in body.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            exported.add(m.group(1))
        elif line and not line.startswith("#"):
            exported.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    missing = sorted(used_metric_names() - exported)
    assert not missing, f"GET /metrics lacks {missing}"


# --- The container image ------------------------------------------------------------------------


def dockerfile_stages():
    """The Dockerfile's stages: lists of (INSTRUCTION, arguments), continuation lines joined."""
    with open(DOCKERFILE) as f:
        # Comment lines go first, also inside a continued instruction (as docker does).
        text = "".join(line for line in f if not line.lstrip().startswith("#"))
    text = text.replace("\\\n", " ")
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stages.append([])
        stages[-1].append((keyword, args.strip()))
    return stages


def exec_form(args):
    return json.loads(args) if args.startswith("[") else ["/bin/sh", "-c", args]


def image():
    """The final stage's instructions by keyword, and the config file it runs with: its path in
    the image and the repository file copied there."""
    final = dockerfile_stages()[-1]
    by = {}
    for keyword, args in final:
        by.setdefault(keyword, []).append(args)
    argv = exec_form(by["ENTRYPOINT"][-1]) + exec_form(by["CMD"][-1])
    assert "--config" in argv, f"the image runs {argv} without a config file"
    path = argv[argv.index("--config") + 1]
    source = None
    for args in by.get("COPY", []):
        parts = [a for a in args.split() if not a.startswith("--")]
        if not any(a.startswith("--from") for a in args.split()) and parts[-1] == path:
            source = os.path.join(ROOT, parts[0])
    assert source and os.path.isfile(source), f"nothing in the repository is copied to {path}"
    return by, argv, source


def test_the_image_serves_every_listener_on_all_interfaces_from_its_config_file():
    by, argv, source = image()
    assert "serve" in argv, argv
    with open(source, "rb") as f:
        config = tomllib.load(f)
    for key in LISTENERS:
        assert config[key].startswith("0.0.0.0:"), f"{key} = {config[key]!r} is not on all interfaces"
    auth = config.get("auth", {})
    assert not auth.get("allow_anonymous"), "the image must not let anonymous clients in"
    for listener in ("mqtt", "ws"):
        assert "anonymous" not in auth.get(listener, ["anonymous"]), f"[auth] {listener} is anonymous"
    ports = {int(a.rsplit(":", 1)[1]) for a in (config[k] for k in LISTENERS)}
    exposed = {p for args in by["EXPOSE"] for p in args.split()}
    assert {str(p) for p in ports} <= exposed and "7000/udp" in exposed, exposed
    volumes = {v for args in by["VOLUME"] for v in (json.loads(args) if args.startswith("[") else args.split())}
    assert config["data_dir"] in volumes, f"data_dir {config['data_dir']} is not a VOLUME"


def test_the_image_runs_as_an_unprivileged_user_with_a_health_check():
    by, _, source = image()
    user = by["USER"][-1].split(":")[0]
    assert user not in ("root", "0"), "the image runs as root"
    health = by["HEALTHCHECK"][-1]
    with open(source, "rb") as f:
        http_port = tomllib.load(f)["http_addr"].rsplit(":", 1)[1]
    assert f"http://127.0.0.1:{http_port}/health" in health, health
    installed = " ".join(args for k, args in dockerfile_stages()[-1] if k == "RUN")
    tool = exec_form(health.split("CMD", 1)[1].strip())[0]
    assert tool in installed, f"the health check's {tool} is not installed in the final stage"


def test_the_image_builds_the_release_binary():
    build = " ".join(args for stage in dockerfile_stages()[:-1] for k, args in stage if k == "RUN")
    assert "cargo build --release -p ferrite" in build
    assert any("target/release/ferrite" in args for stage in dockerfile_stages() for k, args in stage)


def test_the_image_config_passes_serve_check():
    _, _, source = image()
    existed = os.path.exists("/var/lib/ferrite")
    r = run([ferrite_bin(), "serve", "--check", "--config", source])
    assert r.returncode == 0, r.stdout + r.stderr
    if not existed:
        assert not os.path.exists("/var/lib/ferrite"), "serve --check created the data directory"


def test_the_image_config_starts_a_node_on_all_interfaces_that_refuses_anonymous_clients(tmp_path):
    """The image's config with the real binary, its data dir and ports moved to this machine's
    temp dir and free ports (still on 0.0.0.0): it starts, /health answers, an anonymous MQTT
    CONNECT on the plain port is refused."""
    _, _, source = image()
    args = [ferrite_bin(), "serve", "--config", source, "--data-dir", str(tmp_path / "data")]
    for key in LISTENERS:
        args += ["--" + key.replace("_", "-"), "0.0.0.0:0"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("listening"):
            proc.kill()
            pytest.fail(f"the node did not start: {line!r} {proc.stderr.read()}")
        ports = dict(re.findall(r"(\w+)=0\.0\.0\.0:(\d+)", line))
        assert set(ports) == {"mqtt", "ws", "http", "mqtts", "wss", "https"}, line
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['http']}/health", timeout=5) as r:
            assert r.status == 200
        s = socket.create_connection(("127.0.0.1", int(ports["mqtt"])), timeout=5)
        s.sendall(v5_connect(b"anonymous"))
        connack = s.recv(64)
        s.close()
        assert connack[0] == 0x20 and connack[3] == 0x87, f"anonymous CONNECT answered {connack!r}"
    finally:
        proc.terminate()
        proc.wait(15)


# --- docker compose -----------------------------------------------------------------------------


def node_services(services):
    return {name: s for name, s in services.items() if "serve" in (s.get("command") or [])}


def published(service):
    """(host port, container port, protocol) for each published port."""
    out = []
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out.append((int(p["published"]), int(p["target"]), p.get("protocol", "tcp")))
            continue
        spec, _, proto = str(p).partition("/")
        parts = spec.split(":")
        out.append((int(parts[-2]), int(parts[-1]), proto or "tcp"))
    return out


def volume_mounts(service):
    """(source, target) of each volume, short or long syntax."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            out.append((v.get("source", ""), v["target"]))
        else:
            parts = v.split(":")
            out.append((parts[0], parts[1]))
    return out


def test_compose_runs_three_nodes_with_health_checks():
    nodes = node_services(load_yaml(COMPOSE)["services"])
    assert len(nodes) == 3, sorted(nodes)
    for name, s in nodes.items():
        check = s.get("healthcheck", {}).get("test")
        assert check and "/health" in " ".join(check if isinstance(check, list) else [check]), name


def test_compose_publishes_every_nodes_device_and_http_ports_without_collisions():
    services = load_yaml(COMPOSE)["services"]
    seen = {}
    for name, s in services.items():
        for host, _, proto in published(s):
            assert (host, proto) not in seen, f"{name} and {seen[(host, proto)]} both publish {host}/{proto}"
            seen[(host, proto)] = name
    for name, s in node_services(services).items():
        targets = {target for _, target, proto in published(s) if proto == "tcp"}
        assert DEVICE_AND_HTTP_PORTS <= targets, f"{name} does not publish {DEVICE_AND_HTTP_PORTS - targets}"
    standard = {host for host, target, _ in published(services["node1"]) if host == target}
    assert DEVICE_AND_HTTP_PORTS <= standard, "node 1 is not on the standard ports"


def test_compose_nodes_never_hold_the_cluster_ca_key():
    compose = load_yaml(COMPOSE)
    for name, s in node_services(compose["services"]).items():
        assert "--cluster-ca-key" not in s["command"], name
        for source, target in volume_mounts(s):
            assert "cluster-ca.key" not in source + target, f"{name} mounts {source}"
            if "cluster-ca" in source:
                assert source.endswith(".pem"), f"{name} mounts the CA directory {source}, key included"
        for source, target in volume_mounts(s):
            if source.endswith(".toml"):
                with open(os.path.join(CLUSTER, source), "rb") as f:
                    config = tomllib.load(f)
                assert "ca_key" not in config.get("cluster", {}), f"{name}'s {source} names the CA key"
                for key in LISTENERS:
                    assert config[key].startswith("0.0.0.0:"), f"{name}: {key} = {config[key]}"


def test_compose_issues_each_nodes_cluster_certificate_once_before_the_nodes_start():
    services = load_yaml(COMPOSE)["services"]
    certs = services["certs"]
    script = " ".join(certs.get("entrypoint", []) + (certs.get("command") or []))
    mounts = dict((source, target) for source, target in volume_mounts(certs))
    ca_dir = re.search(r"--ca-dir (\S+)", script).group(1)
    assert any(target == ca_dir and "cluster-ca" in source for source, target in mounts.items())
    for name, s in node_services(services).items():
        assert s["depends_on"]["certs"]["condition"] == "service_completed_successfully", name
        node_id = s["command"][s["command"].index("--node-id") + 1]
        volume = next(source for source, target in volume_mounts(s) if target == "/var/lib/ferrite")
        assert volume in mounts, f"certs does not mount {name}'s volume {volume}"
        issue = f"ferrite cluster issue --ca-dir {ca_dir} --node-id {node_id} --data-dir {mounts[volume]}"
        assert issue in script, f"certs does not run: {issue}"


# --- systemd ------------------------------------------------------------------------------------


def unit_values(key):
    with open(UNIT) as f:
        return [line.split("=", 1)[1].strip() for line in f if line.startswith(key + "=")]


def test_systemd_analyze_verifies_the_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    with open(UNIT) as f:
        text = f.read()
    binary = unit_values("ExecStart")[0].split()[0]
    unit = tmp_path / "ferrite.service"
    unit.write_text(text.replace(f"ExecStart={binary}", f"ExecStart={os.path.abspath(ferrite_bin())}"))
    r = run(["systemd-analyze", "verify", str(unit)])
    complaints = [line for line in r.stderr.splitlines() if "ferrite.service" in line]
    assert r.returncode == 0 and not complaints, r.stdout + r.stderr


def test_the_sysusers_file_creates_the_user_the_unit_runs_as(tmp_path):
    if shutil.which("systemd-sysusers") is None:
        pytest.skip("systemd-sysusers is not installed (Debian package systemd)")
    (tmp_path / "etc").mkdir()
    (tmp_path / "usr/lib/sysusers.d").mkdir(parents=True)
    shutil.copy(SYSUSERS, tmp_path / "usr/lib/sysusers.d/ferrite.conf")
    r = run(["systemd-sysusers", "--root", str(tmp_path)])
    assert r.returncode == 0, r.stdout + r.stderr
    users = {l.split(":")[0]: l.split(":") for l in (tmp_path / "etc/passwd").read_text().splitlines()}
    groups = {l.split(":")[0] for l in (tmp_path / "etc/group").read_text().splitlines()}
    user, group = unit_values("User")[0], unit_values("Group")[0]
    assert user in users and group in groups
    assert users[user][5] == "/var/lib/" + unit_values("StateDirectory")[0]


def test_the_unit_reads_the_config_the_node_examples_are_installed_as():
    argv = unit_values("ExecStart")[0].split()
    config = argv[argv.index("--config") + 1]
    state = "/var/lib/" + unit_values("StateDirectory")[0]
    assert config.startswith("/etc/" + unit_values("ConfigurationDirectory")[0] + "/")
    for n in (1, 2, 3):
        path = os.path.join(CLUSTER, f"node-{n}.toml")
        with open(path) as f:
            text = f.read()
        assert config in text, f"node-{n}.toml does not say to install it as {config}"
        with open(path, "rb") as f:
            assert tomllib.load(f)["data_dir"] == state, f"node-{n}.toml's data_dir is not the unit's StateDirectory"
