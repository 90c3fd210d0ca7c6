"""Hostile and broken clients: limits that hold for every client, before and after
authentication (docs/decisions.md: keep alive, SigV4, HTTP topics)."""

import pytest

from conftest import raw_connect, seconds_until_closed


def v311_connect(client_id: bytes, keep_alive: int) -> bytes:
    body = b"\x00\x04MQTT\x04\x02" + keep_alive.to_bytes(2, "big") + len(client_id).to_bytes(2, "big") + client_id
    return bytes([0x10, len(body)]) + body


@pytest.mark.parametrize("keep_alive", [0, 65535])
def test_v311_keep_alive_is_capped_like_aws(make_node, keep_alive):
    # AWS's 1200 s maximum lowered to 2 s so the test runs in seconds; a 3.1.1 client that
    # asks for no keep-alive, or for 18 hours, is still timed out after 1.5x the cap.
    node = make_node(config_text="[limits]\nmax_keep_alive_secs = 2\nmin_keep_alive_secs = 1\n")
    s = raw_connect(node, v311_connect(b"silent-%d" % keep_alive, keep_alive))
    assert s.recv(4) == b"\x20\x02\x00\x00"
    assert 2.5 <= seconds_until_closed(s, 8) <= 5.0


def test_http_publish_validates_topics_as_mqtt_does(node):
    from botocore.exceptions import ClientError

    from conftest import Client, aws_client

    watcher = Client(node, "nul-watcher")
    watcher.subscribe("#", qos=1)
    data = aws_client(node, "iot-data")
    with pytest.raises(ClientError) as refused:
        data.publish(topic="plant/\x00/status", qos=1, retain=True, payload=b"x")
    assert refused.value.response["Error"]["Code"] == "InvalidRequestException"
    assert data.list_retained_messages()["retainedTopics"] == []
    watcher.expect_none()


def test_deep_arrays_in_a_shadow_are_refused_and_what_was_acknowledged_survives(node):
    import json

    from botocore.exceptions import ClientError

    from conftest import aws_client

    data = aws_client(node, "iot-data")
    data.update_thing_shadow(thingName="deep", payload=json.dumps({"state": {"desired": {"ok": [[1, 2]]}}}))
    deep = 1
    for _ in range(124):
        deep = [deep]
    with pytest.raises(ClientError) as refused:
        data.update_thing_shadow(thingName="deep", payload=json.dumps({"state": {"desired": {"a": deep}}}))
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "levels of nesting" in refused.value.response["Error"]["Message"]
    node.restart()
    data = aws_client(node, "iot-data")
    doc = json.loads(data.get_thing_shadow(thingName="deep")["payload"].read())
    assert doc["version"] == 1 and doc["state"]["desired"] == {"ok": [[1, 2]]}
    assert node.metric("stored_records_undecodable_total") == 0
