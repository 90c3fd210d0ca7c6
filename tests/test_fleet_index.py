"""Fleet indexing, the way AWS IoT Core does it: the indexing configuration
(Update/GetIndexingConfiguration, ListIndices, DescribeIndex), SearchIndex over the
`AWS_Things` index (registry, shadows, named shadows, connectivity) and the
`AWS_ThingGroups` index in AWS's query syntax, the aggregations (GetStatistics,
GetCardinality, GetPercentiles, GetBucketsAggregation), the AWS CLI, and an index that
follows every change within a second and is rebuilt from state at start.

Ferrite's decisions the tests hold it to: a thing that is not connected now (never
connected included) has `connectivity.connected` false; attributes declared as Number custom
fields compare as numbers."""

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time

import botocore.exceptions
import pytest

from test_jobs import code_of, iot, poll  # noqa: F401  (shared helpers)
from conftest import Client, Node, aws_client

THINGS, GROUPS = "AWS_Things", "AWS_ThingGroups"
CUSTOM = [{"name": "attributes.floor", "type": "Number"}, {"name": "shadow.reported.temp", "type": "Number"},
          {"name": "attributes.firmware", "type": "String"}]


# ---------------------------------------------------------------------------------------------
# Helpers


def iot_data(node):
    return aws_client(node, "iot-data")


def enable(c, mode="REGISTRY_AND_SHADOW", connectivity="STATUS", named_shadows=None, custom=CUSTOM, groups="ON"):
    """Turns thing indexing (and thing group indexing) on."""
    config = {"thingIndexingMode": mode, "thingConnectivityIndexingMode": connectivity}
    if named_shadows is not None:
        config["namedShadowIndexingMode"] = "ON"
        config["filter"] = {"namedShadowNames": named_shadows}
    if custom:
        config["customFields"] = custom
    c.update_indexing_configuration(thingIndexingConfiguration=config,
                                    thingGroupIndexingConfiguration={"thingGroupIndexingMode": groups})


def search_all(c, query, index=THINGS, page=None):
    """Every document SearchIndex returns for `query`, all pages."""
    out, token = [], None
    key = "things" if index == THINGS else "thingGroups"
    while True:
        kw = dict(indexName=index, queryString=query)
        if page:
            kw["maxResults"] = page
        if token:
            kw["nextToken"] = token
        got = c.search_index(**kw)
        out += got.get(key, [])
        token = got.get("nextToken")
        if not token:
            return out


def names(c, query, index=THINGS):
    """The set of thing (or group) names matching `query`; None while the index is not ready."""
    key = "thingName" if index == THINGS else "thingGroupName"
    try:
        return {d[key] for d in search_all(c, query, index)}
    except botocore.exceptions.ClientError as e:
        if code_of(e) in ("IndexNotReadyException", "ResourceNotFoundException"):
            return None
        raise


def wait_found(c, query, want, index=THINGS, timeout=3.0):
    return poll(lambda: names(c, query, index), set(want), timeout)


def shadow(data, thing, state, name=None):
    kw = dict(thingName=thing, payload=json.dumps({"state": state}).encode())
    if name:
        kw["shadowName"] = name
    data.update_thing_shadow(**kw)


def close_socket(client):
    """Closes a paho client's socket whose network loop was stopped."""
    sock = client.c.socket()
    if sock:
        sock.close()


def settled(c):
    """Waits until the fleet's last changes (shadows, connections) are in the index."""
    wait_found(c, "thingName:dev-*", ALL)
    wait_found(c, "shadow.reported.temp:*", QUERIES["shadow.reported.temp:*"])
    wait_found(c, "connectivity.connected:true", QUERIES["connectivity.connected:true"])


def wait_active(c, index):
    return poll(lambda: c.describe_index(indexName=index)["indexStatus"], "ACTIVE")


# ---------------------------------------------------------------------------------------------
# The fleet: 30 things, built once for the read-only tests of this module


N = 30
CONNECTED = {0, 2, 4, 12}      # connected for the module's lifetime
DISCONNECTED = {15}            # connected, then disconnected cleanly


def thing_model(i):
    return {"name": f"dev-{i}", "i": i, "firmware": "1.0" if i % 3 == 0 else "2.0", "floor": i % 6,
            "type": "sensor" if i % 5 == 0 else None, "groups": ["lab"] if i % 7 == 0 else [],
            "temp": 20 + 1.5 * i if i < 20 else None, "connected": i in CONNECTED,
            "ever": i in CONNECTED | DISCONNECTED}


FLEET = [thing_model(i) for i in range(N)]
ALL = {t["name"] for t in FLEET}


def where(pred):
    return {t["name"] for t in FLEET if pred(t)}


def hot(t):
    return t["temp"] is not None and t["temp"] > 30


QUERIES = {
    "thingName:dev-1*": where(lambda t: t["name"].startswith("dev-1")),
    "thingName:dev-?": where(lambda t: t["i"] < 10),
    "attributes.firmware:1.0": where(lambda t: t["firmware"] == "1.0"),
    "attributes.floor>2": where(lambda t: t["floor"] > 2),
    "attributes.floor:[2 TO 4]": where(lambda t: 2 <= t["floor"] <= 4),
    "attributes.floor:{2 TO 4}": where(lambda t: 2 < t["floor"] < 4),
    "shadow.reported.temp>30": where(hot),
    "shadow.reported.temp<=30": where(lambda t: t["temp"] is not None and t["temp"] <= 30),
    "thingTypeName:sensor": where(lambda t: t["type"] == "sensor"),
    "thingGroupNames:lab": where(lambda t: "lab" in t["groups"]),
    "connectivity.connected:true": where(lambda t: t["connected"]),
    "connectivity.connected:false": where(lambda t: not t["connected"]),
    "NOT attributes.firmware:1.0": where(lambda t: t["firmware"] != "1.0"),
    "(attributes.firmware:1.0 OR attributes.firmware:2.0) AND shadow.reported.temp>30": where(hot),
    "(attributes.floor:0 OR attributes.floor:1) AND NOT thingTypeName:sensor":
        where(lambda t: t["floor"] in (0, 1) and t["type"] != "sensor"),
    "attributes.firmware:1.0 AND shadow.reported.temp>30 AND connectivity.connected:false":
        where(lambda t: t["firmware"] == "1.0" and hot(t) and not t["connected"]),
    "shadow.reported.temp:*": where(lambda t: t["temp"] is not None),
    "shadow.name.config.reported.mode:eco": {"dev-1"},
    "shadow.name.other.reported.mode:eco": set(),
    "connectivity.disconnectReason:CLIENT_INITIATED_DISCONNECT": where(lambda t: t["i"] in DISCONNECTED),
    "connectivity.timestamp>0": where(lambda t: t["ever"]),
}


def build_fleet(node):
    """Creates FLEET on `node` (indexing on first, so the index follows each change); the paho
    clients left connected. Also the thing groups site > {lab, lab-annex} and office."""
    c, data = iot(node), iot_data(node)
    enable(c, named_shadows=["config"])
    c.create_thing_type(thingTypeName="sensor")
    c.create_thing_group(thingGroupName="site", thingGroupProperties={"thingGroupDescription": "the site"})
    c.create_thing_group(thingGroupName="lab", parentGroupName="site", thingGroupProperties={
        "thingGroupDescription": "the lab", "attributePayload": {"attributes": {"x": "y"}}})
    c.create_thing_group(thingGroupName="lab-annex", parentGroupName="site")
    c.create_thing_group(thingGroupName="office", thingGroupProperties={"attributePayload": {"attributes": {"x": "z"}}})
    for t in FLEET:
        kw = dict(thingName=t["name"], attributePayload={"attributes": {
            "firmware": t["firmware"], "floor": str(t["floor"])}})
        if t["type"]:
            kw["thingTypeName"] = t["type"]
        c.create_thing(**kw)
        for g in t["groups"]:
            c.add_thing_to_thing_group(thingGroupName=g, thingName=t["name"])
        if t["temp"] is not None:
            state = {"reported": {"temp": t["temp"]}}
            if t["i"] == 0:
                state["desired"] = {"temp": 25}
            shadow(data, t["name"], state)
    shadow(data, "dev-1", {"reported": {"mode": "eco"}}, name="config")
    shadow(data, "dev-2", {"reported": {"mode": "sport"}}, name="config")
    shadow(data, "dev-3", {"reported": {"mode": "eco"}}, name="other")
    clients = {t["i"]: Client(node, t["name"]) for t in FLEET if t["ever"]}
    for i, cl in clients.items():
        assert cl.rc == 0, f"dev-{i} was refused"
    for i in DISCONNECTED:
        clients.pop(i).close()
    return list(clients.values())


@pytest.fixture(scope="module")
def fleet():
    d = tempfile.mkdtemp(prefix="ferrite-fleet-index-")
    n = Node(d).start()
    clients = []
    try:
        n.connected_at = time.time()
        clients = build_fleet(n)
        yield n
    finally:
        for cl in clients:
            cl.close()
        n.stop()
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# Configuration


def test_indexing_configuration_is_set_read_back_and_names_the_indices(node):
    """Indexing starts OFF; UpdateIndexingConfiguration's settings come back from
    GetIndexingConfiguration (with the managed fields listed); ListIndices names both indices
    and DescribeIndex reports them ACTIVE with AWS's schema names for each mode."""
    c = iot(node)
    got = c.get_indexing_configuration()
    assert got["thingIndexingConfiguration"]["thingIndexingMode"] == "OFF"
    assert got["thingGroupIndexingConfiguration"]["thingGroupIndexingMode"] == "OFF"

    custom = [{"name": "attributes.floor", "type": "Number"}, {"name": "attributes.ok", "type": "Boolean"},
              {"name": "attributes.site", "type": "String"}]
    c.update_indexing_configuration(
        thingIndexingConfiguration={"thingIndexingMode": "REGISTRY_AND_SHADOW", "thingConnectivityIndexingMode": "STATUS",
                                    "namedShadowIndexingMode": "ON", "filter": {"namedShadowNames": ["config", "ota"]},
                                    "customFields": custom},
        thingGroupIndexingConfiguration={"thingGroupIndexingMode": "ON"})
    got = c.get_indexing_configuration()
    things = got["thingIndexingConfiguration"]
    assert (things["thingIndexingMode"], things["thingConnectivityIndexingMode"], things["namedShadowIndexingMode"]) == \
        ("REGISTRY_AND_SHADOW", "STATUS", "ON")
    assert sorted(things["filter"]["namedShadowNames"]) == ["config", "ota"]
    assert sorted(things["customFields"], key=lambda f: f["name"]) == custom
    managed = things["managedFields"]
    assert managed and all(f["type"] in ("Number", "String", "Boolean") for f in managed)
    assert "thingName" in {f["name"] for f in managed}
    assert got["thingGroupIndexingConfiguration"]["thingGroupIndexingMode"] == "ON"
    assert isinstance(got["thingGroupIndexingConfiguration"].get("managedFields"), list)

    assert sorted(c.list_indices()["indexNames"]) == sorted([THINGS, GROUPS])
    described = c.describe_index(indexName=THINGS)
    assert described["indexName"] == THINGS
    assert described["indexStatus"] in ("ACTIVE", "BUILDING")
    assert described["schema"] == "REGISTRY_AND_SHADOW_AND_CONNECTIVITY_STATUS"
    wait_active(c, THINGS)
    wait_active(c, GROUPS)

    for mode, connectivity, schema in (("REGISTRY", "OFF", "REGISTRY"),
                                       ("REGISTRY_AND_SHADOW", "OFF", "REGISTRY_AND_SHADOW"),
                                       ("REGISTRY", "STATUS", "REGISTRY_AND_CONNECTIVITY_STATUS")):
        c.update_indexing_configuration(thingIndexingConfiguration={
            "thingIndexingMode": mode, "thingConnectivityIndexingMode": connectivity})
        assert c.describe_index(indexName=THINGS)["schema"] == schema, (mode, connectivity)
        got = c.get_indexing_configuration()["thingIndexingConfiguration"]
        assert (got["thingIndexingMode"], got["thingConnectivityIndexingMode"]) == (mode, connectivity)


def test_searching_without_thing_indexing_and_invalid_modes_are_aws_errors(node):
    """SearchIndex answers ResourceNotFoundException while thing indexing is OFF (before it
    was ever on, and after it is turned off again); an unknown mode is an InvalidRequestException
    that leaves the configuration as it was."""
    c = iot(node)
    c.create_thing(thingName="off-1")
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.search_index(indexName=THINGS, queryString="thingName:off-1")
    assert code_of(e.value) == "ResourceNotFoundException"

    for bad in ({"thingIndexingConfiguration": {"thingIndexingMode": "EVERYTHING"}},
                {"thingIndexingConfiguration": {"thingIndexingMode": "REGISTRY", "thingConnectivityIndexingMode": "ON"}},
                {"thingGroupIndexingConfiguration": {"thingGroupIndexingMode": "MAYBE"}},
                {"thingIndexingConfiguration": {"thingIndexingMode": "REGISTRY",
                                                "customFields": [{"name": "attributes.x", "type": "Date"}]}}):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.update_indexing_configuration(**bad)
        assert code_of(e.value) == "InvalidRequestException", bad
    assert c.get_indexing_configuration()["thingIndexingConfiguration"]["thingIndexingMode"] == "OFF"

    enable(c, mode="REGISTRY", connectivity="OFF", custom=None, groups="OFF")
    wait_found(c, "thingName:off-1", {"off-1"})
    c.update_indexing_configuration(thingIndexingConfiguration={"thingIndexingMode": "OFF"})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.search_index(indexName=THINGS, queryString="thingName:off-1")
    assert code_of(e.value) == "ResourceNotFoundException"


# ---------------------------------------------------------------------------------------------
# SearchIndex over AWS_Things


@pytest.mark.parametrize("query", list(QUERIES))
def test_search_returns_exactly_the_matching_things(fleet, query):
    """Each query of AWS's syntax (wildcards, ranges, comparisons, NOT/AND/OR, exists, named
    shadows in the filter only, connectivity) returns exactly the things of the fleet it
    describes."""
    wait_found(iot(fleet), query, QUERIES[query])


def test_search_documents_carry_registry_shadow_and_connectivity(fleet):
    """A returned thing document has thingName, thingId, thingTypeName, thingGroupNames,
    attributes, the shadow as a JSON string with reported and desired, and connectivity
    {connected, timestamp (ms), disconnectReason}."""
    c = iot(fleet)
    wait_found(c, "thingName:dev-0 OR thingName:dev-15 OR thingName:dev-1", {"dev-0", "dev-15", "dev-1"})
    docs = {d["thingName"]: d for d in search_all(c, "thingName:dev-0 OR thingName:dev-15 OR thingName:dev-1")}
    dev0 = docs["dev-0"]
    assert dev0["thingId"] == c.describe_thing(thingName="dev-0")["thingId"]
    assert dev0["thingTypeName"] == "sensor"
    assert dev0["thingGroupNames"] == ["lab"]
    assert dev0["attributes"] == {"firmware": "1.0", "floor": "0"}
    state = json.loads(dev0["shadow"])
    assert state["reported"]["temp"] == 20
    assert state["desired"]["temp"] == 25
    conn = dev0["connectivity"]
    assert conn["connected"] is True
    assert abs(conn["timestamp"] / 1000 - fleet.connected_at) < 120, conn
    dev15 = docs["dev-15"]
    assert dev15["connectivity"]["connected"] is False
    assert dev15["connectivity"]["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"
    assert dev15["connectivity"]["timestamp"] >= conn["timestamp"], "dev-15 disconnected after dev-0 connected"
    assert json.loads(dev15["shadow"])["reported"]["temp"] == 20 + 1.5 * 15
    assert dev15["thingTypeName"] == "sensor"
    assert "thingTypeName" not in docs["dev-1"], "a thing without a type has no thingTypeName"


def test_search_pages_return_every_match_exactly_once(fleet):
    """maxResults=5 and nextToken walk the 30 matches of `thingName:dev-*`: six or seven pages of
    at most five, every thing exactly once."""
    c = iot(fleet)
    wait_found(c, "thingName:dev-*", ALL)
    pages, token, seen = 0, None, []
    while True:
        kw = dict(indexName=THINGS, queryString="thingName:dev-*", maxResults=5)
        if token:
            kw["nextToken"] = token
        got = c.search_index(**kw)
        assert len(got["things"]) <= 5
        seen += [t["thingName"] for t in got["things"]]
        pages += 1
        token = got.get("nextToken")
        if not token:
            break
        assert pages < 20, "nextToken never ends"
    assert sorted(seen) == sorted(ALL)
    assert len(seen) == len(set(seen)) == N
    assert pages >= 6


@pytest.mark.parametrize("query", ["thingName:", "(attributes.a:b", "AND attributes.x:y"])
def test_a_malformed_query_is_an_invalid_query_exception_naming_the_position(fleet, query):
    """A query that does not parse answers InvalidQueryException whose message names where
    the parse failed (a position, column or offset number)."""
    c = iot(fleet)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.search_index(indexName=THINGS, queryString=query)
    assert code_of(e.value) == "InvalidQueryException"
    message = e.value.response["Error"]["Message"]
    assert re.search(r"(position|column|offset|char(acter)?)\D{0,3}\d+", message, re.I), message


def test_the_index_follows_registry_shadow_group_and_connectivity_changes(node):
    """Each change (attribute, shadow, shadow deletion, group membership, thing type, connect,
    disconnect, thing deletion) shows in SearchIndex within a second (polled up to 3 s)."""
    c, data = iot(node), iot_data(node)
    enable(c)
    wait_active(c, THINGS)
    c.create_thing_group(thingGroupName="g")
    c.create_thing_type(thingTypeName="t")
    c.create_thing(thingName="live", attributePayload={"attributes": {"color": "red"}})
    c.create_thing(thingName="still")
    wait_found(c, "attributes.color:red", {"live"})
    c.update_thing(thingName="live", attributePayload={"attributes": {"color": "blue"}, "merge": True})
    wait_found(c, "attributes.color:blue", {"live"})
    assert names(c, "attributes.color:red") == set()
    shadow(data, "live", {"reported": {"temp": 50}})
    wait_found(c, "shadow.reported.temp>40", {"live"})
    data.delete_thing_shadow(thingName="live")
    wait_found(c, "shadow.reported.temp:*", set())
    c.add_thing_to_thing_group(thingGroupName="g", thingName="live")
    wait_found(c, "thingGroupNames:g", {"live"})
    c.remove_thing_from_thing_group(thingGroupName="g", thingName="live")
    wait_found(c, "thingGroupNames:g", set())
    c.update_thing(thingName="live", thingTypeName="t")
    wait_found(c, "thingTypeName:t", {"live"})
    dev = Client(node, "live")
    try:
        wait_found(c, "connectivity.connected:true", {"live"})
    finally:
        dev.close()
    wait_found(c, "connectivity.connected:true", set())
    wait_found(c, "connectivity.disconnectReason:CLIENT_INITIATED_DISCONNECT", {"live"})
    c.delete_thing(thingName="live")
    wait_found(c, "thingName:*", {"still"})


def test_things_made_before_indexing_was_turned_on_are_found(node):
    """The index is built from the registry and the shadows as they are when indexing is turned
    on, not only from later changes."""
    c, data = iot(node), iot_data(node)
    for i in range(5):
        c.create_thing(thingName=f"old-{i}", attributePayload={"attributes": {"batch": "a" if i < 3 else "b"}})
        shadow(data, f"old-{i}", {"reported": {"level": i}})
    enable(c)
    wait_found(c, "attributes.batch:a", {"old-0", "old-1", "old-2"})
    wait_found(c, "shadow.reported.level>=3", {"old-3", "old-4"})
    wait_active(c, THINGS)


# ---------------------------------------------------------------------------------------------
# SearchIndex over AWS_ThingGroups


@pytest.mark.parametrize("query,want", [
    ("thingGroupName:lab*", {"lab", "lab-annex"}),
    ("parentGroupNames:site", {"lab", "lab-annex"}),
    ("attributes.x:y", {"lab"}),
    ("attributes.x:*", {"lab", "office"}),
])
def test_thing_group_search(fleet, query, want):
    """With thingGroupIndexingMode ON, SearchIndex on AWS_ThingGroups matches group names,
    parent groups and group attributes."""
    wait_found(iot(fleet), query, want, index=GROUPS)


def test_thing_group_documents_carry_name_id_description_attributes_and_parents(fleet):
    """A returned group document: thingGroupName, thingGroupId, thingGroupDescription,
    attributes and parentGroupNames."""
    c = iot(fleet)
    wait_found(c, "thingGroupName:lab", {"lab"}, index=GROUPS)
    [lab] = search_all(c, "thingGroupName:lab", index=GROUPS)
    assert lab["thingGroupId"] == c.describe_thing_group(thingGroupName="lab")["thingGroupId"]
    assert lab["thingGroupDescription"] == "the lab"
    assert lab["attributes"] == {"x": "y"}
    assert lab["parentGroupNames"] == ["site"]


# ---------------------------------------------------------------------------------------------
# Aggregations


def expected_statistics(values):
    n = len(values)
    mean = sum(values) / n
    variance = sum((v - mean) ** 2 for v in values) / n
    return {"count": n, "average": mean, "sum": sum(values), "minimum": min(values), "maximum": max(values),
            "sumOfSquares": sum(v * v for v in values), "variance": variance, "stdDeviation": math.sqrt(variance)}


@pytest.mark.parametrize("query,field,pred,value", [
    ("thingName:dev-*", "attributes.floor", lambda t: True, lambda t: t["floor"]),
    ("shadow.reported.temp:*", "shadow.reported.temp", lambda t: t["temp"] is not None, lambda t: t["temp"]),
    ("attributes.firmware:1.0", "shadow.reported.temp", lambda t: t["firmware"] == "1.0" and t["temp"] is not None,
     lambda t: t["temp"]),
], ids=["floor-of-all", "temp-of-reporting", "temp-of-firmware-1.0"])
def test_get_statistics_over_a_numeric_field(fleet, query, field, pred, value):
    """GetStatistics over a Number custom field answers count, average, sum, minimum, maximum,
    sumOfSquares, population variance and standard deviation of the matching things' values."""
    c = iot(fleet)
    settled(c)
    want = expected_statistics([value(t) for t in FLEET if pred(t)])
    got = c.get_statistics(indexName=THINGS, queryString=query, aggregationField=field)["statistics"]
    assert got["count"] == want["count"]
    for key in ("average", "sum", "minimum", "maximum", "sumOfSquares", "variance", "stdDeviation"):
        assert got[key] == pytest.approx(want[key], rel=1e-9, abs=1e-9), key


def test_get_statistics_over_a_string_field_counts_only(fleet):
    """Over a String field GetStatistics gives only the count (or refuses the field with
    InvalidAggregationException)."""
    c = iot(fleet)
    settled(c)
    try:
        got = c.get_statistics(indexName=THINGS, queryString="thingName:dev-*",
                               aggregationField="attributes.firmware")["statistics"]
    except botocore.exceptions.ClientError as e:
        assert code_of(e) == "InvalidAggregationException"
        return
    assert got["count"] == N
    assert {k for k, v in got.items() if v is not None} == {"count"}, got


def test_get_cardinality_counts_distinct_values(fleet):
    """GetCardinality counts the distinct values of a field among the matching things."""
    c = iot(fleet)
    settled(c)
    assert c.get_cardinality(indexName=THINGS, queryString="thingName:dev-*",
                             aggregationField="attributes.firmware")["cardinality"] == 2
    assert c.get_cardinality(indexName=THINGS, queryString="attributes.firmware:1.0",
                             aggregationField="attributes.firmware")["cardinality"] == 1
    assert c.get_cardinality(indexName=THINGS, queryString="thingName:dev-*",
                             aggregationField="attributes.floor")["cardinality"] == 6


def test_get_percentiles_are_within_the_data_and_monotone(fleet):
    """GetPercentiles for [50, 90] answers one value per percent, each between the data values
    around that rank (nearest-rank or interpolated), increasing with the percent."""
    c = iot(fleet)
    settled(c)
    data = sorted(t["temp"] for t in FLEET if t["temp"] is not None)
    got = c.get_percentiles(indexName=THINGS, queryString="shadow.reported.temp:*",
                            aggregationField="shadow.reported.temp", percents=[50, 90])["percentiles"]
    assert [p["percent"] for p in got] == [50.0, 90.0]
    n = len(data)
    for p in got:
        lo = data[max(0, math.floor(p["percent"] / 100 * (n - 1)) - 1)]
        hi = data[min(n - 1, math.ceil(p["percent"] / 100 * n))]
        assert lo <= p["value"] <= hi, (p, lo, hi)
    assert got[0]["value"] <= got[1]["value"]


def test_get_buckets_aggregation_lists_terms_most_frequent_first(fleet):
    """GetBucketsAggregation with a terms aggregation: one bucket per value with its count,
    most frequent first, at most maxBuckets."""
    c = iot(fleet)
    settled(c)
    got = c.get_buckets_aggregation(indexName=THINGS, queryString="thingName:dev-*",
                                    aggregationField="attributes.firmware",
                                    bucketsAggregationType={"termsAggregation": {"maxBuckets": 10}})
    assert got["buckets"] == [{"keyValue": "2.0", "count": 20}, {"keyValue": "1.0", "count": 10}]
    if "totalCount" in got:
        assert got["totalCount"] == N
    one = c.get_buckets_aggregation(indexName=THINGS, queryString="thingName:dev-*",
                                    aggregationField="attributes.firmware",
                                    bucketsAggregationType={"termsAggregation": {"maxBuckets": 1}})
    assert one["buckets"] == [{"keyValue": "2.0", "count": 20}]


def test_the_aws_cli_searches_the_index(fleet, tmp_path):
    """`aws iot search-index --query-string ...` prints the same things boto3 gets."""
    if not shutil.which("aws"):
        pytest.skip("the aws CLI is not installed")
    c = iot(fleet)
    query = "attributes.firmware:1.0 AND shadow.reported.temp>30"
    want = where(lambda t: t["firmware"] == "1.0" and hot(t))
    wait_found(c, query, want)
    env = dict(os.environ, AWS_SHARED_CREDENTIALS_FILE=os.path.join(fleet.data_dir, "credentials"),
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=str(tmp_path / "none"))
    out = subprocess.run(["aws", "iot", "search-index", "--index-name", THINGS, "--query-string", query,
                          "--endpoint-url", f"http://{fleet.host}:{fleet.http_port}"],
                         env=env, check=True, capture_output=True, text=True, timeout=60).stdout
    printed = json.loads(out)["things"]
    assert {t["thingName"] for t in printed} == want
    assert all(json.loads(t["shadow"])["reported"]["temp"] > 30 for t in printed)


# ---------------------------------------------------------------------------------------------
# Restart


def test_the_index_is_rebuilt_at_start(node):
    """After a restart the configuration is kept and the same queries return the same things;
    a thing that was connected when the node stopped is no longer connected."""
    c, data = iot(node), iot_data(node)
    enable(c)
    for i in range(6):
        c.create_thing(thingName=f"rb-{i}", attributePayload={"attributes": {"firmware": "1.0" if i % 2 else "2.0"}})
        shadow(data, f"rb-{i}", {"reported": {"temp": 10 * i}})
    dev = Client(node, "rb-1")
    query = "attributes.firmware:1.0 AND shadow.reported.temp>15"
    wait_found(c, query, {"rb-3", "rb-5"})
    wait_found(c, "connectivity.connected:true", {"rb-1"})
    config = c.get_indexing_configuration()
    dev.c.loop_stop()   # no reconnection to the restarted node

    node.restart()
    c = iot(node)
    try:
        assert c.get_indexing_configuration()["thingIndexingConfiguration"] == config["thingIndexingConfiguration"]
        wait_found(c, query, {"rb-3", "rb-5"})
        wait_found(c, "shadow.reported.temp:*", {f"rb-{i}" for i in range(6)})
        wait_found(c, "connectivity.connected:true", set())
        wait_found(c, "connectivity.connected:false", {f"rb-{i}" for i in range(6)})
    finally:
        close_socket(dev)
