"""CPU time and context switches of a running gateway, per thread role, per message.

    python -m bench.threads --pid <gateway pid> --seconds 10 --rate 333

Reads /proc/<pid>/task/*/{stat,status} at the start and end of the window and groups the threads
by their Python name (from ``py-spy dump``; a connection thread ``ocpp-cp-<cid>`` counts as
``ocpp-cp``). ``--rate`` is the messages per second the load sends (figure 5: CPs / interval), so
that each figure reads "per heartbeat". Used for "Where the time goes now" in docs/performance.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import procfs


def thread_names(pid: int) -> dict[int, str]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return roles_in_dump(subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True,
                                        check=True).stdout)


def roles_in_dump(dump: str) -> dict[int, str]:
    """Thread id → role, from the text of ``py-spy dump``."""
    names = {}
    for match in re.finditer(r'^Thread (\d+) \([^)]*\): "([^"]*)"', dump, re.MULTILINE):
        names[int(match[1])] = "ocpp-cp" if match[2].startswith("ocpp-cp-") else match[2]
    return names


def sample(pid: int) -> dict[int, tuple[float, int, int]]:
    """Per thread id: (CPU seconds, voluntary switches, involuntary switches)."""
    readings = {}
    for tid in map(int, os.listdir(f"/proc/{pid}/task")):
        try:
            cpu = sum(procfs.cpu_split(pid, tid))
            with open(f"/proc/{pid}/task/{tid}/status") as file:
                status = dict(line.split(":\t", 1) for line in file if ":\t" in line)
        except OSError:  # the thread ended meanwhile
            continue
        readings[tid] = (cpu, int(status["voluntary_ctxt_switches"]), int(status["nonvoluntary_ctxt_switches"]))
    return readings


def per_role(pid: int, seconds: float, rate: float) -> dict[str, dict[str, float]]:
    names = thread_names(pid)
    before = sample(pid)
    started = time.monotonic()
    time.sleep(seconds)
    after = sample(pid)
    messages = rate * (time.monotonic() - started)
    totals: dict[str, list[int]] = {}
    for tid, end in after.items():
        if tid in before:
            role = totals.setdefault(names.get(tid, "?"), [0, 0, 0, 0])  # CPU s, switches, threads
            for i, (b, e) in enumerate(zip(before[tid], end)):
                role[i] += e - b
            role[3] += 1
    return {role: {"threads": t[3], "cpu_us_per_message": 1e6 * t[0] / messages,
                   "voluntary_switches_per_message": t[1] / messages,
                   "involuntary_switches_per_message": t[2] / messages}
            for role, t in sorted(totals.items(), key=lambda item: -item[1][0])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rate", type=float, required=True, help="messages per second the load sends")
    args = parser.parse_args()
    print(f"{'thread role':34} {'threads':>7} {'CPU µs':>8} {'vol. sw.':>8} {'invol. sw.':>10}  (per message)")
    for role, figures in per_role(args.pid, args.seconds, args.rate).items():
        print(f"{role:34} {figures['threads']:7d} {figures['cpu_us_per_message']:8.1f} "
              f"{figures['voluntary_switches_per_message']:8.2f} {figures['involuntary_switches_per_message']:10.2f}")


if __name__ == "__main__":
    main()
