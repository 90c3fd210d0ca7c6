"""Things in the registry through the `iot` control-plane API, with boto3 and the AWS CLI,
signed with the key the node wrote."""

import json
import os
import subprocess
import time

import pytest

from conftest import aws_client


def iot(node):
    return aws_client(node, "iot")


def test_create_describe_update_list_and_delete_things(node):
    c = iot(node)
    made = c.create_thing(thingName="lamp-1", attributePayload={"attributes": {"room": "kitchen"}})
    assert made["thingArn"] == "arn:aws:iot:us-east-1:000000000000:thing/lamp-1"
    again = c.create_thing(thingName="lamp-1", attributePayload={"attributes": {"room": "kitchen"}})
    assert (again["thingId"], again["thingArn"]) == (made["thingId"], made["thingArn"]), "same configuration: same thing"
    with pytest.raises(c.exceptions.ResourceAlreadyExistsException):
        c.create_thing(thingName="lamp-1", attributePayload={"attributes": {"room": "hall"}})
    d = c.describe_thing(thingName="lamp-1")
    assert (d["thingName"], d["thingId"], d["version"], d["attributes"], d["defaultClientId"]) == \
        ("lamp-1", made["thingId"], 1, {"room": "kitchen"}, "lamp-1")

    c.update_thing(thingName="lamp-1", attributePayload={"attributes": {"floor": "2"}, "merge": True},
                   expectedVersion=1)
    assert c.describe_thing(thingName="lamp-1")["attributes"] == {"room": "kitchen", "floor": "2"}
    with pytest.raises(c.exceptions.VersionConflictException):
        c.update_thing(thingName="lamp-1", attributePayload={"attributes": {}}, expectedVersion=1)

    for n in ("fan-1", "fan-2"):
        c.create_thing(thingName=n, attributePayload={"attributes": {"room": "hall"}})
    page = c.list_things(maxResults=2)
    assert [t["thingName"] for t in page["things"]] == ["fan-1", "fan-2"]
    rest = c.list_things(maxResults=2, nextToken=page["nextToken"])
    assert [t["thingName"] for t in rest["things"]] == ["lamp-1"]
    hall = c.list_things(attributeName="room", attributeValue="hall")
    assert [t["thingName"] for t in hall["things"]] == ["fan-1", "fan-2"]

    c.delete_thing(thingName="fan-2")
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.describe_thing(thingName="fan-2")
    with pytest.raises(c.exceptions.InvalidRequestException):
        c.create_thing(thingName="bad name")


def test_things_survive_a_restart_and_the_cli_lists_them(node, tmp_path):
    c = iot(node)
    c.create_thing(thingName="pump-9")
    node.restart(kill=True)
    env = dict(os.environ, AWS_SHARED_CREDENTIALS_FILE=os.path.join(node.data_dir, "credentials"),
               AWS_DEFAULT_REGION="local", AWS_CONFIG_FILE=str(tmp_path / "none"))
    out = subprocess.run(["aws", "iot", "list-things", "--endpoint-url", f"http://{node.host}:{node.http_port}"],
                         env=env, check=True, capture_output=True, text=True, timeout=60).stdout
    assert [t["thingName"] for t in json.loads(out)["things"]] == ["pump-9"]
    endpoint = subprocess.run(["aws", "iot", "describe-endpoint", "--endpoint-url",
                               f"http://{node.host}:{node.http_port}"],
                              env=env, check=True, capture_output=True, text=True, timeout=60).stdout
    assert json.loads(endpoint)["endpointAddress"] == node.host


def test_thing_types_take_things_until_deprecated_and_delete_only_when_unused(make_node):
    # AWS makes a deprecated type wait five minutes before it can be deleted; this node waits 2 s.
    node = make_node(config_text="[limits]\nthing_type_deletion_wait_secs = 2\n")
    c = iot(node)
    made = c.create_thing_type(thingTypeName="sensor", thingTypeProperties={
        "thingTypeDescription": "temperature sensors", "searchableAttributes": ["room"]})
    assert made["thingTypeArn"] == "arn:aws:iot:us-east-1:000000000000:thingtype/sensor"
    with pytest.raises(c.exceptions.ResourceAlreadyExistsException):
        c.create_thing_type(thingTypeName="sensor")
    described = c.describe_thing_type(thingTypeName="sensor")
    assert described["thingTypeProperties"]["searchableAttributes"] == ["room"]
    assert described["thingTypeMetadata"]["deprecated"] is False

    attributes = {f"a{i}": str(i) for i in range(10)}
    c.create_thing(thingName="t-1", thingTypeName="sensor", attributePayload={"attributes": attributes})
    assert c.describe_thing(thingName="t-1")["thingTypeName"] == "sensor"
    with pytest.raises(c.exceptions.InvalidRequestException):
        c.create_thing(thingName="t-2", attributePayload={"attributes": attributes})
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.create_thing(thingName="t-3", thingTypeName="robot")

    c.deprecate_thing_type(thingTypeName="sensor")
    assert c.describe_thing_type(thingTypeName="sensor")["thingTypeMetadata"]["deprecated"] is True
    with pytest.raises(c.exceptions.InvalidRequestException):
        c.create_thing(thingName="t-4", thingTypeName="sensor")
    with pytest.raises(c.exceptions.InvalidRequestException):
        c.delete_thing_type(thingTypeName="sensor")
    c.delete_thing(thingName="t-1")
    with pytest.raises(c.exceptions.InvalidRequestException) as e:
        c.delete_thing_type(thingTypeName="sensor")
    assert "deprecated less than 2 seconds ago" in e.value.response["Error"]["Message"]
    time.sleep(2.1)
    c.delete_thing_type(thingTypeName="sensor")
    assert c.list_thing_types()["thingTypes"] == []


def test_thing_groups_nest_hold_things_and_survive_a_restart(node):
    c = iot(node)
    root = c.create_thing_group(thingGroupName="site", thingGroupProperties={
        "thingGroupDescription": "the plant", "attributePayload": {"attributes": {"city": "Lyon"}}})
    assert root["thingGroupArn"] == "arn:aws:iot:us-east-1:000000000000:thinggroup/site"
    c.create_thing_group(thingGroupName="hall-a", parentGroupName="site")
    c.create_thing_group(thingGroupName="line-1", parentGroupName="hall-a")
    d = c.describe_thing_group(thingGroupName="line-1")
    assert d["thingGroupMetadata"]["parentGroupName"] == "hall-a"
    assert [g["groupName"] for g in d["thingGroupMetadata"]["rootToParentThingGroups"]] == ["site", "hall-a"]
    assert c.describe_thing_group(thingGroupName="site")["thingGroupProperties"]["attributePayload"]["attributes"] \
        == {"city": "Lyon"}

    parent = "line-1"
    for i in range(2, 6):
        c.create_thing_group(thingGroupName=f"deep-{i}", parentGroupName=parent)
        parent = f"deep-{i}"
    with pytest.raises(c.exceptions.InvalidRequestException):
        c.create_thing_group(thingGroupName="too-deep", parentGroupName=parent)

    c.create_thing(thingName="robot-1")
    c.create_thing(thingName="robot-2")
    c.add_thing_to_thing_group(thingGroupName="line-1", thingName="robot-1")
    c.add_thing_to_thing_group(thingGroupName="hall-a", thingName="robot-2")
    assert c.list_things_in_thing_group(thingGroupName="hall-a")["things"] == ["robot-2"]
    assert c.list_things_in_thing_group(thingGroupName="hall-a", recursive=True)["things"] == ["robot-1", "robot-2"]
    assert [g["groupName"] for g in c.list_thing_groups_for_thing(thingName="robot-1")["thingGroups"]] == ["line-1"]
    assert [g["groupName"] for g in c.list_thing_groups(parentGroup="site")["thingGroups"]] == ["hall-a"]
    with pytest.raises(c.exceptions.InvalidRequestException):
        c.delete_thing_group(thingGroupName="hall-a")

    node.restart(kill=True)
    c = iot(node)
    assert c.list_things_in_thing_group(thingGroupName="line-1")["things"] == ["robot-1"]
    c.remove_thing_from_thing_group(thingGroupName="line-1", thingName="robot-1")
    assert c.list_things_in_thing_group(thingGroupName="line-1")["things"] == []
    c.delete_thing(thingName="robot-2")
    assert c.list_things_in_thing_group(thingGroupName="hall-a")["things"] == []
    with pytest.raises(c.exceptions.ResourceNotFoundException):
        c.add_thing_to_thing_group(thingGroupName="nope", thingName="robot-1")


def test_update_thing_group_merges_attributes_and_checks_the_version(node):
    c = iot(node)
    c.create_thing_group(thingGroupName="fleet", thingGroupProperties={"attributePayload": {"attributes": {"a": "1"}}})
    out = c.update_thing_group(thingGroupName="fleet", expectedVersion=1, thingGroupProperties={
        "thingGroupDescription": "all trucks", "attributePayload": {"attributes": {"b": "2"}, "merge": True}})
    assert out["version"] == 2
    d = c.describe_thing_group(thingGroupName="fleet")
    assert d["thingGroupProperties"]["attributePayload"]["attributes"] == {"a": "1", "b": "2"}
    assert d["thingGroupProperties"]["thingGroupDescription"] == "all trucks"
    with pytest.raises(c.exceptions.VersionConflictException):
        c.update_thing_group(thingGroupName="fleet", expectedVersion=1, thingGroupProperties={})
