"""AWS IoT Jobs: the control plane (boto3 `iot`), the device data plane (boto3 `iot-jobs-data`),
the reserved MQTT topics `$aws/things/{thing}/jobs/...` (paho and the AWS IoT Device SDK),
rollouts, timeouts, aborts, retries, job events, durability and the AWS CLI."""

import json
import os
import queue
import shutil
import subprocess
import time

import botocore.exceptions
import pytest

from conftest import Client, aws_client, next_json_on

ARN = "arn:aws:iot:us-east-1:000000000000"
KINDS = ("Queued", "InProgress", "Succeeded", "Failed", "Canceled", "Rejected", "TimedOut", "Removed")
DOC = json.dumps({"op": "reboot"})


# ---------------------------------------------------------------------------------------------
# Helpers


def iot(node):
    return aws_client(node, "iot")


def jobs_data(node):
    return aws_client(node, "iot-jobs-data")


def code_of(error):
    return error.response["Error"]["Code"]


def make_things(c, *names):
    """Creates the things; their ARNs, in order."""
    return [c.create_thing(thingName=n)["thingArn"] for n in names]


def make_group(c, group, *things):
    """Creates a thing group holding new things `things`; the group's ARN."""
    arn = c.create_thing_group(thingGroupName=group)["thingGroupArn"]
    for t in things:
        c.create_thing(thingName=t)
        c.add_thing_to_thing_group(thingGroupName=group, thingName=t)
    return arn


def thing_of(arn):
    return arn.rsplit("/", 1)[1]


def tally(**n):
    """A full jobProcessDetails count dict: tally(Queued=2) -> numberOfQueuedThings 2, others 0."""
    return {f"numberOf{k}Things": n.get(k, 0) for k in KINDS}


def counts(c, job):
    details = c.describe_job(jobId=job)["job"].get("jobProcessDetails", {})
    return {f"numberOf{k}Things": details.get(f"numberOf{k}Things", 0) for k in KINDS}


def poll(fn, want, timeout=5.0, interval=0.05):
    """Calls fn() until it returns `want`; asserts on the last value after `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        got = fn()
        if got == want:
            return got
        if time.time() >= deadline:
            assert got == want, f"still {got!r} after {timeout}s"
        time.sleep(interval)


def wait_counts(c, job, timeout=5.0, **n):
    poll(lambda: counts(c, job), tally(**n), timeout)


def job_status(c, job):
    return c.describe_job(jobId=job)["job"]["status"]


def wait_job(c, job, status, timeout=5.0):
    poll(lambda: job_status(c, job), status, timeout)


def execution_status(c, job, thing):
    try:
        return c.describe_job_execution(jobId=job, thingName=thing)["execution"]["status"]
    except c.exceptions.ResourceNotFoundException:
        return None


def wait_execution(c, job, thing, status, timeout=5.0):
    poll(lambda: execution_status(c, job, thing), status, timeout)


def executions_of(c, job, **filters):
    """Every execution summary of `job` (ListJobExecutionsForJob, all pages)."""
    out, token = [], None
    while True:
        kw = dict(jobId=job, maxResults=100, **filters)
        if token:
            kw["nextToken"] = token
        page = c.list_job_executions_for_job(**kw)
        out += page.get("executionSummaries", [])
        token = page.get("nextToken")
        if not token:
            return out


def all_job_ids(c, **filters):
    ids, token = [], None
    while True:
        kw = dict(maxResults=2, **filters)
        if token:
            kw["nextToken"] = token
        page = c.list_jobs(**kw)
        ids += [j["jobId"] for j in page["jobs"]]
        token = page.get("nextToken")
        if not token:
            return sorted(ids)


def run_device(data, thing, status="SUCCEEDED", job=None):
    """The device starts its next pending execution and reports `status`; the started execution."""
    ex = data.start_next_pending_job_execution(thingName=thing)["execution"]
    if job is not None:
        assert ex["jobId"] == job
    data.update_job_execution(thingName=thing, jobId=ex["jobId"], status=status)
    return ex


def jobs_request(client, thing, op, body):
    payload = body if isinstance(body, str) else json.dumps(body)
    client.publish(f"$aws/things/{thing}/jobs/{op}", payload, qos=1)


def wait_json(client, topic, pred=lambda p: True, timeout=5.0):
    """The first JSON payload on `topic` for which pred() holds (others on any topic are skipped)."""
    deadline = time.time() + timeout
    while True:
        left = deadline - time.time()
        try:
            if left <= 0:
                raise queue.Empty
            payload = next_json_on(client, topic, timeout=left)
        except queue.Empty:
            raise AssertionError(f"no matching message on {topic} within {timeout}s")
        if pred(payload):
            return payload


def wait_topics(client, topics, timeout=5.0):
    """The first JSON payload on each of `topics`, in whatever order they arrive."""
    wanted, got = set(topics), {}
    deadline = time.time() + timeout
    while wanted - set(got):
        try:
            m = client.get(timeout=max(0.01, deadline - time.time()))
        except queue.Empty:
            raise AssertionError(f"nothing on {sorted(wanted - set(got))} within {timeout}s")
        if m.topic in wanted and m.topic not in got:
            got[m.topic] = json.loads(m.payload)
    return got


# ---------------------------------------------------------------------------------------------
# Control plane


def test_jobs_are_created_described_updated_and_listed_with_filters_and_pages(node):
    c, data = iot(node), jobs_data(node)
    a, b, d = make_things(c, "cp-a", "cp-b", "cp-d")
    group = make_group(c, "cp-group", "cp-c")
    made = c.create_job(jobId="cp-1", targets=[a, b], document=DOC, description="first")
    assert (made["jobId"], made["jobArn"], made["description"]) == ("cp-1", f"{ARN}:job/cp-1", "first")
    job = c.describe_job(jobId="cp-1")["job"]
    assert (job["jobId"], job["jobArn"], job["status"], job["targetSelection"]) == \
        ("cp-1", f"{ARN}:job/cp-1", "IN_PROGRESS", "SNAPSHOT")
    assert job["targets"] == [a, b]
    assert json.loads(c.get_job_document(jobId="cp-1")["document"]) == {"op": "reboot"}
    wait_counts(c, "cp-1", Queued=2)

    c.update_job(jobId="cp-1", description="second")
    assert c.describe_job(jobId="cp-1")["job"]["description"] == "second"

    c.create_job(jobId="cp-2", targets=[group], document=DOC, targetSelection="CONTINUOUS")
    c.create_job(jobId="cp-3", targets=[d], document=DOC)
    first = c.list_jobs(maxResults=2)
    assert len(first["jobs"]) == 2 and first.get("nextToken")
    assert all_job_ids(c) == ["cp-1", "cp-2", "cp-3"]
    assert all_job_ids(c, targetSelection="CONTINUOUS") == ["cp-2"]
    assert all_job_ids(c, thingGroupName="cp-group") == ["cp-2"]

    wait_counts(c, "cp-3", Queued=1)
    run_device(data, "cp-d", job="cp-3")
    wait_job(c, "cp-3", "COMPLETED")
    assert all_job_ids(c, status="COMPLETED") == ["cp-3"]
    assert all_job_ids(c, status="IN_PROGRESS") == ["cp-1", "cp-2"]


def test_job_requests_fail_with_aws_exception_codes(node):
    c = iot(node)
    a = make_things(c, "err-a")[0]
    c.create_job(jobId="dup", targets=[a], document=DOC)
    with pytest.raises(c.exceptions.ResourceAlreadyExistsException):
        c.create_job(jobId="dup", targets=[a], document=DOC)
    with pytest.raises(c.exceptions.InvalidRequestException):
        c.create_job(jobId="no-doc", targets=[a])
    with pytest.raises(c.exceptions.InvalidRequestException):
        c.create_job(jobId="bad-doc", targets=[a], document="{not json")
    for job in ("no-doc", "bad-doc", "never"):
        with pytest.raises(c.exceptions.ResourceNotFoundException):
            c.describe_job(jobId=job)
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.get_job_document(jobId="never")
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.cancel_job(jobId="never")
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.delete_job(jobId="never")
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.list_job_executions_for_job(jobId="never")
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.describe_job_execution(jobId="dup", thingName="nobody")


def test_cancel_job_cancels_queued_executions_and_in_progress_ones_only_with_force(node):
    c, data = iot(node), jobs_data(node)
    a, b = make_things(c, "cx-a", "cx-b")
    for job in ("soft", "hard"):
        c.create_job(jobId=job, targets=[a, b], document=DOC)
        wait_counts(c, job, Queued=2)

    assert data.start_next_pending_job_execution(thingName="cx-a")["execution"]["jobId"] == "soft"
    canceled = c.cancel_job(jobId="soft", reasonCode="OPS", comment="stop it")
    assert canceled["jobId"] == "soft"
    job = c.describe_job(jobId="soft")["job"]
    assert (job["status"], job["reasonCode"], job["comment"]) == ("CANCELED", "OPS", "stop it")
    wait_execution(c, "soft", "cx-b", "CANCELED")
    assert execution_status(c, "soft", "cx-a") == "IN_PROGRESS"
    wait_counts(c, "soft", InProgress=1, Canceled=1)

    data.update_job_execution(thingName="cx-a", jobId="hard", status="IN_PROGRESS")
    assert execution_status(c, "hard", "cx-a") == "IN_PROGRESS"
    c.cancel_job(jobId="hard", force=True)
    job = c.describe_job(jobId="hard")["job"]
    assert (job["status"], job["forceCanceled"]) == ("CANCELED", True)
    wait_execution(c, "hard", "cx-a", "CANCELED")
    wait_execution(c, "hard", "cx-b", "CANCELED")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        data.update_job_execution(thingName="cx-a", jobId="hard", status="SUCCEEDED")
    assert code_of(e.value) in ("InvalidStateTransitionException", "TerminalStateException")


def test_delete_job_needs_force_while_the_job_is_in_progress(node):
    c, data = iot(node), jobs_data(node)
    a, b = make_things(c, "del-a", "del-b")
    c.create_job(jobId="del-1", targets=[a], document=DOC)
    wait_counts(c, "del-1", Queued=1)
    with pytest.raises(c.exceptions.InvalidStateTransitionException):
        c.delete_job(jobId="del-1")
    assert job_status(c, "del-1") == "IN_PROGRESS"
    c.delete_job(jobId="del-1", force=True)

    def gone(job):
        try:
            c.describe_job(jobId=job)
            return False
        except c.exceptions.ResourceNotFoundException:
            return True

    poll(lambda: gone("del-1"), True)
    poll(lambda: [s["jobId"] for s in c.list_job_executions_for_thing(thingName="del-a")["executionSummaries"]], [])

    c.create_job(jobId="del-2", targets=[b], document=DOC)
    wait_counts(c, "del-2", Queued=1)
    run_device(data, "del-b", job="del-2")
    wait_job(c, "del-2", "COMPLETED")
    c.delete_job(jobId="del-2")
    poll(lambda: gone("del-2"), True)


def test_job_executions_are_listed_described_canceled_and_deleted(node):
    c, data = iot(node), jobs_data(node)
    a, b = make_things(c, "ex-a", "ex-b")
    c.create_job(jobId="ex-1", targets=[a, b], document=DOC)
    wait_counts(c, "ex-1", Queued=2)
    by_job = executions_of(c, "ex-1")
    assert sorted(s["thingArn"] for s in by_job) == sorted([a, b])
    assert {(s["jobExecutionSummary"]["status"], s["jobExecutionSummary"]["executionNumber"]) for s in by_job} == \
        {("QUEUED", 1)}
    by_thing = c.list_job_executions_for_thing(thingName="ex-a")["executionSummaries"]
    assert [(s["jobId"], s["jobExecutionSummary"]["status"]) for s in by_thing] == [("ex-1", "QUEUED")]

    ex = c.describe_job_execution(jobId="ex-1", thingName="ex-a")["execution"]
    assert (ex["jobId"], ex["status"], ex["thingArn"], ex["executionNumber"]) == ("ex-1", "QUEUED", a, 1)
    version = ex["versionNumber"]
    with pytest.raises(c.exceptions.VersionConflictException):
        c.cancel_job_execution(jobId="ex-1", thingName="ex-a", expectedVersion=version + 5)
    c.cancel_job_execution(jobId="ex-1", thingName="ex-a", expectedVersion=version)
    assert execution_status(c, "ex-1", "ex-a") == "CANCELED"

    data.update_job_execution(thingName="ex-b", jobId="ex-1", status="IN_PROGRESS")
    with pytest.raises(c.exceptions.InvalidStateTransitionException):
        c.cancel_job_execution(jobId="ex-1", thingName="ex-b")
    with pytest.raises(c.exceptions.InvalidStateTransitionException):
        c.delete_job_execution(jobId="ex-1", thingName="ex-b", executionNumber=1)
    assert [s["thingArn"] for s in executions_of(c, "ex-1", status="IN_PROGRESS")] == [b]
    assert [s["thingArn"] for s in executions_of(c, "ex-1", status="CANCELED")] == [a]

    c.delete_job_execution(jobId="ex-1", thingName="ex-a", executionNumber=1)
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.describe_job_execution(jobId="ex-1", thingName="ex-a", executionNumber=1)
    assert [s["thingArn"] for s in executions_of(c, "ex-1")] == [b]
    c.cancel_job_execution(jobId="ex-1", thingName="ex-b", force=True)
    assert execution_status(c, "ex-1", "ex-b") == "CANCELED"


def test_job_templates_are_managed_and_fill_in_document_parameters(node):
    c, data = iot(node), jobs_data(node)
    a = make_things(c, "tpl-a")[0]
    template = json.dumps({"url": "${aws:iot:parameter:url}", "version": "${aws:iot:parameter:version}"})
    made = c.create_job_template(jobTemplateId="fw", document=template, description="firmware")
    assert (made["jobTemplateId"], made["jobTemplateArn"]) == ("fw", f"{ARN}:jobtemplate/fw")
    described = c.describe_job_template(jobTemplateId="fw")
    assert (described["jobTemplateId"], described["jobTemplateArn"], described["description"]) == \
        ("fw", made["jobTemplateArn"], "firmware")
    assert json.loads(described["document"]) == json.loads(template)
    c.create_job_template(jobTemplateId="other", document=DOC, description="another")
    assert sorted(t["jobTemplateId"] for t in c.list_job_templates()["jobTemplates"]) == ["fw", "other"]

    params = {"url": "https://example.com/fw.bin", "version": "2.1"}
    c.create_job(jobId="from-tpl", targets=[a], jobTemplateArn=made["jobTemplateArn"], documentParameters=params)
    assert json.loads(c.get_job_document(jobId="from-tpl")["document"]) == params
    job = c.describe_job(jobId="from-tpl")["job"]
    assert (job["documentParameters"], job["jobTemplateArn"]) == (params, made["jobTemplateArn"])
    wait_counts(c, "from-tpl", Queued=1)
    started = data.start_next_pending_job_execution(thingName="tpl-a")["execution"]
    assert json.loads(started["jobDocument"]) == params

    c.delete_job_template(jobTemplateId="other")
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.describe_job_template(jobTemplateId="other")
    assert [t["jobTemplateId"] for t in c.list_job_templates()["jobTemplates"]] == ["fw"]


def test_a_snapshot_job_completes_when_every_execution_is_terminal(node):
    c, data = iot(node), jobs_data(node)
    arns = make_things(c, "sn-a", "sn-b", "sn-c")
    c.create_job(jobId="snap", targets=arns, document=DOC)
    wait_counts(c, "snap", Queued=3)
    run_device(data, "sn-a", "SUCCEEDED", job="snap")
    run_device(data, "sn-b", "FAILED", job="snap")
    wait_counts(c, "snap", Queued=1, Succeeded=1, Failed=1)
    assert job_status(c, "snap") == "IN_PROGRESS"
    run_device(data, "sn-c", "REJECTED", job="snap")
    wait_job(c, "snap", "COMPLETED")
    job = c.describe_job(jobId="snap")["job"]
    assert "completedAt" in job
    assert counts(c, "snap") == tally(Succeeded=1, Failed=1, Rejected=1)


def test_a_continuous_job_follows_its_thing_group_and_takes_more_targets(node):
    c = iot(node)
    group = make_group(c, "fleet", "cont-a")
    extra = make_things(c, "cont-x")[0]
    c.create_job(jobId="cont", targets=[group], document=DOC, targetSelection="CONTINUOUS")
    wait_execution(c, "cont", "cont-a", "QUEUED")

    c.create_thing(thingName="cont-b")
    c.add_thing_to_thing_group(thingGroupName="fleet", thingName="cont-b")
    wait_execution(c, "cont", "cont-b", "QUEUED")

    c.remove_thing_from_thing_group(thingGroupName="fleet", thingName="cont-a")
    wait_execution(c, "cont", "cont-a", "REMOVED")

    associated = c.associate_targets_with_job(jobId="cont", targets=[extra])
    assert associated["jobId"] == "cont"
    wait_execution(c, "cont", "cont-x", "QUEUED")
    wait_counts(c, "cont", Queued=2, Removed=1)
    assert job_status(c, "cont") == "IN_PROGRESS"


def test_job_and_job_execution_events_are_published_once_enabled(node):
    c, data = iot(node), jobs_data(node)
    c.update_event_configurations(eventConfigurations={"JOB": {"Enabled": True}, "JOB_EXECUTION": {"Enabled": True}})
    conf = c.describe_event_configurations()["eventConfigurations"]
    assert conf["JOB"]["Enabled"] is True and conf["JOB_EXECUTION"]["Enabled"] is True
    watcher = Client(node, "job-watcher")
    watcher.subscribe("$aws/events/#", qos=1)
    a, b = make_things(c, "ev-a", "ev-b")

    c.create_job(jobId="ev-1", targets=[a], document=DOC)
    wait_counts(c, "ev-1", Queued=1)
    run_device(data, "ev-a", job="ev-1")
    got = wait_topics(watcher, ["$aws/events/jobExecution/ev-1/succeeded", "$aws/events/job/ev-1/completed"])
    succeeded = got["$aws/events/jobExecution/ev-1/succeeded"]
    assert (succeeded["eventType"], succeeded["jobId"], succeeded["status"], succeeded["thingArn"]) == \
        ("JOB_EXECUTION", "ev-1", "SUCCEEDED", a)
    completed = got["$aws/events/job/ev-1/completed"]
    assert (completed["eventType"], completed["jobId"], completed["status"]) == ("JOB", "ev-1", "COMPLETED")

    c.create_job(jobId="ev-2", targets=[b], document=DOC)
    wait_counts(c, "ev-2", Queued=1)
    c.cancel_job(jobId="ev-2")
    got = wait_topics(watcher, ["$aws/events/job/ev-2/canceled", "$aws/events/jobExecution/ev-2/canceled"])
    assert got["$aws/events/job/ev-2/canceled"]["jobId"] == "ev-2"
    assert got["$aws/events/job/ev-2/canceled"]["eventType"] == "JOB"
    assert got["$aws/events/jobExecution/ev-2/canceled"]["status"] == "CANCELED"
    c.delete_job(jobId="ev-2")
    deleted = wait_topics(watcher, ["$aws/events/job/ev-2/deleted"])["$aws/events/job/ev-2/deleted"]
    assert (deleted["eventType"], deleted["jobId"]) == ("JOB", "ev-2")
    watcher.close()


# ---------------------------------------------------------------------------------------------
# Data plane (HTTP)


def test_the_jobs_data_plane_starts_describes_and_updates_executions(node):
    c, data = iot(node), jobs_data(node)
    a = make_things(c, "dp-a")[0]
    c.create_job(jobId="dp-1", targets=[a], document=json.dumps({"step": 1}))
    wait_counts(c, "dp-1", Queued=1)
    c.create_job(jobId="dp-2", targets=[a], document=json.dumps({"step": 2}))
    wait_counts(c, "dp-2", Queued=1)

    pending = data.get_pending_job_executions(thingName="dp-a")
    assert pending["inProgressJobs"] == []
    assert [j["jobId"] for j in pending["queuedJobs"]] == ["dp-1", "dp-2"]
    queued = pending["queuedJobs"][0]
    assert queued["executionNumber"] == 1 and "queuedAt" in queued and "lastUpdatedAt" in queued

    upcoming = data.describe_job_execution(thingName="dp-a", jobId="$next", includeJobDocument=True)["execution"]
    assert (upcoming["jobId"], upcoming["status"]) == ("dp-1", "QUEUED")
    assert json.loads(upcoming["jobDocument"]) == {"step": 1}

    started = data.start_next_pending_job_execution(thingName="dp-a", statusDetails={"phase": "download"})["execution"]
    assert (started["jobId"], started["thingName"], started["status"]) == ("dp-1", "dp-a", "IN_PROGRESS")
    assert started["statusDetails"] == {"phase": "download"}
    assert json.loads(started["jobDocument"]) == {"step": 1}
    assert started["versionNumber"] == queued["versionNumber"] + 1
    assert "startedAt" in started
    v = started["versionNumber"]

    updated = data.update_job_execution(thingName="dp-a", jobId="dp-1", status="IN_PROGRESS",
                                        statusDetails={"phase": "install"}, expectedVersion=v,
                                        includeJobExecutionState=True, includeJobDocument=True)
    assert updated["executionState"] == {"status": "IN_PROGRESS", "statusDetails": {"phase": "install"},
                                         "versionNumber": v + 1}
    assert json.loads(updated["jobDocument"]) == {"step": 1}
    with pytest.raises(botocore.exceptions.ClientError) as e:
        data.update_job_execution(thingName="dp-a", jobId="dp-1", status="IN_PROGRESS", expectedVersion=v)
    assert code_of(e.value) in ("VersionConflictException", "InvalidStateTransitionException", "ConflictException")

    pending = data.get_pending_job_executions(thingName="dp-a")
    assert [j["jobId"] for j in pending["inProgressJobs"]] == ["dp-1"]
    assert [j["jobId"] for j in pending["queuedJobs"]] == ["dp-2"]

    data.update_job_execution(thingName="dp-a", jobId="dp-1", status="SUCCEEDED", expectedVersion=v + 1)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        data.update_job_execution(thingName="dp-a", jobId="dp-1", status="IN_PROGRESS")
    assert code_of(e.value) in ("InvalidStateTransitionException", "TerminalStateException")
    done = c.describe_job_execution(jobId="dp-1", thingName="dp-a")["execution"]
    assert (done["status"], done["statusDetails"]["detailsMap"]) == ("SUCCEEDED", {"phase": "install"})

    run_device(data, "dp-a", job="dp-2")
    assert not data.start_next_pending_job_execution(thingName="dp-a").get("execution")
    assert data.get_pending_job_executions(thingName="dp-a")["queuedJobs"] == []


# ---------------------------------------------------------------------------------------------
# MQTT


def test_devices_run_jobs_over_the_reserved_mqtt_topics(node):
    c = iot(node)
    a = make_things(c, "mq-1")[0]
    prefix = "$aws/things/mq-1/jobs"
    dev = Client(node, "mq-1")
    dev.subscribe(f"{prefix}/#", qos=1)
    c.create_job(jobId="mq-job", targets=[a], document=json.dumps({"op": "blink"}))
    wait_counts(c, "mq-job", Queued=1)

    jobs_request(dev, "mq-1", "get", {"clientToken": "g1"})
    listed = next_json_on(dev, f"{prefix}/get/accepted")
    assert listed["inProgressJobs"] == [] and listed["clientToken"] == "g1" and "timestamp" in listed
    assert [j["jobId"] for j in listed["queuedJobs"]] == ["mq-job"]
    assert {"jobId", "queuedAt", "lastUpdatedAt", "versionNumber", "executionNumber"} <= set(listed["queuedJobs"][0])

    jobs_request(dev, "mq-1", "$next/get", {"clientToken": "d1", "includeJobDocument": True})
    upcoming = next_json_on(dev, f"{prefix}/$next/get/accepted")
    assert upcoming["clientToken"] == "d1"
    assert (upcoming["execution"]["jobId"], upcoming["execution"]["status"]) == ("mq-job", "QUEUED")
    assert upcoming["execution"]["jobDocument"] == {"op": "blink"}

    jobs_request(dev, "mq-1", "start-next", {"clientToken": "s1", "statusDetails": {"step": "1"}})
    started = next_json_on(dev, f"{prefix}/start-next/accepted")
    assert started["clientToken"] == "s1" and "timestamp" in started
    ex = started["execution"]
    assert (ex["jobId"], ex["thingName"], ex["status"], ex["statusDetails"]) == \
        ("mq-job", "mq-1", "IN_PROGRESS", {"step": "1"})
    assert ex["jobDocument"] == {"op": "blink"}
    assert {"queuedAt", "startedAt", "lastUpdatedAt", "versionNumber", "executionNumber"} <= set(ex)
    v = ex["versionNumber"]

    jobs_request(dev, "mq-1", "mq-job/update", {
        "status": "IN_PROGRESS", "statusDetails": {"step": "2"}, "expectedVersion": v,
        "includeJobExecutionState": True, "includeJobDocument": True, "clientToken": "u1"})
    updated = next_json_on(dev, f"{prefix}/mq-job/update/accepted")
    assert updated["clientToken"] == "u1" and "timestamp" in updated
    assert updated["executionState"] == {"status": "IN_PROGRESS", "statusDetails": {"step": "2"}, "versionNumber": v + 1}
    assert updated["jobDocument"] == {"op": "blink"}

    jobs_request(dev, "mq-1", "mq-job/update", {"status": "SUCCEEDED", "expectedVersion": v, "clientToken": "u2"})
    stale = next_json_on(dev, f"{prefix}/mq-job/update/rejected")
    assert (stale["code"], stale["clientToken"]) == ("VersionMismatch", "u2")

    jobs_request(dev, "mq-1", "mq-job/update", {"status": "SUCCEEDED", "clientToken": "u3"})
    finished = next_json_on(dev, f"{prefix}/mq-job/update/accepted")
    assert finished["clientToken"] == "u3"
    assert "executionState" not in finished and "jobDocument" not in finished
    jobs_request(dev, "mq-1", "mq-job/update", {"status": "IN_PROGRESS", "clientToken": "u4"})
    terminal = next_json_on(dev, f"{prefix}/mq-job/update/rejected")
    assert terminal["code"] in ("InvalidStateTransition", "TerminalStateReached")
    assert terminal["clientToken"] == "u4" and "message" in terminal and "timestamp" in terminal

    assert execution_status(c, "mq-job", "mq-1") == "SUCCEEDED"
    wait_job(c, "mq-job", "COMPLETED")
    dev.close()


def test_bad_mqtt_job_requests_are_rejected_with_aws_codes(node):
    c = iot(node)
    make_things(c, "mq-2")
    prefix = "$aws/things/mq-2/jobs"
    dev = Client(node, "mq-2")
    dev.subscribe(f"{prefix}/#", qos=1)
    jobs_request(dev, "mq-2", "get", "not json")
    bad = next_json_on(dev, f"{prefix}/get/rejected")
    assert bad["code"] == "InvalidJson" and "message" in bad
    jobs_request(dev, "mq-2", "start-next", "{oops")
    assert next_json_on(dev, f"{prefix}/start-next/rejected")["code"] == "InvalidJson"
    jobs_request(dev, "mq-2", "nope/get", {"clientToken": "n1"})
    missing = next_json_on(dev, f"{prefix}/nope/get/rejected")
    assert (missing["code"], missing["clientToken"]) == ("ResourceNotFound", "n1")
    assert "message" in missing and "timestamp" in missing
    jobs_request(dev, "mq-2", "nope/update", {"status": "SUCCEEDED", "clientToken": "n2"})
    missing = next_json_on(dev, f"{prefix}/nope/update/rejected")
    assert (missing["code"], missing["clientToken"]) == ("ResourceNotFound", "n2")
    dev.close()


def test_notify_and_notify_next_follow_the_pending_list(node):
    c, data = iot(node), jobs_data(node)
    a = make_things(c, "nt-1")[0]
    notify, notify_next = "$aws/things/nt-1/jobs/notify", "$aws/things/nt-1/jobs/notify-next"
    dev = Client(node, "nt-1")
    dev.subscribe(notify, qos=1)
    dev.subscribe(notify_next, qos=1)
    c.create_job(jobId="nt-job", targets=[a], document=json.dumps({"op": "x"}))

    def pending_ids(p):
        return [s["jobId"] for summaries in (p.get("jobs") or {}).values() for s in summaries]

    listed = wait_json(dev, notify, lambda p: "nt-job" in [s["jobId"] for s in (p.get("jobs") or {}).get("QUEUED", [])])
    assert "timestamp" in listed
    summary = listed["jobs"]["QUEUED"][0]
    assert summary["executionNumber"] == 1 and "versionNumber" in summary and "queuedAt" in summary
    nxt = wait_json(dev, notify_next, lambda p: (p.get("execution") or {}).get("jobId") == "nt-job")
    assert nxt["execution"]["status"] == "QUEUED" and "timestamp" in nxt
    assert nxt["execution"]["jobDocument"] == {"op": "x"}

    run_device(data, "nt-1", job="nt-job")
    wait_json(dev, notify, lambda p: "nt-job" not in pending_ids(p))
    wait_json(dev, notify_next, lambda p: not p.get("execution"))
    dev.close()


# ---------------------------------------------------------------------------------------------
# Timeouts, rollouts, aborts and retries (a jobs "minute" is shortened with [jobs] minute_ms)


def test_an_in_progress_timeout_times_out_a_started_execution(make_node):
    node = make_node(config_text="[jobs]\nminute_ms = 1000\n")
    c, data = iot(node), jobs_data(node)
    arns = make_things(c, "to-a", "to-b")
    c.create_job(jobId="to-1", targets=arns, document=DOC, timeoutConfig={"inProgressTimeoutInMinutes": 1})
    wait_counts(c, "to-1", Queued=2)
    started = data.start_next_pending_job_execution(thingName="to-a")["execution"]
    assert started["status"] == "IN_PROGRESS"
    t0 = time.time()
    wait_execution(c, "to-1", "to-a", "TIMED_OUT", timeout=6)
    assert time.time() - t0 >= 0.5, "timed out long before its one (1 s) minute"
    assert execution_status(c, "to-1", "to-b") == "QUEUED", "a queued execution has no in-progress timer"
    wait_counts(c, "to-1", Queued=1, TimedOut=1)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        data.update_job_execution(thingName="to-a", jobId="to-1", status="SUCCEEDED")
    assert code_of(e.value) in ("InvalidStateTransitionException", "TerminalStateException")
    run_device(data, "to-b", job="to-1")
    wait_job(c, "to-1", "COMPLETED")


def test_a_step_timeout_given_to_start_next_times_out_the_execution(make_node):
    node = make_node(config_text="[jobs]\nminute_ms = 1000\n")
    c, data = iot(node), jobs_data(node)
    arns = make_things(c, "st-a")
    c.create_job(jobId="st-1", targets=arns, document=DOC)
    wait_counts(c, "st-1", Queued=1)
    started = data.start_next_pending_job_execution(thingName="st-a", stepTimeoutInMinutes=1)["execution"]
    assert started["status"] == "IN_PROGRESS"
    wait_execution(c, "st-1", "st-a", "TIMED_OUT", timeout=6)
    wait_job(c, "st-1", "COMPLETED")
    assert counts(c, "st-1") == tally(TimedOut=1)


def test_a_rollout_rate_limits_how_fast_executions_are_created(make_node):
    node = make_node(config_text="[jobs]\nminute_ms = 2000\n")
    c = iot(node)
    group = make_group(c, "rollout", *[f"r-{i:02d}" for i in range(60)])
    t0 = time.time()
    c.create_job(jobId="roll", targets=[group], document=DOC, jobExecutionsRolloutConfig={"maximumPerMinute": 20})
    time.sleep(max(0.0, t0 + 1.0 - time.time()))
    t1, c1 = time.time(), len(executions_of(c, "roll"))
    assert c1 < 60, "all 60 executions after 1 s at 20 per (2 s) minute"
    deadline = t0 + 12
    while True:
        n = len(executions_of(c, "roll"))
        if n >= 60:
            t60 = time.time()
            break
        assert time.time() < deadline, f"only {n} of 60 executions after {deadline - t0:.0f} s"
        time.sleep(0.2)
    assert n == 60
    rate = (60 - c1) / max(t60 - t1, 0.01) * 2.0
    assert 5 <= rate <= 40, f"{rate:.1f} executions per 2 s minute"
    assert {s["jobExecutionSummary"]["status"] for s in executions_of(c, "roll")} == {"QUEUED"}


def test_a_rate_limited_rollout_goes_on_after_kill_9_of_its_node(make_node):
    node = make_node(config_text="[jobs]\nminute_ms = 2000\n")
    c = iot(node)
    group = make_group(c, "staged", *[f"k-{i:02d}" for i in range(30)])
    c.create_job(jobId="staged", targets=[group], document=DOC, jobExecutionsRolloutConfig={"maximumPerMinute": 30})
    poll(lambda: len(executions_of(c, "staged")) >= 5, True, timeout=10)
    before = len(executions_of(c, "staged"))
    assert before < 30, "the rollout had already finished before the kill"
    node.restart(kill=True)
    c = iot(node)
    assert len(executions_of(c, "staged")) >= before, "executions dispatched before the kill were lost"
    poll(lambda: len(executions_of(c, "staged")), 30, timeout=20)
    assert sorted(thing_of(s["thingArn"]) for s in executions_of(c, "staged")) == [f"k-{i:02d}" for i in range(30)]
    assert counts(c, "staged") == tally(Queued=30)


def test_maintenance_windows_hold_a_rollout_until_one_opens(node):
    c = iot(node)
    arns = make_things(c, "mw-a", "mw-b")
    closed = {"maintenanceWindows": [{"startTime": "cron(0 0 1 1 ? 2099)", "durationInMinutes": 60}]}
    c.create_job(jobId="later", targets=arns, document=DOC, schedulingConfig=closed)
    always = {"maintenanceWindows": [{"startTime": "cron(* * * * ? *)", "durationInMinutes": 1}]}
    c.create_job(jobId="now", targets=arns, document=DOC, schedulingConfig=always)
    wait_counts(c, "now", Queued=2)
    time.sleep(1.0)
    job = c.describe_job(jobId="later")["job"]
    assert job["status"] == "IN_PROGRESS"
    assert executions_of(c, "later") == [], "a job dispatched outside its maintenance windows"
    assert sorted(job["jobProcessDetails"]["processingTargets"]) == ["mw-a", "mw-b"]
    assert job["schedulingConfig"]["maintenanceWindows"] == closed["maintenanceWindows"]
    # A template's windows apply to jobs made from it.
    c.create_job_template(jobTemplateId="windowed", document=DOC, description="windowed",
                          maintenanceWindows=closed["maintenanceWindows"])
    c.create_job(jobId="from-template", targets=arns,
                 jobTemplateArn=f"{ARN}:jobtemplate/windowed")
    time.sleep(0.6)
    assert executions_of(c, "from-template") == []
    for bad in ({"startTime": "cron(0 2 L * ? *)", "durationInMinutes": 60},
                {"startTime": "cron(0 2 * * ? *)", "durationInMinutes": 2000},
                {"startTime": "tomorrow", "durationInMinutes": 60}):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.create_job(jobId="bad-window", targets=arns, document=DOC,
                         schedulingConfig={"maintenanceWindows": [bad]})
        assert code_of(e.value) == "InvalidRequestException", bad


def test_an_abort_config_cancels_the_job_after_enough_failures(node):
    c, data = iot(node), jobs_data(node)
    names = [f"ab-{i}" for i in range(6)]
    arns = make_things(c, *names)
    c.create_job(jobId="abort", targets=arns, document=DOC, abortConfig={"criteriaList": [{
        "failureType": "FAILED", "action": "CANCEL", "thresholdPercentage": 50.0, "minNumberOfExecutedThings": 2}]})
    wait_counts(c, "abort", Queued=6)
    run_device(data, "ab-0", "FAILED", job="abort")
    time.sleep(0.3)
    assert job_status(c, "abort") == "IN_PROGRESS", "aborted before minNumberOfExecutedThings"
    run_device(data, "ab-1", "FAILED", job="abort")
    wait_job(c, "abort", "CANCELED")
    for name in names[2:]:
        wait_execution(c, "abort", name, "CANCELED")
    wait_counts(c, "abort", Failed=2, Canceled=4)


def test_a_retry_config_queues_a_new_execution_after_a_failure(node):
    c, data = iot(node), jobs_data(node)
    a = make_things(c, "rt-a")[0]
    c.create_job(jobId="retry", targets=[a], document=DOC,
                 jobExecutionsRetryConfig={"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 1}]})
    wait_counts(c, "retry", Queued=1)
    first = run_device(data, "rt-a", "FAILED", job="retry")
    assert first["executionNumber"] == 1
    poll(lambda: [(j["jobId"], j["executionNumber"])
                  for j in data.get_pending_job_executions(thingName="rt-a")["queuedJobs"]], [("retry", 2)])
    assert c.describe_job_execution(jobId="retry", thingName="rt-a", executionNumber=1)["execution"]["status"] == "FAILED"
    second = run_device(data, "rt-a", "FAILED", job="retry")
    assert second["executionNumber"] == 2
    wait_job(c, "retry", "COMPLETED")
    assert counts(c, "retry") == tally(Failed=1)
    assert data.get_pending_job_executions(thingName="rt-a")["queuedJobs"] == [], "only one retry"


# ---------------------------------------------------------------------------------------------
# Durability


def test_jobs_and_their_executions_survive_a_kill_and_restart(node):
    c, data = iot(node), jobs_data(node)
    arns = make_things(c, "du-0", "du-1", "du-2")
    c.create_job(jobId="durable", targets=arns, document=json.dumps({"keep": True}))
    wait_counts(c, "durable", Queued=3)
    run_device(data, "du-0", job="durable")
    wait_counts(c, "durable", Queued=2, Succeeded=1)
    node.restart(kill=True)
    c, data = iot(node), jobs_data(node)
    assert counts(c, "durable") == tally(Queued=2, Succeeded=1)
    assert job_status(c, "durable") == "IN_PROGRESS"
    assert json.loads(c.get_job_document(jobId="durable")["document"]) == {"keep": True}
    assert execution_status(c, "durable", "du-0") == "SUCCEEDED"
    for name in ("du-1", "du-2"):
        started = run_device(data, name, job="durable")
        assert json.loads(started["jobDocument"]) == {"keep": True}
    wait_job(c, "durable", "COMPLETED")
    assert counts(c, "durable") == tally(Succeeded=3)


# ---------------------------------------------------------------------------------------------
# Real clients: the AWS IoT Device SDK and the AWS CLI


def test_the_aws_iot_device_sdk_runs_a_job_end_to_end(node, tmp_path):
    from awscrt import mqtt as crt_mqtt
    from awsiot import iotjobs, mqtt_connection_builder

    c = iot(node)
    thing = "sdk-thing"
    cert = c.create_keys_and_certificate(setAsActive=True)
    arn = c.create_thing(thingName=thing)["thingArn"]
    c.attach_thing_principal(thingName=thing, principal=cert["certificateArn"])
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:*", "Resource": ["*"]}]}
    c.create_policy(policyName="jobs-device", policyDocument=json.dumps(policy))
    c.attach_policy(policyName="jobs-device", target=cert["certificateArn"])
    certfile, keyfile = tmp_path / "sdk.pem", tmp_path / "sdk.key"
    certfile.write_text(cert["certificatePem"])
    keyfile.write_text(cert["keyPair"]["PrivateKey"])
    c.create_job(jobId="sdk-job", targets=[arn], document=json.dumps({"op": "install", "version": "1.2.3"}))
    wait_counts(c, "sdk-job", Queued=1)

    conn = mqtt_connection_builder.mtls_from_path(
        endpoint="localhost", port=node.mqtts_port, cert_filepath=str(certfile), pri_key_filepath=str(keyfile),
        ca_filepath=node.ca_path, client_id=thing, clean_session=True, keep_alive_secs=30)
    conn.connect().result(10)
    try:
        jobs = iotjobs.IotJobsClient(conn)
        qos = crt_mqtt.QoS.AT_LEAST_ONCE
        started, updated, rejected = queue.Queue(), queue.Queue(), queue.Queue()
        start_sub = iotjobs.StartNextPendingJobExecutionSubscriptionRequest(thing_name=thing)
        update_sub = iotjobs.UpdateJobExecutionSubscriptionRequest(thing_name=thing, job_id="sdk-job")
        for subscribe, request, callback in (
                (jobs.subscribe_to_start_next_pending_job_execution_accepted, start_sub, started.put),
                (jobs.subscribe_to_start_next_pending_job_execution_rejected, start_sub, rejected.put),
                (jobs.subscribe_to_update_job_execution_accepted, update_sub, updated.put),
                (jobs.subscribe_to_update_job_execution_rejected, update_sub, rejected.put)):
            future, _ = subscribe(request=request, qos=qos, callback=callback)
            future.result(10)

        jobs.publish_start_next_pending_job_execution(
            iotjobs.StartNextPendingJobExecutionRequest(thing_name=thing, client_token="sdk-1"), qos).result(10)
        response = started.get(timeout=10)
        assert response.client_token == "sdk-1"
        execution = response.execution
        assert (execution.job_id, execution.thing_name, execution.status) == ("sdk-job", thing, "IN_PROGRESS")
        assert execution.job_document == {"op": "install", "version": "1.2.3"}

        jobs.publish_update_job_execution(iotjobs.UpdateJobExecutionRequest(
            thing_name=thing, job_id="sdk-job", status="IN_PROGRESS", status_details={"progress": "50%"},
            client_token="sdk-2"), qos).result(10)
        assert updated.get(timeout=10).client_token == "sdk-2"
        assert execution_status(c, "sdk-job", thing) == "IN_PROGRESS"
        jobs.publish_update_job_execution(iotjobs.UpdateJobExecutionRequest(
            thing_name=thing, job_id="sdk-job", status="SUCCEEDED", client_token="sdk-3"), qos).result(10)
        assert updated.get(timeout=10).client_token == "sdk-3"
        assert rejected.empty()

        done = c.describe_job_execution(jobId="sdk-job", thingName=thing)["execution"]
        assert (done["status"], done["statusDetails"]["detailsMap"]) == ("SUCCEEDED", {"progress": "50%"})
        wait_job(c, "sdk-job", "COMPLETED")
    finally:
        conn.disconnect().result(10)


def test_the_aws_cli_creates_a_job(node, tmp_path):
    if shutil.which("aws") is None:
        pytest.skip("the aws CLI is not installed")
    c = iot(node)
    arn = make_things(c, "cli-thing")[0]
    env = dict(os.environ, AWS_SHARED_CREDENTIALS_FILE=os.path.join(node.data_dir, "credentials"),
               AWS_DEFAULT_REGION="eu-west-1", AWS_CONFIG_FILE=str(tmp_path / "none"))
    out = subprocess.run(["aws", "iot", "create-job", "--job-id", "cli-job", "--targets", arn,
                          "--document", '{"op":"reboot"}', "--endpoint-url", f"http://{node.host}:{node.http_port}",
                          "--region", "eu-west-1"],
                         env=env, check=True, capture_output=True, text=True, timeout=60).stdout
    made = json.loads(out)
    assert (made["jobId"], made["jobArn"]) == ("cli-job", f"{ARN}:job/cli-job")
    job = c.describe_job(jobId="cli-job")["job"]
    assert job["targets"] == [arn]
    assert json.loads(c.get_job_document(jobId="cli-job")["document"]) == {"op": "reboot"}


def test_policies_scope_the_jobs_topics_to_the_connected_thing(node, tmp_path):
    """AWS's jobs policy example: a device may publish, subscribe and receive on its own
    thing's jobs topics only (`${iot:Connection.Thing.ThingName}`)."""
    import paho.mqtt.client as mqtt
    from test_iot_policies import ARN as POLICY_ARN, Device, allow, doc

    c = iot(node)
    own = "$aws/things/${iot:Connection.Thing.ThingName}/jobs/*"
    cert = c.create_keys_and_certificate(setAsActive=True)
    arns = make_things(c, "jp-1", "jp-2")
    c.attach_thing_principal(thingName="jp-1", principal=cert["certificateArn"])
    c.create_policy(policyName="jobs-own-thing", policyDocument=doc(
        allow("iot:Connect", f"{POLICY_ARN}:client/${{iot:Connection.Thing.ThingName}}"),
        allow("iot:Publish", f"{POLICY_ARN}:topic/{own}"),
        allow("iot:Receive", f"{POLICY_ARN}:topic/{own}"),
        allow("iot:Subscribe", f"{POLICY_ARN}:topicfilter/{own}")))
    c.attach_policy(policyName="jobs-own-thing", target=cert["certificateArn"])
    c.create_job(jobId="scoped", targets=arns, document=DOC)
    d = Device(node, cert, tmp_path, "jp-1", protocol=mqtt.MQTTv5)
    assert d.connected()
    assert d.subscribe("$aws/things/jp-1/jobs/#") == [1]
    assert d.subscribe("$aws/things/jp-2/jobs/#") == [0x87]
    d.c.publish("$aws/things/jp-1/jobs/start-next", json.dumps({"clientToken": "mine"}), qos=1)
    assert d.pubacks.get(timeout=5) == 0
    deadline = time.time() + 5
    while True:
        topic, payload = d.messages.get(timeout=max(0.1, deadline - time.time()))
        if topic == "$aws/things/jp-1/jobs/start-next/accepted":
            answer = json.loads(payload)
            break
    assert answer["clientToken"] == "mine" and answer["execution"]["status"] == "IN_PROGRESS"
    d.c.publish("$aws/things/jp-2/jobs/start-next", b"{}", qos=1)
    assert d.pubacks.get(timeout=5) == 0x87
    time.sleep(0.3)
    assert execution_status(c, "scoped", "jp-2") == "QUEUED", "another thing's execution was started"
    d.stop()
