"""Hostile and broken clients: limits that hold for every client, before and after
authentication (docs/decisions.md: keep alive, SigV4, HTTP topics)."""

import time

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


def rss_bytes(node):
    with open(f"/proc/{node.proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def stalled_subscriber(node, client_id: bytes, topic_filter: bytes, qos: int):
    """A 3.1.1 subscriber with a small receive buffer that reads its SUBACK and then nothing."""
    import socket

    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((node.host, node.mqtt_port))
    stalled.sendall(v311_connect(client_id, 60))
    assert stalled.recv(4) == b"\x20\x02\x00\x00"
    sub = b"\x00\x01" + len(topic_filter).to_bytes(2, "big") + topic_filter + bytes([qos])
    stalled.sendall(bytes([0x82, len(sub)]) + sub)
    assert stalled.recv(5) == b"\x90\x03\x00\x01" + bytes([qos])
    return stalled


def wait_for_metric(node, name, at_least, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline and node.metric(name) < at_least:
        time.sleep(0.2)
    return node.metric(name)


def test_a_stalled_subscriber_costs_a_bounded_buffer_and_is_disconnected(make_node):
    from conftest import Client

    node = make_node(config_text="[limits]\nmax_outbound_bytes = 262144\nstalled_client_timeout_secs = 3\n")
    stalled = stalled_subscriber(node, b"stalled", b"flood/#", 0)  # kept open, never read
    healthy = Client(node, "healthy")
    healthy.subscribe("calm/#", qos=0)
    time.sleep(0.3)
    rss_before = rss_bytes(node)
    publisher = Client(node, "flooder")
    payload = b"x" * 100_000
    for i in range(1000):  # 100 MB to the stalled subscriber, 100 small messages to the healthy one
        publisher.publish(f"flood/{i % 4}", payload, qos=0)
        if i % 10 == 9:
            publisher.publish(f"calm/{i}", b"fine", qos=0)
    time.sleep(1)
    grown = rss_bytes(node) - rss_before
    assert grown < 40_000_000, f"RSS grew {grown} bytes for 100 MB to a stalled client"
    assert 900 <= node.metric("messages_dropped_slow_client_total") <= 1000
    assert wait_for_metric(node, "clients_disconnected_stalled_total", 1, 10) == 1
    assert healthy.messages.qsize() == 100, "the healthy subscriber loses nothing"
    stalled.close()


def test_a_stalled_qos1_subscriber_below_the_outbound_bound_is_disconnected(make_node):
    from conftest import Client

    node = make_node(config_text="[limits]\nmax_outbound_bytes = 1048576\nstalled_client_timeout_secs = 3\n")
    stalled = stalled_subscriber(node, b"stalled-qos1", b"slow/q1", 1)  # kept open, never read
    publisher = Client(node, "q1-publisher")
    for _ in range(300):  # the in-flight window (64 x 10 KB) fills the socket, far below 1 MiB
        publisher.publish("slow/q1", b"y" * 10_000, qos=1)
    disconnected = wait_for_metric(node, "clients_disconnected_stalled_total", 1, 15)
    assert disconnected == 1, "a QoS 1 subscriber that reads nothing is closed too"
    stalled.close()


@pytest.mark.parametrize(
    "topic",
    [
        "$aws/things/lamp/shadow/update/accepted",
        "$aws/things/lamp/shadow/update/delta",
        "$aws/things/lamp/shadow/get/accepted",
        "$aws/events/presence/disconnected/someone-else",
    ],
)
def test_reserved_topics_cannot_be_forged(node, topic):
    from botocore.exceptions import ClientError

    from conftest import Client, aws_client

    watcher = Client(node, "watcher")
    watcher.subscribe("$aws/things/lamp/#", qos=1)
    watcher.subscribe("$aws/events/#", qos=1)
    forger = Client(node, "forger")  # anonymous on loopback: every policy allows it
    forger.publish(topic, b'{"state":{"desired":{"door":"open"}},"version":999}', qos=0, wait=False)
    assert forger.disconnects.get(timeout=5) is not None, "a QoS 0 forger is disconnected"
    with pytest.raises(ClientError) as refused:
        aws_client(node, "iot-data").publish(topic=topic, qos=1, payload=b"{}")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    seen = []
    while True:
        try:
            seen.append(watcher.messages.get(timeout=0.5).topic)
        except Exception:
            break
    assert topic not in seen, f"{topic} was delivered"


def test_a_will_on_a_reserved_topic_is_refused_at_connect(node):
    def field(b):
        return len(b).to_bytes(2, "big") + b

    topic = b"$aws/things/lamp/shadow/update/accepted"
    body = b"\x00\x04MQTT\x04\x06\x00\x3c" + field(b"will-forger") + field(topic) + field(b'{"state":{}}')
    s = raw_connect(node, bytes([0x10, len(body)]) + body)
    assert s.recv(4) == b"\x20\x02\x00\x05", "CONNACK 5: not authorized"


def test_receive_maximum_holds_while_acknowledgements_wait_for_storage(make_node):
    import struct

    from conftest import Client, read_all, split_packets, v5_connect

    node = make_node(config_text="[limits]\nreceive_maximum = 2\n")
    # A persistent QoS 1 subscriber: every publish is written durably before its PUBACK.
    keeper = Client(node, "keeper", clean=False, session_expiry=3600)
    keeper.subscribe("pipe/#", qos=1)
    s = raw_connect(node, v5_connect(b"pipeliner"))
    assert s.recv(64)[0] == 0x20
    burst = b""
    for pid in range(1, 2001):
        body = struct.pack("!H", 6) + b"pipe/1" + struct.pack("!H", pid) + b"\x00" + b"payload"
        burst += bytes([0x32, len(body)]) + body
    try:
        s.sendall(burst)
    except OSError:
        pass  # the node may close before reading it all
    packets = split_packets(read_all(s, 3))
    disconnects = [p for p in packets if p[0] == 0xE0]
    assert disconnects and disconnects[0][2] == 0x93, "pipelining past the receive maximum ends with DISCONNECT 0x93"


def test_the_disconnect_reason_reaches_a_client_that_keeps_writing(make_node):
    import socket
    import struct

    from conftest import split_packets, v5_connect

    node = make_node(config_text="[limits]\nreceive_maximum = 2\n")
    s = raw_connect(node, v5_connect(b"writer"))
    assert s.recv(64)[0] == 0x20
    qos2 = b""
    for pid in (1, 2, 3):  # three unreleased QoS 2 publishes: one past the maximum
        body = struct.pack("!H", 1) + b"t" + struct.pack("!H", pid) + b"\x00" + b"p"
        qos2 += bytes([0x34, len(body)]) + body
    s.sendall(qos2)
    # The client goes on writing before it reads: input the node never reads.
    try:
        s.sendall(b"\xc0\x00" * 30000)
    except OSError:
        pass
    s.settimeout(3)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        pytest.fail(f"the connection was reset; read so far: {data!r}")
    disconnects = [p for p in split_packets(data) if p[0] == 0xE0]
    assert disconnects and disconnects[0][2] == 0x93


def test_sigv4_requests_must_sign_the_host_and_the_body(node):
    import configparser
    import http.client
    import json
    import os

    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    class HostUnsigned(botocore.auth.SigV4Auth):
        def headers_to_sign(self, request):
            headers = super().headers_to_sign(request)
            del headers["host"]
            return headers

    class PayloadUnsigned(botocore.auth.SigV4Auth):
        def payload(self, request):
            return "UNSIGNED-PAYLOAD"

    creds = configparser.ConfigParser()
    creds.read(os.path.join(node.data_dir, "credentials"))
    key = botocore.credentials.Credentials(creds["default"]["aws_access_key_id"], creds["default"]["aws_secret_access_key"])

    def send(signer, body, sent_body=None, headers=None):
        url = f"http://{node.host}:{node.http_port}/things/sig-thing"
        req = botocore.awsrequest.AWSRequest(method="POST", url=url, data=body, headers=headers or {})
        signer(key, "iot", "eu-west-1").add_auth(req)
        conn = http.client.HTTPConnection(node.host, node.http_port, timeout=10)
        try:
            conn.request("POST", "/things/sig-thing", body=sent_body or body, headers=dict(req.headers))
            r = conn.getresponse()
            return r.status, r.getheader("x-amzn-ErrorType"), r.read()
        finally:
            conn.close()

    status, error, _ = send(HostUnsigned, b"{}")
    assert (status, error) == (403, "IncompleteSignatureException")
    original = json.dumps({"attributePayload": {"attributes": {"owner": "alice"}}}).encode()
    swapped = json.dumps({"attributePayload": {"attributes": {"owner": "mallory"}}}).encode()
    status, error, _ = send(PayloadUnsigned, original, swapped, {"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    assert (status, error) == (403, "InvalidSignatureException")
    status, _, _ = send(botocore.auth.SigV4Auth, original)
    assert status == 200, "the same request signed as AWS's tools sign it is accepted"


def test_sighup_reloads_rules_and_sigterm_logs_a_last_line(make_node, tmp_path):
    import signal

    from conftest import Client

    rules = tmp_path / "rules"
    rules.mkdir()
    node = make_node(extra_args=["--rules-dir", str(rules)])
    # Written after the start, then announced with SIGHUP (the poller may also see it).
    (rules / "copy.sql").write_text("CREATE RULE copy AS SELECT * FROM 'in/#' DO republish(topic = 'out/copied');\n")
    node.proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert node.proc.poll() is None, "SIGHUP does not end the node"
    watcher = Client(node, "hup-watcher")
    watcher.subscribe("out/#", qos=0)
    Client(node, "hup-publisher").publish("in/x", b"{}", qos=0)
    assert watcher.get(timeout=5).topic == "out/copied"
    assert "SIGHUP" in node.log()
    node.stop()
    assert node.log().rstrip().splitlines()[-1].find("stopped") >= 0


WS_UPGRADE = (
    "GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    "Sec-WebSocket-Protocol: mqtt\r\n\r\n"
).encode()


def ws_socket(node):
    import socket

    return socket.create_connection((node.host, node.ws_port), timeout=5)


def closed_within(sock, seconds):
    """True when the node closes the socket within `seconds` (whatever it sends first)."""
    import socket

    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except socket.timeout:
        return False
    except ConnectionResetError:
        return True


def test_websocket_sockets_get_the_connect_deadline(node):
    half = ws_socket(node)
    half.sendall(WS_UPGRADE[:40])  # an upgrade that never finishes
    upgraded = ws_socket(node)
    upgraded.sendall(WS_UPGRADE)  # an upgrade, then no CONNECT
    start = time.time()
    assert closed_within(half, 15), "a half-sent upgrade is closed"
    assert closed_within(upgraded, 15), "an upgraded socket without CONNECT is closed"
    assert time.time() - start < 15


def test_websocket_messages_are_capped_at_the_largest_packet(node):
    import struct

    s = ws_socket(node)
    s.sendall(WS_UPGRADE)
    assert b" 101 " in s.recv(4096)
    # A binary frame announcing 10 MB (masked, as from a client; under the 16 MiB default
    # frame limit): refused at once, not buffered.
    s.sendall(bytes([0x82, 0xFF]) + struct.pack("!Q", 10_000_000) + b"\x00\x00\x00\x00" + b"\x00" * 65536)
    assert closed_within(s, 5)


def tls_socket(node, port, alpn=None):
    """A TLS connection that trusts the node's CA and checks nothing else."""
    import socket
    import ssl

    ctx = ssl.create_default_context(cafile=node.ca_path)
    ctx.check_hostname = False
    if alpn:
        ctx.set_alpn_protocols(alpn)
    raw = socket.create_connection((node.host, port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def test_silent_tls_sockets_are_closed_by_the_connect_deadline(node):
    import socket

    silent_tcp = socket.create_connection((node.host, node.mqtts_port), timeout=5)  # no ClientHello
    handshaken = tls_socket(node, node.mqtts_port)  # handshake done, then no CONNECT
    start = time.time()
    assert closed_within(silent_tcp, 13), "a socket that never starts the TLS handshake is closed"
    assert closed_within(handshaken, 13), "a TLS socket without CONNECT is closed"
    assert time.time() - start < 13, "10 s from accept, whatever the transport"


def test_https_relay_and_http_bodies_do_not_hold_sockets_forever(node):
    import socket

    # HTTPS (not MQTT) that never sends a request: the relay to the HTTP listener ends.
    idle = tls_socket(node, node.https_port, alpn=["http/1.1"])
    assert closed_within(idle, 15), "an idle HTTPS connection is closed"
    # A request body that stops arriving is answered 408 and the connection closed.
    slow = socket.create_connection((node.host, node.http_port), timeout=5)
    slow.sendall(b"POST /things/slow HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n{\"attr")
    start = time.time()
    slow.settimeout(20)
    answer = b""
    try:
        while True:
            chunk = slow.recv(65536)
            if not chunk:
                break
            answer += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"RequestTimeoutException" in answer
    assert time.time() - start < 15
    # The same over HTTPS, through the relay.
    slow_tls = tls_socket(node, node.https_port, alpn=["http/1.1"])
    slow_tls.sendall(b"POST /things/slow HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{")
    slow_tls.settimeout(20)
    assert slow_tls.recv(65536).startswith(b"HTTP/1.1 408")


def test_idle_sockets_on_one_listener_do_not_starve_the_others(make_node):
    import socket

    from conftest import Client

    node = make_node(open_files=400)
    held = []
    for _ in range(400):  # more than the process may open
        try:
            held.append(socket.create_connection((node.host, node.wss_port), timeout=2))
        except OSError:
            break
    time.sleep(0.5)
    # Everything below happens well before the 10 s handshake deadline frees those sockets.
    status, _ = node.http_get("/health")
    assert status == 200, "the HTTP API still accepts"
    sub = Client(node, "still-served")
    sub.subscribe("starve/t", qos=1)
    Client(node, "still-publishing").publish("starve/t", b"x", qos=1)
    assert sub.get(timeout=5).payload == b"x", "the MQTT listener still accepts"
    assert node.metric("connections_refused_at_limit_total") > 0
    refusals = [line for line in node.log().splitlines() if "connections refused" in line]
    assert refusals and "wss" in refusals[0], "the refusal is logged, naming the listener"
    refused = sum(1 for s in held if closed_within(s, 0.2))
    assert refused > 0, "sockets past the share were closed at once"


def test_a_configured_listener_limit_refuses_with_a_log_line(make_node):
    from conftest import Client

    node = make_node(config_text="[limits.max_connections]\nmqtt = 2\n")
    a, b = Client(node, "first"), Client(node, "second")
    third = raw_connect(node, b"")
    assert closed_within(third, 3), "the third socket is closed at once"
    assert "the listener holds its [limits.max_connections]" in node.log()
    a.close()
    time.sleep(0.5)
    Client(node, "after-one-left")  # a freed place is taken again
    b.close()


def test_sighup_reloads_the_server_certificate(make_node, tmp_path):
    import signal
    import subprocess

    def make_cert(name):
        cert, key = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "2", "-subj", f"/CN={name}", "-addext", "subjectAltName=DNS:localhost",
                        "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
        return cert, key

    def served_cert(node):
        import socket
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with socket.create_connection((node.host, node.mqtts_port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                return s.getpeercert(binary_form=True)

    first_cert, first_key = make_cert("first")
    live_cert, live_key = tmp_path / "server.pem", tmp_path / "server.key"
    live_cert.write_bytes(first_cert.read_bytes())
    live_key.write_bytes(first_key.read_bytes())
    node = make_node(config_text=f'[tls]\nserver_cert = "{live_cert}"\nserver_key = "{live_key}"\n')
    before = served_cert(node)
    second_cert, second_key = make_cert("second")
    live_cert.write_bytes(second_cert.read_bytes())
    live_key.write_bytes(second_key.read_bytes())
    node.proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    after = served_cert(node)
    assert after != before, "new handshakes get the certificate now in the file"
    # A broken file on SIGHUP keeps the certificate in use and says why.
    live_key.write_text("not a key")
    node.proc.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert served_cert(node) == after
    assert "the server certificate was not reloaded" in node.log()


def test_sigterm_drains_rule_actions_before_stopping(make_node, tmp_path):
    import http.server
    import signal
    import threading

    from conftest import Client

    received = []

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(1)
            received.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "slow.sql").write_text(
        f"CREATE RULE slow AS SELECT * FROM 'drain/#' DO http(url = 'http://127.0.0.1:{server.server_address[1]}/x');\n")
    node = make_node(extra_args=["--rules-dir", str(rules)])
    publisher = Client(node, "drain-publisher")
    for i in range(3):
        publisher.publish(f"drain/{i}", b"{}", qos=1)
    # One action works through its queue in order: 3 requests of 1 s each.
    node.proc.send_signal(signal.SIGTERM)
    node.proc.wait(15)
    server.shutdown()
    assert len(received) == 3, f"every queued rule action ran before the node stopped: {received}"
    log = node.log()
    assert "draining before stop" in log and "drained" in log
    assert log.rstrip().splitlines()[-1].find("stopped") >= 0
