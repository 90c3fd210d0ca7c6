#!/usr/bin/env python3
"""What session replicas cost on the QoS 1 path (run by scripts/bench-session-replicas).

A 3-node cluster from `ferrite cluster local`; its nodes are then started from their
config files twice over, alternating `[cluster] replicate_sessions = true` and `false`:
each round runs the same `ferrite bench` (publishers on node 2, persistent QoS 1
subscribers on node 1, so every message crosses nodes and, with replicas, reaches node 3
too) and records delivered msgs/s and latency. Rounds alternate so machine noise hits both
settings alike; the ratio of medians is printed.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

LOCAL_LINE = re.compile(r"node (\d+) pid=(\d+) listening mqtt=([\d.]+):(\d+) ws=\S+ http=([\d.]+):(\d+)")


def start_layout(binary, base):
    """Runs `cluster local` once to lay out configs and data; answers {node: (mqtt, http)}."""
    proc = subprocess.Popen([binary, "cluster", "local", "--nodes", "3", "--base-dir", base],
                            stdout=subprocess.PIPE, text=True)
    ports = {}
    for _ in range(3):
        m = LOCAL_LINE.search(proc.stdout.readline())
        assert m, "unexpected output from cluster local"
        ports[int(m.group(1))] = (f"{m.group(3)}:{m.group(4)}", f"{m.group(5)}:{m.group(6)}")
    proc.send_signal(signal.SIGINT)
    proc.wait(60)
    return ports


def set_replication(base, on):
    for n in (1, 2, 3):
        path = os.path.join(base, f"node-{n}", "ferrite.toml")
        text = re.sub(r"\nreplicate_sessions = \w+", "", open(path).read())
        text = text.replace("[cluster]\n", f"[cluster]\nreplicate_sessions = {'true' if on else 'false'}\n", 1)
        open(path, "w").write(text)


def ready(http):
    try:
        with urllib.request.urlopen(f"http://{http}/ready", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def start_nodes(binary, base, ports):
    procs = []
    for n in (1, 2, 3):
        log = open(os.path.join(base, f"node-{n}", "bench.log"), "ab")
        procs.append(subprocess.Popen([binary, "serve", "--config", os.path.join(base, f"node-{n}", "ferrite.toml")],
                                      stdout=subprocess.DEVNULL, stderr=log))
    deadline = time.time() + 60
    while not all(ready(ports[n][1]) for n in (1, 2, 3)):
        assert time.time() < deadline, "the cluster did not become ready"
        time.sleep(0.2)
    return procs


def stop_nodes(procs):
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(60)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="the ferrite binary (node and load generator)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per setting (default 3)")
    ap.add_argument("--duration", type=int, default=10, help="seconds of publishing per round (default 10)")
    ap.add_argument("--publishers", type=int, default=4)
    ap.add_argument("--payload", type=int, default=64)
    args = ap.parse_args()
    base = tempfile.mkdtemp(prefix="ferrite-replicas-")
    ports = start_layout(args.bin, base)
    results = {True: [], False: []}
    try:
        for rnd in range(args.rounds):
            for on in (True, False):
                set_replication(base, on)
                procs = start_nodes(args.bin, base, ports)
                try:
                    time.sleep(2)
                    out = subprocess.run(
                        [args.bin, "bench", "--target", ports[2][0], "--sub-target", ports[1][0],
                         "--scenario", "fan-in", "-n", str(args.publishers), "--qos", "1", "--persistent",
                         "--payload", str(args.payload), "--duration", str(args.duration), "--json"],
                        capture_output=True, text=True, check=True).stdout
                finally:
                    stop_nodes(procs)
                report = json.loads(out.strip().splitlines()[-1])
                results[on].append(report)
                print(f"round {rnd + 1} replicate_sessions={'true ' if on else 'false'} "
                      f"received {report['received_per_s']:.0f} msgs/s lost {report['lost']} "
                      f"p50 {report['latency_ms_p50']:.1f} ms p99 {report['latency_ms_p99']:.1f} ms",
                      flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    on = statistics.median(r["received_per_s"] for r in results[True])
    off = statistics.median(r["received_per_s"] for r in results[False])
    lost = sum(r["lost"] for rs in results.values() for r in rs)
    print(f"median received msgs/s: replicas {on:.0f}, without {off:.0f}, ratio {on / off:.2f}; lost {lost}")
    out_dir = os.environ.get("OUT_DIR", "bench-results")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "session-replicas.jsonl"), "a") as f:
        f.write(json.dumps({"at": datetime.datetime.now(datetime.timezone.utc).isoformat(), "args": vars(args),
                            "with": results[True], "without": results[False]}) + "\n")
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
