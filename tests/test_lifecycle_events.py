"""AWS IoT lifecycle events: presence and subscription events published by the node, with
AWS's documents, observed by a real client."""

from conftest import Client, next_json_on as next_on


def test_connect_and_client_disconnect_publish_presence_events(node):
    watcher = Client(node, "watcher")
    watcher.subscribe("$aws/events/presence/+/dev-1", qos=1)
    dev = Client(node, "dev-1")
    connected = next_on(watcher, "$aws/events/presence/connected/dev-1")
    assert connected["eventType"] == "connected"
    assert connected["clientId"] == "dev-1"
    assert connected["ipAddress"] == "127.0.0.1"
    assert len(connected["sessionIdentifier"]) == 32
    dev.close()
    disconnected = next_on(watcher, "$aws/events/presence/disconnected/dev-1")
    assert disconnected["disconnectReason"] == "CLIENT_INITIATED_DISCONNECT"
    assert disconnected["clientInitiatedDisconnect"] is True
    assert disconnected["sessionIdentifier"] == connected["sessionIdentifier"]
    assert disconnected["versionNumber"] > connected["versionNumber"]


def test_lost_connections_and_takeovers_name_their_reason(node):
    watcher = Client(node, "watcher")
    watcher.subscribe("$aws/events/presence/disconnected/+", qos=1)
    dev = Client(node, "dev-2")
    dev.drop()
    lost = next_on(watcher, "$aws/events/presence/disconnected/dev-2")
    assert (lost["disconnectReason"], lost["clientInitiatedDisconnect"]) == ("CONNECTION_LOST", False)
    first = Client(node, "dev-3")
    second = Client(node, "dev-3")
    taken = next_on(watcher, "$aws/events/presence/disconnected/dev-3")
    assert taken["disconnectReason"] == "DUPLICATE_CLIENTID"
    first.c.loop_stop()
    second.close()


def test_subscribe_and_unsubscribe_publish_subscription_events(node):
    watcher = Client(node, "watcher")
    watcher.subscribe("$aws/events/subscriptions/#", qos=1)
    dev = Client(node, "dev-4")
    dev.subscribe("sensors/+/temp", qos=1)
    sub = next_on(watcher, "$aws/events/subscriptions/subscribed/dev-4")
    assert (sub["eventType"], sub["topics"], sub["clientId"]) == ("subscribed", ["sensors/+/temp"], "dev-4")
    dev.c.unsubscribe("sensors/+/temp")
    unsub = next_on(watcher, "$aws/events/subscriptions/unsubscribed/dev-4")
    assert unsub["topics"] == ["sensors/+/temp"]
    assert unsub["sessionIdentifier"] == sub["sessionIdentifier"]
    dev.close()
