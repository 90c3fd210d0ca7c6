"""AWS IoT's v2 logging (Set/GetV2LoggingOptions, Set/List/DeleteV2LoggingLevel) with its
events written as AWS-shaped JSON lines to DATA_DIR/logs/aws-iot.log."""

import glob
import json
import os
import shutil
import subprocess
import time

import botocore.exceptions
import pytest

from conftest import Client, aws_client
from test_tls_certificates import tls_client

ARN = "arn:aws:iot:us-east-1:000000000000"
ROLE = "arn:aws:iam::000000000000:role/IoTLogging"
COMMON_KEYS = {"timestamp", "logLevel", "traceId", "accountId", "status", "eventType", "protocol", "clientId",
               "sourceIp", "sourcePort"}


# ---------------------------------------------------------------------------------------------
# Helpers


def iot(node):
    return aws_client(node, "iot")


def code_of(error):
    return error.response["Error"]["Code"]


def log_options(c, level="INFO", disable=False):
    c.set_v2_logging_options(roleArn=ROLE, defaultLogLevel=level, disableAllLogs=disable)


def log_events(node):
    """Every event in DATA_DIR/logs/aws-iot.log and its rotated files (a line cut short by a
    write in progress is skipped)."""
    out = []
    for path in glob.glob(os.path.join(node.data_dir, "logs", "aws-iot.log*")):
        with open(path, errors="replace") as f:
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    out.append(event)
    return out


def events_of(node, client_id):
    return [e for e in log_events(node) if e.get("clientId") == client_id]


def wait_events(node, client_id, event_types, status="Success", timeout=3.0):
    """The events of `client_id`, once one of each of `event_types` with `status` is there."""
    deadline = time.time() + timeout
    while True:
        got = events_of(node, client_id)
        seen = {e.get("eventType") for e in got if e.get("status") == status}
        if set(event_types) <= seen:
            return got
        assert time.time() < deadline, \
            f"{client_id}: {sorted(set(event_types) - seen)} ({status}) not logged after {timeout}s; got {got}"
        time.sleep(0.05)


def chat(node, client_id, topic):
    """A client that connects, subscribes to `topic`, publishes to it and receives its message;
    left connected (so its Disconnect comes after the test's checks)."""
    cl = Client(node, client_id)
    assert cl.rc == 0
    cl.subscribe(topic, qos=1)
    cl.publish(topic, b"hello", qos=1)
    m = cl.get(timeout=5)
    assert (m.topic, m.payload) == (topic, b"hello")
    return cl


def refused_client(node, tmp_path, client_id):
    """A TLS client presenting a certificate the node issued and then deleted (not registered):
    its CONNECT is refused."""
    c = iot(node)
    cert = c.create_keys_and_certificate(setAsActive=False)
    c.delete_certificate(certificateId=cert["certificateId"])
    cl, connack, _ = tls_client(node, cert["certificatePem"], cert["keyPair"]["PrivateKey"], tmp_path, client_id)
    try:
        assert connack.get(timeout=10) != 0
    finally:
        cl.loop_stop()


# ---------------------------------------------------------------------------------------------
# Logging configuration


def test_logging_options_and_levels_are_set_listed_and_deleted(node):
    """SetV2LoggingOptions is read back by GetV2LoggingOptions; SetV2LoggingLevel entries per
    target are listed (filtered by target type, in pages) and deleted one by one; an unknown
    target type or log level is an InvalidRequestException."""
    c = iot(node)
    log_options(c, "INFO")
    got = c.get_v2_logging_options()
    assert (got["roleArn"], got["defaultLogLevel"], got["disableAllLogs"]) == (ROLE, "INFO", False)
    log_options(c, "ERROR", disable=True)
    got = c.get_v2_logging_options()
    assert (got["defaultLogLevel"], got["disableAllLogs"]) == ("ERROR", True)

    c.create_thing_group(thingGroupName="log-group")
    principal = "a" * 64
    levels = {("CLIENT_ID", "a"): "DEBUG", ("CLIENT_ID", "b"): "WARN", ("THING_GROUP", "log-group"): "ERROR",
              ("SOURCE_IP", "10.0.0.1"): "INFO", ("PRINCIPAL_ID", principal): "DISABLED"}
    for (kind, name), level in levels.items():
        c.set_v2_logging_level(logTarget={"targetType": kind, "targetName": name}, logLevel=level)

    def listed(**kw):
        out, token = {}, None
        while True:
            args = dict(kw)
            if token:
                args["nextToken"] = token
            page = c.list_v2_logging_levels(**args)
            for entry in page["logTargetConfigurations"]:
                key = (entry["logTarget"]["targetType"], entry["logTarget"].get("targetName"))
                assert key not in out, f"{key} listed twice"
                out[key] = entry["logLevel"]
            token = page.get("nextToken")
            if not token:
                return out

    everything = listed()
    assert {k: v for k, v in everything.items() if k[0] != "DEFAULT"} == levels
    assert {k: v for k, v in listed(maxResults=2).items() if k[0] != "DEFAULT"} == levels
    assert len(c.list_v2_logging_levels(maxResults=2)["logTargetConfigurations"]) <= 2
    assert listed(targetType="CLIENT_ID") == {("CLIENT_ID", "a"): "DEBUG", ("CLIENT_ID", "b"): "WARN"}

    c.set_v2_logging_level(logTarget={"targetType": "CLIENT_ID", "targetName": "a"}, logLevel="ERROR")
    assert listed(targetType="CLIENT_ID")[("CLIENT_ID", "a")] == "ERROR"
    c.delete_v2_logging_level(targetType="CLIENT_ID", targetName="a")
    assert listed(targetType="CLIENT_ID") == {("CLIENT_ID", "b"): "WARN"}
    c.delete_v2_logging_level(targetType="THING_GROUP", targetName="log-group")
    assert ("THING_GROUP", "log-group") not in listed()

    for target, level in (({"targetType": "BOGUS", "targetName": "x"}, "INFO"),
                          ({"targetType": "CLIENT_ID", "targetName": "x"}, "LOUD")):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.set_v2_logging_level(logTarget=target, logLevel=level)
        assert code_of(e.value) == "InvalidRequestException", (target, level)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        log_options(c, "CHATTY")
    assert code_of(e.value) == "InvalidRequestException"


# ---------------------------------------------------------------------------------------------
# Log events


def test_info_logs_connect_subscribe_and_publish_events_in_aws_shape(node):
    """With the default level INFO a client's CONNECT, SUBSCRIBE, its PUBLISH and the delivery
    back to it are logged as Connect, Subscribe, Publish-In and Publish-Out events with AWS's
    keys, status Success, its client id, topic, source address and port."""
    log_options(iot(node), "INFO")
    cl = chat(node, "chatty", "log/chatty")
    try:
        port = cl.c.socket().getsockname()[1]
        events = wait_events(node, "chatty", ["Connect", "Subscribe", "Publish-In", "Publish-Out"])
        for e in events:
            assert COMMON_KEYS <= set(e), f"missing {COMMON_KEYS - set(e)} in {e}"
            assert (e["accountId"], e["protocol"], e["sourceIp"]) == ("000000000000", "MQTT", "127.0.0.1"), e
            assert int(e["sourcePort"]) == port, e
            assert e["traceId"], e
        by_type = {e["eventType"]: e for e in events if e["status"] == "Success"}
        assert by_type["Connect"]["logLevel"] == "INFO"
        for kind in ("Subscribe", "Publish-In", "Publish-Out"):
            assert by_type[kind]["topicName"] == "log/chatty", by_type[kind]
            assert by_type[kind]["logLevel"] == "INFO"
    finally:
        cl.close()
    wait_events(node, "chatty", ["Disconnect"])


def test_a_refused_connection_is_a_connect_failure_at_error_level(node, tmp_path):
    """A CONNECT refused for an unregistered certificate is logged as a Connect event with
    status Failure at level ERROR, with its client id and a reason."""
    log_options(iot(node), "INFO")
    refused_client(node, tmp_path, "stranger")
    events = wait_events(node, "stranger", ["Connect"], status="Failure")
    failure = next(e for e in events if e["eventType"] == "Connect" and e["status"] == "Failure")
    assert COMMON_KEYS <= set(failure), f"missing {COMMON_KEYS - set(failure)}"
    assert failure["logLevel"] == "ERROR"
    assert failure.get("reason") or failure.get("details"), failure
    assert not [e for e in events if e["status"] == "Success"]


def test_the_most_specific_log_level_wins(node, tmp_path):
    """With the default level ERROR successes are not logged (failures are); a CLIENT_ID target
    at INFO logs that client's successes while another client's stay unlogged."""
    c = iot(node)
    log_options(c, "ERROR")
    quiet = chat(node, "quiet-1", "log/quiet-1")
    refused_client(node, tmp_path, "stranger-1")
    wait_events(node, "stranger-1", ["Connect"], status="Failure")
    assert events_of(node, "quiet-1") == []

    c.set_v2_logging_level(logTarget={"targetType": "CLIENT_ID", "targetName": "noisy"}, logLevel="INFO")
    other = chat(node, "quiet-2", "log/quiet-2")
    noisy = chat(node, "noisy", "log/noisy")
    try:
        wait_events(node, "noisy", ["Connect", "Subscribe", "Publish-In"])
        assert events_of(node, "quiet-2") == []
        assert events_of(node, "quiet-1") == []
    finally:
        for cl in (quiet, other, noisy):
            cl.close()


def test_a_disabled_client_id_logs_nothing(node):
    """A CLIENT_ID target at DISABLED silences that client even though the default is INFO."""
    c = iot(node)
    log_options(c, "INFO")
    c.set_v2_logging_level(logTarget={"targetType": "CLIENT_ID", "targetName": "mute"}, logLevel="DISABLED")
    mute = chat(node, "mute", "log/mute")
    loud = chat(node, "loud", "log/loud")
    try:
        wait_events(node, "loud", ["Connect", "Subscribe", "Publish-In"])
        assert events_of(node, "mute") == []
    finally:
        mute.close()
        loud.close()


def test_disable_all_logs_logs_nothing_at_all(node):
    """With disableAllLogs nothing is logged; logging comes back when it is cleared."""
    c = iot(node)
    log_options(c, "INFO", disable=True)
    c.set_v2_logging_level(logTarget={"targetType": "CLIENT_ID", "targetName": "anyone"}, logLevel="DEBUG")
    before = len(log_events(node))
    anyone = chat(node, "anyone", "log/anyone")
    log_options(c, "INFO", disable=False)
    after = chat(node, "after", "log/after")
    try:
        wait_events(node, "after", ["Connect", "Subscribe", "Publish-In"])
        assert events_of(node, "anyone") == []
        others = [e for e in log_events(node) if e.get("clientId") != "after"]
        assert len(others) == before, f"logged while disabled: {others}"
    finally:
        anyone.close()
        after.close()


# ---------------------------------------------------------------------------------------------
# Tags


def test_rule_matches_and_action_outcomes_are_logged(node):
    """A rule that matches logs RuleMatch, and each of its actions RuleExecution (Success, or
    Failure at ERROR with the reason), with the rule's name, the topic, the publishing client
    and the rule run's trace id."""
    c = iot(node)
    log_options(c, "INFO")
    for name, action in [("relay", {"republish": {"roleArn": ROLE, "topic": "relayed/out"}}),
                         ("broken", {"http": {"url": "http://127.0.0.1:9/nothing-listens"}})]:
        c.create_topic_rule(ruleName=name, topicRulePayload={
            "sql": "SELECT * FROM 'rules/in'", "actions": [action], "awsIotSqlVersion": "2016-03-23"})
    cl = Client(node, "rule-source")
    cl.publish("rules/in", b'{"t": 1}', qos=1)
    deadline = time.time() + 30
    while True:
        events = [e for e in log_events(node) if e.get("ruleName") in ("relay", "broken")]
        matched = {e["ruleName"] for e in events if e["eventType"] == "RuleMatch" and e["status"] == "Success"}
        done = {(e["ruleName"], e["status"]) for e in events if e["eventType"] == "RuleExecution"}
        if matched == {"relay", "broken"} and {("relay", "Success"), ("broken", "Failure")} <= done:
            break
        assert time.time() < deadline, f"rule events missing: {events}"
        time.sleep(0.1)
    cl.close()
    for e in events:
        assert e["clientId"] == "rule-source" and e["topicName"] == "rules/in", e
        assert e["traceId"] and e["accountId"] == "000000000000", e
    failure = next(e for e in events if e["eventType"] == "RuleExecution" and e["status"] == "Failure")
    assert failure["logLevel"] == "ERROR" and "127.0.0.1:9" in failure["details"], failure


def test_events_are_written_to_standard_output_too(node):
    """The same JSON events reach the node's standard output, one per line, after the
    listening line."""
    import select
    log_options(iot(node), "INFO")
    cl = chat(node, "stdout-client", "stdout/topic")
    deadline, seen, pending = time.time() + 5, set(), b""
    fd = node.proc.stdout.fileno()
    while time.time() < deadline and not {"Connect", "Subscribe", "Publish-In"} <= seen:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        pending += os.read(fd, 65536)
        *lines, pending = pending.split(b"\n")
        for line in lines:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("clientId") == "stdout-client":
                seen.add(event.get("eventType"))
    cl.close()
    assert {"Connect", "Subscribe", "Publish-In"} <= seen, seen
