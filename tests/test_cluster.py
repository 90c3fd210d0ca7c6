"""Clusters of `ferrite` processes on 127.0.0.1: `ferrite cluster local`, Raft
groups over QUIC, registry and shadow state read on any node, leader loss, catch-up by
snapshot, membership changes."""

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

import pytest

from conftest import Client, aws_client, ferrite_bin

LOCAL_LINE = re.compile(
    r"node (\d+) pid=(\d+) listening mqtt=([\d.]+):(\d+) ws=([\d.]+):(\d+) http=([\d.]+):(\d+) "
    r"mqtts=([\d.]+):(\d+) wss=([\d.]+):(\d+) https=([\d.]+):(\d+)$")


class Member:
    """One node of a test cluster: its ports, its process id and its config file."""

    def __init__(self, base, node_id, pid, host, mqtt_port, http_port):
        self.base, self.node_id, self.pid = base, node_id, pid
        self.host, self.mqtt_port, self.http_port = host, mqtt_port, http_port
        # aws_client reads DATA_DIR/credentials: every node of a local cluster shares the key.
        self.data_dir = os.path.join(base, f"node-{node_id}", "data")
        self.config = os.path.join(base, f"node-{node_id}", "ferrite.toml")
        self.proc = None

    def status(self):
        with urllib.request.urlopen(f"http://{self.host}:{self.http_port}/cluster/status", timeout=5) as r:
            return json.loads(r.read())

    def connected(self):
        """`GET /cluster/sessions`, SigV4-signed with the cluster's key: live client ids."""
        import botocore.auth
        import botocore.awsrequest
        import botocore.credentials
        import configparser
        creds = configparser.ConfigParser()
        creds.read(os.path.join(self.base, "credentials"))
        key_id, secret = creds["default"]["aws_access_key_id"], creds["default"]["aws_secret_access_key"]
        url = f"http://{self.host}:{self.http_port}/cluster/sessions"
        req = botocore.awsrequest.AWSRequest(method="GET", url=url)
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(key_id, secret), "iot", "us-east-1").add_auth(req)
        with urllib.request.urlopen(urllib.request.Request(url, headers=dict(req.headers)), timeout=5) as r:
            return json.loads(r.read())["connected"]

    def kill9(self):
        os.kill(self.pid, signal.SIGKILL)
        if self.proc:
            self.proc.wait(10)
        else:
            wait_gone(self.pid)

    def serve(self):
        """Starts this node again from its config, outside `cluster local`."""
        self.proc = subprocess.Popen([ferrite_bin(), "serve", "--config", self.config], stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(self.base, f"node-{self.node_id}", "restart.log"), "ab"),
                                     text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening "), line
        self.pid = self.proc.pid
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(15)


def wait_gone(pid, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


class LocalCluster:
    """`ferrite cluster local --nodes N --base-dir DIR` and the members it printed."""

    def __init__(self, base, nodes=3):
        self.base, self.nodes = base, nodes
        self.proc = None
        self.members = []

    def start(self):
        self.proc = subprocess.Popen([ferrite_bin(), "cluster", "local", "--nodes", str(self.nodes),
                                      "--base-dir", self.base], stdout=subprocess.PIPE, text=True)
        self.lines = []
        self.members = []
        for _ in range(self.nodes):
            line = self.proc.stdout.readline().strip()
            self.lines.append(line)
            m = LOCAL_LINE.match(line)
            assert m, f"unexpected line {line!r}"
            member = Member(self.base, int(m.group(1)), int(m.group(2)), m.group(3), int(m.group(4)),
                            int(m.group(8)))
            member.mqtts_port = int(m.group(10))
            self.members.append(member)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(30)
        for m in self.members:
            m.stop()

    def member(self, node_id):
        return next(m for m in self.members if m.node_id == node_id)

    def wait_for_leaders(self, members=None, timeout=20):
        """Waits until every group has one leader that the given members agree on."""
        members = members or self.members
        deadline = time.time() + timeout
        while True:
            try:
                views = [{g["name"]: g["leader"] for g in m.status()["groups"]} for m in members]
                if all(v == views[0] for v in views) and all(views[0].values()):
                    return views[0]
            except OSError:
                pass
            assert time.time() < deadline, f"no agreed leaders: {views if 'views' in dir() else None}"
            time.sleep(0.1)


@pytest.fixture
def cluster():
    base = tempfile.mkdtemp(prefix="ferrite-cluster-")
    c = LocalCluster(base).start()
    yield c
    c.stop()
    if not os.environ.get("FERRITE_KEEP_CLUSTER"):
        shutil.rmtree(base, ignore_errors=True)


def iot(member):
    return aws_client(member, "iot")


def iot_data(member):
    return aws_client(member, "iot-data")


def retry(f, timeout=10):
    deadline = time.time() + timeout
    while True:
        try:
            return f()
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


def test_cluster_local_prints_one_line_per_node_and_every_group_gets_a_leader(cluster):
    assert [m.node_id for m in cluster.members] == [1, 2, 3]
    leaders = cluster.wait_for_leaders()
    assert set(leaders) >= {"meta", "shard-0"}
    status = cluster.members[0].status()
    assert sorted(p["node"] for p in status["peers"]) == [2, 3]
    assert all(g["voters"] == [1, 2, 3] for g in status["groups"])
    out = subprocess.run([ferrite_bin(), "cluster", "status", "--http", f"127.0.0.1:{cluster.members[1].http_port}"],
                         capture_output=True, text=True, timeout=10)
    assert out.returncode == 0, out.stderr
    assert "meta" in out.stdout and "leader" in out.stdout, out.stdout


def wait_for_route(member, peer_id, filt, timeout=10):
    """Waits until `member` knows that `peer_id` has subscribers for `filt`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        peers = {p["node"]: p for p in member.status()["peers"]}
        if filt in peers.get(peer_id, {}).get("routes", []):
            return
        time.sleep(0.05)
    raise AssertionError(f"node {member.node_id} never learned node {peer_id}'s route {filt}")


def test_a_qos1_publish_on_one_node_reaches_subscribers_on_the_others_and_nothing_is_lost(cluster):
    cluster.wait_for_leaders()
    a, b, c = cluster.members
    sub_c = Client(c, "sub-c")
    sub_c.subscribe("plant/+/temp", qos=1)
    sub_b = Client(b, "sub-b")
    sub_b.subscribe("plant/#", qos=1)
    wait_for_route(a, 3, "plant/+/temp")
    wait_for_route(a, 2, "plant/#")
    pub = Client(a, "pub-a")
    for i in range(200):
        pub.publish(f"plant/{i % 5}/temp", str(i), qos=1)
    got_c = sorted(int(sub_c.get(timeout=10).payload) for _ in range(200))
    got_b = sorted(int(sub_b.get(timeout=10).payload) for _ in range(200))
    assert got_c == list(range(200)) and got_b == list(range(200))
    sub_c.expect_none()
    # Unsubscribing removes the route: node 1 stops forwarding to node 3.
    sub_c.c.unsubscribe("plant/+/temp")
    sub_c.unsubacks.get(timeout=10)
    deadline = time.time() + 10
    while "plant/+/temp" in {p["node"]: p for p in a.status()["peers"]}[3].get("routes", []):
        assert time.time() < deadline
        time.sleep(0.05)
    for cl in (pub, sub_b, sub_c):
        cl.close()


def test_a_session_taken_over_on_another_node_keeps_its_queued_messages(cluster):
    cluster.wait_for_leaders()
    a, b, c = cluster.members
    sub = Client(a, "mover", clean=False, session_expiry=3600)
    sub.subscribe("move/#", qos=1)
    wait_for_route(b, 1, "move/#")
    sub.close()
    pub = Client(b, "pub-b")
    for i in range(50):
        pub.publish(f"move/{i}", str(i), qos=1)
    # The session moves from node 1 to node 3 with its subscription and its 50 messages.
    back = Client(c, "mover", clean=False, session_expiry=3600)
    assert back.flags.session_present
    got = sorted(int(back.get(timeout=10).payload) for _ in range(50))
    assert got == list(range(50))
    back.expect_none()
    # Its subscription lives on node 3, and node 1 keeps a replica of the session (same
    # route, no live connection): a message reaches the moved session once.
    wait_for_route(b, 3, "move/#")
    wait_for_route(b, 1, "move/#")
    pub.publish("move/after", "51", qos=1)
    assert back.get(timeout=10).payload == b"51"
    back.expect_none(wait=1.0)
    assert scrape(a)["ferrite_session_replicas"] == 1 and scrape(c)["ferrite_session_replicas"] == 0
    # A live connection elsewhere is kicked with 0x8E: one live session per client id.
    again = Client(a, "mover", clean=False, session_expiry=3600)
    assert again.flags.session_present
    assert back.disconnects.get(timeout=10).value == 0x8E
    assert "mover" in a.connected()
    assert "mover" not in c.connected() and "mover" not in b.connected()
    for cl in (pub, again):
        cl.close()


def connect_when_claimable(member, client_id, timeout=20, **kwargs):
    """Connects, retrying while the node answers 0x88: right after a node died the owners
    group may still be electing the leader a CONNECT's claim needs."""
    deadline = time.time() + timeout
    while True:
        client = Client(member, client_id, **kwargs)
        if not client.rc.is_failure:
            return client
        client.close()
        assert time.time() < deadline, f"{client_id} could not connect to node {member.node_id}: {client.rc}"
        time.sleep(0.5)


def test_forwarded_qos1_publishes_survive_the_receiver_and_the_sender_crashing(cluster):
    """The durable outbox: acknowledged QoS 1 publishes for a persistent subscriber on a node
    that is down wait on the ingress node, across its own kill -9, and arrive once."""
    cluster.wait_for_leaders()
    a, b, c = cluster.members
    sub = Client(c, "far-sub", clean=False, session_expiry=3600)
    sub.subscribe("outbox/#", qos=1)
    wait_for_route(a, 3, "outbox/#")
    sub.close()
    c.kill9()
    pub = connect_when_claimable(a, "near-pub")
    for i in range(100):
        pub.publish(f"outbox/{i}", str(i), qos=1)  # waits for each PUBACK
    pub.drop()
    assert {p["node"]: p for p in a.status()["peers"]}[3]["outbox"] == 100
    a.kill9()
    a.serve()
    c.serve()
    back = connect_when_claimable(c, "far-sub", clean=False, session_expiry=3600)
    assert back.flags.session_present
    got = sorted(int(back.get(timeout=20).payload) for _ in range(100))
    assert got == list(range(100))
    back.expect_none(wait=1.0)
    deadline = time.time() + 10
    while {p["node"]: p for p in a.status()["peers"]}[3]["outbox"]:
        assert time.time() < deadline, "node 1 kept acknowledged copies in its outbox"
        time.sleep(0.1)
    back.close()


def test_registry_and_shadow_writes_on_one_node_are_read_on_another(cluster):
    cluster.wait_for_leaders()
    a, c = cluster.members[0], cluster.members[2]
    iot(a).create_thing(thingName="lamp-1", attributePayload={"attributes": {"room": "hall"}})
    assert iot(c).describe_thing(thingName="lamp-1")["attributes"] == {"room": "hall"}
    iot_data(a).update_thing_shadow(thingName="lamp-1", payload=json.dumps({"state": {"reported": {"on": True}}}))
    doc = json.loads(iot_data(c).get_thing_shadow(thingName="lamp-1")["payload"].read())
    assert doc["state"]["reported"] == {"on": True}
    iot_data(c).update_thing_shadow(thingName="lamp-1", payload=json.dumps({"state": {"desired": {"on": False}}}))
    doc = json.loads(iot_data(a).get_thing_shadow(thingName="lamp-1")["payload"].read())
    assert doc["state"]["delta"] == {"on": False} and doc["version"] == 2


def test_killing_the_leader_of_each_group_keeps_writes_going_and_loses_nothing(cluster):
    leaders = cluster.wait_for_leaders()
    written = []
    for i in range(5):
        iot(cluster.members[0]).create_thing(thingName=f"before-{i}")
        written.append(f"before-{i}")
    victim = cluster.member(leaders["meta"])
    survivors = [m for m in cluster.members if m is not victim]
    victim.kill9()
    started = time.time()
    retry(lambda: iot(survivors[0]).create_thing(thingName="after-meta"), timeout=15)
    took = time.time() - started
    assert took < 8, f"writes resumed after {took:.1f}s"
    written.append("after-meta")
    # Shadows: the leader of the shard that owns `lamp-x` goes down next (once it is led by a survivor).
    new_leaders = cluster.wait_for_leaders(survivors)
    iot_data(survivors[0]).update_thing_shadow(thingName="lamp-x", payload=json.dumps({"state": {"reported": {"n": 1}}}))
    shard_leader = [m for m in survivors if m.node_id in new_leaders.values()]
    assert shard_leader
    for name in written:
        assert iot(survivors[1]).describe_thing(thingName=name)["thingName"] == name
    # The killed node comes back from its data and catches up.
    victim.serve()
    retry(lambda: iot(victim).describe_thing(thingName="after-meta"), timeout=20)
    doc = retry(lambda: json.loads(iot_data(victim).get_thing_shadow(thingName="lamp-x")["payload"].read()))
    assert doc["state"]["reported"] == {"n": 1}


def test_restarting_cluster_local_with_the_same_directory_brings_the_data_back(cluster):
    cluster.wait_for_leaders()
    iot(cluster.members[1]).create_thing(thingName="survivor")
    iot_data(cluster.members[2]).update_thing_shadow(thingName="survivor",
                                                     payload=json.dumps({"state": {"reported": {"x": 7}}}))
    cluster.stop()
    cluster.start()
    cluster.wait_for_leaders()
    assert iot(cluster.members[0]).describe_thing(thingName="survivor")["thingName"] == "survivor"
    doc = json.loads(iot_data(cluster.members[0]).get_thing_shadow(thingName="survivor")["payload"].read())
    assert doc["state"]["reported"] == {"x": 7}


def test_a_node_down_for_many_writes_catches_up_from_a_snapshot(cluster):
    cluster.stop()
    for m in cluster.members:
        with open(m.config, "a") as f:
            f.write("log_compaction_entries = 20\n")
    cluster.start()
    cluster.wait_for_leaders()
    behind = cluster.members[2]
    behind.kill9()
    client = iot(cluster.members[0])
    for i in range(120):
        client.create_thing(thingName=f"t-{i}")
    behind.serve()
    retry(lambda: iot(behind).describe_thing(thingName="t-119"), timeout=30)
    assert len(iot(behind).list_things(maxResults=250)["things"]) == 120
    with open(os.path.join(cluster.base, "node-3", "restart.log"), errors="replace") as f:
        assert "installed a snapshot" in f.read()


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for_voters(member, voters, timeout=10):
    """Waits until every group of `member` has exactly `voters`."""
    deadline = time.time() + timeout
    while True:
        groups = member.status()["groups"]
        if all(g["voters"] == voters for g in groups):
            return
        assert time.time() < deadline, [(g["name"], g["voters"]) for g in groups]
        time.sleep(0.05)


def ready(member):
    """`GET /ready`: the status and the document."""
    try:
        with urllib.request.urlopen(f"http://{member.host}:{member.http_port}/ready", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def fail(what):
    raise AssertionError(what)


def scrape(member):
    """`GET /metrics` as {series: value}."""
    with urllib.request.urlopen(f"http://{member.host}:{member.http_port}/metrics", timeout=5) as r:
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                for line in r.read().decode().splitlines() if line and not line.startswith("#")}


def test_a_fourth_node_joins_and_a_node_leaves(cluster):
    cluster.wait_for_leaders()
    iot(cluster.members[0]).create_thing(thingName="seen-by-four")
    base = cluster.base
    data = os.path.join(base, "node-4", "data")
    os.makedirs(data)
    shutil.copy(os.path.join(base, "credentials"), os.path.join(data, "credentials"))
    first = cluster.members[0]
    peer = open(first.config).read()
    first_addr = re.search(r'^addr = "([\d.:]+)"', peer, re.M).group(1)
    quic = f"127.0.0.1:{free_udp_port()}"
    quic_port = quic.rsplit(":", 1)[1]
    first_by_name = "localhost:" + first_addr.rsplit(":", 1)[1]  # peers may be named, not only numbered
    proc = subprocess.Popen([ferrite_bin(), "serve", "--data-dir", data, "--node-id", "4", "--cluster-addr", quic,
                             "--peer", f"1@{first_by_name}", "--cluster-ca-cert", os.path.join(base, "cluster-ca.pem"),
                             "--cluster-ca-key", os.path.join(base, "cluster-ca.key"), "--join",
                             "--mqtt-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
                             "--mqtts-addr", "127.0.0.1:0", "--wss-addr", "127.0.0.1:0", "--https-addr", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=open(os.path.join(base, "node-4.log"), "ab"), text=True)
    try:
        m = re.search(r"http=([\d.]+):(\d+)", proc.stdout.readline())
        fourth = Member(base, 4, proc.pid, m.group(1), 0, int(m.group(2)))
        status, body = ready(fourth)
        assert status == 503 and any("not a member" in p for p in body["problems"]), body
        creds = os.path.join(base, "credentials")
        out = subprocess.run([ferrite_bin(), "cluster", "join", "--http", f"localhost:{first.http_port}",
                              "--node-id", "4", "--cluster-addr", f"localhost:{quic_port}", "--credentials", creds],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert retry(lambda: iot(fourth).describe_thing(thingName="seen-by-four"), timeout=20)["thingName"]
        wait_for_voters(first, [1, 2, 3, 4])
        assert retry(lambda: ready(fourth)[0] == 200 or fail(ready(fourth)), timeout=20), "ready once a caught-up member"
        out = subprocess.run([ferrite_bin(), "cluster", "leave", "--http", f"127.0.0.1:{first.http_port}",
                              "--node-id", "9", "--credentials", creds], capture_output=True, text=True, timeout=60)
        assert out.returncode != 0 and "node 9 is not a member" in out.stderr, out.stderr
        wait_for_voters(first, [1, 2, 3, 4])
        out = subprocess.run([ferrite_bin(), "cluster", "leave", "--http", f"127.0.0.1:{first.http_port}",
                              "--node-id", "3", "--credentials", creds], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        wait_for_voters(first, [1, 2, 4])
        # The removed node may never hear of its removal (the leader stops replicating to it):
        # either way it must not call itself ready.
        removed = cluster.member(3)
        status, body = retry(lambda: ready(removed) if ready(removed)[0] == 503 else fail(ready(removed)))
        assert body["problems"], body
        iot(fourth).create_thing(thingName="after-leave")
        assert iot(cluster.members[1]).describe_thing(thingName="after-leave")["thingName"] == "after-leave"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)


def test_ready_follows_quorum_and_status_output_lines_up_and_survives_a_closed_pipe(cluster):
    cluster.wait_for_leaders()
    a, b, c = cluster.members
    for m in cluster.members:
        assert retry(lambda: ready(m)[0] == 200 or fail(ready(m)), timeout=20)
    assert urllib.request.urlopen(f"http://{a.host}:{a.http_port}/health", timeout=5).status == 200
    # Piped into `head -1`: the rest of the output meets a closed pipe, and nothing panics.
    piped = subprocess.run(f"{ferrite_bin()} cluster status --http localhost:{a.http_port} | head -1",
                           shell=True, capture_output=True, text=True, timeout=30)
    assert piped.stdout.startswith("node 1"), piped.stdout
    assert "panicked" not in piped.stderr, piped.stderr
    full = subprocess.run([ferrite_bin(), "cluster", "status", "--http", f"127.0.0.1:{a.http_port}"],
                          capture_output=True, text=True, timeout=30).stdout.splitlines()
    table = [line for line in full if not line.startswith(("node ", "peer "))]
    header = table[0]
    for line in table[1:]:
        # Numbers end under the end of their heading.
        for heading in ("leader", "term", "commit", "applied"):
            end = header.index(heading) + len(heading)
            assert line[end - 1].isdigit() and line[end] == " ", f"{heading}: {full}"
    metrics = scrape(a)
    assert metrics["ferrite_cluster_ready"] == 1
    assert metrics['ferrite_cluster_group_term{group="meta"}'] >= 1
    assert metrics[f'ferrite_cluster_peer_connected{{peer="{b.node_id}"}}'] == 1
    assert 'ferrite_cluster_proposals_failed_total{group="meta",reason="timeout"}' in metrics
    # Two nodes down: the survivor has no majority and says so; /health still says the process lives.
    b.kill9()
    c.kill9()
    status, body = retry(lambda: ready(a) if ready(a)[0] == 503 else fail(ready(a)), timeout=20)
    assert any("no leader" in p or "cannot be reached" in p for p in body["problems"]), body
    assert urllib.request.urlopen(f"http://{a.host}:{a.http_port}/health", timeout=5).status == 200
    metrics = retry(lambda: scrape(a) if scrape(a)[f'ferrite_cluster_peer_connected{{peer="{b.node_id}"}}'] == 0
                    else fail("peer still connected"))
    assert metrics["ferrite_cluster_ready"] == 0


def test_a_stopping_leader_hands_its_groups_over_first(cluster):
    leaders = cluster.wait_for_leaders()
    leader = cluster.member(leaders["meta"])
    others = [m for m in cluster.members if m is not leader]
    os.kill(leader.pid, signal.SIGTERM)
    wait_gone(leader.pid, timeout=20)
    log = open(os.path.join(cluster.base, f"node-{leader.node_id}", "ferrite.log")).read()
    assert "handing leadership over before stopping" in log
    # Handed over, not lost: a new leader among the others at once, for every group it led.
    after = cluster.wait_for_leaders(others, timeout=5)
    assert leader.node_id not in after.values(), after
    iot(others[0]).create_thing(thingName="after-handover")
    assert "no other member took over in time" not in log


def test_a_leader_killed_mid_traffic_is_invisible_to_devices_and_api_clients(cluster):
    """kill -9 of the node leading every group: CONNECTs to the survivors wait for the new
    leaders instead of being refused, and shadow and registry writes are retried inside the
    node instead of answering 500."""
    import threading

    leaders = cluster.wait_for_leaders()
    # One node leads the client-id ownership group; make it lead everything it can.
    victim = cluster.member(leaders["owners"])
    survivors = [m for m in cluster.members if m is not victim]
    iot(survivors[0]).create_thing(thingName="lamp-failover")
    refused, api_errors, connected, writes = [], [], [0], [0]
    stop = threading.Event()

    def devices(member):
        i = 0
        while not stop.is_set():
            i += 1
            c = Client(member, f"failover-{member.node_id}-{i}", connect=False)
            rc = c.connect()
            if rc != 0:
                refused.append(str(rc))
            else:
                connected[0] += 1
            c.close()

    def api(member):
        data, reg = iot_data(member), iot(member)
        i = 0
        while not stop.is_set():
            i += 1
            try:
                data.update_thing_shadow(thingName="lamp-failover",
                                         payload=json.dumps({"state": {"reported": {"n": i}}}))
                reg.update_thing(thingName="lamp-failover", attributePayload={"attributes": {"n": str(i)}})
                writes[0] += 2
            except Exception as e:  # noqa: BLE001 - every failure is what this test counts
                api_errors.append(repr(e))

    threads = [threading.Thread(target=f, args=(m,)) for m in survivors for f in (devices, api)]
    for t in threads:
        t.start()
    time.sleep(1)
    victim.kill9()
    time.sleep(6)
    stop.set()
    for t in threads:
        t.join(30)
    assert connected[0] > 0 and writes[0] > 0
    assert not refused, f"CONNECTs refused during the election: {refused[:5]} ({len(refused)})"
    assert not api_errors, f"API calls failed during the election: {api_errors[:3]} ({len(api_errors)})"


def test_a_device_trusting_the_clusters_device_ca_reaches_every_node(cluster):
    """One device CA for the cluster: every node's server certificate chains to it, and a
    device certificate created through one node connects through another."""
    import ssl

    cluster.wait_for_leaders()
    device_ca = os.path.join(cluster.base, "device-ca.pem")
    for m in cluster.members:
        ctx = ssl.create_default_context(cafile=device_ca)  # verifies the chain and the name
        with socket.create_connection((m.host, m.mqtts_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.version(), f"node {m.node_id} presents a certificate the device CA signed"
    # A certificate created on node 1, used on node 3.
    a, c = cluster.members[0], cluster.members[2]
    created = iot(a).create_keys_and_certificate(setAsActive=True)
    iot(a).create_policy(policyName="all", policyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": "*"}]}))
    iot(a).attach_policy(policyName="all", target=created["certificateArn"])
    cert, key = os.path.join(cluster.base, "dev.pem"), os.path.join(cluster.base, "dev.key")
    open(cert, "w").write(created["certificatePem"])
    open(key, "w").write(created["keyPair"]["PrivateKey"])
    ctx = ssl.create_default_context(cafile=device_ca)
    ctx.load_cert_chain(cert, key)
    with socket.create_connection((c.host, c.mqtts_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(b"ca-dev").to_bytes(2, "big") + b"ca-dev"
            tls.sendall(bytes([0x10, len(body)]) + body)
            assert retry(lambda: tls.recv(4)) == b"\x20\x02\x00\x00", "CONNACK accepted on another node"


def test_a_key_created_on_one_node_is_accepted_by_all_and_deleted_everywhere_at_once(cluster, tmp_path):
    import botocore.exceptions

    cluster.wait_for_leaders()
    a, c = cluster.members[0], cluster.members[2]
    out = subprocess.run([ferrite_bin(), "keys", "create", "--data-dir", a.data_dir, "--profile", "ops"],
                         capture_output=True, text=True, check=True).stdout
    key_id = out.split("aws_access_key_id = ")[1].split()[0]
    secret = out.split("aws_secret_access_key = ")[1].split()[0]
    profile = tmp_path / "ops"
    profile.write_text(f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")
    ops_on_c = aws_client(c, "iot", str(profile))
    retry(lambda: ops_on_c.list_things(), timeout=15)  # published by node 1, accepted by node 3
    subprocess.run([ferrite_bin(), "keys", "delete", key_id, "--data-dir", a.data_dir], check=True,
                   capture_output=True)

    def refused():
        try:
            ops_on_c.list_things()
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "UnrecognizedClientException"
            return True
        raise AssertionError("still accepted")

    assert retry(refused, timeout=15), "revoked on every node"


def test_an_offline_session_loses_nothing_when_its_node_is_killed(cluster):
    """AWS's promise for persistent sessions, across a node's death: the acknowledged QoS 1
    messages queued for an offline session on node 1 are delivered when its client resumes
    on node 3 while node 1 is dead (node 3's replica of the session held them)."""
    cluster.wait_for_leaders()
    a, b, c = cluster.members
    sub = Client(a, "keeper", clean=False, session_expiry=3600)
    sub.subscribe("keep/#", qos=1)
    wait_for_route(b, 3, "keep/#")  # node 3's replica advertises the session's filter
    sub.close()
    pub = Client(b, "keep-pub")
    for i in range(200):
        pub.publish(f"keep/{i}", str(i), qos=1)  # waits for each PUBACK
    a.kill9()
    back = connect_when_claimable(c, "keeper", clean=False, session_expiry=3600)
    assert back.flags.session_present
    got = set()
    while len(got) < 200:
        got.add(int(back.get(timeout=15).payload))
    assert got == set(range(200))
    # Node 1 comes back: what it had becomes a replica; the live session stays on node 3.
    a.serve()
    pub.publish("keep/after", "200", qos=1)
    assert int(back.get(timeout=10).payload) == 200
    assert "keeper" in c.connected() and "keeper" not in a.connected()
    deadline = time.time() + 10
    while scrape(a).get("ferrite_session_replicas") != 1:
        assert time.time() < deadline, "node 1 did not keep its copy as a replica"
        time.sleep(0.1)
    for cl in (pub, back):
        cl.close()


class SteadyPublisher(threading.Thread):
    """Publishes `keep/N` at QoS 1 at about `rate` per second and records what was
    acknowledged (PUBACK received)."""

    def __init__(self, member, rate=500):
        super().__init__(daemon=True)
        self.client = Client(member, "steady-pub")
        self.rate, self.stop_at, self.sent = rate, None, {}
        self.halt = threading.Event()

    def run(self):
        n, start = 0, time.time()
        while not self.halt.is_set():
            self.sent[n] = self.client.c.publish(f"move/{n}", str(n), qos=1)
            n += 1
            delay = start + n / self.rate - time.time()
            if delay > 0:
                time.sleep(delay)

    def acknowledged(self):
        for info in self.sent.values():
            info.wait_for_publish(timeout=30)
        return {n for n, info in self.sent.items() if info.is_published()}


def test_a_persistent_subscriber_moving_mid_stream_misses_no_acknowledged_message(cluster):
    """QoS 1 at 500 msgs/s from node 2; the subscriber moves from node 1 to node 3 while
    connected (a takeover), then node 3 is killed and it resumes on node 1. Every
    acknowledged message arrives (duplicates allowed: at least once)."""
    cluster.wait_for_leaders()
    a, b, c = cluster.members
    got = set()
    sub = Client(a, "mover", clean=False, session_expiry=3600)
    sub.subscribe("move/#", qos=1)
    wait_for_route(b, 1, "move/#")
    wait_for_route(b, 3, "move/#")
    pub = SteadyPublisher(b)
    pub.start()

    def drain(client, seconds):
        end = time.time() + seconds
        while time.time() < end:
            try:
                got.add(int(client.get(timeout=0.2).payload))
            except queue.Empty:
                pass

    drain(sub, 1.5)
    moved = Client(c, "mover", clean=False, session_expiry=3600)
    assert moved.flags.session_present
    sub.close()  # kicked with 0x8E; paho would otherwise reconnect and take the session back
    drain(sub, 0.2)
    drain(moved, 1.5)
    c.kill9()
    moved.c.loop_stop()
    back = connect_when_claimable(a, "mover", clean=False, session_expiry=3600)
    assert back.flags.session_present
    drain(back, 1.5)
    pub.halt.set()
    pub.join()
    acknowledged = pub.acknowledged()
    assert len(acknowledged) > 1000
    deadline = time.time() + 20
    while not acknowledged <= got and time.time() < deadline:
        drain(back, 0.5)
    missing = sorted(acknowledged - got)
    assert not missing, f"{len(missing)} acknowledged messages never arrived, first {missing[:10]}"
    for cl in (back, pub.client):
        cl.close()


def test_a_shared_subscription_is_one_group_across_the_cluster(cluster):
    """`$share/g/...` members on different nodes form one group: each message reaches one
    member in the cluster, a member on the publisher's node first, and QoS 1 messages a
    departing member never acknowledged go to a member on another node."""
    import paho.mqtt.client as mqtt

    cluster.wait_for_leaders()
    a, b, c = cluster.members
    one = Client(a, "worker-1")
    one.subscribe("$share/g/work/#", qos=1)
    three = Client(c, "worker-3")
    three.subscribe("$share/g/work/#", qos=1)
    wait_for_route(b, 1, "$share/g/work/#")
    wait_for_route(b, 3, "$share/g/work/#")

    def collect(clients, n):
        got = []
        deadline = time.time() + 15
        while len(got) < n and time.time() < deadline:
            for cl in clients:
                try:
                    got.append((cl, cl.get(timeout=0.05).payload.decode()))
                except queue.Empty:
                    pass
        for cl in clients:
            cl.expect_none(wait=0.3)
        return got

    pub_b = Client(b, "boss-2")
    for i in range(100):
        pub_b.publish("work/item", f"b{i}", qos=1)
    got = collect([one, three], 100)
    assert sorted(p for _, p in got) == sorted(f"b{i}" for i in range(100)), "each message exactly once"
    assert {cl for cl, _ in got} == {one, three}, "both nodes' members share the work"

    pub_a = Client(a, "boss-1")
    for i in range(50):
        pub_a.publish("work/item", f"a{i}", qos=1)
    got = collect([one, three], 50)
    assert [cl for cl, _ in got] == [one] * 50, "the member on the publisher's node gets them"

    # A member that takes messages and never acknowledges them, then leaves: they go to the
    # member on node 3.
    lazy = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="lazy", protocol=mqtt.MQTTv5, manual_ack=True)
    held, subscribed = queue.Queue(), threading.Event()
    lazy.on_message = lambda cl, u, m: held.put(m.payload.decode())
    lazy.on_subscribe = lambda *args: subscribed.set()
    lazy.connect(a.host, a.mqtt_port)
    lazy.loop_start()
    one.close()
    lazy.subscribe("$share/g/work/#", qos=1)
    assert subscribed.wait(10), "no SUBACK"
    for i in range(10):
        pub_a.publish("work/item", f"held{i}", qos=1)
    assert sorted(held.get(timeout=10) for _ in range(10)) == sorted(f"held{i}" for i in range(10))
    three.expect_none(wait=0.3)
    lazy.disconnect()
    lazy.loop_stop()
    got = collect([three], 10)
    assert sorted(p for _, p in got) == sorted(f"held{i}" for i in range(10))
    for cl in (three, pub_a, pub_b):
        cl.close()


def test_client_ids_without_a_session_leave_the_owners_table(cluster):
    """The owners table holds the client ids that have a session, not every id ever seen."""
    cluster.wait_for_leaders()
    a, c = cluster.members[0], cluster.members[2]
    keep = Client(a, "stays", clean=False, session_expiry=3600)
    keep.subscribe("stays/#", qos=1)
    keep.close()
    for i in range(30):
        Client(c if i % 2 else a, f"brief-{i}").close()
    assert scrape(a)["ferrite_cluster_client_ids"] >= 31
    deadline = time.time() + 45
    while scrape(a)["ferrite_cluster_client_ids"] != 1:
        assert time.time() < deadline, f"still {scrape(a)['ferrite_cluster_client_ids']} client ids"
        time.sleep(1)
    back = Client(c, "stays", clean=False, session_expiry=3600)
    assert back.flags.session_present, "the persistent session kept its owner"
    back.close()


def test_a_backlog_beyond_the_outbox_memory_reaches_a_peer_that_comes_back(cluster):
    """A peer down while 12 MB of QoS 1 messages wait for it: past 8 MiB the outbox keeps
    them on disk only, and every one arrives intact when the peer is back."""
    cluster.wait_for_leaders()
    a, b, c = cluster.members
    sub = Client(c, "big-sub", clean=False, session_expiry=3600)
    sub.subscribe("big/#", qos=1)
    wait_for_route(a, 3, "big/#")
    sub.close()
    c.kill9()
    pub = connect_when_claimable(a, "big-pub")
    blobs = [bytes([i]) * (120 * 1024) for i in range(100)]
    for i, blob in enumerate(blobs):
        pub.publish(f"big/{i}", blob, qos=1)
    peer = {p["node"]: p for p in a.status()["peers"]}[3]
    assert peer["outbox"] == 100
    assert scrape(a)['ferrite_cluster_outbox_bytes{peer="3"}'] > 12_000_000
    c.serve()
    back = connect_when_claimable(c, "big-sub", clean=False, session_expiry=3600)
    got = {}
    while len(got) < 100:
        m = back.get(timeout=30)
        got[int(m.topic.split("/")[1])] = m.payload
    assert all(got[i] == blobs[i] for i in range(100))
    for cl in (back, pub):
        cl.close()
