"""Dynamic thing groups (membership by a fleet-index query, kept up to date as things change;
their policies and continuous jobs follow the members), UpdateThingGroupsForThing, and fleet
metrics exported on the node's Prometheus `/metrics`."""

import json
import re
import time

import botocore.exceptions
import paho.mqtt.client as mqtt
import pytest

from test_jobs import poll as jobs_poll
from conftest import aws_client
from test_iot_policies import Device

DOC = json.dumps({"op": "update"})
QUERY_VERSION = "2017-09-30"


# ---------------------------------------------------------------------------------------------
# Helpers


def iot(node):
    return aws_client(node, "iot")


def code_of(error):
    return error.response["Error"]["Code"]


def poll(fn, want, timeout=2.0):
    """test_jobs.poll, within 2 s unless told otherwise."""
    return jobs_poll(fn, want, timeout)


def enable(c, mode="REGISTRY", custom=None):
    config = {"thingIndexingMode": mode}
    if custom:
        config["customFields"] = custom
    c.update_indexing_configuration(thingIndexingConfiguration=config)


def things_with(c, firmware):
    """Creates things name -> firmware attribute."""
    for name, fw in firmware.items():
        c.create_thing(thingName=name, attributePayload={"attributes": {"firmware": fw}})


def set_firmware(c, thing, fw):
    c.update_thing(thingName=thing, attributePayload={"attributes": {"firmware": fw}, "merge": True})


def members(c, group):
    """The sorted names ListThingsInThingGroup gives (all pages); None while the group is unknown."""
    out, token = [], None
    try:
        while True:
            kw = dict(thingGroupName=group, maxResults=100)
            if token:
                kw["nextToken"] = token
            page = c.list_things_in_thing_group(**kw)
            out += page["things"]
            token = page.get("nextToken")
            if not token:
                return sorted(out)
    except botocore.exceptions.ClientError as e:
        if code_of(e) == "ResourceNotFoundException":
            return None
        raise


def groups_of(c, thing):
    return sorted(g["groupName"] for g in c.list_thing_groups_for_thing(thingName=thing)["thingGroups"])


# ---------------------------------------------------------------------------------------------
# Dynamic thing groups


def test_a_dynamic_group_needs_thing_indexing(node):
    """CreateDynamicThingGroup is refused while thing indexing is OFF (as AWS does), and no group
    is left behind."""
    c = iot(node)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.create_dynamic_thing_group(thingGroupName="early", queryString="attributes.firmware:1.0")
    assert code_of(e.value) in ("InvalidRequestException", "ResourceNotFoundException")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.describe_thing_group(thingGroupName="early")
    assert code_of(e.value) == "ResourceNotFoundException"


def test_a_dynamic_group_holds_exactly_the_things_its_query_matches(node):
    """A dynamic group's members are the things its query matches, within 2 s of its creation
    and of each change that moves a thing in or out; DescribeThingGroup shows the query and
    status ACTIVE; ListThingGroupsForThing names the dynamic group."""
    c = iot(node)
    enable(c)
    things_with(c, {"dg-1": "1.0", "dg-2": "1.0", "dg-3": "2.0", "dg-4": "2.0"})
    made = c.create_dynamic_thing_group(thingGroupName="fw1", queryString="attributes.firmware:1.0",
                                        thingGroupProperties={"thingGroupDescription": "firmware 1.0"})
    assert made["thingGroupName"] == "fw1"
    assert made["thingGroupArn"].endswith(":thinggroup/fw1")
    assert made["thingGroupId"]
    assert (made["indexName"], made["queryString"], made["queryVersion"]) == \
        ("AWS_Things", "attributes.firmware:1.0", QUERY_VERSION)
    poll(lambda: members(c, "fw1"), ["dg-1", "dg-2"])

    desc = c.describe_thing_group(thingGroupName="fw1")
    assert (desc["thingGroupArn"], desc["queryString"], desc["indexName"], desc["queryVersion"]) == \
        (made["thingGroupArn"], "attributes.firmware:1.0", "AWS_Things", QUERY_VERSION)
    poll(lambda: c.describe_thing_group(thingGroupName="fw1")["status"], "ACTIVE")
    assert desc["thingGroupProperties"]["thingGroupDescription"] == "firmware 1.0"

    set_firmware(c, "dg-3", "1.0")
    poll(lambda: members(c, "fw1"), ["dg-1", "dg-2", "dg-3"])
    set_firmware(c, "dg-1", "2.0")
    poll(lambda: members(c, "fw1"), ["dg-2", "dg-3"])
    c.create_thing(thingName="dg-5", attributePayload={"attributes": {"firmware": "1.0"}})
    poll(lambda: members(c, "fw1"), ["dg-2", "dg-3", "dg-5"])
    c.delete_thing(thingName="dg-5")
    poll(lambda: members(c, "fw1"), ["dg-2", "dg-3"])

    listed = c.list_thing_groups_for_thing(thingName="dg-2")["thingGroups"]
    assert {"groupName": "fw1", "groupArn": made["thingGroupArn"]} in listed
    assert "fw1" not in groups_of(c, "dg-1")


def test_a_dynamic_group_is_updated_refuses_static_members_and_is_deleted(node):
    """UpdateDynamicThingGroup's new query changes the membership; AddThingToThingGroup on a
    dynamic group is an InvalidRequestException; DeleteDynamicThingGroup removes the group and
    its memberships."""
    c = iot(node)
    enable(c)
    things_with(c, {"up-1": "1.0", "up-2": "2.0", "up-3": "2.0"})
    c.create_dynamic_thing_group(thingGroupName="moving", queryString="attributes.firmware:1.0")
    poll(lambda: members(c, "moving"), ["up-1"])

    before = c.describe_thing_group(thingGroupName="moving")["version"]
    updated = c.update_dynamic_thing_group(thingGroupName="moving", thingGroupProperties={},
                                           queryString="attributes.firmware:2.0")
    assert updated["version"] > before
    assert c.describe_thing_group(thingGroupName="moving")["queryString"] == "attributes.firmware:2.0"
    poll(lambda: members(c, "moving"), ["up-2", "up-3"])

    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.add_thing_to_thing_group(thingGroupName="moving", thingName="up-1")
    assert code_of(e.value) == "InvalidRequestException"
    assert members(c, "moving") == ["up-2", "up-3"]

    c.delete_dynamic_thing_group(thingGroupName="moving")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.describe_thing_group(thingGroupName="moving")
    assert code_of(e.value) == "ResourceNotFoundException"
    assert "moving" not in groups_of(c, "up-2")
    assert "moving" not in [g["groupName"] for g in c.list_thing_groups()["thingGroups"]]


def test_a_policy_attached_to_a_dynamic_group_applies_to_its_members(node, tmp_path):
    """A certificate with no policy of its own, attached to a thing, connects (client id = thing
    name) only while the thing's attributes make it a member of a dynamic group holding a policy
    that allows it; then it publishes. Leaving the group takes the policy away again."""
    c = iot(node)
    enable(c)
    c.create_thing(thingName="door-1", attributePayload={"attributes": {"role": "none"}})
    cert = c.create_keys_and_certificate(setAsActive=True)
    c.attach_thing_principal(thingName="door-1", principal=cert["certificateArn"])
    group = c.create_dynamic_thing_group(thingGroupName="doors", queryString="attributes.role:door")
    c.create_policy(policyName="door-policy", policyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["iot:Connect", "iot:Publish"], "Resource": "*"}]}))
    c.attach_policy(policyName="door-policy", target=group["thingGroupArn"])

    def attempt():
        d = Device(node, cert, tmp_path, "door-1", protocol=mqtt.MQTTv5)
        if d.connected():
            return d
        d.c.loop_stop()
        return None

    refused = attempt()
    assert refused is None, "connected before the thing was a member of the dynamic group"

    c.update_thing(thingName="door-1", attributePayload={"attributes": {"role": "door"}, "merge": True})
    deadline, d = time.time() + 3, None
    while d is None:
        d = attempt()
        if d is None:
            assert time.time() < deadline, "still refused 3 s after the thing joined the dynamic group"
            time.sleep(0.1)
    try:
        d.c.publish("doors/door-1/state", b"open", qos=1)
        assert d.pubacks.get(timeout=5) == 0
    finally:
        d.stop()

    c.update_thing(thingName="door-1", attributePayload={"attributes": {"role": "none"}, "merge": True})
    deadline = time.time() + 3
    while True:
        d = attempt()
        if d is None:
            break
        d.stop()
        assert time.time() < deadline, "still connects 3 s after the thing left the dynamic group"
        time.sleep(0.1)


def test_a_continuous_job_on_a_dynamic_group_reaches_things_that_join_later(node):
    """A CONTINUOUS job targeting a dynamic group queues an execution for a thing within 3 s of
    the change that makes it a member."""
    c = iot(node)
    enable(c)
    things_with(c, {"cj-1": "1.0", "cj-2": "2.0"})
    group = c.create_dynamic_thing_group(thingGroupName="cj-fw1", queryString="attributes.firmware:1.0")
    poll(lambda: members(c, "cj-fw1"), ["cj-1"])
    c.create_job(jobId="cj-job", targets=[group["thingGroupArn"]], document=DOC, targetSelection="CONTINUOUS")

    def jobs_of(thing):
        return [s["jobId"] for s in c.list_job_executions_for_thing(thingName=thing)["executionSummaries"]]

    poll(lambda: jobs_of("cj-1"), ["cj-job"], timeout=3)
    assert jobs_of("cj-2") == []
    set_firmware(c, "cj-2", "1.0")
    poll(lambda: jobs_of("cj-2"), ["cj-job"], timeout=3)


def test_update_thing_groups_for_thing_adds_and_removes_static_groups_in_one_call(node):
    """UpdateThingGroupsForThing adds to and removes from static groups at once; an unknown
    group or thing is a ResourceNotFoundException."""
    c = iot(node)
    for g in ("g1", "g2", "g3"):
        c.create_thing_group(thingGroupName=g)
    c.create_thing(thingName="mover")
    c.add_thing_to_thing_group(thingGroupName="g1", thingName="mover")
    c.update_thing_groups_for_thing(thingName="mover", thingGroupsToAdd=["g2", "g3"], thingGroupsToRemove=["g1"])
    assert groups_of(c, "mover") == ["g2", "g3"]
    assert members(c, "g1") == [] and members(c, "g2") == ["mover"] and members(c, "g3") == ["mover"]
    c.update_thing_groups_for_thing(thingName="mover", thingGroupsToRemove=["g3"])
    assert groups_of(c, "mover") == ["g2"]

    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.update_thing_groups_for_thing(thingName="mover", thingGroupsToAdd=["nope"])
    assert code_of(e.value) == "ResourceNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.update_thing_groups_for_thing(thingName="ghost", thingGroupsToAdd=["g1"])
    assert code_of(e.value) == "ResourceNotFoundException"


# ---------------------------------------------------------------------------------------------
# Fleet metrics


def fleet_metrics(node):
    """{(metric, aggregation): value} of the `ferrite_fleet_metric{...} VALUE` lines of /metrics."""
    _, body = node.http_get("/metrics")
    out = {}
    for line in body.splitlines():
        m = re.match(r"^ferrite_fleet_metric\{([^}]*)\}\s+(\S+)", line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            out[(labels.get("metric"), labels.get("aggregation"))] = float(m.group(2))
    return out


def wait_metric(node, name, aggregations, timeout=3.0):
    """The value exported for fleet metric `name` under one of `aggregations`, polled."""
    deadline = time.time() + timeout
    while True:
        got = fleet_metrics(node)
        for agg in aggregations:
            if (name, agg) in got:
                return got[(name, agg)]
        assert time.time() < deadline, f"no ferrite_fleet_metric line for {name} {aggregations} after {timeout}s: {got}"
        time.sleep(0.1)


def fleet_for_metrics(node, temps):
    """Indexing with shadows and the custom fields the metrics aggregate; things fm-N with
    reported temperatures `temps` (firmware alternating 1.0 / 2.0), all in the index."""
    c, data = iot(node), aws_client(node, "iot-data")
    enable(c, mode="REGISTRY_AND_SHADOW", custom=[{"name": "shadow.reported.temp", "type": "Number"},
                                                 {"name": "attributes.firmware", "type": "String"}])
    for i, temp in enumerate(temps):
        name = f"fm-{i}"
        c.create_thing(thingName=name, attributePayload={"attributes": {"firmware": "1.0" if i % 2 else "2.0"}})
        data.update_thing_shadow(thingName=name, payload=json.dumps({"state": {"reported": {"temp": temp}}}).encode())
    want = sorted(f"fm-{i}" for i in range(len(temps)))

    def indexed():
        try:
            found = c.search_index(indexName="AWS_Things", queryString="shadow.reported.temp:*", maxResults=100)
            return sorted(t["thingName"] for t in found["things"])
        except botocore.exceptions.ClientError:
            return None

    poll(indexed, want, timeout=3)
    return c


def test_fleet_metrics_are_created_described_listed_updated_and_deleted(node):
    """CreateFleetMetric answers its name and ARN; DescribeFleetMetric gives every field back
    with version 1; ListFleetMetrics lists it; UpdateFleetMetric with the expected version bumps
    it and a stale one is a VersionConflictException; DeleteFleetMetric removes it."""
    c = fleet_for_metrics(node, [10, 20])
    made = c.create_fleet_metric(metricName="avg_temp", queryString="thingName:fm-*",
                                 aggregationType={"name": "Statistics", "values": ["average"]}, period=60,
                                 aggregationField="shadow.reported.temp", description="mean temperature",
                                 queryVersion=QUERY_VERSION, indexName="AWS_Things", unit="None")
    assert made["metricName"] == "avg_temp"
    assert made["metricArn"].endswith(":fleetmetric/avg_temp")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.create_fleet_metric(metricName="avg_temp", queryString="thingName:fm-*",
                              aggregationType={"name": "Statistics", "values": ["average"]}, period=60,
                              aggregationField="shadow.reported.temp", indexName="AWS_Things")
    assert code_of(e.value) == "ResourceAlreadyExistsException"

    desc = c.describe_fleet_metric(metricName="avg_temp")
    assert (desc["metricName"], desc["metricArn"], desc["queryString"], desc["period"], desc["aggregationField"],
            desc["description"], desc["indexName"], desc["unit"], desc["version"]) == \
        ("avg_temp", made["metricArn"], "thingName:fm-*", 60, "shadow.reported.temp", "mean temperature",
         "AWS_Things", "None", 1)
    assert desc["aggregationType"] == {"name": "Statistics", "values": ["average"]}
    assert desc["queryVersion"] == QUERY_VERSION
    assert desc["creationDate"] and desc["lastModifiedDate"]

    listed = c.list_fleet_metrics()["fleetMetrics"]
    assert {"metricName": "avg_temp", "metricArn": made["metricArn"]} in listed

    c.update_fleet_metric(metricName="avg_temp", indexName="AWS_Things", description="changed", expectedVersion=1)
    desc = c.describe_fleet_metric(metricName="avg_temp")
    assert (desc["description"], desc["version"], desc["queryString"]) == ("changed", 2, "thingName:fm-*")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.update_fleet_metric(metricName="avg_temp", indexName="AWS_Things", description="stale", expectedVersion=1)
    assert code_of(e.value) == "VersionConflictException"
    assert c.describe_fleet_metric(metricName="avg_temp")["description"] == "changed"

    c.delete_fleet_metric(metricName="avg_temp")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.describe_fleet_metric(metricName="avg_temp")
    assert code_of(e.value) == "ResourceNotFoundException"
    assert "avg_temp" not in [m["metricName"] for m in c.list_fleet_metrics()["fleetMetrics"]]


def test_a_fleet_metric_is_computed_at_creation_and_exported_on_metrics(node):
    """A fleet metric's first value is computed when it is created: within 3 s /metrics has
    `ferrite_fleet_metric{metric="NAME",aggregation="average"}` equal to the average of the
    matching things (only those the query matches), and a Cardinality metric is exported too."""
    temps = [10, 20, 35, 47.5]
    c = fleet_for_metrics(node, temps)
    c.create_fleet_metric(metricName="hot_avg", queryString="shadow.reported.temp>15",
                          aggregationType={"name": "Statistics", "values": ["average"]}, period=60,
                          aggregationField="shadow.reported.temp", indexName="AWS_Things", unit="None")
    hot = [t for t in temps if t > 15]
    assert wait_metric(node, "hot_avg", ["average"]) == pytest.approx(sum(hot) / len(hot))

    c.create_fleet_metric(metricName="fw_kinds", queryString="thingName:fm-*",
                          aggregationType={"name": "Cardinality", "values": ["cardinality"]}, period=60,
                          aggregationField="attributes.firmware", indexName="AWS_Things", unit="Count")
    assert wait_metric(node, "fw_kinds", ["cardinality", "count"]) == 2
