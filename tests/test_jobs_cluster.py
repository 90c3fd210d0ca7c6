"""AWS IoT Jobs on a 3-node cluster (`ferrite cluster local`): job state lives in the
replicated `meta` group, so any node serves any jobs call (control plane, `iot-jobs-data`,
the reserved MQTT topics); `notify-next` is published once, by the meta leader, and routed
to devices on any node; a rollout survives kill -9 of the meta leader mid-dispatch."""

import json
import os
import queue
import shutil
import tempfile
import time

import pytest

from conftest import Client
from test_cluster import LocalCluster, cluster, retry, wait_for_route  # noqa: F401  (cluster: the fixture)
from test_jobs import (DOC, counts, executions_of, iot, jobs_data, jobs_request, make_group, make_things, poll,
                       run_device, tally, wait_counts, wait_job)


@pytest.fixture
def jobs_cluster():
    """A 3-node local cluster whose jobs minute lasts 3 s (`[jobs] minute_ms = 3000`): the
    first start writes each node's config, the table is appended, the cluster starts again."""
    base = tempfile.mkdtemp(prefix="ferrite-jobs-cluster-")
    c = LocalCluster(base).start()
    c.stop()
    for m in c.members:
        with open(m.config, "a") as f:
            f.write("\n[jobs]\nminute_ms = 3000\n")
    c.start()
    yield c
    c.stop()
    if not os.environ.get("FERRITE_KEEP_CLUSTER"):
        shutil.rmtree(base, ignore_errors=True)


def visible_job(c, job, timeout=10):
    """DescribeJob on `c`, retried until the job has reached that node."""
    return retry(lambda: c.describe_job(jobId=job)["job"], timeout=timeout)


def test_any_node_serves_any_jobs_call(cluster):
    cluster.wait_for_leaders()
    a, b, c = cluster.members
    api_a, api_b = iot(a), iot(b)
    arns = make_things(api_a, "any-1", "any-2")
    api_a.create_job(jobId="any-job", targets=arns, document=json.dumps({"op": "blink"}))

    # Node 2 sees the job created through node 1.
    job = visible_job(api_b, "any-job")
    assert (job["jobId"], job["status"], job["targets"]) == ("any-job", "IN_PROGRESS", arns)
    wait_counts(api_b, "any-job", timeout=10, Queued=2)

    # A device on node 3 runs its execution over MQTT.
    prefix = "$aws/things/any-1/jobs"
    dev = Client(c, "any-1")
    dev.subscribe(f"{prefix}/start-next/+", qos=1)
    dev.subscribe(f"{prefix}/any-job/update/+", qos=1)
    jobs_request(dev, "any-1", "start-next", {"clientToken": "s1"})
    m = dev.get(timeout=10)
    assert m.topic == f"{prefix}/start-next/accepted", (m.topic, m.payload)
    started = json.loads(m.payload)
    assert started["clientToken"] == "s1"
    ex = started["execution"]
    assert (ex["jobId"], ex["thingName"], ex["status"]) == ("any-job", "any-1", "IN_PROGRESS")
    assert ex["jobDocument"] == {"op": "blink"}
    jobs_request(dev, "any-1", "any-job/update", {"status": "SUCCEEDED", "clientToken": "u1"})
    m = dev.get(timeout=10)
    assert m.topic == f"{prefix}/any-job/update/accepted", (m.topic, m.payload)
    assert json.loads(m.payload)["clientToken"] == "u1"
    dev.close()

    # Another thing's device uses the iot-jobs-data API of node 2.
    data_b = jobs_data(b)
    started = run_device(data_b, "any-2", job="any-job")
    assert json.loads(started["jobDocument"]) == {"op": "blink"}

    # Node 1 sees the job complete; every node agrees on the counts.
    wait_job(api_a, "any-job", "COMPLETED", timeout=10)
    for m in cluster.members:
        wait_counts(iot(m), "any-job", timeout=10, Succeeded=2)
        assert iot(m).describe_job_execution(jobId="any-job", thingName="any-1")["execution"]["status"] == "SUCCEEDED"


def test_notify_reaches_a_device_on_a_follower(cluster):
    leaders = cluster.wait_for_leaders()
    api = iot(cluster.members[1])
    things = {m.node_id: f"nn-{m.node_id}" for m in cluster.members}
    arns = make_things(api, *things.values())
    topic = {n: f"$aws/things/{t}/jobs/notify-next" for n, t in things.items()}
    devices = {}
    for m in cluster.members:
        devices[m.node_id] = Client(m, things[m.node_id])
        devices[m.node_id].subscribe(topic[m.node_id], qos=1)
    # Every node knows every other node's device subscription (the meta leader needs them
    # to route its notifications).
    for m in cluster.members:
        for other in cluster.members:
            if other is not m:
                wait_for_route(m, other.node_id, topic[other.node_id])

    api.create_job(jobId="nn-job", targets=arns, document=json.dumps({"op": "x"}))
    for n, dev in devices.items():
        m = dev.get(timeout=10)
        assert m.topic == topic[n]
        got = json.loads(m.payload)
        assert (got["execution"]["jobId"], got["execution"]["thingName"], got["execution"]["status"]) == \
            ("nn-job", things[n], "QUEUED"), (n, leaders["meta"], got)
    time.sleep(1.0)
    for n, dev in devices.items():
        extra = []
        while True:
            try:
                extra.append(dev.get(timeout=0.01))
            except queue.Empty:
                break
        assert not extra, f"device on node {n} (meta leader {leaders['meta']}) got duplicates: " \
                          f"{[(x.topic, x.payload) for x in extra]}"
    for dev in devices.values():
        dev.close()


def test_a_job_survives_kill_9_of_a_node_mid_rollout(jobs_cluster):
    cluster = jobs_cluster
    leaders = cluster.wait_for_leaders()
    victim = cluster.member(leaders["meta"])
    survivors = [m for m in cluster.members if m is not victim]
    api = iot(survivors[0])
    names = [f"ro-{i:02d}" for i in range(30)]
    group = make_group(api, "ro-group", *names)

    # 30 per 3 s minute: about 10 executions a second, dispatched by the meta leader.
    api.create_job(jobId="ro-job", targets=[group], document=DOC,
                   jobExecutionsRolloutConfig={"maximumPerMinute": 30})
    visible_job(api, "ro-job")
    deadline = time.time() + 10
    while True:
        n = len(executions_of(api, "ro-job"))
        if n >= 5:
            break
        assert time.time() < deadline, f"only {n} executions after 10 s"
        time.sleep(0.05)
    victim.kill9()
    assert n < 30, f"the rollout was over ({n} executions) before the meta leader was killed"

    # The two others elect a new meta leader, which finishes the rollout.
    deadline = time.time() + 30
    while True:
        listed = retry(lambda: executions_of(api, "ro-job"), timeout=10)
        if len(listed) >= 30:
            break
        assert time.time() < deadline, f"{len(listed)} of 30 executions 30 s after the kill (had {n} at the kill)"
        time.sleep(0.2)
    assert sorted(s["thingArn"].rsplit("/", 1)[1] for s in listed) == names, "each thing exactly once"
    assert {s["jobExecutionSummary"]["status"] for s in listed} == {"QUEUED"}
    for m in survivors:
        wait_counts(iot(m), "ro-job", timeout=10, Queued=30)

    # The killed node comes back from its data and reports the same counts.
    victim.serve()
    back = iot(victim)
    visible_job(back, "ro-job", timeout=20)
    poll(lambda: counts(back, "ro-job"), tally(Queued=30), timeout=20)
    assert counts(back, "ro-job") == counts(iot(survivors[0]), "ro-job") == counts(iot(survivors[1]), "ro-job")

    # Devices complete every execution through the jobs data API of all three nodes.
    data = [jobs_data(m) for m in cluster.members]
    for i, name in enumerate(names):
        run_device(data[i % 3], name, job="ro-job")
    for m in cluster.members:
        wait_job(iot(m), "ro-job", "COMPLETED", timeout=15)
        assert counts(iot(m), "ro-job") == tally(Succeeded=30)
