"""Which CPUs the gateway's threads run on (``process.cpus``).

Every message crosses threads: a connection thread wakes paho's thread and paho's thread wakes a
connection thread. When the two run on different CPUs each wake-up is a cross-CPU interrupt (on a
virtual machine, an exit to the hypervisor) and the message's objects move between the CPUs' caches.
The GIL lets one thread run Python at a time anyway, so by default the threads share one CPU:
at 333 heartbeats a second the gateway then used 15-33% less CPU (``docs/performance.md``, item 15).

The work that runs without the GIL and takes milliseconds - a password hash, a TLS handshake - may
still use every CPU: the thread doing it widens its own placement for that while (:func:`spread`).
Linux places each thread on its own, and a new thread starts where its creator is, so
:func:`apply` is called before the service starts any thread.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

ONE = "one"  # the default: one CPU, the highest-numbered the process may use
ALL = "all"  # wherever the system puts them


@dataclass(frozen=True)
class Placement:
    """What :func:`apply` did: the CPUs the threads run on, and all those the process may use."""

    running_on: frozenset[int]
    allowed: frozenset[int]

    @property
    def pinned(self) -> bool:
        return self.running_on != self.allowed


# The CPUs a thread may widen to for work without the GIL; None until apply() narrowed the threads.
_allowed: frozenset[int] | None = None


def choose(choice: str | frozenset[int], allowed: frozenset[int]) -> frozenset[int]:
    """The CPUs the threads are to run on, for ``process.cpus`` = `choice` (``one``, ``all`` or a set
    of CPU numbers), of those the process may use; ValueError when none of a given set is allowed."""
    if choice == ALL:
        return allowed
    if choice == ONE:
        return frozenset({max(allowed)})
    chosen = frozenset(choice) & allowed
    if not chosen:
        raise ValueError(f"none of CPUs {_shown(choice)} is available to this process "
                         f"(it may use {_shown(allowed)})")
    return chosen


def apply(choice: str | frozenset[int]) -> Placement:
    """Run this thread, and every thread it starts from now on, on the chosen CPUs."""
    global _allowed
    allowed = frozenset(os.sched_getaffinity(0))
    running_on = choose(choice, allowed)
    if running_on != allowed:
        os.sched_setaffinity(0, running_on)
        _allowed = allowed
    return Placement(running_on, allowed)


@contextlib.contextmanager
def spread():
    """Let the calling thread use every CPU the process may use while inside (work without the GIL)."""
    allowed = _allowed
    if allowed is None:
        yield
        return
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, allowed)
    try:
        yield
    finally:
        os.sched_setaffinity(0, own)


def _shown(cpus) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus))
