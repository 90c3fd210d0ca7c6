"""The iot-data shadow routes with boto3 from PyPI, signed with the root key the node wrote on
its first start, and the MQTT messages an HTTP update causes."""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import botocore.exceptions
import pytest

from conftest import Client, aws_client, ferrite_bin, next_json_on


def iot_data(node, profile_file=None):
    return aws_client(node, "iot-data", profile_file)


def test_first_start_writes_a_credentials_file_and_prints_its_path(tmp_path):
    proc = subprocess.Popen([ferrite_bin(), "serve", "--data-dir", str(tmp_path), "--mqtt-addr", "127.0.0.1:0",
                             "--ws-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline().startswith("listening ")
        second = proc.stdout.readline().strip()
        assert second == f"wrote a root access key for the HTTP API to {tmp_path / 'credentials'}"
        text = (tmp_path / "credentials").read_text()
        assert text.startswith("[default]\naws_access_key_id = AKIA")
        assert oct((tmp_path / "credentials").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.terminate()
        proc.wait(10)


def test_update_get_list_and_delete_shadows_with_boto3(node):
    client = iot_data(node)
    device = Client(node, "lamp")
    device.subscribe("$aws/things/lamp/shadow/update/delta", qos=1)
    out = client.update_thing_shadow(thingName="lamp", payload=json.dumps({"state": {"desired": {"on": True}}}))
    accepted = json.loads(out["payload"].read())
    assert accepted["version"] == 1 and accepted["state"] == {"desired": {"on": True}}
    assert next_json_on(device, "$aws/things/lamp/shadow/update/delta")["state"] == {"on": True}

    got = json.loads(client.get_thing_shadow(thingName="lamp")["payload"].read())
    assert got["state"] == {"desired": {"on": True}, "delta": {"on": True}}

    for name in ("cfg", "alarm", "net"):
        client.update_thing_shadow(thingName="lamp", shadowName=name, payload=b'{"state":{"reported":{"x":1}}}')
    first = client.list_named_shadows_for_thing(thingName="lamp", pageSize=2)
    assert first["results"] == ["alarm", "cfg"]
    rest = client.list_named_shadows_for_thing(thingName="lamp", pageSize=2, nextToken=first["nextToken"])
    assert rest["results"] == ["net"] and "nextToken" not in rest

    deleted = json.loads(client.delete_thing_shadow(thingName="lamp", shadowName="cfg")["payload"].read())
    assert deleted["version"] == 1
    with pytest.raises(client.exceptions.ResourceNotFoundException) as e:
        client.get_thing_shadow(thingName="lamp", shadowName="cfg")
    assert e.value.response["Error"]["Message"] == "No shadow exists with name: 'cfg'"


def test_version_conflicts_and_bad_documents_map_to_aws_exceptions(node):
    client = iot_data(node)
    client.update_thing_shadow(thingName="fan", payload=b'{"state":{"reported":{"rpm":10}}}')
    with pytest.raises(client.exceptions.ConflictException):
        client.update_thing_shadow(thingName="fan", payload=b'{"state":{"reported":{"rpm":11}},"version":9}')
    with pytest.raises(client.exceptions.InvalidRequestException) as e:
        client.update_thing_shadow(thingName="fan", payload=b'{"nostate":1}')
    assert e.value.response["Error"]["Message"] == "Missing required node: state"
    with pytest.raises(client.exceptions.RequestEntityTooLargeException):
        client.update_thing_shadow(thingName="fan", payload=json.dumps({"state": {"reported": {"b": "x" * 9000}}}))


def test_unsigned_and_wrongly_signed_requests_are_refused_and_change_nothing(node, tmp_path):
    bad = tmp_path / "bad-credentials"
    bad.write_text("[default]\naws_access_key_id = AKIANOTAKEY\naws_secret_access_key = nope\n")
    client = iot_data(node, str(bad))
    with pytest.raises(botocore.exceptions.ClientError) as e:
        client.update_thing_shadow(thingName="door", payload=b'{"state":{"reported":{"open":true}}}')
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"
    good = iot_data(node)
    with pytest.raises(good.exceptions.ResourceNotFoundException):
        good.get_thing_shadow(thingName="door")
    req = urllib.request.Request(f"http://{node.host}:{node.http_port}/things/door/shadow", method="GET")
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 403
    assert e.value.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"


def test_keys_created_and_deleted_on_a_running_node_take_effect(node, tmp_path):
    out = subprocess.run([ferrite_bin(), "keys", "create", "--data-dir", node.data_dir, "--profile", "ops"],
                         capture_output=True, text=True, check=True).stdout
    key_id = out.split("aws_access_key_id = ")[1].split()[0]
    secret = out.split("aws_secret_access_key = ")[1].split()[0]
    listed = subprocess.run([ferrite_bin(), "keys", "list", "--data-dir", node.data_dir],
                            capture_output=True, text=True, check=True).stdout
    assert f"{key_id}\tops" in listed and secret not in listed
    profile = tmp_path / "ops"
    profile.write_text(f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")
    ops = iot_data(node, str(profile))
    ops.update_thing_shadow(thingName="pump", payload=b'{"state":{"reported":{"on":true}}}')
    subprocess.run([ferrite_bin(), "keys", "delete", key_id, "--data-dir", node.data_dir], check=True,
                   capture_output=True)
    time.sleep(0.05)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ops.get_thing_shadow(thingName="pump")
    assert e.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_publish_and_retained_messages_over_http(node):
    client = iot_data(node)
    sub = Client(node, "sub")
    sub.subscribe("plant/+/status", qos=1)
    client.publish(topic="plant/7/status", qos=1, retain=True, payload=b'{"ok":true}')
    m = sub.get()
    assert (m.topic, m.payload, m.qos) == ("plant/7/status", b'{"ok":true}', 1)
    client.publish(topic="plant/8/status", retain=True, payload=b"up")
    got = client.get_retained_message(topic="plant/7/status")
    assert (got["topic"], got["payload"], got["qos"]) == ("plant/7/status", b'{"ok":true}', 1)
    assert got["lastModifiedTime"] > 0
    first = client.list_retained_messages(maxResults=1)
    assert [t["topic"] for t in first["retainedTopics"]] == ["plant/7/status"]
    rest = client.list_retained_messages(maxResults=1, nextToken=first["nextToken"])
    assert [(t["topic"], t["payloadSize"]) for t in rest["retainedTopics"]] == [("plant/8/status", 2)]
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_retained_message(topic="plant/9/status")
    with pytest.raises(client.exceptions.InvalidRequestException):
        client.publish(topic="plant/+/status", payload=b"x")


def test_the_aws_cli_works_with_the_printed_credentials_file(node, tmp_path):
    env = dict(os.environ, AWS_SHARED_CREDENTIALS_FILE=os.path.join(node.data_dir, "credentials"),
               AWS_DEFAULT_REGION="local", AWS_CONFIG_FILE=str(tmp_path / "none"))
    endpoint = f"http://{node.host}:{node.http_port}"
    out = tmp_path / "out.json"
    subprocess.run(["aws", "iot-data", "update-thing-shadow", "--endpoint-url", endpoint, "--thing-name", "cli-lamp",
                    "--payload", '{"state":{"reported":{"on":true}}}', str(out)],
                   env=env, check=True, capture_output=True, timeout=60)
    assert json.loads(out.read_text())["version"] == 1
    subprocess.run(["aws", "iot-data", "get-thing-shadow", "--endpoint-url", endpoint, "--thing-name", "cli-lamp",
                    str(out)], env=env, check=True, capture_output=True, timeout=60)
    assert json.loads(out.read_text())["state"] == {"reported": {"on": True}}
