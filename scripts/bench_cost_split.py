"""Where the cores go in one `mqttv5 bench` load: the generator's CPU and system calls per
delivered message beside each broker's, Ferrite and Mosquitto in the same run.

On a machine where the generator shares the cores with the broker, the delivered rate is
bounded by (cores) / (generator's cost + broker's cost) per message; this prints both
parts, so a ratio between brokers can be read against what the generator itself takes,
and how often each side's threads went to sleep (voluntary context switches): on a
virtual machine each sleep and wake costs tens of microseconds of CPU.
Called by scripts/bench-cost-split. System calls are counted with `perf stat` on the
`raw_syscalls:sys_enter` tracepoint over the middle of each run (skipped when perf cannot
count it).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench_vs_mosquitto import check_cpu_split, cpu_seconds, pinned, start_brokers, stop_brokers  # noqa: E402


def count_syscalls(pid, seconds):
    """Starts counting `pid`'s system calls for `seconds`; returns the perf process."""
    return subprocess.Popen(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", str(pid), "--", "sleep", str(seconds)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def counted(perf):
    _, err = perf.communicate()
    for line in err.splitlines():
        first = line.split(",")[0]
        if first.isdigit():
            return int(first)
    return None


def sleeps(pid):
    """Voluntary context switches of all of `pid`'s threads so far: how often they slept."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches"))
        except OSError:
            pass  # the thread ended between listing and reading
    return total


def one_run(broker_pid, port, args, duration, have_perf, cpus=None):
    warmup = 2
    cmd = ["mqttv5", "bench", "--mode", "throughput", "--payload-size", "64", "--duration", str(duration), "--warmup", str(warmup),
           "-H", "127.0.0.1", "-p", str(port), "-c", f"split-{os.getpid()}", *args]
    gen = subprocess.Popen(pinned(cmd, cpus), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # connecting takes about 0.5 s; count over the middle of the measured part
    time.sleep(warmup + 0.5)
    g0, b0 = cpu_seconds(gen.pid), cpu_seconds(broker_pid)
    gs0, bs0 = sleeps(gen.pid), sleeps(broker_pid)
    window = max(1, duration - 2)
    perfs = [count_syscalls(gen.pid, window), count_syscalls(broker_pid, window)] if have_perf else []
    time.sleep(window)
    g1, b1 = cpu_seconds(gen.pid), cpu_seconds(broker_pid)
    gs1, bs1 = sleeps(gen.pid), sleeps(broker_pid)
    syscalls = [counted(p) for p in perfs]
    out, _ = gen.communicate(timeout=duration + 120)
    r = json.loads(out)["results"]
    rate = r["throughput_avg"]
    per = lambda x: x / (rate * window)
    return {"rx": rate, "gen_us": per(g1 - g0) * 1e6, "broker_us": per(b1 - b0) * 1e6,
            "gen_sys": per(syscalls[0]) if syscalls and syscalls[0] is not None else None,
            "broker_sys": per(syscalls[1]) if syscalls and syscalls[1] is not None else None,
            "gen_sleeps": per(gs1 - gs0), "broker_sleeps": per(bs1 - bs0)}


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--duration", type=int, default=6)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--workers", help="Ferrite's --workers (default: its own, one per CPU it may run on)")
    ap.add_argument("--broker-cpus", help="taskset CPU list both brokers run on, e.g. 0-7 (with --generator-cpus)")
    ap.add_argument("--generator-cpus", help="taskset CPU list the generator runs on, e.g. 8-15")
    ap.add_argument("load", nargs=argparse.REMAINDER, help="mqttv5 bench arguments, e.g. --publishers 4 --subscribers 1 --qos 1")
    a = ap.parse_args()
    check_cpu_split(a.broker_cpus, a.generator_cpus)
    load = [x for x in a.load if x != "--"] or ["--publishers", "4", "--subscribers", "1", "--qos", "1"]
    have_perf = shutil.which("perf") is not None and subprocess.run(
        ["perf", "stat", "-e", "raw_syscalls:sys_enter", "true"], capture_output=True).returncode == 0
    if not have_perf:
        print("note: perf cannot count raw_syscalls:sys_enter here; system call columns are empty", file=sys.stderr)
    work = tempfile.mkdtemp()
    fport, mport = int(os.environ.get("FERRITE_PORT", 27883)), int(os.environ.get("MOSQUITTO_PORT", 27884))
    extra = ["--workers", a.workers] if a.workers else []
    ferrite, mosq = start_brokers(a.bin, work, fport, mport, "127.0.0.1:0", extra, a.broker_cpus)
    rows = []
    try:
        for run in range(a.runs):
            order = [("ferrite", ferrite.pid, fport), ("mosquitto", mosq.pid, mport)]
            for name, pid, port in order if run % 2 == 0 else order[::-1]:
                r = one_run(pid, port, load, a.duration, have_perf, a.generator_cpus)
                rows.append((name, run, r))
                print(f"  run {run + 1} {name:9} rx/s {r['rx']:>10,.0f}", file=sys.stderr)
    finally:
        stop_brokers((ferrite, mosq), work)
    fmt = lambda v: "-" if v is None else f"{v:.2f}"
    setup = f"; ferrite --workers {a.workers}" if a.workers else ""
    if a.broker_cpus:
        setup += f"; brokers on CPUs {a.broker_cpus}, generator on CPUs {a.generator_cpus}"
    print(f"mqttv5 bench {' '.join(load)} --payload-size 64; {a.runs} runs per broker, alternating{setup}")
    print()
    print("| broker | run | delivered msgs/s | generator CPU us/msg | broker CPU us/msg | generator syscalls/msg | broker syscalls/msg | generator sleeps/msg | broker sleeps/msg |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, run, r in rows:
        print(f"| {name} | {run + 1} | {r['rx']:,.0f} | {r['gen_us']:.1f} | {r['broker_us']:.1f} | {fmt(r['gen_sys'])} | {fmt(r['broker_sys'])} | {r['gen_sleeps']:.3f} | {r['broker_sleeps']:.3f} |")


if __name__ == "__main__":
    main()
