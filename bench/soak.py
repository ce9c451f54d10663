#!/usr/bin/env python3
"""Soak: the message ledger (tools/harness/ledger.py) for a long time with many charge points (issue 6).

    .venv/bin/python -m bench.soak [--minutes 10] [--cps 300] [--outage 10] [--broker-queue 100000]
                                   [--seed 1] [--log-level info]

It starts its own Mosquitto (persistence on; `max_queued_messages` per client from --broker-queue, see
docs/reliability.md) and gateway (auth none) in a temporary directory.
While the charge points and the backend call each other and charge points drop their connections all along, the
gateway is SIGKILLed and started again (same client_id) at 10 % of the run and the broker is stopped for
--outage seconds at 20, 45, 65 and 85 %. The warm-up thus holds one fault of each kind, whose backlogs raise the memory high-water mark once.
It prints the gateway's RSS every 5 % of the run and, at the end, the accounting and the gateway's threads, open
files and RSS: idle before the first charge point, under load after warm-up (30 %) and at the end of the load,
idle again once every charge point has left. Exit status 0 only when nothing is unaccounted, threads and open
files are back to the idle numbers, and RSS grew less than 10 % from warm-up to the end of the load. On a failure the gateway's and the
broker's logs are kept, and their directory is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.harness.ledger import Csms, Fleet, FleetConfig, Ledger, LedgerRun, until
from tools.harness import GatewayProcess, Mosquitto

AWAITING = 30.0
OFFLINE_HOLD = 30.0
GATEWAY_KILL_AT = 0.10
WARM_AT = 0.30
BROKER_RESTARTS_AT = (0.20, 0.45, 0.65, 0.85)
SAMPLE_EVERY = 0.05
RSS_GROWTH_LIMIT = 0.10
SETTINGS = {
    "auth.backend": "none",
    "log.level": "info",
    "ocpp.mountpoint": "soak/",
    "ocpp.awaiting_timeout": f"{AWAITING:g}s",
    "ocpp.dnstream.offline_hold": f"{OFFLINE_HOLD:g}s",
    "ocpp.listener.max_connections": 100000,
    "ocpp.listener.max_pending": 100000,  # every simulated CP comes from 127.0.0.1
    "ocpp.listener.max_pending_per_address": 100000,
}
# Each CP calls every 1–3 s; one call in 200 ends in a drop, and a dropped CP stays away up to twice the hold.
FLEET = FleetConfig(think=(1.0, 3.0), cp_timeout=2 * AWAITING, drop_chance=0.005, away=(0.0, 2 * OFFLINE_HOLD))


@dataclass(frozen=True)
class Sample:
    label: str
    pid: int
    threads: int
    files: int
    rss_kib: int
    connected: int

    @classmethod
    def take(cls, label: str, pid: int, connected: int) -> Sample:
        """Read /proc/<pid>; FileNotFoundError when the process is gone."""
        values = {}
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("Threads", "VmRSS"):
                    values[key] = int(rest.split()[0])
        if "VmRSS" not in values:  # a zombie: killed, not reaped yet
            raise FileNotFoundError(f"/proc/{pid} has no memory")
        return cls(label, pid, values["Threads"], len(os.listdir(f"/proc/{pid}/fd")), values["VmRSS"], connected)


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def soak(minutes: float, cps: int, seed: int, workdir: Path, outage: float = 10.0,
               broker_queue: int = 100000, log_level: str = "info") -> int:
    duration = minutes * 60
    broker = Mosquitto(workdir / "mosquitto", persistence=True,
                       extra_config=f"max_queued_messages {broker_queue}").start()
    gateway = GatewayProcess(workdir / "gateway", broker, workdir / "no-passwd",
                             {**SETTINGS, "log.level": log_level}).start()
    samples = [Sample.take("idle, before any charge point", gateway.process.pid, 0)]
    ledger = Ledger()
    cids = [f"SOAK{n:04d}" for n in range(1, cps + 1)]
    fleet = Fleet(ledger, cids, gateway.ws_url, lambda cid: {}, FLEET, seed=seed)
    run = LedgerRun(ledger, fleet, Csms(ledger, broker.host, broker.port, gateway.mountpoint),
                    csms_interval=0.02)
    healthz = gateway.admin_url("/healthz")
    started = time.monotonic()

    async def at(share: float) -> None:
        await asyncio.sleep(max(0.0, started + share * duration - time.monotonic()))

    def progress(what: str) -> None:
        try:
            rss = f"{Sample.take('', gateway.process.pid, 0).rss_kib / 1024:.1f} MiB"
        except FileNotFoundError:
            rss = "-"
        print(f"[{time.monotonic() - started:7.1f} s] {what}: {ledger.started()} calls started, "
              f"{ledger.open()} open, {fleet.connected()} CPs connected, gateway RSS {rss}", flush=True)

    async def sampling() -> None:
        for step in range(1, round(1 / SAMPLE_EVERY)):
            await at(step * SAMPLE_EVERY)
            progress(f"{step * SAMPLE_EVERY:.0%}")

    faults = sorted([(GATEWAY_KILL_AT, "kill"), (WARM_AT, "warm")] + [(at_, "broker") for at_ in BROKER_RESTARTS_AT])
    sampler = None
    try:
        await run.start(timeout=120)
        progress("all charge points connected")
        sampler = asyncio.create_task(sampling())
        for share, fault in faults:
            await at(share)
            if fault == "kill":
                await run.kill_gateway(gateway)
                progress("gateway killed and started again")
            elif fault == "broker":
                await run.restart_broker(broker, healthz, outage=outage)
                progress("broker restarted")
            else:
                samples.append(Sample.take("under load, warm", gateway.process.pid, fleet.connected()))
        await at(1.0)
        await sampler
        samples.append(Sample.take("under load, end", gateway.process.pid, fleet.connected()))
        progress("load ends; settling")
        report = await run.settle(timeout=AWAITING + OFFLINE_HOLD + 30)
        idle = samples[0]
        pid = gateway.process.pid

        def back_to_idle() -> bool:
            now = Sample.take("", pid, 0)
            return (now.threads, now.files) == (idle.threads, idle.files)
        await until(back_to_idle, 30, interval=0.2)
        samples.append(Sample.take("idle, after every charge point left", pid, 0))
    finally:
        if sampler is not None:
            sampler.cancel()
        gateway.kill()
        broker.stop()
        gateway.output.wait_closed(5)
        (workdir / "gateway.log").write_text("\n".join(run.killed_logs + gateway.logs) + "\n")
        (workdir / "mosquitto.log").write_text("\n".join(broker.logs) + "\n")

    print()
    print(report.format())
    print()
    print(f"  run: {cps} charge points, {minutes:g} min, broker outages of {outage:g} s, "
          f"broker max_queued_messages {broker_queue}")
    print("  gateway resources")
    print(f"    {'when':<40}{'pid':>8}{'CPs':>6}{'threads':>9}{'files':>7}{'RSS MiB':>9}")
    for s in samples:
        print(f"    {s.label:<40}{s.pid:>8}{s.connected:>6}{s.threads:>9}{s.files:>7}{s.rss_kib / 1024:>9.1f}")
    warm, end, idle_start, idle_end = samples[1], samples[2], samples[0], samples[3]
    growth = end.rss_kib / warm.rss_kib - 1
    back = (idle_end.threads, idle_end.files) == (idle_start.threads, idle_start.files)
    print(f"    threads and open files back to idle: {'yes' if back else 'NO'}; "
          f"RSS growth from warm to end: {growth:+.1%} (limit {RSS_GROWTH_LIMIT:.0%})")
    print(f"    charge point connections made: {fleet.connects}, failed attempts: {fleet.connect_failures}")
    ok = report.ok and back and growth < RSS_GROWTH_LIMIT
    print(f"  verdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--cps", type=int, default=300, help="charge points")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--outage", type=float, default=10.0,
                        help="seconds each broker restart keeps the broker down, at least")
    parser.add_argument("--broker-queue", type=int, default=100000,
                        help="Mosquitto max_queued_messages (its own default, 1000, loses messages)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    args = parser.parse_args(argv)
    raise_fd_limit()
    workdir = Path(tempfile.mkdtemp(prefix="ocpp-gw-soak-"))
    status = 1
    try:
        status = asyncio.run(soak(args.minutes, args.cps, args.seed, workdir, args.outage, args.broker_queue,
                                  args.log_level))
    finally:
        if status == 0:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"  logs kept in {workdir}/ (gateway.log, mosquitto.log)")
    return status


if __name__ == "__main__":
    sys.exit(main())
