#!/usr/bin/env python3
"""Soak benchmark: stalled subscribers next to healthy clients (run by scripts/soak-stalled).

Run A starts a fresh node, opens N stalled subscribers and runs the healthy load next to
them; run B starts another fresh node and runs the same healthy load alone. A stalled
subscriber is a raw TCP socket with a small receive buffer (set before connect) that sends
CONNECT and SUBSCRIBE to a filter matching all the healthy traffic, reads the CONNACK and
SUBACK, and then reads nothing more: the node must bound what it keeps for it
(`max_outbound_bytes`, the session queue), drop QoS 0 messages to it, and disconnect it
after `stalled_client_timeout_secs`. It keeps writing a PINGREQ now and then (so the
keep-alive does not end it first, and so that it learns of a close: a socket the node has
closed answers data with a reset, while the node's FIN never gets through a receive window
that is full). A closed one is opened again, so N exist throughout.

The healthy load is two `ferrite bench` processes at once on topics that do not overlap:
fan-out at QoS 0 (one publisher on `bench/t`, S subscribers) and point-to-point pairs at
QoS 1 (`bench/{i}`). Every second the node's RSS is sampled; every 5 s its /metrics.
"""

import argparse
import datetime
import errno
import json
import os
import random
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

# Counters reported at the end of each run (node/src/metrics.rs). "Dropped by reason":
DROP_METRICS = [
    "ferrite_messages_dropped_slow_client_total",  # QoS 0 past max_outbound_bytes
    "ferrite_messages_dropped_queue_full_total",  # session queue (max_queued_messages) full
    "ferrite_messages_dropped_too_large_total",  # over the client's maximum packet size
    "ferrite_messages_expired_total",  # message expiry interval passed
]
OTHER_METRICS = [
    "ferrite_clients_disconnected_stalled_total",
    "ferrite_publisher_backpressure_total",
    "ferrite_keepalive_timeouts_total",
    "ferrite_session_takeovers_total",
    "ferrite_protocol_errors_total",
    "ferrite_connections_total",
    "ferrite_messages_received_total",
    "ferrite_messages_sent_total",
    "ferrite_bytes_sent_total",
]


def log(msg):
    print(f"[soak-stalled {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --- MQTT 3.1.1 packets of the stalled clients ------------------------------------------


def _remaining_length(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _str(s):
    b = s.encode()
    return struct.pack("!H", len(b)) + b


def connect_packet(client_id, keepalive):
    body = _str("MQTT") + bytes([4, 0x02]) + struct.pack("!H", keepalive) + _str(client_id)  # clean session
    return bytes([0x10]) + _remaining_length(len(body)) + body


def subscribe_packet(topic_filter, qos, packet_id=1):
    body = struct.pack("!H", packet_id) + _str(topic_filter) + bytes([qos])
    return bytes([0x82]) + _remaining_length(len(body)) + body


PINGREQ = b"\xc0\x00"
HANDSHAKE_BYTES = 4 + 5  # CONNACK + SUBACK for one filter


# --- the stalled subscribers -----------------------------------------------------------


class Slot:
    __slots__ = ("i", "qos", "sock", "state", "buf", "opened", "stalled_at", "next_ping", "retry_at", "conns")

    def __init__(self, i, qos):
        self.i, self.qos = i, qos
        self.sock, self.state, self.buf = None, "idle", b""
        self.opened = self.stalled_at = self.next_ping = 0.0
        self.retry_at = 0.0
        self.conns = 0


class StalledPool:
    """N stalled subscribers on one epoll loop in one thread."""

    def __init__(self, addr, n, qos1_pct, topic_filter, keepalive, ping_interval, rcvbuf):
        self.addr, self.filter = addr, topic_filter
        self.keepalive, self.ping_interval, self.rcvbuf = keepalive, ping_interval, rcvbuf
        n_qos1 = round(n * qos1_pct / 100)
        # Spread the QoS 1 ones evenly over the slots.
        self.slots = [Slot(i, 1 if (i * n_qos1) // n != ((i + 1) * n_qos1) // n else 0) for i in range(n)]
        self.by_fd = {}
        self.ep = select.epoll()
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.stats = dict(
            stalled_now=0,
            handshakes=0,  # connections that got CONNACK + SUBACK and then stalled
            reconnects=0,  # handshakes after a slot's first
            closed_by_node=0,  # stalled sockets found closed (reset) by the node
            closed_qos0=0,  # ... of them subscribed at QoS 0
            closed_qos1=0,  # ... at QoS 1
            connect_failures=0,  # refused, timed out or closed before the handshake ended
            unexpected_acks=0,  # CONNACK refused or SUBACK not granting the asked QoS
            granted_qos0=0,
            granted_qos1=0,
        )
        self.lifetimes = []  # seconds from stalling to being found closed
        self.thread = threading.Thread(target=self._run, name="stalled", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stop_flag.set()
        self.thread.join(timeout=10)
        for s in self.slots:
            self._drop(s)
        self.ep.close()

    def snapshot(self):
        with self.lock:
            out = dict(self.stats)
            lt = sorted(self.lifetimes)
        if lt:
            out["stalled_lifetime_s"] = dict(
                min=round(lt[0], 1), p50=round(lt[len(lt) // 2], 1), max=round(lt[-1], 1), n=len(lt)
            )
        return out

    def _count(self, key, n=1):
        with self.lock:
            self.stats[key] += n

    def _open(self, s, now):
        s.buf, s.opened, s.conns = b"", now, s.conns + 1
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # Before connect, so that the window the client advertises is small from the SYN on.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sock.setblocking(False)
            err = sock.connect_ex(self.addr)
        except OSError as e:
            log(f"stalled {s.i}: socket: {e}")
            self._failed(s, now)
            return
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self._failed(s, now)
            return
        s.sock, s.state = sock, "connecting"
        self.by_fd[sock.fileno()] = s
        self.ep.register(sock.fileno(), select.EPOLLOUT)

    def _drop(self, s):
        if s.sock is not None:
            self.by_fd.pop(s.sock.fileno(), None)
            try:
                self.ep.unregister(s.sock.fileno())
            except (OSError, ValueError):
                pass
            s.sock.close()
        s.sock = None
        if s.state == "stalled":
            self._count("stalled_now", -1)
        s.state = "idle"

    def _failed(self, s, now):
        self._drop(s)
        self._count("connect_failures")
        s.retry_at = now + 1.0

    def _closed_by_node(self, s, now):
        with self.lock:
            self.stats["closed_by_node"] += 1
            self.stats[f"closed_qos{s.qos}"] += 1
            self.lifetimes.append(now - s.stalled_at)
        self._drop(s)
        s.retry_at = now  # open it again at once

    def _event(self, s, ev, now):
        if s.state == "connecting":
            err = s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err or ev & (select.EPOLLERR | select.EPOLLHUP):
                return self._failed(s, now)
            try:
                s.sock.send(connect_packet(f"soak-stalled-{s.i}", self.keepalive) + subscribe_packet(self.filter, s.qos))
            except OSError:
                return self._failed(s, now)
            s.state = "handshake"
            self.ep.modify(s.sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        elif s.state == "handshake":
            try:
                # Exactly the acks: whatever follows them (publishes) stays unread.
                data = s.sock.recv(HANDSHAKE_BYTES - len(s.buf))
            except BlockingIOError:
                return
            except OSError:
                return self._failed(s, now)
            if not data:
                return self._failed(s, now)
            s.buf += data
            if len(s.buf) < HANDSHAKE_BYTES:
                return
            b = s.buf
            ok = b[0] == 0x20 and b[3] == 0 and b[4] == 0x90 and b[8] in (0, 1, 2)
            if not ok or b[8] != s.qos:
                self._count("unexpected_acks")
                if self.stats["unexpected_acks"] <= 5:
                    log(f"stalled {s.i}: unexpected CONNACK/SUBACK {b.hex()}")
            if ok:
                self._count(f"granted_qos{min(b[8], 1)}")
            with self.lock:
                self.stats["handshakes"] += 1
                self.stats["reconnects"] += s.conns > 1
                self.stats["stalled_now"] += 1
            s.state, s.stalled_at = "stalled", now
            s.next_ping = now + random.uniform(0, self.ping_interval)
            # From now on it only learns of errors and hang-ups; it never reads again.
            self.ep.modify(s.sock.fileno(), select.EPOLLRDHUP)
        elif s.state == "stalled":
            self._closed_by_node(s, now)

    def _run(self):
        now = time.monotonic()
        for s in self.slots:
            self._open(s, now)
        last_sweep = 0.0
        while not self.stop_flag.is_set():
            for fd, ev in self.ep.poll(0.25):
                s = self.by_fd.get(fd)
                if s is not None:
                    self._event(s, ev, time.monotonic())
            now = time.monotonic()
            if now - last_sweep < 0.25:
                continue
            last_sweep = now
            for s in self.slots:
                if s.state == "idle":
                    if now >= s.retry_at:
                        self._open(s, now)
                elif s.state in ("connecting", "handshake"):
                    if now - s.opened > 15:
                        self._failed(s, now)
                elif now >= s.next_ping:
                    s.next_ping = now + self.ping_interval
                    try:
                        s.sock.send(PINGREQ)
                    except BlockingIOError:
                        pass  # the node is not reading us either; try again later
                    except OSError:
                        self._closed_by_node(s, now)


# --- the node and the healthy load ---------------------------------------------------------


class Node:
    def __init__(self, binary, work, limits, workers):
        self.binary, self.work, self.limits, self.workers = binary, work, limits, workers
        self.proc = None
        self.mqtt = self.http = None

    def start(self):
        cmd = [self.binary, "serve", "--data-dir", os.path.join(self.work, "data"), "--log-level", "warn"]
        for flag in ("mqtt", "ws", "http", "mqtts", "wss", "https"):
            cmd += [f"--{flag}-addr", "127.0.0.1:0"]
        if self.limits:
            cfg = os.path.join(self.work, "ferrite.toml")
            with open(cfg, "w") as f:
                f.write("[limits]\n" + "".join(f"{k} = {v}\n" for k, v in self.limits.items()))
            cmd += ["--config", cfg]
        if self.workers:
            cmd += ["--workers", str(self.workers)]
        self.out_path = os.path.join(self.work, "node.out")
        self.log_path = os.path.join(self.work, "node.log")
        with open(self.out_path, "w") as out, open(self.log_path, "w") as err:
            # In the temp dir: no ./rules of the caller's directory is loaded.
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=self.work)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}: {self.tail()}")
            with open(self.out_path) as f:
                for line in f:
                    if line.startswith("listening "):
                        addrs = dict(kv.split("=", 1) for kv in line.split()[1:])
                        host, port = addrs["mqtt"].rsplit(":", 1)
                        self.mqtt = (host, int(port))
                        self.http = addrs["http"]
                        return
            time.sleep(0.2)
        raise RuntimeError("the node printed no listening line in 120 s")

    def tail(self, n=20):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def status(self):
        """VmRSS and VmHWM in KiB."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                v = {l.split(":")[0]: int(l.split()[1]) for l in f if l.startswith(("VmRSS", "VmHWM"))}
            return v.get("VmRSS", 0), v.get("VmHWM", 0)
        except (OSError, ValueError, IndexError):
            return 0, 0

    def metrics(self, timeout=5):
        try:
            with urllib.request.urlopen(f"http://{self.http}/metrics", timeout=timeout) as r:
                text = r.read().decode()
        except Exception as e:  # a swamped node may not answer in time
            log(f"metrics scrape failed: {e}")
            return None
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.partition(" ")
                try:
                    out[name] = float(value) if "." in value else int(value)
                except ValueError:
                    pass
        return out

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def bench_loads(a):
    loads = []
    if a.fanout_subs > 0:
        loads.append(
            ("fanout-qos0", ["--scenario", "fan-out", "-n", a.fanout_subs, "--qos", 0, "--rate", a.fanout_rate])
        )
    if a.p2p_pairs > 0:
        loads.append(("p2p-qos1", ["--scenario", "p2p", "-n", a.p2p_pairs, "--qos", 1, "--rate", a.p2p_rate]))
    return loads


# Processes to end if the script is interrupted.
LIVE = {"nodes": [], "benches": [], "pools": []}


def cleanup():
    for p in LIVE["benches"]:
        if p.poll() is None:
            p.kill()
            p.wait()
    for pool in LIVE["pools"]:
        pool.stop_flag.set()
    for n in LIVE["nodes"]:
        n.stop()
    LIVE["benches"].clear()
    LIVE["pools"].clear()
    LIVE["nodes"].clear()


def run_phase(a, name, stalled, duration):
    work = tempfile.mkdtemp(prefix="soak-stalled-")
    limits = {}
    if a.max_outbound_bytes is not None:
        limits["max_outbound_bytes"] = a.max_outbound_bytes
    if a.stalled_timeout is not None:
        limits["stalled_client_timeout_secs"] = a.stalled_timeout
    node = Node(a.bin, work, limits, a.workers)
    LIVE["nodes"].append(node)
    pool, benches = None, []
    try:
        node.start()
        log(f"{name}: node pid {node.proc.pid}, mqtt {node.mqtt[0]}:{node.mqtt[1]}, http {node.http}")
        rss0, _ = node.status()
        if stalled:
            pool = StalledPool(
                node.mqtt, stalled, a.stalled_qos1_pct, a.stalled_filter, a.keepalive, a.ping_interval, a.rcvbuf
            )
            LIVE["pools"].append(pool)
            pool.start()
            deadline = time.monotonic() + 120
            while pool.snapshot()["stalled_now"] < stalled and time.monotonic() < deadline:
                time.sleep(0.2)
            st = pool.snapshot()
            log(f"{name}: {st['stalled_now']}/{stalled} stalled subscribers on {a.stalled_filter!r} ({st})")
        for load, extra in bench_loads(a):
            cmd = [a.bin, "bench", "--target", f"{node.mqtt[0]}:{node.mqtt[1]}", "--duration", duration]
            cmd += ["--payload", a.payload, "--json"] + extra
            cmd = [str(c) for c in cmd]
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=work)
            LIVE["benches"].append(p)
            benches.append((load, cmd, p))
        # The benches' output is small (one JSON object), so reading it at the end is safe.
        start = time.monotonic()
        deadline = start + duration + 180
        samples, timeline = [], []
        next_metrics = start
        next_progress = start + 30
        while any(p.poll() is None for _, _, p in benches) and time.monotonic() < deadline:
            now = time.monotonic()
            rss, hwm = node.status()
            if node.proc.poll() is not None:
                raise RuntimeError(f"the node exited with {node.proc.returncode} during the load: {node.tail()}")
            samples.append((round(now - start, 1), rss))
            if now >= next_metrics:
                next_metrics += 5
                m = node.metrics() or {}
                point = dict(t=round(now - start, 1), rss_mb=round(rss / 1024, 1))
                for k in ("ferrite_connections_open", "ferrite_messages_sent_total") + tuple(DROP_METRICS[:2]):
                    point[k.replace("ferrite_", "")] = m.get(k)
                point["disconnected_stalled"] = m.get("ferrite_clients_disconnected_stalled_total")
                if pool:
                    st = pool.snapshot()
                    point["stalled_now"], point["reconnects"] = st["stalled_now"], st["reconnects"]
                timeline.append(point)
                if now >= next_progress:
                    next_progress += 30
                    log(f"{name}: {json.dumps(point)}")
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        reports = {}
        for load, cmd, p in benches:
            if p.poll() is None:
                p.kill()
            out, err = p.communicate()
            try:
                reports[load] = json.loads(out.strip().splitlines()[-1])
            except (ValueError, IndexError):
                reports[load] = {"error": f"exit {p.returncode}: {err.strip()[-2000:]}", "cmd": " ".join(cmd)}
                log(f"{name}: {load} failed: {reports[load]['error']}")
        rss_end, hwm = node.status()
        final = node.metrics(timeout=30) or {}
        pool_stats = pool.snapshot() if pool else None
        if pool:
            pool.stop()
            LIVE["pools"].remove(pool)
        warnings = sum(1 for _ in open(node.log_path))
        node.stop()
        LIVE["nodes"].remove(node)

        def rss_at(frac):
            if not samples:
                return None
            t = samples[-1][0] * frac
            return round(min(samples, key=lambda s: abs(s[0] - t))[1] / 1024, 1)

        delivered = {k: r.get("received_per_s") for k, r in reports.items()}
        return dict(
            name=name,
            stalled=stalled,
            duration_s=duration,
            healthy=reports,
            healthy_received_per_s=delivered,
            healthy_received_per_s_total=sum(v or 0 for v in delivered.values()),
            rss_mb_start=round(rss0 / 1024, 1),
            rss_mb_peak=round(max([hwm] + [s[1] for s in samples]) / 1024, 1),
            rss_mb_end=round(rss_end / 1024, 1),
            rss_mb_at_25_50_75_100=[rss_at(f) for f in (0.25, 0.5, 0.75, 1.0)],
            dropped={k: final.get(k) for k in DROP_METRICS},
            counters={k: final.get(k) for k in OTHER_METRICS},
            stalled_clients=pool_stats,
            node_log_lines=warnings,
            timeline=timeline,
            rss_samples=samples,
        )
    finally:
        if pool and pool in LIVE["pools"]:
            pool.stop()
            LIVE["pools"].remove(pool)
        for _, _, p in benches:
            if p.poll() is None:
                p.kill()
                p.wait()
        LIVE["benches"].clear()
        if node in LIVE["nodes"]:
            node.stop()
            LIVE["nodes"].remove(node)
        if os.environ.get("KEEP_WORK"):
            log(f"{name}: kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def table(a, runs):
    cols = [r for r in runs if r]
    head = "| | " + " | ".join(f"{r['name']} ({r['stalled']} stalled, {r['duration_s']} s)" for r in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]

    def row(label, f):
        lines.append(f"| {label} | " + " | ".join(f(r) for r in cols) + " |")

    for load, _ in bench_loads(a):
        h = lambda r, k: r["healthy"].get(load, {}).get(k)
        row(f"{load}: delivered msgs/s", lambda r: fmt(h(r, "received_per_s")))
        row(f"{load}: sent msgs/s", lambda r: fmt(h(r, "sent_per_s")))
        row(f"{load}: lost / duplicates", lambda r: f"{fmt(h(r, 'lost'))} / {fmt(h(r, 'duplicates'))}")
        row(f"{load}: latency p50 / p99 ms", lambda r: f"{fmt(h(r, 'latency_ms_p50'), 2)} / {fmt(h(r, 'latency_ms_p99'), 2)}")
    row("**healthy delivered msgs/s, total**", lambda r: f"**{fmt(r['healthy_received_per_s_total'])}**")
    row("peak RSS MB (VmHWM)", lambda r: fmt(r["rss_mb_peak"], 1))
    row("RSS MB at start of run / 25/50/75/100 % of load", lambda r: f"{fmt(r['rss_mb_start'], 1)} / " + " / ".join(fmt(x, 1) for x in r["rss_mb_at_25_50_75_100"]))
    for k in DROP_METRICS:
        row(f"dropped: `{k}`", lambda r: fmt(r["dropped"].get(k)))
    for k in OTHER_METRICS[:5]:
        row(f"`{k}`", lambda r: fmt(r["counters"].get(k)))
    st = lambda r, k: (r["stalled_clients"] or {}).get(k)
    row("stalled clients at end (client side)", lambda r: fmt(st(r, "stalled_now")))
    row("stalled reconnects (client side)", lambda r: fmt(st(r, "reconnects")))
    row(
        "stalled found closed (QoS 0 subs + QoS 1 subs) / connect failures",
        lambda r: f"{fmt(st(r, 'closed_by_node'))} ({fmt(st(r, 'closed_qos0'))} + {fmt(st(r, 'closed_qos1'))})"
        f" / {fmt(st(r, 'connect_failures'))}",
    )
    row(
        "stalled lifetime s (p50 / max)",
        lambda r: (lambda lt: f"{lt['p50']} / {lt['max']}" if lt else "n/a")(st(r, "stalled_lifetime_s")),
    )
    return "\n".join(lines)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def main():
    ap = argparse.ArgumentParser(
        description="Stalled-subscriber soak: run A with N stalled subscribers, run B (baseline) without.",
        formatter_class=HelpFormatter,
    )
    ap.add_argument("--bin", default=os.environ.get("FERRITE_BIN", "ferrite"), help="ferrite binary (node and bench)")
    ap.add_argument("--duration", type=int, default=600, help="seconds of healthy load in run A")
    ap.add_argument("--baseline-duration", type=int, help="seconds of run B (0: skip it); default --duration")
    ap.add_argument("--stalled", type=int, default=1000, help="stalled subscribers in run A")
    ap.add_argument("--payload", type=int, default=1024, help="payload bytes of the healthy messages")
    ap.add_argument("--fanout-subs", type=int, default=10, help="subscribers of the QoS 0 fan-out load (0: none)")
    ap.add_argument("--fanout-rate", type=int, default=200, help="msgs/s of the fan-out load's one publisher")
    ap.add_argument("--p2p-pairs", type=int, default=10, help="publisher/subscriber pairs of the QoS 1 load (0: none)")
    ap.add_argument("--p2p-rate", type=int, default=20, help="msgs/s per QoS 1 publisher")
    ap.add_argument("--stalled-filter", default="bench/#", help="what the stalled clients subscribe to")
    ap.add_argument("--stalled-qos1-pct", type=float, default=50, help="percent of stalled clients subscribing at QoS 1")
    ap.add_argument("--keepalive", type=int, default=60, help="keep-alive of the stalled clients' CONNECT")
    ap.add_argument("--ping-interval", type=float, default=5, help="seconds between a stalled client's PINGREQs")
    ap.add_argument("--rcvbuf", type=int, default=4096, help="SO_RCVBUF of the stalled sockets")
    ap.add_argument("--max-outbound-bytes", type=int, help="node [limits] max_outbound_bytes (default: node's)")
    ap.add_argument("--stalled-timeout", type=int, help="node [limits] stalled_client_timeout_secs (default: node's)")
    ap.add_argument("--workers", type=int, help="node worker threads (default: node's)")
    a = ap.parse_args()
    if a.baseline_duration is None:
        a.baseline_duration = a.duration
    if not bench_loads(a):
        ap.error("no healthy load: --fanout-subs and --p2p-pairs are both 0")

    def on_signal(sig, _frame):
        raise SystemExit(128 + sig)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    out_dir = os.environ.get("OUT_DIR", "bench-results")
    os.makedirs(out_dir, exist_ok=True)
    try:
        log(f"run A: {a.stalled} stalled subscribers + healthy load for {a.duration} s")
        run_a = run_phase(a, "with-stalled", a.stalled, a.duration)
        run_b = None
        if a.baseline_duration > 0:
            log(f"run B: the healthy load alone for {a.baseline_duration} s")
            run_b = run_phase(a, "baseline", 0, a.baseline_duration)
    finally:
        cleanup()
    ratio = None
    if run_b and run_b["healthy_received_per_s_total"]:
        ratio = run_a["healthy_received_per_s_total"] / run_b["healthy_received_per_s_total"]
    result = dict(
        time=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        binary=a.bin,
        args={k: v for k, v in vars(a).items() if k != "bin"},
        with_stalled=run_a,
        baseline=run_b,
        healthy_received_per_s_ratio=ratio,
        driver_cpu_s=round(sum(resource.getrusage(resource.RUSAGE_SELF)[:2]), 1),  # this script, stalled loop included
    )
    with open(os.path.join(out_dir, "soak-stalled.jsonl"), "a") as f:
        f.write(json.dumps(result) + "\n")
    print(table(a, [run_a, run_b]))
    print()
    if ratio is not None:
        print(f"healthy delivered msgs/s, with stalled / baseline: **{ratio:.3f}**")
    print(f"(all of it, with RSS samples and a metrics timeline: {os.path.join(out_dir, 'soak-stalled.jsonl')})")


if __name__ == "__main__":
    main()
