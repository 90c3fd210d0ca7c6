"""Fleet provisioning and just-in-time registration on a 3-node cluster (`ferrite cluster
local`): a template created through one node serves a claim device on another, the
provisioned thing and certificate are every node's, and a JITR event is published once."""

import os
import queue
import time

from conftest import Client
from test_cluster import cluster, iot, retry, wait_for_route  # noqa: F401  (cluster: the fixture)
from test_just_in_time import certificate_id, connack, device_cert, register_ca
from test_provisioning import (as_cert, assert_provisioned, claim_certificate, connected_device, create_keys,
                               fleet_template, provision, publishes)


def trust_the_device_ca(cluster):
    """Gives each member the `ca_path` the device helpers use: the cluster's device CA, which
    signs every node's server certificate."""
    for m in cluster.members:
        m.ca_path = os.path.join(cluster.base, "device-ca.pem")


def visible(member, check, timeout=15):
    """Retries check(iot client of member) until it returns a true value: that value."""
    api = iot(member)

    def attempt():
        got = check(api)
        assert got, "not yet"
        return got
    return retry(attempt, timeout=timeout)


def messages_on(client, topic, first_within, then_for):
    """The payloads `client` receives on `topic`: waits up to `first_within` seconds for the
    first, then `then_for` seconds more for any other."""
    got, deadline = [], time.time() + first_within
    while True:
        try:
            m = client.get(timeout=max(0.01, deadline - time.time()))
        except queue.Empty:
            return got
        if m.topic == topic:
            got.append(m.payload)
            if len(got) == 1:
                deadline = time.time() + then_for


def test_a_device_provisioned_through_one_node_is_every_nodes(cluster, tmp_path):
    """Template on node 1, claim device on node 2 runs CreateKeysAndCertificate and
    RegisterThing; node 3 serves the new thing and accepts the new certificate."""
    cluster.wait_for_leaders()
    trust_the_device_ca(cluster)
    one, two, three = cluster.members
    api = iot(one)
    fleet_template(api)
    claim = claim_certificate(api, "fleet")
    visible(two, lambda c: c.list_attached_policies(target=claim["certificateArn"])["policies"])
    visible(two, lambda c: c.describe_provisioning_template(templateName="fleet")["enabled"])

    device = connected_device(two, claim, tmp_path, "claim-on-2")
    created = create_keys(device)
    outcome, registered = provision(device, "fleet", created["certificateOwnershipToken"], {"SerialNumber": "c1"})
    assert outcome == "accepted", registered
    assert registered["thingName"] == "device-c1"
    device.stop()

    visible(three, lambda c: c.describe_certificate(certificateId=created["certificateId"])
            ["certificateDescription"]["status"] == "ACTIVE")
    visible(three, lambda c: c.list_thing_principals(thingName="device-c1")["principals"])
    assert_provisioned(iot(three), "device-c1", created["certificateId"], serial="c1")
    assert publishes(three, as_cert(created["certificatePem"], created["privateKey"]), tmp_path, "device-c1",
                     "fleet/device-c1/hello")


def test_a_jitr_event_is_published_once_in_the_cluster(cluster, tmp_path):
    """A device certificate unknown to the cluster connects to node 2: it is registered once
    and a subscriber on node 3 gets exactly one registered event."""
    cluster.wait_for_leaders()
    trust_the_device_ca(cluster)
    one, two, three = cluster.members
    ca_key, ca_pem, ca_id = register_ca(iot(one), tmp_path, "cluster-ca")
    visible(two, lambda c: c.describe_ca_certificate(certificateId=ca_id)["certificateDescription"]
            ["autoRegistrationStatus"] == "ENABLE")
    watcher = Client(three, "jitr-watcher")
    watcher.subscribe("$aws/events/certificates/registered/#", qos=1)
    for m in (one, two):
        wait_for_route(m, 3, "$aws/events/certificates/registered/#")

    key, pem = device_cert(tmp_path, "dev", "/CN=cluster-jitr", ca_key, ca_pem)
    assert connack(two, pem, key, "cluster-jitr") != 0
    events = messages_on(watcher, f"$aws/events/certificates/registered/{ca_id}", first_within=10, then_for=2)
    assert len(events) == 1, events
    watcher.close()
    visible(three, lambda c: c.describe_certificate(certificateId=certificate_id(pem))
            ["certificateDescription"]["status"] == "PENDING_ACTIVATION")
