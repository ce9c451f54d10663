"""What /proc tells about a server process: resident memory, threads, CPU time."""

from __future__ import annotations

import os

_TICKS = os.sysconf("SC_CLK_TCK")


def status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS; kB) and Threads from /proc/<pid>/status."""
    values = {}
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                values[key] = int(rest.split()[0])
    return values


def cpu_split(pid: int, tid: int | None = None) -> tuple[float, float]:
    """(utime, stime) in seconds: of the whole process (all threads), or of its thread `tid`."""
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as file:
        text = file.read()
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return int(fields[11]) / _TICKS, int(fields[12]) / _TICKS


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), in seconds."""
    return sum(cpu_split(pid))


class MemoryGuard:
    """Kills a server whose RSS passes `limit_kb`: the bench box is shared, the OOM killer must not pick."""

    def __init__(self, pid: int, limit_kb: int):
        import threading
        self.pid = pid
        self.limit_kb = limit_kb
        self.tripped = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> "MemoryGuard":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        import signal
        while not self._stop.wait(0.1):
            try:
                rss = status(self.pid)["VmRSS"]
            except (OSError, KeyError):
                return
            if rss > self.limit_kb:
                self.tripped = True
                os.kill(self.pid, signal.SIGKILL)
                return


def machine_busy_seconds() -> float:
    """CPU time all processes of the machine have used since boot (/proc/stat), in seconds."""
    with open("/proc/stat") as file:
        fields = file.readline().split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _TICKS


def own_seconds() -> float:
    """CPU time of this process and of its children that have been waited for."""
    import resource
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total
