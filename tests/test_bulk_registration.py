"""Bulk registration (StartThingRegistrationTask): a JSON-lines input file of template
parameters (a local path, or an http URL, where AWS reads an S3 object), one thing per line,
the task's progress and counts, its RESULTS and ERRORS reports (JSON lines behind plain
URLs), listing and stopping tasks."""

import json
import os
import threading
import time
import urllib.request
from datetime import datetime
from functools import partial
from http.server import HTTPServer, SimpleHTTPRequestHandler

import pytest

from conftest import aws_client

ROLE = "arn:aws:iam::123456789012:role/Bulk"
TEMPLATE = json.dumps({
    "Parameters": {"ThingName": {"Type": "String"}, "SerialNumber": {"Type": "String"}},
    "Resources": {"thing": {"Type": "AWS::IoT::Thing", "Properties": {
        "ThingName": {"Ref": "ThingName"}, "AttributePayload": {"serial": {"Ref": "SerialNumber"}}}}}})


def iot(node):
    return aws_client(node, "iot")


def write_input(path, count, bad_after=None):
    """Writes `count` lines {"ThingName": "bulk-N", "SerialNumber": "N"} (N from 1), with three
    bad lines after the `bad_after`-th: not JSON, no ThingName, a ThingName AWS refuses.
    Returns the 1-based line numbers of the bad lines."""
    bad = ['{"ThingName": "bulk-broken", ', '{"SerialNumber": "no-name"}',
           '{"ThingName": "has a space", "SerialNumber": "x"}']
    bad_lines = []
    with open(path, "w") as f:
        line = 0
        for n in range(1, count + 1):
            f.write(json.dumps({"ThingName": f"bulk-{n}", "SerialNumber": str(n)}) + "\n")
            line += 1
            if n == bad_after:
                for text in bad:
                    f.write(text + "\n")
                    line += 1
                    bad_lines.append(line)
    return bad_lines


def start(c, key, bucket="local"):
    return c.start_thing_registration_task(templateBody=TEMPLATE, inputFileBucket=bucket, inputFileKey=key,
                                           roleArn=ROLE)["taskId"]


def wait_status(c, task, statuses, timeout):
    """DescribeThingRegistrationTask, polled until its status is one of `statuses`."""
    deadline = time.time() + timeout
    while True:
        desc = c.describe_thing_registration_task(taskId=task)
        if desc["status"] in statuses:
            return desc
        assert time.time() < deadline, f"task {task} still {desc['status']} after {timeout}s: {desc}"
        time.sleep(0.5)


def report_lines(c, task, kind):
    """Every JSON line of the task's `kind` report, fetched from its links with a plain GET."""
    links, token = [], None
    while True:
        kw = {"nextToken": token} if token else {}
        page = c.list_thing_registration_task_reports(taskId=task, reportType=kind, **kw)
        assert page["reportType"] == kind
        links += page.get("resourceLinks", [])
        token = page.get("nextToken")
        if not token:
            break
    lines = []
    for link in links:
        with urllib.request.urlopen(link, timeout=30) as r:
            lines += [json.loads(x) for x in r.read().decode().splitlines() if x.strip()]
    return lines


def thing_count(c):
    pages = c.get_paginator("list_things").paginate(PaginationConfig={"PageSize": 250})
    return sum(len(p["things"]) for p in pages)


def test_a_bulk_task_registers_ten_thousand_things_and_reports_the_bad_lines(node, tmp_path):
    """10,000 good lines and 3 bad ones: the task completes with 10,000 successes and 3
    failures, its RESULTS report has a line per thing, its ERRORS report names the bad lines
    by their 1-based line number, and the things exist with their attribute."""
    c = iot(node)
    path = str(tmp_path / "things.jsonl")
    bad_lines = write_input(path, 10_000, bad_after=5_000)
    task = start(c, path)
    desc = wait_status(c, task, {"Completed", "Failed", "Cancelled"}, timeout=180)
    assert desc["status"] == "Completed", desc
    assert (desc["successCount"], desc["failureCount"], desc["percentageProgress"]) == (10_000, 3, 100)
    assert (desc["taskId"], desc["inputFileBucket"], desc["inputFileKey"], desc["roleArn"]) == \
        (task, "local", path, ROLE)
    assert json.loads(desc["templateBody"]) == json.loads(TEMPLATE)
    assert isinstance(desc["creationDate"], datetime)
    assert task in c.list_thing_registration_tasks(status="Completed")["taskIds"]
    assert task not in c.list_thing_registration_tasks(status="InProgress")["taskIds"]

    results = report_lines(c, task, "RESULTS")
    assert len(results) == 10_000
    assert all(set(r) >= {"referenceId", "response"} and isinstance(r["response"], dict) for r in results)
    ids = {r["referenceId"] for r in results}
    assert len(ids) == 10_000 and not ids & {str(n) for n in bad_lines}
    errors = report_lines(c, task, "ERRORS")
    assert sorted(e["referenceId"] for e in errors) == sorted(str(n) for n in bad_lines), errors
    assert all(isinstance(e["errorMessage"], str) and e["errorMessage"] for e in errors)

    for n in (1, 5_000, 5_001, 10_000):
        assert c.describe_thing(thingName=f"bulk-{n}")["attributes"] == {"serial": str(n)}
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.describe_thing(thingName="bulk-broken")
    assert thing_count(c) == 10_000


@pytest.fixture
def file_server(tmp_path):
    """Serves tmp_path over http on 127.0.0.1: its base URL."""
    server = HTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_the_input_file_may_be_an_http_url(node, tmp_path, file_server):
    """An http URL as the input file key: the node fetches the lines and registers them."""
    c = iot(node)
    write_input(tmp_path / "small.jsonl", 3)
    url = f"{file_server}/small.jsonl"
    task = start(c, url)
    desc = wait_status(c, task, {"Completed", "Failed", "Cancelled"}, timeout=30)
    assert (desc["status"], desc["successCount"], desc["failureCount"]) == ("Completed", 3, 0), desc
    assert desc["inputFileKey"] == url
    assert [c.describe_thing(thingName=f"bulk-{n}")["attributes"]["serial"] for n in (1, 2, 3)] == ["1", "2", "3"]


def test_a_running_task_can_be_stopped(node, tmp_path):
    """StopThingRegistrationTask on a large running task: it ends Cancelled, short of the end."""
    c = iot(node)
    path = str(tmp_path / "big.jsonl")
    write_input(path, 50_000)
    task = start(c, path)
    c.stop_thing_registration_task(taskId=task)
    desc = wait_status(c, task, {"Cancelled", "Completed", "Failed"}, timeout=30)
    assert desc["status"] == "Cancelled", desc
    assert desc["successCount"] < 50_000
    assert task in c.list_thing_registration_tasks(status="Cancelled")["taskIds"]
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.stop_thing_registration_task(taskId="no-such-task")


def test_an_unreadable_input_fails_the_task_with_a_reason(node, tmp_path):
    """A missing input file: the start is refused (InvalidRequestException) or the task ends
    Failed with a message."""
    c = iot(node)
    missing = str(tmp_path / "missing" / "things.jsonl")
    assert not os.path.exists(missing)
    try:
        task = start(c, missing)
    except c.exceptions.InvalidRequestException as e:
        assert e.response["Error"]["Message"]
        return
    desc = wait_status(c, task, {"Completed", "Failed", "Cancelled"}, timeout=30)
    assert desc["status"] == "Failed", desc
    assert desc.get("message"), desc
    assert c.list_things()["things"] == []
