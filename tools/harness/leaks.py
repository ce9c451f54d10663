"""Checks that an in-process test leaves no threads behind."""

from __future__ import annotations

import threading
import time

from .process import HARNESS_THREAD_PREFIX


def new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads alive now that were not in `before`, except the harness's own (subprocess output drains)."""
    return [
        thread for thread in threading.enumerate()
        if thread not in before and thread.is_alive() and not thread.name.startswith(HARNESS_THREAD_PREFIX)
    ]


def leaked_threads(before: set[threading.Thread], grace: float) -> list[threading.Thread]:
    """Threads started since `before` that are still alive after joining each for what is left of `grace`."""
    deadline = time.monotonic() + grace
    for thread in new_threads(before):
        thread.join(max(0.0, deadline - time.monotonic()))
    return new_threads(before)


def wait_until(condition, timeout: float, interval: float = 0.01) -> bool:
    """Poll `condition()` until it is true or `timeout` passes; for state that offers nothing to block on."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
