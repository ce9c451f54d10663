"""Leak checks: threads a test leaves behind in this process, threads and descriptors a gateway process holds
beyond its idle state once a test's charge points are gone."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .process import HARNESS_THREAD_PREFIX


def new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads alive now that were not in `before`, except the harness's own (subprocess output drains)."""
    return [
        thread for thread in threading.enumerate()
        if thread not in before and thread.is_alive() and not thread.name.startswith(HARNESS_THREAD_PREFIX)
    ]


def leaked_threads(before: set[threading.Thread], grace: float,
                   prefixes: tuple[str, ...] = ("",)) -> list[threading.Thread]:
    """Threads started since `before` (named with one of `prefixes`: all by default) that are still alive after
    joining each for what is left of `grace`."""
    def started() -> list[threading.Thread]:
        return [thread for thread in new_threads(before) if thread.name.startswith(prefixes)]

    deadline = time.monotonic() + grace
    for thread in started():
        thread.join(max(0.0, deadline - time.monotonic()))
    return started()


def wait_until(condition, timeout: float, interval: float = 0.01) -> bool:
    """Poll `condition()` until it is true or `timeout` passes; for state that offers nothing to block on."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# -- threads and descriptors of a process, read from /proc ----------------------------------------------

@dataclass(frozen=True)
class Resources:
    """The threads (tid → name) and open descriptors (fd → what it points to) of a process at one moment."""
    threads: dict[int, str]
    fds: dict[int, str]

    def descriptors(self) -> "Resources":
        """The descriptors alone (threads of this process are checked by object, see `leaked_threads`)."""
        return Resources({}, self.fds)

    def over(self, baseline: "Resources") -> str | None:
        """What this holds beyond `baseline` (more threads or more descriptors), or None."""
        problems = []
        if len(self.threads) > len(baseline.threads):
            extra = sorted(name for tid, name in self.threads.items() if tid not in baseline.threads)
            problems.append(f"{len(self.threads)} threads, {len(baseline.threads)} at idle (new: {', '.join(extra)})")
        if len(self.fds) > len(baseline.fds):
            extra = sorted(f"{fd}→{target}" for fd, target in self.fds.items() if baseline.fds.get(fd) != target)
            problems.append(f"{len(self.fds)} descriptors, {len(baseline.fds)} at idle (new: {', '.join(extra)})")
        return "; ".join(problems) or None


def _read_link(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:  # closed between listing and reading
        return None


def _read_name(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:  # ended between listing and reading
        return None


def resources(pid: int | str = "self") -> Resources:
    """Now, for process `pid` ("self": this one). Entries that vanish while being read are left out."""
    proc = Path("/proc") / str(pid)
    threads = {int(task.name): _read_name(task / "comm") for task in (proc / "task").iterdir()}
    fds = {int(fd.name): _read_link(fd) for fd in (proc / "fd").iterdir()}
    if pid == "self":  # the descriptor that listed /proc/self/fd is gone again
        fds = {fd: target for fd, target in fds.items() if target is not None}
    return Resources({tid: name for tid, name in threads.items() if name is not None},
                     {fd: target for fd, target in fds.items() if target is not None})


def excess_after(read: Callable[[], Resources], baseline: Resources, timeout: float) -> str | None:
    """Waits, up to `timeout`, for `read()` to hold no more than `baseline` (threads finishing, sockets being
    closed take a moment after the last client left); what is still over it then, or None."""
    deadline = time.monotonic() + timeout
    while True:
        over = read().over(baseline)
        if over is None or time.monotonic() >= deadline:
            return over
        time.sleep(0.05)


class LeakFindings:
    """Leaks found while a test's fixtures were torn down; the autouse fixture fails the test with them."""

    def __init__(self):
        self._found: list[str] = []
        self._lock = threading.Lock()

    def add(self, finding: str) -> None:
        with self._lock:
            self._found.append(finding)

    def take(self) -> list[str]:
        with self._lock:
            found, self._found = self._found, []
            return found


FINDINGS = LeakFindings()
