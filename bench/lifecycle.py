#!/usr/bin/env python3
"""How long a gateway process takes to start and to stop, with no charge point connected.

    .venv/bin/python -m bench.lifecycle [--runs 10] [--admin | --no-admin] [--schemas | --no-schemas]

It starts its own Mosquitto in a temporary directory, then starts and stops one gateway (the test suite's
harness settings: file auth, admin API, debug log) ``--runs`` times, and prints, per run and as min/median/max:
- start: from spawning ``python -m ocpp_gw`` to its ``ocpp_gw ready`` line;
- stop: from SIGTERM to the process's exit (SPEC §8 allows 10 s).
Every test that starts a gateway pays both, so they bound how fast the integration tests can be.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.harness import GatewayProcess, Mosquitto, write_credentials  # noqa: E402


def time_runs(workdir: Path, runs: int, overrides: dict) -> list[tuple[float, float]]:
    """(start seconds, stop seconds) of each run of one gateway, on a broker of its own."""
    with Mosquitto(workdir / "mosquitto") as broker:
        passwd = write_credentials(workdir / "passwd", ["CP001"])
        gateway = GatewayProcess(workdir / "gateway", broker, passwd, overrides)
        timings = []
        for _ in range(runs):
            began = time.perf_counter()
            gateway.start()
            started = time.perf_counter()
            gateway.stop()
            timings.append((started - began, time.perf_counter() - started))
        return timings


def summary(values: list[float]) -> str:
    return f"min {min(values):.3f}  median {statistics.median(values):.3f}  max {max(values):.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--admin", action=argparse.BooleanOptionalAction, default=True,
                        help="with the admin API listener (default: on, as in the tests)")
    parser.add_argument("--schemas", action=argparse.BooleanOptionalAction, default=True,
                        help="with format checking against the JSON schemas (default: on, as in the tests)")
    args = parser.parse_args(argv)
    overrides: dict = {}
    if not args.admin:
        overrides["admin.listener"] = ""
    if not args.schemas:
        overrides["ocpp.message_format_checking"] = "disable"
    with tempfile.TemporaryDirectory(prefix="ocpp-gw-lifecycle-") as tmp:
        timings = time_runs(Path(tmp), args.runs, overrides)
    for run, (start, stop) in enumerate(timings, 1):
        print(f"run {run:2d}: start {start:.3f} s  stop {stop:.3f} s")
    print(f"start (spawn to ready):  {summary([start for start, _ in timings])}")
    print(f"stop (SIGTERM to exit):  {summary([stop for _, stop in timings])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
