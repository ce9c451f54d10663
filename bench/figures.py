"""The five figures of issue 7, each measured on one target (gateway or baseline) at a time."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import procfs
from .credentials import CACHE
from .generators import Generators, merge_failures, shares
from .numbers import latency_summary, median_by_last

PROFILES = CACHE / "profiles"
# Figures 1-4 are not about keepalive: a long interval keeps heartbeats out of them.
QUIET_INTERVAL = 300
START_DELAY = 1.0  # seconds between telling the workers and the common instant they act at
MEMORY_LIMIT_KB = 8 * 1024 * 1024  # a server past this is killed (and the figure says so)


@dataclass(frozen=True)
class Sizes:
    sequence: int = 2000
    burst: tuple[int, ...] = (1000, 3000, 5000)
    # Bursts of thousands of threads are at the mercy of the scheduler: one burst of 3,000 took
    # 1.1 s in one run and 3.2 s in the next on the same code. Each size is burst this many times
    # and the median time reported (every round's figures are in the results JSON).
    burst_rounds: int = 5
    sustain_cps: int = 1000
    sustain_seconds: float = 20.0
    storm: tuple[int, ...] = (1000, 3000, 5000)
    hold: int = 10000
    hold_interval: int = 30
    cpu_window: float = 30.0
    workers: int = 2
    hold_workers: int = 4
    call_timeout: float = 30.0
    storm_timeout: float = 120.0
    populate_deadline: float = 600.0


FULL = Sizes()
QUICK = Sizes(sequence=200, burst=(50, 200), burst_rounds=1, sustain_cps=50, sustain_seconds=2.0, storm=(100,), hold=100,
              hold_interval=2, cpu_window=2.0)


class Profiler:
    """py-spy on the gateway from its start to the end of a figure (collapsed stacks in bench/.cache/profiles/).

    It attaches right after the start because py-spy 0.4 cannot attach to a process that already runs
    thousands of threads ("Failed to find a python interpreter"); once attached it keeps sampling.
    """

    def __init__(self, enabled: bool, pid: int, name: str):
        self.enabled = enabled
        self.pid = pid
        self.name = name
        self.processes: list[subprocess.Popen] = []

    def __enter__(self) -> "Profiler":
        if self.enabled:
            PROFILES.mkdir(parents=True, exist_ok=True)
            spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            # Two views: every thread that is not idle, and only the thread holding the GIL.
            for suffix, extra in (("", []), ("-gil", ["--gil"])):
                self.processes.append(subprocess.Popen(
                    [spy, "record", "--pid", str(self.pid), "--rate", "50", "--nonblocking", *extra,
                     "--format", "raw", "--output", str(PROFILES / f"{self.name}{suffix}.txt")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(1.0)
        return self

    def __exit__(self, *exc) -> None:
        for process in self.processes:
            process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def _populate(generators: Generators, wanted: int, deadline: float) -> dict:
    answers = generators.ask({"op": "populate", "concurrency": 50, "deadline": deadline}, timeout=deadline + 120)
    booted = sum(a["booted"] for a in answers)
    result = {"booted": booted, "failures": merge_failures(answers),
              "seconds": max(a["seconds"] for a in answers)}
    if booted < wanted:
        print(f"  warning: only {booted} of {wanted} CPs booted: {result['failures']}", flush=True)
    return result


def _memory(pid: int, guard: procfs.MemoryGuard) -> dict:
    try:
        values = procfs.status(pid)
    except OSError:
        values = {}
    return {"rss_kb": values.get("VmRSS"), "peak_rss_kb": values.get("VmHWM"), "killed_for_memory": guard.tripped}


def latency(target, sizes: Sizes, profile: bool) -> dict:
    """Figure 1: one CP, sequential Heartbeats."""
    target.start_with(QUIET_INTERVAL)
    generators = Generators(target.url, 1, 1, f"{target.tag}-latency", ocpp=target.ocpp)
    try:
        _populate(generators, 1, sizes.populate_deadline)
        answer, = generators.ask({"op": "sequence", "at": time.monotonic() + 0.2, "count": sizes.sequence},
                                 timeout=600)
        result = latency_summary(answer["latencies"])
        result["failures"] = answer["failures"]
        return result
    finally:
        generators.close()
        target.stop()


def burst_and_sustain(target, sizes: Sizes, profile: bool, do_burst: bool, do_sustain: bool) -> dict:
    """Figures 2 and 3 on one population of CPs, connected and booted beforehand."""
    population = max([*(sizes.burst if do_burst else ()), sizes.sustain_cps if do_sustain else 0])
    target.start_with(QUIET_INTERVAL)
    profiler = Profiler(profile and target.name == "gateway", target.pid,
                        "burst" if do_burst else "sustain").__enter__()
    generators = Generators(target.url, population, sizes.workers, f"{target.tag}-burst", ocpp=target.ocpp)
    results: dict = {}
    guard = procfs.MemoryGuard(target.pid, MEMORY_LIMIT_KB).__enter__()
    try:
        results["population"] = _populate(generators, population, sizes.populate_deadline)
        results["population"].update(_memory(target.pid, guard))
        if do_burst:
            results["burst"] = {}
            for n in sizes.burst:
                rounds = []
                for _ in range(sizes.burst_rounds):
                    commands = [{"op": "burst", "at": time.monotonic() + START_DELAY, "first": k}
                                for k in shares(n, len(generators.counts))]
                    answers = generators.ask(commands, timeout=sizes.call_timeout + 120)
                    answered = [t for a in answers for t in a["answered"]]
                    rounds.append({"last": max(answered, default=None), "answered": len(answered),
                                   "p50": latency_summary(answered)["p50"], "failures": merge_failures(answers)})
                    time.sleep(1.0)
                results["burst"][n] = _median_round(rounds)
        if do_sustain:
            n = sizes.sustain_cps
            commands = [{"op": "sustain", "at": time.monotonic() + START_DELAY, "duration": sizes.sustain_seconds,
                         "first": k} for k in shares(n, len(generators.counts))]
            cpu = _CpuMeter(target)
            answers = generators.ask(commands, timeout=sizes.sustain_seconds + sizes.call_timeout + 60)
            latencies = [t for a in answers for t in a["latencies"]]
            summary = latency_summary(latencies)
            results["sustain"] = {"cps": n, "seconds": sizes.sustain_seconds,
                                  "throughput": len(latencies) / sizes.sustain_seconds,
                                  "p50": summary["p50"], "p99": summary["p99"], "failures": merge_failures(answers),
                                  # CPU of each server process over the loop (start delay and drain included),
                                  # per round trip: where the two cores went.
                                  "cpu_us_per_round_trip": cpu.per_item(len(latencies), 1e6)}
        results["server_stats"] = target.stats()
        results["memory"] = _memory(target.pid, guard)
        return results
    finally:
        guard.__exit__()
        profiler.__exit__()
        generators.close()
        target.stop()


class _CpuMeter:
    """The CPU each server process of a target (the server and its helpers) used since the meter was made."""

    def __init__(self, target):
        self.pids = {getattr(target, "process_name", target.name): target.pid, **target.helper_pids}
        self.before = {name: procfs.cpu_split(pid) for name, pid in self.pids.items()}

    def per_item(self, count: int, unit: float) -> dict:
        """Each process's user and system CPU since, divided over `count` items, in 1/`unit` seconds."""
        after = {name: procfs.cpu_split(pid) for name, pid in self.pids.items()}
        return {name: {kind: round(unit * (after[name][i] - self.before[name][i]) / max(1, count), 3)
                       for i, kind in enumerate(("user", "system"))}
                for name in self.pids}


def _median_round(rounds: list[dict]) -> dict:
    """The burst round with the median time to the last answer, every round kept beside it."""
    return {**median_by_last(rounds), "rounds": rounds}


def storm(target, sizes: Sizes, profile: bool) -> dict:
    """Figure 4: N CPs connect and boot at the same instant, on a fresh server each time."""
    results = {}
    for n in sizes.storm:
        target.start_with(QUIET_INTERVAL)
        generators = Generators(target.url, n, sizes.workers, f"{target.tag}-storm-{n}", ocpp=target.ocpp)
        try:
            with Profiler(profile and target.name == "gateway", target.pid, f"storm-{n}"), \
                    procfs.MemoryGuard(target.pid, MEMORY_LIMIT_KB) as guard:
                cpu = _CpuMeter(target)
                answers = generators.ask({"op": "storm", "at": time.monotonic() + START_DELAY + 0.5 * n / 1000,
                                          "timeout": sizes.storm_timeout}, timeout=sizes.storm_timeout + 60)
            booted = [t for a in answers for t in a["booted"]]
            failures = merge_failures(answers)
            results[n] = {"last": max(booted, default=None), "booted": len(booted),
                          "p50": latency_summary(booted)["p50"], "failures": failures,
                          # Each server process's CPU from just before the storm to the last boot (or the
                          # timeout), per CP: what a connection costs each of them.
                          "cpu_ms_per_cp": cpu.per_item(n, 1e3), **_memory(target.pid, guard)}
        finally:
            generators.close()
            target.stop()
        time.sleep(1.0)
    return results


def hold(target, sizes: Sizes, profile: bool) -> dict:
    """Figure 5: N idle CPs heartbeating at the interval the central system gives; memory, threads, CPU."""
    n, interval = sizes.hold, sizes.hold_interval
    target.start_with(interval)
    profiler = Profiler(profile and target.name == "gateway", target.pid, "hold").__enter__()
    time.sleep(0.5)
    before = procfs.status(target.pid)
    generators = Generators(target.url, n, sizes.hold_workers, f"{target.tag}-hold", ocpp=target.ocpp)
    guard = procfs.MemoryGuard(target.pid, MEMORY_LIMIT_KB).__enter__()
    try:
        population = _populate(generators, n, sizes.populate_deadline)
        population.update(_memory(target.pid, guard))
        booted_at = time.monotonic()
        status = generators.status()
        after = procfs.status(target.pid)
        helpers = {name: procfs.cpu_seconds(pid) for name, pid in target.helper_pids.items()}
        cpu_start, window_start = procfs.cpu_seconds(target.pid), time.monotonic()
        time.sleep(sizes.cpu_window)
        cpu = (procfs.cpu_seconds(target.pid) - cpu_start) / (time.monotonic() - window_start)
        helpers = {name: (procfs.cpu_seconds(pid) - helpers[name]) / sizes.cpu_window
                   for name, pid in target.helper_pids.items()}
        open_during_window = generators.status()["open"]
        # Every CP, the last booted included, has been through at least two keepalive checks by then.
        remaining = booted_at + 2 * interval + 5 - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        final = generators.status()
        held = status["open"] or 1
        return {
            "cps": n, "interval": interval, "population": population,
            "open_at_measure": status["open"], "open_after_window": open_during_window,
            "rss_before_kb": before["VmRSS"], "rss_after_kb": after["VmRSS"],
            "rss_per_connection_kb": (after["VmRSS"] - before["VmRSS"]) / held,
            "threads_before": before["Threads"], "threads_after": after["Threads"],
            "threads_per_connection": (after["Threads"] - before["Threads"]) / held,
            "idle_cpu_percent": 100 * cpu, "helpers_cpu_percent": {k: 100 * v for k, v in helpers.items()},
            "held_seconds": time.monotonic() - booted_at,
            "open_at_end": final["open"], "disconnected": final["closed"],
            "heartbeats": final["heartbeats"], "heartbeat_failures": final["heartbeat_failures"],
            "server_stats": target.stats(), "memory": _memory(target.pid, guard),
        }
    finally:
        profiler.__exit__()
        guard.__exit__()
        generators.close()
        target.stop()
