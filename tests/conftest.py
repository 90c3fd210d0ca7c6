"""Black-box test fixtures: start the real `ferrite` binary on free ports and talk to it
with real MQTT clients (paho-mqtt) and raw sockets."""

import json
import os
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.request

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ferrite_bin():
    explicit = os.environ.get("FERRITE_BIN")
    if explicit:
        return explicit
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    for profile in ("release", "debug"):
        path = os.path.join(target, profile, "ferrite")
        if os.path.exists(path):
            return path
    raise RuntimeError("ferrite binary not found: build it or set FERRITE_BIN")


class Node:
    """One running `ferrite serve` process with its data directory."""

    def __init__(self, data_dir, extra_args=(), config=None, open_files=None):
        self.data_dir = data_dir
        self.extra_args = list(extra_args)
        self.config = config
        # A hard open-files limit for the process (the node raises its soft limit to it).
        self.open_files = open_files
        self.proc = None
        self.stderr_path = os.path.join(data_dir, "stderr.log")

    def start(self, mqtt_port=0, ws_port=0, http_port=0, mqtts_port=0, wss_port=0, https_port=0):
        args = [ferrite_bin(), "serve", "--data-dir", self.data_dir,
                "--mqtt-addr", f"127.0.0.1:{mqtt_port}", "--ws-addr", f"127.0.0.1:{ws_port}",
                "--http-addr", f"127.0.0.1:{http_port}", "--mqtts-addr", f"127.0.0.1:{mqtts_port}",
                "--wss-addr", f"127.0.0.1:{wss_port}", "--https-addr", f"127.0.0.1:{https_port}",
                "--log-level", "info"] + self.extra_args
        if self.config:
            args += ["--config", self.config]
        self.stderr = open(self.stderr_path, "ab")
        limit = None
        if self.open_files:
            import resource

            n = self.open_files

            def limit():
                resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.stderr, text=True, preexec_fn=limit)
        line = self.proc.stdout.readline()
        m = re.match(r"listening mqtt=([\d.]+):(\d+) ws=([\d.]+):(\d+) http=([\d.]+):(\d+) "
                     r"mqtts=([\d.]+):(\d+) wss=([\d.]+):(\d+) https=([\d.]+):(\d+)$", line.strip())
        if not m:
            self.proc.kill()
            raise RuntimeError(f"unexpected first line {line!r}; stderr: {self.log()}")
        self.host = m.group(1)
        self.mqtt_port, self.ws_port, self.http_port = int(m.group(2)), int(m.group(4)), int(m.group(6))
        self.mqtts_port, self.wss_port, self.https_port = int(m.group(8)), int(m.group(10)), int(m.group(12))
        self.ca_path = os.path.join(self.data_dir, "tls", "ca.pem")
        return self

    def log(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self, kill=False):
        """Stops (SIGKILL when `kill`) and starts again on the same ports and data."""
        ports = (self.mqtt_port, self.ws_port, self.http_port, self.mqtts_port, self.wss_port, self.https_port)
        self.kill9() if kill else self.stop()
        for _ in range(50):
            try:
                return self.start(*ports)
            except RuntimeError as e:
                if "cannot listen" not in str(e):
                    raise
                time.sleep(0.1)
        raise RuntimeError("could not restart on the same ports")

    def http_get(self, path):
        with urllib.request.urlopen(f"http://{self.host}:{self.http_port}{path}", timeout=5) as r:
            return r.status, r.read().decode()

    def metric(self, name):
        _, body = self.http_get("/metrics")
        for line in body.splitlines():
            if line.startswith(f"ferrite_{name} "):
                return float(line.split()[1])
        raise KeyError(name)


@pytest.fixture
def node():
    d = tempfile.mkdtemp(prefix="ferrite-test-")
    n = Node(d).start()
    yield n
    n.stop()
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def make_node():
    created = []

    def make(extra_args=(), config_text=None, open_files=None):
        d = tempfile.mkdtemp(prefix="ferrite-test-")
        cfg = None
        if config_text is not None:
            cfg = os.path.join(d, "ferrite.toml")
            with open(cfg, "w") as f:
                f.write(config_text)
        n = Node(d, extra_args, cfg, open_files).start()
        created.append((n, d))
        return n

    yield make
    for n, d in created:
        n.stop()
        shutil.rmtree(d, ignore_errors=True)


class Client:
    """A paho client with blocking helpers and a queue of received messages."""

    def __init__(self, node, client_id="", v5=True, clean=True, transport="tcp", session_expiry=None,
                 will=None, keepalive=60, connect=True, properties=None, userdata=None):
        self.v5 = v5
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        kwargs = dict(client_id=client_id, protocol=proto, transport=transport)
        if not v5:
            kwargs["clean_session"] = clean
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, **kwargs)
        if transport == "websockets":
            self.c.ws_set_options(path="/mqtt")
        self.messages = queue.Queue()
        self.connack = queue.Queue()
        self.subacks = queue.Queue()
        self.unsubacks = queue.Queue()
        self.published = {}
        self.disconnects = queue.Queue()
        self.pub_lock = threading.Lock()
        self.c.on_connect = lambda c, u, flags, rc, props: self.connack.put((flags, rc, props))
        self.c.on_message = lambda c, u, msg: self.messages.put(msg)
        self.c.on_subscribe = lambda c, u, mid, rcs, props: self.subacks.put((mid, rcs, props))
        self.c.on_unsubscribe = lambda c, u, mid, rcs, props: self.unsubacks.put((mid, rcs, props))
        self.c.on_disconnect = lambda c, u, flags, rc, props: self.disconnects.put(rc)
        self.c.on_publish = self._on_publish
        if will:
            self.c.will_set(**will)
        self.node = node
        self.transport = transport
        if connect:
            self.connect(clean=clean, session_expiry=session_expiry, keepalive=keepalive, properties=properties)

    def _on_publish(self, c, u, mid, rc, props):
        with self.pub_lock:
            self.published[mid] = rc

    def connect(self, clean=True, session_expiry=None, keepalive=60, properties=None):
        port = self.node.ws_port if self.transport == "websockets" else self.node.mqtt_port
        if self.v5:
            props = properties or Properties(PacketTypes.CONNECT)
            if session_expiry is not None:
                props.SessionExpiryInterval = session_expiry
            self.c.connect(self.node.host, port, keepalive=keepalive, clean_start=clean, properties=props)
        else:
            self.c.connect(self.node.host, port, keepalive=keepalive)
        self.c.loop_start()
        self.flags, self.rc, self.props = self.connack.get(timeout=10)
        return self.rc

    def subscribe(self, topic, qos=0, **opts):
        if self.v5:
            options = mqtt.SubscribeOptions(qos=qos, **opts)
            props = opts.pop("properties", None)
            rc, mid = self.c.subscribe(topic, options=options)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        _, rcs, _ = self.subacks.get(timeout=10)
        return rcs

    def subscribe_props(self, topic, qos, props):
        rc, mid = self.c.subscribe(topic, options=mqtt.SubscribeOptions(qos=qos), properties=props)
        _, rcs, _ = self.subacks.get(timeout=10)
        return rcs

    def publish(self, topic, payload, qos=0, retain=False, properties=None, wait=True):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if wait and qos > 0:
            info.wait_for_publish(timeout=10)
            assert info.is_published(), f"no acknowledgement for {topic}"
        return info

    def get(self, timeout=5):
        return self.messages.get(timeout=timeout)

    def expect_none(self, wait=0.5):
        try:
            m = self.messages.get(timeout=wait)
        except queue.Empty:
            return
        raise AssertionError(f"unexpected message on {m.topic}: {m.payload!r}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def drop(self):
        """Closes the socket without DISCONNECT (an abnormal disconnect)."""
        self.c.loop_stop()
        self.c.socket().close()


def v5_connect(cid=b"raw", props=b"\x00"):
    """A raw MQTT 5 CONNECT (clean start, keep alive 60 s) with the given properties."""
    vh = b"\x00\x04MQTT\x05\x02\x00\x3c" + props
    payload = struct.pack("!H", len(cid)) + cid
    body = vh + payload
    return bytes([0x10, len(body)]) + body


def split_packets(data):
    """The MQTT packets in `data`, each with its fixed header."""
    out, i = [], 0
    while i < len(data):
        mult, length, j = 1, 0, i + 1
        while True:
            b = data[j]
            length += (b & 0x7F) * mult
            mult *= 128
            j += 1
            if b & 0x80 == 0:
                break
        out.append(data[i:j + length])
        i = j + length
    return out


def raw_connect(node, payload):
    s = socket.create_connection((node.host, node.mqtt_port), timeout=5)
    s.sendall(payload)
    return s


def seconds_until_closed(sock, timeout):
    """Reads nothing but the server's close: how long it took (fails on any data)."""
    start = time.time()
    sock.settimeout(timeout)
    assert sock.recv(16) == b""
    return time.time() - start


def read_all(sock, timeout=2.0):
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    return data


def next_json_on(client, topic, timeout=5):
    """The JSON payload of the next message `client` receives on `topic` (others are skipped)."""
    while True:
        m = client.get(timeout=timeout)
        if m.topic == topic:
            return json.loads(m.payload)


def aws_client(node, service, credentials_file=None):
    """A boto3 client of `service` ("iot", "iot-data") for the node, configured the way the
    node's startup line tells users to: AWS_SHARED_CREDENTIALS_FILE pointing at the file it
    wrote (any region name works)."""
    import boto3

    saved = os.environ.get("AWS_SHARED_CREDENTIALS_FILE")
    os.environ["AWS_SHARED_CREDENTIALS_FILE"] = credentials_file or os.path.join(node.data_dir, "credentials")
    try:
        session = boto3.session.Session(region_name="eu-west-1")
        return session.client(service, endpoint_url=f"http://{node.host}:{node.http_port}")
    finally:
        if saved is None:
            del os.environ["AWS_SHARED_CREDENTIALS_FILE"]
        else:
            os.environ["AWS_SHARED_CREDENTIALS_FILE"] = saved


class JsonEndpoint:
    """A local HTTP endpoint that answers each JSON POST with `answer(request)` (a dict),
    recording every request: custom authorizers and pre-provisioning hooks."""

    def __init__(self, answer, path):
        import http.server

        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(request)
                body = json.dumps(answer(request)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
