"""Fleet indexing on a 3-node cluster (`ferrite cluster local`): the indexing configuration,
the registry and shadows are replicated, so every node's index finds what was written through
any node; connectivity is cluster-wide; a dynamic group has the same members on every node."""

import json
import time

import botocore.exceptions

from test_jobs import poll  # noqa: F401  (shared helper)
from conftest import Client
from test_cluster import cluster, iot, iot_data  # noqa: F401  (cluster: the fixture)

THINGS = "AWS_Things"


def names(c, query):
    """Thing names matching `query` (all pages); None while the node's index is not ready."""
    out, token = set(), None
    try:
        while True:
            kw = dict(indexName=THINGS, queryString=query, maxResults=100)
            if token:
                kw["nextToken"] = token
            page = c.search_index(**kw)
            out |= {t["thingName"] for t in page["things"]}
            token = page.get("nextToken")
            if not token:
                return out
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] in ("ResourceNotFoundException", "IndexNotReadyException"):
            return None
        raise


def indexing_everywhere(cluster):
    """Turns indexing (registry, shadow, connectivity) on through node 1 and waits until every
    node answers SearchIndex."""
    cluster.wait_for_leaders()
    apis = [iot(m) for m in cluster.members]
    apis[0].update_indexing_configuration(thingIndexingConfiguration={
        "thingIndexingMode": "REGISTRY_AND_SHADOW", "thingConnectivityIndexingMode": "STATUS",
        "customFields": [{"name": "shadow.reported.temp", "type": "Number"}]})
    for api in apis:
        poll(lambda: names(api, "thingName:nothing-yet") is not None, True, timeout=10)
        assert api.get_indexing_configuration()["thingIndexingConfiguration"]["thingIndexingMode"] == \
            "REGISTRY_AND_SHADOW"
    return apis


def test_a_thing_written_through_one_node_is_found_on_another(cluster):
    """Indexing turned on through node 1; a thing created and its shadow updated through node 2
    is found by SearchIndex on node 3 within 2 s."""
    api_1, api_2, api_3 = indexing_everywhere(cluster)
    api_2.create_thing(thingName="cx-1", attributePayload={"attributes": {"room": "boiler"}})
    iot_data(cluster.members[1]).update_thing_shadow(
        thingName="cx-1", payload=json.dumps({"state": {"reported": {"temp": 81}}}).encode())
    poll(lambda: names(api_3, "attributes.room:boiler AND shadow.reported.temp>80"), {"cx-1"}, timeout=2)
    [doc] = api_3.search_index(indexName=THINGS, queryString="thingName:cx-1")["things"]
    assert json.loads(doc["shadow"])["reported"]["temp"] == 81
    assert doc["thingId"] == api_2.describe_thing(thingName="cx-1")["thingId"]
    poll(lambda: names(api_1, "shadow.reported.temp>80"), {"cx-1"}, timeout=2)


def test_connectivity_is_cluster_wide(cluster):
    """A device connected to node 3 is connectivity.connected:true in SearchIndex on node 1
    within 3 s, and false there within 3 s of its disconnect."""
    api_1, _, _ = indexing_everywhere(cluster)
    api_1.create_thing(thingName="roamer")
    api_1.create_thing(thingName="homebody")
    poll(lambda: names(api_1, "thingName:roamer OR thingName:homebody"), {"roamer", "homebody"}, timeout=3)
    dev = Client(cluster.members[2], "roamer")
    try:
        assert dev.rc == 0
        poll(lambda: names(api_1, "connectivity.connected:true"), {"roamer"}, timeout=3)
    finally:
        dev.close()
    poll(lambda: names(api_1, "connectivity.connected:true"), set(), timeout=3)
    poll(lambda: names(api_1, "connectivity.connected:false"), {"roamer", "homebody"}, timeout=3)


def test_a_dynamic_group_has_the_same_members_on_every_node(cluster):
    """A dynamic group created through node 1 lists the same members on nodes 2 and 3, and a
    change made through node 2 moves a thing on every node."""
    apis = indexing_everywhere(cluster)
    api_1, api_2, _ = apis
    for i in range(6):
        api_1.create_thing(thingName=f"dyn-{i}", attributePayload={"attributes": {"tier": "gold" if i < 3 else "tin"}})
    api_1.create_dynamic_thing_group(thingGroupName="gold", queryString="attributes.tier:gold")

    def members(api):
        try:
            return sorted(api.list_things_in_thing_group(thingGroupName="gold", maxResults=100)["things"])
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise

    for api in apis:
        poll(lambda: members(api), ["dyn-0", "dyn-1", "dyn-2"], timeout=5)
    api_2.update_thing(thingName="dyn-4", attributePayload={"attributes": {"tier": "gold"}, "merge": True})
    for api in apis:
        poll(lambda: members(api), ["dyn-0", "dyn-1", "dyn-2", "dyn-4"], timeout=5)
