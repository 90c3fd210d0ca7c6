"""Ferrite against Mosquitto, same machine, same run, with two load generators: the project's
own (`ferrite bench`) and one we did not write (`mqttv5 bench`, crate mqttv5-cli).

Called by scripts/bench-vs-mosquitto, which builds the binaries. Each load runs --runs times
on each broker, alternating which broker goes first; the table shows the median and the
spread (min-max) of every number, never the best run alone. Both brokers are configured to
drop nothing: Mosquitto with `max_queued_messages 0` (no queue limit), Ferrite with a 256 MiB
outbound bound per client (FERRITE_CONF); every row says what each lost.

With --broker-cpus and --generator-cpus the brokers and the generators run on disjoint sets
of CPUs (`taskset`), so that neither takes the other's cores: on a machine with cores to
spare, that measures the brokers rather than how the cores were shared.

Rated loads ("@ half"): ferrite bench publishes at half of Mosquitto's median peak delivered
rate for the same load, measured earlier in the same run, and reports p99 latency there.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

# Ferrite's limits for the run: its default outbound bound (1 MiB per client, past which QoS 0
# messages to a subscriber that is behind are dropped, docs/decisions.md) is raised so that,
# like Mosquitto with `max_queued_messages 0`, it drops nothing; everything else is default.
FERRITE_CONF = """[limits]
max_outbound_bytes = 268435456
"""

MOSQUITTO_CONF = """listener {port} 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 64
max_queued_messages 0
max_connections -1
"""

# (name, ferrite bench args, deliveries per published message per publisher: publishers x
# receivers of each message), for the rated runs.
BENCH_LOADS = [
    ("fan-in 10->1 QoS 0", ["--scenario", "fan-in", "-n", "10", "--qos", "0"], 10),
    ("p2p 10 pairs QoS 0", ["--scenario", "p2p", "-n", "10", "--qos", "0"], 10),
    ("4x4 one topic QoS 0", ["--scenario", "mesh", "-n", "4", "--qos", "0"], 16),
    ("fan-out 1->100 QoS 0", ["--scenario", "fan-out", "-n", "100", "--qos", "0"], 100),
    ("fan-in 10->1 QoS 1", ["--scenario", "fan-in", "-n", "10", "--qos", "1"], 10),
    ("p2p 10 pairs QoS 1", ["--scenario", "p2p", "-n", "10", "--qos", "1"], 10),
    ("p2p 10 pairs QoS 2", ["--scenario", "p2p", "-n", "10", "--qos", "2"], 10),
]

# (name, mqttv5 bench args, parallel generator processes). QoS 0 publishers use
# --inflight 1: the generator's help says QoS 0 does not pipeline, and 32 publisher tasks
# per connection starve its own subscriber task (docs/benchmarks.md).
MQTTV5_LOADS = [
    ("fan-in 4->1 QoS 0", ["--publishers", "4", "--subscribers", "1", "--qos", "0", "--inflight", "1"], 1),
    ("p2p 4 pairs QoS 0", ["--publishers", "1", "--subscribers", "1", "--qos", "0", "--inflight", "1"], 4),
    ("4x4 one topic QoS 0", ["--publishers", "4", "--subscribers", "4", "--topics", "1", "--qos", "0", "--inflight", "1"], 1),
    ("fan-out 1->100 QoS 0", ["--publishers", "1", "--subscribers", "100", "--qos", "0", "--inflight", "1"], 1),
    ("fan-in 4->1 QoS 1", ["--publishers", "4", "--subscribers", "1", "--qos", "1"], 1),
    ("p2p 4 pairs QoS 1", ["--publishers", "1", "--subscribers", "1", "--qos", "1"], 4),
    ("4x4 one topic QoS 1", ["--publishers", "4", "--subscribers", "4", "--topics", "1", "--qos", "1"], 1),
]


def cpu_set(text):
    """The CPUs a `taskset -c` list names ("0-3,8"), checked against those this process may
    use; None for None."""
    if text is None:
        return None
    cpus = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        try:
            cpus.update(range(int(first), int(last or first) + 1))
        except ValueError:
            raise SystemExit(f"not a CPU list: {text!r} (expected e.g. 0-3,8)")
    allowed = os.sched_getaffinity(0)
    if not cpus or not cpus <= allowed:
        raise SystemExit(f"CPU list {text!r} names CPUs this machine does not offer (allowed: {sorted(allowed)})")
    return cpus


def check_cpu_split(broker_cpus, generator_cpus):
    """Exits with a clear message unless both lists are given and disjoint, or neither."""
    b, g = cpu_set(broker_cpus), cpu_set(generator_cpus)
    if (b is None) != (g is None):
        raise SystemExit("--broker-cpus and --generator-cpus go together")
    if b is not None and b & g:
        raise SystemExit(f"--broker-cpus and --generator-cpus share CPUs {sorted(b & g)}; they must be disjoint")


def pinned(cmd, cpus):
    """`cmd` run on the CPUs `cpus` names (a `taskset -c` list), or as it is for None."""
    return ["taskset", "-c", cpus, *cmd] if cpus else list(cmd)


def start_brokers(binary, work, fport, mport, http_addr, extra=(), cpus=None):
    """Starts Ferrite and Mosquitto on loopback, each configured to drop nothing
    (FERRITE_CONF, MOSQUITTO_CONF), with their files in `work`; returns (ferrite, mosquitto)
    once Ferrite has had time to start. `extra`: more `ferrite serve` flags; `cpus`: the
    CPUs both brokers run on (a `taskset -c` list; None: any)."""
    with open(f"{work}/mosquitto.conf", "w") as f:
        f.write(MOSQUITTO_CONF.format(port=mport))
    mosq = subprocess.Popen(pinned(["mosquitto", "-c", f"{work}/mosquitto.conf"], cpus), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(f"{work}/ferrite.toml", "w") as f:
        f.write(FERRITE_CONF)
    serve = [binary, "serve", "--config", f"{work}/ferrite.toml", "--data-dir", f"{work}/ferrite",
             "--mqtt-addr", f"127.0.0.1:{fport}", "--http-addr", http_addr, "--log-level", "warn", *extra]
    ferrite = subprocess.Popen(pinned(serve, cpus), stdout=subprocess.DEVNULL, stderr=open(f"{work}/ferrite.log", "w"))
    time.sleep(1.5)
    for name, p in (("ferrite", ferrite), ("mosquitto", mosq)):
        if p.poll() is not None:
            for other in (ferrite, mosq):
                if other.poll() is None:
                    other.terminate()
                    other.wait(timeout=30)
            raise SystemExit(f"{name} exited at start (status {p.returncode}); its files are in {work}")
    return ferrite, mosq


def stop_brokers(procs, work):
    """Stops what `start_brokers` started and removes `work`."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)


def cpu_seconds(pid):
    """User + system CPU seconds the process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ferrite_bench(binary, pid, port, args, duration, cpus=None):
    before = cpu_seconds(pid)
    out = subprocess.run(
        pinned([binary, "bench", "--target", f"127.0.0.1:{port}", "--duration", str(duration), "--drain", "2", "--json", *args], cpus),
        capture_output=True, text=True, timeout=duration + 120,
    )
    if out.returncode != 0:
        raise RuntimeError(f"ferrite bench {args} failed: {out.stderr.strip()[-400:]}")
    r = json.loads(out.stdout)
    return {"rx": r["received_per_s"], "sent": r["sent_per_s"], "p99": r["latency_ms_p99"], "lost": r["lost"],
            "cpu_s": cpu_seconds(pid) - before, "delivered": r["received"]}


def mqttv5_bench(pid, port, args, procs, duration, cpus=None):
    runs = []
    for i in range(procs):
        topic = ["-t", f"p2p/{i}"] if procs > 1 else []
        cmd = ["mqttv5", "bench", "--mode", "throughput", "--payload-size", "64", "--duration", str(duration),
               "--warmup", "2", "-H", "127.0.0.1", "-p", str(port), "-c", f"gen{i}-{os.getpid()}", *topic, *args]
        runs.append(subprocess.Popen(pinned(cmd, cpus), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
    # The generator counts from the end of its 2 s warm-up (after about 0.5 s of connecting).
    time.sleep(2.5)
    before = cpu_seconds(pid)
    rx = sent = 0.0
    delivered = 0
    ratio = None
    for p in runs:
        stdout, _ = p.communicate(timeout=duration + 120)
        r = json.loads(stdout)["results"]
        rx += r["throughput_avg"]
        sent += r["offered_rate"]
        ratio = r["delivered_ratio"] if ratio is None else min(ratio, r["delivered_ratio"])
        delivered += r["received"]
    # delivered_ratio counts what arrived after the generator drained its subscribers; below
    # 1 means messages were lost.
    return {"rx": rx, "sent": sent, "p99": None, "lost": 0 if ratio >= 0.999 else f"ratio {ratio:.3f}",
            "cpu_s": cpu_seconds(pid) - before, "delivered": delivered}


def mqttv5_latency(pid, port, qos, rate, duration, cpus=None):
    """`mqttv5 bench --mode latency`: one publisher and one subscriber, the publisher paced
    at `rate` msgs/s on a fixed schedule (latency counts from the intended send time)."""
    before = cpu_seconds(pid)
    cmd = ["mqttv5", "bench", "--mode", "latency", "--payload-size", "64", "--duration", str(duration), "--warmup", "2",
           "--rate", str(rate), "--qos", str(qos), "-H", "127.0.0.1", "-p", str(port), "-c", f"lat-{os.getpid()}",
           "-t", f"lat/{os.getpid()}"]
    out = subprocess.run(pinned(cmd, cpus), capture_output=True, text=True, timeout=duration + 120)
    if out.returncode != 0:
        raise RuntimeError(f"mqttv5 latency failed: {out.stderr.strip()[-400:]}")
    r = json.loads(out.stdout)["results"]
    # the pump's schedule can end a few sends short of rate x duration; more missing is loss
    ratio = r["messages"] / (rate * duration)
    return {"rx": r["messages"] / duration, "sent": rate, "p99": r["p99_us"] / 1000,
            "lost": 0 if ratio >= 0.99 else f"ratio {ratio:.3f}",
            "cpu_s": cpu_seconds(pid) - before, "delivered": r["messages"]}


def watch_mosquitto_drops(mport, path):
    """Follows Mosquitto's $SYS count of dropped messages (published every 10 s) into `path`;
    asking once at the end is not answered while it frees what a run left queued."""
    time.sleep(0.5)
    return subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(mport),
                             "-t", "$SYS/broker/publish/messages/dropped"],
                            stdout=open(path, "w"), stderr=subprocess.DEVNULL)


def broker_drops(fhttp, watcher, path):
    """Messages each broker itself dropped: Ferrite's dropped counters, Mosquitto's $SYS count."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{fhttp}/metrics", timeout=10).read().decode()
        ferrite = sum(int(float(line.split()[1])) for line in text.splitlines()
                      if line.startswith("ferrite_messages_dropped_"))
    except OSError as e:
        ferrite = f"unknown ({e})"
    time.sleep(11)  # one more $SYS period
    watcher.terminate()
    watcher.wait()
    with open(path) as f:
        values = f.read().split()
    return ferrite, values[-1] if values else "unknown"


def spread(values, fmt="{:,.0f}"):
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers")
    ap.add_argument("--quick", action="store_true", help="two loads per generator, no rated loads")
    ap.add_argument("--out-dir", default="bench-results")
    ap.add_argument("--broker-cpus", help="taskset CPU list both brokers run on, e.g. 0-7 (with --generator-cpus)")
    ap.add_argument("--generator-cpus", help="taskset CPU list the load generators run on, e.g. 8-15")
    a = ap.parse_args()
    check_cpu_split(a.broker_cpus, a.generator_cpus)
    gen_cpus = a.generator_cpus
    have_mqttv5 = shutil.which("mqttv5") is not None
    if not have_mqttv5:
        print("note: mqttv5 not found (cargo install mqttv5-cli); its rows are skipped", file=sys.stderr)
    work = tempfile.mkdtemp()
    fport, mport = int(os.environ.get("FERRITE_PORT", 21883)), int(os.environ.get("MOSQUITTO_PORT", 21884))
    fhttp = int(os.environ.get("FERRITE_HTTP_PORT", 21885))
    extra = []
    for flag in ("--ws-addr", "--mqtts-addr", "--wss-addr", "--https-addr"):
        extra += [flag, "127.0.0.1:0"]
    if a.workers:
        extra += ["--workers", a.workers]
    ferrite, mosq = start_brokers(a.bin, work, fport, mport, f"127.0.0.1:{fhttp}", extra, a.broker_cpus)
    watcher = watch_mosquitto_drops(mport, f"{work}/mosquitto-dropped.txt")
    brokers = {"ferrite": (ferrite.pid, fport), "mosquitto": (mosq.pid, mport)}
    bench_loads = BENCH_LOADS[:2] if a.quick else BENCH_LOADS
    mq_loads = MQTTV5_LOADS[:2] if a.quick else MQTTV5_LOADS
    results = {}  # (generator, load) -> broker -> list of run dicts
    os.makedirs(a.out_dir, exist_ok=True)
    log = open(os.path.join(a.out_dir, "results.jsonl"), "a")

    def measure(generator, name, run, fn):
        order = ["ferrite", "mosquitto"] if run % 2 == 0 else ["mosquitto", "ferrite"]
        for broker in order:
            pid, port = brokers[broker]
            r = fn(pid, port)
            results.setdefault((generator, name), {}).setdefault(broker, []).append(r)
            log.write(json.dumps({"generator": generator, "load": name, "broker": broker, "run": run, **r}) + "\n")
            log.flush()
            print(f"  run {run + 1} {generator:13} {name:24} {broker:9} rx/s {r['rx']:>12,.0f}", file=sys.stderr)

    try:
        for run in range(a.runs):
            for name, args, _ in bench_loads:
                measure("ferrite bench", name, run, lambda pid, port: ferrite_bench(a.bin, pid, port, args, a.duration, gen_cpus))
            if have_mqttv5:
                for name, args, procs in mq_loads:
                    measure("mqttv5 bench", name, run, lambda pid, port: mqttv5_bench(pid, port, args, procs, a.duration, gen_cpus))
            if not a.quick:
                for name, args, deliveries in bench_loads:
                    if "QoS 2" in name:
                        continue
                    # half of Mosquitto's median delivered rate, as a publish rate per publisher
                    peak = statistics.median(r["rx"] for r in results[("ferrite bench", name)]["mosquitto"])
                    rate = max(1, int(peak / 2 / deliveries))
                    measure("ferrite bench", f"{name} @ half", run,
                            lambda pid, port: ferrite_bench(a.bin, pid, port, [*args, "--rate", str(rate)], a.duration, gen_cpus))
                if have_mqttv5:
                    for qos in (0, 1):
                        # half of Mosquitto's median rate for one pair, by the same generator
                        name = f"p2p 4 pairs QoS {qos}"
                        peak = statistics.median(r["rx"] for r in results[("mqttv5 bench", name)]["mosquitto"]) / 4
                        rate = max(1, int(peak / 2))
                        measure("mqttv5 latency", f"p2p 1 pair QoS {qos} @ half", run,
                                lambda pid, port: mqttv5_latency(pid, port, qos, rate, a.duration, gen_cpus))
        dropped = broker_drops(fhttp, watcher, f"{work}/mosquitto-dropped.txt")
    finally:
        stop_brokers((ferrite, mosq), work)

    print(f"{a.runs} runs of {a.duration} s each; median (min-max). cpu us/msg: the broker's CPU time during the measured part of the run per message delivered;"
          " lost: messages not delivered by the end of the generator's drain (late or dropped; see the dropped line).")
    print(f"dropped by the brokers over the whole run: ferrite {dropped[0]}, mosquitto {dropped[1]}")
    if a.broker_cpus:
        print(f"brokers on CPUs {a.broker_cpus}, load generators on CPUs {a.generator_cpus} (taskset)")
    print()
    print("| generator | load | ferrite rx/s | mosquitto rx/s | ratio | ferrite p99 ms | mosquitto p99 ms | ferrite cpu us/msg | mosquitto cpu us/msg | lost f / m |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for (generator, name), by in results.items():
        f, m = by["ferrite"], by["mosquitto"]
        ratios = [x["rx"] / max(y["rx"], 1e-9) for x, y in zip(f, m)]
        per_msg = lambda runs: [1e6 * r["cpu_s"] / max(r["delivered"], 1) for r in runs]
        lost = lambda runs: ",".join(sorted({str(r["lost"]) for r in runs}))
        print(f"| {generator} | {name} | {spread([r['rx'] for r in f])} | {spread([r['rx'] for r in m])} | "
              f"{spread(ratios, '{:.2f}')} | {spread([r['p99'] for r in f], '{:.2f}')} | "
              f"{spread([r['p99'] for r in m], '{:.2f}')} | {spread(per_msg(f), '{:.2f}')} | "
              f"{spread(per_msg(m), '{:.2f}')} | {lost(f)} / {lost(m)} |")


if __name__ == "__main__":
    main()
