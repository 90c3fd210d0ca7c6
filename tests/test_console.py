"""The web console at /console/, driven in headless Chromium (Playwright) against a real node:
sign-in with SigV4 in the browser, things and the first-device flow (certificate, downloads,
policy, then a device connecting over mutual TLS with the downloaded files), live shadows,
the MQTT test client over WebSocket, rules, fleet, cluster, a phone-sized screen and the
keyboard. Every result is checked through boto3 or paho as well as on the page, and every
test fails on a browser console error or an uncaught page error.

FERRITE_CONSOLE_SCREENSHOTS=1 also saves the screenshots docs/console.md shows."""

import configparser
import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import ROOT, Client, aws_client

CHROMIUM = "/usr/bin/chromium"

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - scripts/install-deps installs it
    pytest.skip("playwright is not installed (scripts/install-deps installs it: pip install playwright)",
                allow_module_level=True)
if not os.path.exists(CHROMIUM):  # pragma: no cover
    pytest.skip(f"no Chromium at {CHROMIUM} (scripts/install-deps installs Debian's chromium)", allow_module_level=True)

expect.set_options(timeout=10_000)

CONSOLE_DIR = os.path.join(ROOT, "node", "console")
SHOTS_DIR = os.path.join(ROOT, "docs", "console")
SHOTS = os.environ.get("FERRITE_CONSOLE_SCREENSHOTS") == "1"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def root_key(node):
    """The node's root access key, from the AWS shared-credentials file it wrote."""
    parser = configparser.ConfigParser()
    parser.read(os.path.join(node.data_dir, "credentials"))
    profile = parser["default"]
    return profile["aws_access_key_id"], profile["aws_secret_access_key"]


def signed_get(node, path):
    """GET a signed route of the node (service `iot`), as boto3 would sign it."""
    import urllib.request

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    url = f"http://{node.host}:{node.http_port}{path}"
    request = AWSRequest(method="GET", url=url)
    SigV4Auth(Credentials(*root_key(node)), "iot", "us-east-1").add_auth(request)
    with urllib.request.urlopen(urllib.request.Request(url, headers=dict(request.headers))) as r:
        return json.loads(r.read())


class Console:
    """One browser tab on a node's console, recording every console error and page error.

    The browser logs each HTTP error answer as "Failed to load resource"; API answers a test
    expects (a thing without a classic shadow is a 404) are declared with `allow`, anything
    else (a console file that is missing, an API call the page got wrong) is an error."""

    def __init__(self, browser, node, viewport=DESKTOP):
        self.node = node
        self.context = browser.new_context(viewport=viewport, accept_downloads=True)
        self.page = self.context.new_page()
        self.base = f"http://localhost:{node.http_port}/console/"
        self.errors = []
        self.allowed = []
        self.page.on("console", self._on_console)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught page error: {e}"))

    def allow(self, path_pattern, status):
        """An API answer the page is expected to get and show: a regex of the path, a status."""
        self.allowed.append((re.compile(path_pattern), status))

    def _on_console(self, msg):
        if msg.type != "error":
            return
        url = msg.location.get("url", "") if msg.location else ""
        m = re.match(r"Failed to load resource: the server responded with a status of (\d+)", msg.text)
        if m and "/console/" not in url:
            path = re.sub(r"^https?://[^/]+", "", url).split("?")[0]
            if any(p.fullmatch(path) and int(m.group(1)) == s for p, s in self.allowed):
                return
        self.errors.append(f"browser console error: {msg.text} ({url})")

    def open(self, route=""):
        self.page.goto(self.base + route)
        return self

    def sign_in(self, key=None):
        access_key, secret = key or root_key(self.node)
        if not self.page.url.startswith(self.base):
            self.open()
        self.page.get_by_label("Access key ID").fill(access_key)
        self.page.get_by_label("Secret access key").fill(secret)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page.get_by_role("heading", name="Sign in")).to_have_count(0)
        return self

    def go(self, route, heading):
        """Follows a hash route (no reload: the key stays in memory) and waits for its heading."""
        self.page.evaluate("route => { location.hash = route }", route)
        expect(self.page.get_by_role("heading", level=1)).to_have_text(heading)

    def shot(self, name, full_page=False):
        if SHOTS:
            os.makedirs(SHOTS_DIR, exist_ok=True)
            self.page.screenshot(path=os.path.join(SHOTS_DIR, f"{name}.png"), full_page=full_page)

    def close(self):
        self.context.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture
def open_console(browser):
    """Opens consoles on nodes; each must end the test without a browser error."""
    opened = []

    def make(node, viewport=DESKTOP):
        c = Console(browser, node, viewport)
        opened.append(c)
        return c

    yield make
    errors = [e for c in opened for e in c.errors]
    for c in opened:
        c.close()
    assert errors == [], "\n".join(errors)


@pytest.fixture
def console(open_console, node):
    return open_console(node)


def mtls_client(node, thing, files):
    """A paho MQTT 3.1.1 client connected over mutual TLS with the files the page downloaded."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=thing, protocol=mqtt.MQTTv311)
    c.tls_set(ca_certs=files["ca.pem"], certfile=files[f"{thing}.cert.pem"], keyfile=files[f"{thing}.private.key"])
    connack = queue.Queue()
    c.on_connect = lambda c_, u, flags, rc, props: connack.put(rc)
    c.connect("localhost", node.mqtts_port, keepalive=30)
    c.loop_start()
    rc = connack.get(timeout=10)
    assert rc == 0, f"the device's CONNECT was refused: {rc}"
    return c


def message_item(page, topic):
    return page.locator(f'li.message[data-topic="{topic}"]')


def test_the_browser_computes_sha256_hmac_and_sigv4_like_botocore(console):
    console.open()
    result = console.page.evaluate("async () => (await import('/console/js/selftest.js')).runSelfTest()")
    assert result["ok"], result["failures"]
    assert result["count"] >= 30

    # The same requests signed by botocore and by the page's signer, at botocore's instant.
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    key = ("AKIDCONSOLETEST", "secret/with+odd=chars")
    cases = [
        ("GET", "/things", "maxResults=1&nextToken=a%20b", "", {}, "iot"),
        ("POST", "/things/a%3Ab/shadow", "name=x%2Fy", '{"state": {"desired": {"on": "é"}}}', {}, "iotdata"),
        ("PUT", "/things/t1/principals", "", "", {"x-amzn-principal": "arn:aws:iot:eu-west-1:000000000000:cert/ab"}, "iot"),
        ("POST", "/topics/a%2Fb", "qos=1", "hi", {}, "iotdata"),
    ]
    for method, path, query, body, extra, service in cases:
        payload_hash = hashlib.sha256(body.encode()).hexdigest()
        request = AWSRequest(method=method, url=f"http://localhost:8080{path}" + (f"?{query}" if query else ""),
                             data=body.encode(), headers={**extra, "x-amz-content-sha256": payload_hash})
        SigV4Auth(Credentials(*key), service, "eu-west-1").add_auth(request)
        signed = console.page.evaluate(
            """async ([method, path, query, body, extra, service, amzDate, id, secret]) => {
                const { signRequest } = await import('/console/js/sigv4.js');
                const m = /^(\\d{4})(\\d\\d)(\\d\\d)T(\\d\\d)(\\d\\d)(\\d\\d)Z$/.exec(amzDate);
                const now = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
                return signRequest({ method, host: 'localhost:8080', path, query, body, extraHeaders: extra,
                    region: 'eu-west-1', service, key: { accessKeyId: id, secretAccessKey: secret }, now });
            }""", [method, path, query, body, extra, service, request.headers["X-Amz-Date"], *key])
        assert signed["x-amz-content-sha256"] == payload_hash
        assert signed["authorization"] == request.headers["Authorization"], (method, path)


def test_sign_in_refuses_a_wrong_key_and_keeps_the_secret_in_memory_only(console):
    access_key, secret = root_key(console.node)
    page = console.open().page
    console.allow(r"/things", 403)
    page.get_by_label("Access key ID").fill(access_key)
    page.get_by_label("Secret access key").fill("not-the-secret")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text(re.compile("the node refused this key", re.I))
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()

    console.sign_in()
    expect(page.get_by_role("heading", level=1)).to_have_text("Things")
    stored = page.evaluate("""async () => ({
        local: localStorage.length, session: sessionStorage.length, cookie: document.cookie,
        idb: indexedDB.databases ? (await indexedDB.databases()).length : 0,
        dom: document.documentElement.outerHTML })""")
    assert (stored["local"], stored["session"], stored["cookie"], stored["idb"]) == (0, 0, "", 0)
    assert secret not in stored["dom"]
    assert console.context.cookies() == []

    # A reload signs out: the key lived in the page's memory only.
    page.reload()
    expect(page.get_by_label("Secret access key")).to_be_visible()
    console.sign_in()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    expect(page.get_by_role("link", name="Things")).to_be_hidden()


def test_the_keyboard_reaches_the_sign_in_fields_and_every_page(console):
    page = console.open().page
    expect(page.get_by_label("Access key ID")).to_be_focused()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    order = []
    for _ in range(3):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
    assert order == ["access-key-id", "secret-access-key", "Sign in"]
    # A focused control shows it.
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"

    access_key, secret = root_key(console.node)
    page.keyboard.press("Shift+Tab")
    page.keyboard.type(secret)
    page.keyboard.press("Shift+Tab")
    page.keyboard.type(access_key)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Things")

    # The skip link (the first stop from the top) moves focus into the content; then come
    # the navigation's links, in order.
    page.locator(".skip-link").focus()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    page.locator(".skip-link").focus()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Things")).to_be_focused()
    for name in ["MQTT test client", "Rules", "Fleet", "Cluster"]:
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name=name)).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Cluster")


def test_things_are_listed_by_name_prefix_in_pages_and_created_with_type_and_attributes(console):
    iot = aws_client(console.node, "iot")
    for i in range(30):
        iot.create_thing(thingName=f"dev-{i:03}")
    for name in ["other-a", "other-b", "zeta"]:
        iot.create_thing(thingName=name)
    iot.create_thing_type(thingTypeName="sensor")
    console.allow(r"/things/kitchen-lamp/shadow", 404)
    page = console.sign_in().page
    rows = page.locator("table tbody tr")
    expect(rows).to_have_count(25)

    page.get_by_role("searchbox", name="Name starts with").fill("dev-")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("caption")).to_contain_text("dev-")
    expect(rows).to_have_count(25)
    expect(rows.first).to_contain_text("dev-000")
    page.get_by_role("button", name="Next").click()
    expect(rows).to_have_count(5)
    expect(rows.first).to_contain_text("dev-025")
    expect(page.get_by_role("button", name="Next")).to_be_disabled()
    page.get_by_role("button", name="Previous").click()
    expect(rows).to_have_count(25)
    page.get_by_role("searchbox", name="Name starts with").fill("other")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(2)
    page.get_by_role("searchbox", name="Name starts with").fill("nothing-")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No thing's name starts with")).to_be_visible()

    page.get_by_label("Thing name").fill("kitchen-lamp")
    page.get_by_label("Thing type").select_option("sensor")
    page.get_by_label("Attributes").fill("room=kitchen\nfloor=1")
    page.get_by_role("button", name="Create thing").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("kitchen-lamp")
    expect(page.locator("dl.facts")).to_contain_text("sensor")
    thing = iot.describe_thing(thingName="kitchen-lamp")
    assert thing["thingTypeName"] == "sensor"
    assert thing["attributes"] == {"room": "kitchen", "floor": "1"}

    # With fleet indexing on, the prefix search asks the index.
    iot.update_indexing_configuration(thingIndexingConfiguration={"thingIndexingMode": "REGISTRY"})
    console.go("#/things", "Things")
    page.get_by_role("searchbox", name="Name starts with").fill("dev-01")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".page-info")).to_contain_text("fleet index")
    expect(rows).to_have_count(10)


def test_first_device_certificate_downloads_policy_and_a_real_mtls_connection(console, tmp_path):
    node = console.node
    iot = aws_client(node, "iot")
    thing = "sensor-1"
    console.allow(rf"/things/{thing}/shadow", 404)
    page = console.sign_in().page
    page.get_by_label("Thing name").fill(thing)
    page.get_by_role("button", name="Create thing").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(thing)

    # One click: keys, an active certificate, attached to the thing.
    page.get_by_role("button", name="Create certificate").click()
    expect(page.get_by_role("status").filter(has_text="is active and attached")).to_be_visible()
    files = {}
    for name in [f"{thing}.cert.pem", f"{thing}.private.key", "ca.pem"]:
        with page.expect_download() as download:
            page.get_by_role("link", name=f"Download {name}").click()
        assert download.value.suggested_filename == name
        files[name] = str(tmp_path / name)
        download.value.save_as(files[name])
    principals = iot.list_thing_principals(thingName=thing)["principals"]
    assert len(principals) == 1 and ":cert/" in principals[0]
    cert = iot.describe_certificate(certificateId=principals[0].split("/")[-1])["certificateDescription"]
    assert cert["status"] == "ACTIVE"
    assert open(files[f"{thing}.cert.pem"]).read().strip() == cert["certificatePem"].strip()
    assert open(files["ca.pem"]).read() == open(node.ca_path).read()
    assert "PRIVATE KEY" in open(files[f"{thing}.private.key"]).read()

    # A policy from the template, attached to the new certificate.
    expect(page.get_by_label("Certificate", exact=True)).to_have_value(principals[0])
    page.get_by_role("button", name="Create policy").click()
    expect(page.get_by_role("status").filter(has_text="attached it to certificate")).to_be_visible()
    attached = iot.list_attached_policies(target=principals[0])["policies"]
    assert [p["policyName"] for p in attached] == [f"{thing}-policy"]
    document = iot.get_policy(policyName=f"{thing}-policy")["policyDocument"]
    assert f"arn:aws:iot:us-east-1:000000000000:client/{thing}" in document
    expect(page.locator("table").filter(has_text="Principal")).to_contain_text(f"{thing}-policy")
    python_snippet = page.get_by_label("AWS IoT Device SDK for Python v2").inner_text()
    mosquitto_snippet = page.get_by_label("mosquitto_pub").inner_text()
    assert f"-p {node.mqtts_port} -i {thing}" in mosquitto_snippet
    assert f'endpoint="localhost",\n    port={node.mqtts_port},' in python_snippet

    # The console's MQTT test client listens; the device connects with the downloaded files.
    page.get_by_role("navigation").get_by_role("link", name="MQTT test client").click()
    expect(page.locator(".conn")).to_have_attribute("data-state", "connected")
    page.get_by_label("Topic filter").fill(f"things/{thing}/#")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.locator(f'li[data-filter="things/{thing}/#"]')).to_be_visible()
    device = mtls_client(node, thing, files)
    device.publish(f"things/{thing}/hello", json.dumps({"hello": "world", "n": 1}), qos=1).wait_for_publish(10)
    device.disconnect()
    device.loop_stop()
    item = message_item(page, f"things/{thing}/hello")
    expect(item).to_have_count(1)
    expect(item.locator("pre.payload.json")).to_contain_text('"hello": "world"')

    # The page's own snippets connect as printed, from the download folder.
    run = subprocess.run([sys.executable, "-c", python_snippet], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    expect(item).to_have_count(2)
    if shutil.which("mosquitto_pub"):
        run = subprocess.run(["bash", "-c", mosquitto_snippet], cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        expect(item).to_have_count(3)


def test_a_malformed_policy_is_shown_at_its_line_and_column(console):
    iot = aws_client(console.node, "iot")
    iot.create_thing(thingName="p1")
    console.allow(r"/things/p1/shadow", 404)
    console.allow(r"/policies/p1-policy", 400)
    page = console.sign_in().page
    console.go("#/things/p1", "p1")
    editor = page.get_by_label("Policy document")
    editor.fill('{\n  "Version": "2012-10-17",\n  "Statement": [\n    {"Effect": "Allow", "Resource": "*"}\n  ]\n}')
    page.get_by_role("button", name="Create policy").click()
    marker = page.locator("pre.marker")
    expect(marker).to_be_visible()
    expect(marker).to_have_attribute("data-line", "4")
    expect(page.get_by_role("alert")).to_contain_text("line 4, column")
    column = int(marker.get_attribute("data-column"))
    text = editor.input_value()
    offset = sum(len(line) + 1 for line in text.split("\n")[:3]) + column - 1
    assert page.evaluate("document.activeElement.selectionStart") == offset
    assert editor.get_attribute("aria-invalid") == "true"
    assert "Action" in marker.inner_text()
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.get_policy(policyName="p1-policy")

    # Editing clears the marker; the template makes a valid policy again.
    page.get_by_role("button", name="Use the template").click()
    expect(marker).to_be_hidden()
    page.get_by_label("Attach it to the certificate").uncheck()
    page.get_by_role("button", name="Create policy").click()
    expect(page.get_by_role("status").filter(has_text="Created policy p1-policy")).to_be_visible()
    assert iot.get_policy(policyName="p1-policy")["policyName"] == "p1-policy"


def test_shadow_updates_appear_on_the_thing_page_without_a_reload(console):
    node = console.node
    aws_client(node, "iot").create_thing(thingName="lamp")
    data = aws_client(node, "iot-data")
    console.allow(r"/things/lamp/shadow", 404)
    page = console.sign_in().page
    console.go("#/things/lamp", "lamp")
    expect(page.locator('[data-live="on"]')).to_be_visible()
    page.evaluate("window.__stillTheSamePage = true")

    data.update_thing_shadow(thingName="lamp", payload=json.dumps({"state": {"reported": {"on": True}}}))
    classic = page.locator('article[data-shadow="$classic"]')
    expect(classic.locator("pre")).to_contain_text('"on": true')
    data.update_thing_shadow(thingName="lamp", shadowName="config", payload=json.dumps({"state": {"desired": {"rate": 5}}}))
    named = page.locator('article[data-shadow="config"]')
    expect(named.locator("pre")).to_contain_text('"rate": 5')
    data.update_thing_shadow(thingName="lamp", payload=json.dumps({"state": {"reported": {"on": False}}}))
    expect(classic.locator("pre")).to_contain_text('"on": false')
    expect(classic.locator(".meta")).to_contain_text("version 2")
    data.delete_thing_shadow(thingName="lamp", shadowName="config")
    expect(named).to_have_count(0)
    assert page.evaluate("window.__stillTheSamePage") is True

    # A fresh visit reads the same documents through GetThingShadow.
    console.go("#/things", "Things")
    console.go("#/things/lamp", "lamp")
    expect(classic.locator("pre")).to_contain_text('"on": false')


def test_connectivity_comes_from_the_fleet_index_and_live_lifecycle_events(console):
    node = console.node
    iot = aws_client(node, "iot")
    iot.create_thing(thingName="plug")
    console.allow(r"/things/plug/shadow", 404)
    page = console.sign_in().page
    console.go("#/things/plug", "plug")
    expect(page.get_by_text("thingConnectivityIndexingMode=STATUS")).to_be_visible()
    page.get_by_role("button", name="Turn on connectivity indexing").click()
    state = page.locator("[data-connected]")
    expect(state).to_have_attribute("data-connected", "false")
    assert iot.get_indexing_configuration()["thingIndexingConfiguration"]["thingConnectivityIndexingMode"] == "STATUS"
    expect(page.locator('[data-live="on"]')).to_be_visible()

    # The device connects and leaves while the page is open: its lifecycle events show it.
    device = Client(node, client_id="plug")
    expect(state).to_have_attribute("data-connected", "true")
    expect(state).to_contain_text("Connected since")
    device.close()
    expect(state).to_have_attribute("data-connected", "false")
    expect(state).to_contain_text("CLIENT_INITIATED_DISCONNECT")

    # The index says the same to a fresh visit.
    device = Client(node, client_id="plug")
    deadline = time.time() + 5
    while not iot.search_index(queryString="thingName:plug")["things"][0]["connectivity"]["connected"]:
        assert time.time() < deadline, "the index never saw the connection"
        time.sleep(0.1)
    console.go("#/things", "Things")
    console.go("#/things/plug", "plug")
    expect(state).to_have_attribute("data-connected", "true")
    expect(state).not_to_contain_text("live")
    device.close()


def test_deleting_a_thing_asks_first(console):
    iot = aws_client(console.node, "iot")
    iot.create_thing(thingName="old:lamp")
    console.allow(r"/things/old%3Alamp/shadow", 404)
    page = console.sign_in().page
    page.get_by_role("link", name="old:lamp").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("old:lamp")
    assert page.url.endswith("#/things/old%3Alamp")
    page.get_by_role("button", name="Delete thing").click()
    expect(page.get_by_text("Delete the thing old:lamp?")).to_be_visible()
    assert iot.describe_thing(thingName="old:lamp")["thingName"] == "old:lamp"
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_role("button", name="Delete thing")).to_be_focused()
    page.get_by_role("button", name="Delete thing").click()
    page.get_by_role("button", name="Yes, delete old:lamp").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Things")
    with pytest.raises(iot.exceptions.ResourceNotFoundException):
        iot.describe_thing(thingName="old:lamp")


def test_the_mqtt_test_client_subscribes_publishes_retains_and_unsubscribes(console):
    node = console.node
    page = console.sign_in().page
    page.get_by_role("navigation").get_by_role("link", name="MQTT test client").click()
    expect(page.locator(".conn")).to_have_attribute("data-state", "connected")
    page.get_by_label("Topic filter").fill("lab/#")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.locator('li[data-filter="lab/#"]')).to_contain_text("QoS 1")

    device = Client(node, client_id="lab-device")
    device.publish("lab/json", b'{"a": 1, "b": [true, null]}', qos=1)
    device.publish("lab/bin", b"\x00\x01\xfe\xff", qos=1)
    device.publish("lab/text", "plain words", qos=0)
    expect(message_item(page, "lab/json").locator("pre.json")).to_contain_text('"a": 1')
    expect(message_item(page, "lab/bin").locator("pre.hex")).to_contain_text("00 01 fe ff")
    expect(message_item(page, "lab/text").locator("pre.text")).to_have_text("plain words")
    expect(message_item(page, "lab/json").locator("time")).to_be_visible()

    # Published by the page, at QoS 1 with retain: paho gets it, the node keeps it.
    device.subscribe("lab/out", qos=1)
    page.get_by_label("Topic", exact=True).fill("lab/out")
    page.get_by_label("QoS", exact=True).nth(1).select_option("1")
    page.get_by_label("Retain").check()
    page.get_by_label("Payload", exact=True).fill("from the console")
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_role("status").filter(has_text="the node acknowledged it")).to_be_visible()
    m = device.get(timeout=5)
    assert (m.topic, m.payload, m.qos) == ("lab/out", b"from the console", 1)
    retained = aws_client(node, "iot-data").get_retained_message(topic="lab/out")
    assert retained["payload"] == b"from the console"
    expect(message_item(page, "lab/out")).to_have_count(1)

    # The subscriptions and messages stay while other pages are open.
    console.go("#/rules", "Rules")
    device.publish("lab/while-away", b"1", qos=1)
    console.go("#/mqtt", "MQTT test client")
    expect(message_item(page, "lab/while-away")).to_have_count(1)

    page.get_by_role("button", name="Unsubscribe from lab/#").click()
    expect(page.locator('li[data-filter="lab/#"]')).to_have_count(0)
    device.publish("lab/after", b"late", qos=1)
    time.sleep(0.7)
    expect(message_item(page, "lab/after")).to_have_count(0)
    device.close()


RULE_FILE = """
CREATE RULE from_file
  DESCRIPTION 'Defined in a file'
AS SELECT topic(2) AS device, temperature FROM 'device/+/data' WHERE temperature > 30
DO republish(topic = 'alerts/${topic(2)}', qos = 1);
"""


def test_rules_are_listed_highlighted_toggled_created_and_counted(open_console, make_node, tmp_path):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "alerts.sql").write_text(RULE_FILE)
    node = make_node(extra_args=["--rules-dir", str(rules_dir)])
    iot = aws_client(node, "iot")
    console = open_console(node)
    console.allow(r"/rules/api_hot", 400)
    page = console.sign_in().page
    console.go("#/rules", "Rules")
    file_row = page.locator('tr[data-rule="from_file"]')
    expect(file_row).to_contain_text("rule file")
    expect(file_row).to_contain_text("read-only")
    expect(file_row.get_by_role("button", name=re.compile("Enable|Disable"))).to_have_count(0)

    # The checker's error, at its line and column.
    page.get_by_label("Rule name").fill("api_hot")
    page.get_by_label("SQL", exact=True).fill("SELECT temperature\nFROM 'sensors/+' WHERE temperature >")
    page.get_by_label("Republish to topic").fill("alerts/hot")
    page.get_by_role("button", name="Create rule").click()
    marker = page.locator("pre.marker")
    expect(marker).to_have_attribute("data-line", "2")
    expect(page.get_by_role("alert")).to_contain_text("Line 2:")
    column = int(marker.get_attribute("data-column"))
    assert page.evaluate("document.activeElement.selectionStart") == len("SELECT temperature\n") + column - 1

    page.get_by_label("SQL", exact=True).fill("SELECT temperature, 'hot' AS level FROM 'sensors/+' WHERE temperature > 30")
    expect(marker).to_be_hidden()
    page.get_by_role("button", name="Create rule").click()
    expect(page.get_by_role("status").filter(has_text="Created rule api_hot")).to_be_visible()
    rule = iot.get_topic_rule(ruleName="api_hot")["rule"]
    assert rule["actions"][0]["republish"]["topic"] == "alerts/hot"
    api_row = page.locator('tr[data-rule="api_hot"]')
    expect(api_row).to_contain_text("API")

    # Highlighted SQL.
    sql = page.locator("pre.sql")
    expect(sql.locator(".tok-kw").first).to_have_text("SELECT")
    expect(sql.locator(".tok-str").first).to_have_text("'hot'")
    expect(sql.locator(".tok-num")).to_have_text("30")
    page.get_by_role("button", name="View rule from_file").click()
    expect(page.get_by_text("Defined in a rule file")).to_be_visible()
    expect(sql.locator(".tok-fn")).to_have_text("topic")

    # Enable and disable, seen through the API.
    api_row.get_by_role("button", name="Disable api_hot").click()
    expect(api_row.locator("[data-rule-state]")).to_have_text("disabled")
    assert iot.get_topic_rule(ruleName="api_hot")["rule"]["ruleDisabled"] is True
    api_row.get_by_role("button", name="Enable api_hot").click()
    expect(api_row.locator("[data-rule-state]")).to_have_text("enabled")
    assert iot.get_topic_rule(ruleName="api_hot")["rule"]["ruleDisabled"] is False

    # Counters from /metrics.
    device = Client(node, client_id="thermo")
    device.publish("sensors/a", b'{"temperature": 40}', qos=1)
    device.publish("sensors/a", b'{"temperature": 10}', qos=1)
    device.publish("device/d1/data", b'{"temperature": 31}', qos=1)
    device.close()
    deadline = time.time() + 5
    while time.time() < deadline and not re.search(r'ferrite_rule_matched_total\{rule="api_hot"\} 2', node.http_get("/metrics")[1]):
        time.sleep(0.1)
    page.get_by_role("button", name="Refresh").click()
    expect(api_row.locator('[data-metric="matched"]')).to_have_text("2")
    expect(api_row.locator('[data-metric="passed"]')).to_have_text("1")
    expect(api_row.locator('[data-metric="errors"]')).to_have_text("0")
    expect(file_row.locator('[data-metric="matched"]')).to_have_text("1")


def test_fleet_counts_chart_search_and_job_progress(console):
    node = console.node
    iot = aws_client(node, "iot")
    iot.create_thing_type(thingTypeName="sensor")
    for name, kind in [("s1", "sensor"), ("s2", "sensor"), ("s3", None)]:
        iot.create_thing(thingName=name, **({"thingTypeName": kind} if kind else {}))
    iot.create_thing_group(thingGroupName="kitchen")
    iot.add_thing_to_thing_group(thingGroupName="kitchen", thingName="s1")
    iot.update_indexing_configuration(thingIndexingConfiguration={
        "thingIndexingMode": "REGISTRY_AND_SHADOW", "thingConnectivityIndexingMode": "STATUS"})
    arns = [iot.describe_thing(thingName=n)["thingArn"] for n in ("s1", "s2")]
    iot.create_job(jobId="firmware-2", targets=arns, document='{"version": 2}')
    device = Client(node, client_id="s1")
    console.allow(r"/indices/search", 400)
    page = console.sign_in().page
    console.go("#/fleet", "Fleet")
    expect(page.locator('[data-count="connected"]')).to_have_text("1")
    expect(page.locator('[data-count="things"]')).to_have_text("3")
    by_type = page.locator("table").filter(has=page.locator("caption", has_text="Things by type"))
    expect(by_type.locator("tr", has_text="sensor")).to_contain_text("2")
    expect(by_type.locator("tr", has_text="(no type)")).to_contain_text("1")
    by_group = page.locator("table").filter(has=page.locator("caption", has_text="Things by group"))
    expect(by_group.locator("tr", has_text="kitchen")).to_contain_text("1")

    # The chart is drawn from /stats/history.
    charts = page.locator("svg.chart")
    expect(charts).to_have_count(2)
    expect(charts.first).to_have_attribute("aria-label", re.compile("connections", re.I))
    expect(charts.first.locator("path.line.connections")).to_have_count(1)

    # Search with the index's query language, and its errors.
    page.get_by_label("Query").fill("thingTypeName:sensor AND connectivity.connected:true")
    page.get_by_role("button", name="Search").click()
    results = page.locator("table").filter(has=page.locator("caption", has_text="Things matching"))
    expect(results.locator("tbody tr")).to_have_count(1)
    expect(results).to_contain_text("s1")
    page.get_by_label("Query").fill("thingName:(")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert")).to_contain_text("Invalid query")
    expect(page.get_by_role("alert")).to_contain_text("line 1, column")
    assert page.get_by_label("Query").get_attribute("aria-invalid") == "true"

    # Job progress per status.
    job = page.locator('tr[data-job="firmware-2"]')
    expect(job.locator('[data-state="numberOfQueuedThings"]')).to_have_text("2")
    expect(job.locator('[data-state="numberOfSucceededThings"]')).to_have_text("0")
    details = iot.describe_job(jobId="firmware-2")["job"]["jobProcessDetails"]
    assert details["numberOfQueuedThings"] == 2
    device.close()


def test_the_chart_shows_rates_between_samples(console):
    """The page's rate arithmetic over a /stats/history-shaped document (the node samples
    every 10 s, too slowly for a test to wait for)."""
    console.open()
    points = console.page.evaluate("""async () => {
        const { rates } = await import('/console/js/chart.js');
        return rates([{t: 0, received: 0}, {t: 10000, received: 50}, {t: 20000, received: 50}, {t: 30000, received: 3}], 'received');
    }""")
    assert points == [[10000, 5], [20000, 0]]


def test_stats_history_is_signed_and_sampled(node):
    """What the fleet chart reads: the last hour, one sample every 10 s, signed like the API."""
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as refused:
        node.http_get("/stats/history")
    assert refused.value.code == 403
    doc = signed_get(node, "/stats/history")
    assert doc["intervalSeconds"] == 10
    assert len(doc["samples"]) >= 1
    assert set(doc["samples"][0]) >= {"t", "connections", "received", "sent"}


def test_the_cluster_page_shows_readiness_members_and_groups(console):
    page = console.sign_in().page
    console.go("#/cluster", "Cluster")
    expect(page.locator("[data-ready]")).to_have_attribute("data-ready", "true")
    for group in ["meta", "shard-0", "shard-1", "shard-2", "shard-3", "retained"]:
        row = page.locator(f'tr[data-group="{group}"]')
        expect(row).to_be_visible()
        expect(row.locator("td").nth(1)).to_have_text("1")
    expect(page.locator("table").filter(has=page.locator("caption", has_text="Members"))).to_contain_text("1 (this node)")
    status = json.loads(console.node.http_get("/cluster/status")[1])
    assert {g["name"] for g in status["groups"]} >= {"meta", "retained"}


def test_the_cluster_page_shows_every_member_of_a_three_node_cluster(open_console):
    from test_cluster import LocalCluster

    cluster = LocalCluster(tempfile.mkdtemp(prefix="ferrite-console-cluster-")).start()
    try:
        leaders = cluster.wait_for_leaders()
        member = cluster.member(2)
        console = open_console(member)
        page = console.sign_in().page
        console.go("#/cluster", "Cluster")
        expect(page.locator("[data-ready]")).to_have_attribute("data-ready", "true")
        members = page.locator("table").filter(has=page.locator("caption", has_text="Members"))
        expect(members.locator("tbody tr")).to_have_count(3)
        expect(members.locator("tbody tr").nth(1)).to_contain_text("2 (this node)")
        for row in (0, 2):
            expect(members.locator("tbody tr").nth(row).locator("td").nth(2)).to_have_text("connected")
        for group, leader in leaders.items():
            expect(page.locator(f'tr[data-group="{group}"] td').nth(1)).to_have_text(str(leader))
    finally:
        cluster.stop()
        shutil.rmtree(cluster.base, ignore_errors=True)


def test_a_phone_sized_screen_has_no_horizontal_overflow_and_a_usable_menu(open_console, node):
    iot = aws_client(node, "iot")
    iot.create_thing(thingName="a-thing-with-a-rather-long-name-for-a-small-screen", attributePayload={"attributes": {"k": "v" * 60}})
    console = open_console(node, PHONE)
    console.allow(r"/things/[^/]+/shadow", 404)
    page = console.sign_in().page
    menu = page.get_by_role("button", name="Menu")
    expect(menu).to_be_visible()
    expect(page.get_by_role("link", name="Rules")).to_be_hidden()

    def no_overflow():
        width = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]")
        wide = page.evaluate("""() => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest('.table-wrap, pre'))
            .slice(0, 5).map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))""")
        assert max(width[0], width[1]) <= width[2], (page.url, width, wide)

    routes = [("#/things", "Things"), ("#/things/a-thing-with-a-rather-long-name-for-a-small-screen", None),
              ("#/mqtt", "MQTT test client"), ("#/rules", "Rules"), ("#/fleet", "Fleet"), ("#/cluster", "Cluster")]
    for route, heading in routes:
        console.go(route, heading or route.split("/")[-1])
        page.wait_for_timeout(300)
        no_overflow()
    # Wide tables scroll sideways inside their own box.
    console.go("#/things", "Things")
    wrap = page.locator(".table-wrap").first
    assert wrap.evaluate("e => getComputedStyle(e).overflowX") == "auto"
    assert wrap.evaluate("e => e.scrollWidth > e.clientWidth")
    no_overflow()
    console.shot("phone")
    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(page.get_by_role("link", name="Rules")).to_be_visible()
    no_overflow()
    console.shot("phone-menu")
    page.get_by_role("link", name="Rules").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rules")
    expect(page.get_by_role("link", name="Rules")).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")


def test_the_console_presigns_its_websocket_for_a_sigv4_listener(open_console, make_node):
    node = make_node(config_text='[auth]\nws = ["sigv4"]\n')
    anonymous = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="anon", transport="websockets")
    anonymous.ws_set_options(path="/mqtt")
    refused = queue.Queue()
    anonymous.on_connect = lambda c, u, flags, rc, props: refused.put(rc)
    anonymous.connect(node.host, node.ws_port)
    anonymous.loop_start()
    assert refused.get(timeout=10) != 0
    anonymous.loop_stop()

    console = open_console(node)
    page = console.sign_in().page
    console.go("#/mqtt", "MQTT test client")
    expect(page.locator(".conn")).to_have_attribute("data-state", "connected")
    page.get_by_label("Topic filter").fill("signed/+")
    page.get_by_role("button", name="Subscribe").click()
    expect(page.locator('li[data-filter="signed/+"]')).to_be_visible()
    device = Client(node, client_id="plain")
    device.publish("signed/x", b"ok", qos=1)
    expect(message_item(page, "signed/x")).to_have_count(1)
    device.close()


def test_the_node_serves_the_console_files_in_this_checkout(node):
    """Catches a binary built before the console's files last changed (they are embedded)."""
    import urllib.request

    base = f"http://{node.host}:{node.http_port}/console/"
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
    served = 0
    for directory, _, names in os.walk(CONSOLE_DIR):
        for name in names:
            path = os.path.relpath(os.path.join(directory, name), CONSOLE_DIR)
            with urllib.request.urlopen(base + path) as r:
                assert r.read() == open(os.path.join(CONSOLE_DIR, path), "rb").read(), f"{path} differs: rebuild the node"
                ext = os.path.splitext(name)[1]
                if ext in types:
                    assert r.headers["Content-Type"].startswith(types[ext]), path
            served += 1
    assert served >= 10
    with urllib.request.urlopen(base) as r:
        assert r.read() == open(os.path.join(CONSOLE_DIR, "index.html"), "rb").read()
    with urllib.request.urlopen(f"http://localhost:{node.http_port}/console/config.json") as r:
        config = json.loads(r.read())
    assert config["region"] == "us-east-1" and config["accountId"] == "000000000000"
    assert config["endpoints"]["mqtts"] == f"localhost:{node.mqtts_port}"
    assert config["endpoints"]["ws"] == f"localhost:{node.ws_port}"
    with urllib.request.urlopen(base + "ca.pem") as r:
        assert r.read() == open(node.ca_path, "rb").read()


@pytest.mark.skipif(not SHOTS, reason="set FERRITE_CONSOLE_SCREENSHOTS=1 to write docs/console/*.png")
def test_screenshots_of_every_page(open_console, make_node, tmp_path):
    """The pictures in docs/console.md: a node with a few thermostats sending telemetry for
    half a minute (the fleet chart needs three of the node's 10-second samples)."""
    import threading

    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "alerts.sql").write_text(RULE_FILE)
    node = make_node(extra_args=["--rules-dir", str(rules_dir)])
    iot = aws_client(node, "iot")
    data = aws_client(node, "iot-data")
    iot.create_thing_type(thingTypeName="thermostat")
    iot.create_thing_group(thingGroupName="kitchen")
    iot.update_indexing_configuration(thingIndexingConfiguration={
        "thingIndexingMode": "REGISTRY_AND_SHADOW", "thingConnectivityIndexingMode": "STATUS"})
    for i in range(8):
        iot.create_thing(thingName=f"thermostat-{i:02}", thingTypeName="thermostat",
                         attributePayload={"attributes": {"room": ["kitchen", "hall", "office"][i % 3]}})
    iot.add_thing_to_thing_group(thingGroupName="kitchen", thingName="thermostat-00")
    data.update_thing_shadow(thingName="thermostat-00", payload=json.dumps(
        {"state": {"desired": {"target": 21}, "reported": {"target": 20, "temperature": 19.5}}}))
    data.update_thing_shadow(thingName="thermostat-00", shadowName="schedule", payload=json.dumps(
        {"state": {"desired": {"weekdays": "06:30-22:00"}}}))
    iot.create_topic_rule(ruleName="too_cold", topicRulePayload={
        "sql": "SELECT temperature, topic(2) AS device FROM 'things/+/telemetry' WHERE temperature < 16",
        "actions": [{"republish": {"roleArn": "-", "topic": "alerts/cold"}}], "awsIotSqlVersion": "2016-03-23"})
    iot.create_job(jobId="firmware-1-4", targets=[iot.describe_thing(thingName=f"thermostat-0{i}")["thingArn"] for i in range(4)],
                   document='{"firmware": "1.4"}')
    devices = [Client(node, client_id=f"thermostat-0{i}") for i in range(3)]
    listener = Client(node, client_id="dashboard")
    listener.subscribe("things/#")
    stop = threading.Event()

    def telemetry():
        n = 0
        while not stop.is_set():
            n += 1
            for i, d in enumerate(devices[: 1 + n // 40 % 3]):
                d.publish(f"things/thermostat-0{i}/telemetry", json.dumps({"temperature": 14 + (n + i) % 8}).encode(), wait=False)
            stop.wait(0.1)

    traffic = threading.Thread(target=telemetry, daemon=True)
    traffic.start()
    try:
        console = open_console(node)
        page = console.open().page
        console.shot("sign-in")
        console.sign_in()
        console.shot("things")
        console.go("#/things/thermostat-00", "thermostat-00")
        expect(page.locator('[data-live="on"]')).to_be_visible()
        expect(page.locator('article[data-shadow="schedule"]')).to_be_visible()
        console.shot("thing")
        page.get_by_role("button", name="Create certificate").click()
        expect(page.get_by_role("status").filter(has_text="is active and attached")).to_be_visible()
        page.get_by_role("heading", name="Connect a device").evaluate("e => e.scrollIntoView()")
        console.shot("first-device")
        console.go("#/mqtt", "MQTT test client")
        expect(page.locator(".conn")).to_have_attribute("data-state", "connected")
        page.get_by_label("Topic filter").fill("things/thermostat-00/#")
        page.get_by_role("button", name="Subscribe").click()
        devices[0].publish("things/thermostat-00/raw", b"\x01\x02\x03\xff", qos=1)
        devices[0].publish("things/thermostat-00/status", b"online", qos=1)
        expect(page.locator("li.message")).not_to_have_count(0)
        page.get_by_role("button", name="Unsubscribe from things/thermostat-00/#").click()
        console.shot("mqtt")
        console.go("#/rules", "Rules")
        page.get_by_role("button", name="View rule too_cold").click()
        expect(page.locator("pre.sql")).to_be_visible()
        console.shot("rules")
        page.get_by_label("Rule name").fill("broken")
        page.get_by_label("SQL", exact=True).fill("SELECT temperature\nFROM 'things/+/telemetry'\nWHERE temperature <")
        console.allow(r"/rules/broken", 400)
        page.get_by_role("button", name="Create rule").click()
        expect(page.locator("pre.marker")).to_be_visible()
        page.locator("pre.marker").evaluate("e => e.scrollIntoView({block: 'center'})")
        console.shot("rule-error")
        console.go("#/cluster", "Cluster")
        expect(page.locator("[data-ready]")).to_be_visible()
        console.shot("cluster")
        deadline = time.time() + 40
        while len(signed_get(node, "/stats/history")["samples"]) < 4 and time.time() < deadline:
            time.sleep(1)
        console.go("#/fleet", "Fleet")
        page.get_by_label("Query").fill("thingTypeName:thermostat AND attributes.room:kitchen")
        page.get_by_role("button", name="Search").click()
        expect(page.locator("svg.chart path.line.received")).to_have_count(1)
        expect(page.locator("table").filter(has=page.locator("caption", has_text="Things matching"))).to_be_visible()
        console.shot("fleet", full_page=True)
    finally:
        stop.set()
        traffic.join()
        for d in devices + [listener]:
            d.close()


def test_the_page_is_served_with_a_content_security_policy(node):
    import urllib.request

    with urllib.request.urlopen(f"http://{node.host}:{node.http_port}/console/", timeout=5) as r:
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, csp
        assert r.headers["X-Frame-Options"] == "DENY"
