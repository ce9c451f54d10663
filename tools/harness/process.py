"""Child processes whose output a test can wait on, line by line, with a deadline."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from typing import IO, Callable

# Threads of the harness itself (they live as long as a fixture's process); leak checks ignore them.
HARNESS_THREAD_PREFIX = "harness-"


class OutputLines:
    """Drains a text stream on a thread into a list, so the pipe never fills and tests can wait on lines."""

    def __init__(self, stream: IO[str], name: str):
        self.lines: list[str] = []
        self.closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(
            target=self._drain, args=(stream,), name=f"{HARNESS_THREAD_PREFIX}drain-{name}", daemon=True
        )
        self._thread.start()

    def _drain(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                with self._changed:
                    self.lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        finally:
            stream.close()  # at EOF: the child is gone, and its pipe must not outlive the test
            with self._changed:
                self.closed = True
                self._changed.notify_all()

    def mark(self) -> int:
        """Index of the next line to arrive; pass it as `since` to wait only for new lines."""
        with self._changed:
            return len(self.lines)

    def wait_for_index(self, accept: Callable[[str], bool], timeout: float, since: int = 0) -> int | None:
        """Index of the first line from `since` on that `accept` takes; None when the deadline passes or the stream
        ends first."""
        deadline = time.monotonic() + timeout
        index = since
        with self._changed:
            while True:
                while index < len(self.lines):
                    if accept(self.lines[index]):
                        return index
                    index += 1
                remaining = deadline - time.monotonic()
                if self.closed or remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def wait_for_line(self, accept: Callable[[str], bool], timeout: float, since: int = 0) -> str | None:
        """The first line from `since` on that `accept` takes, or None (see `wait_for_index`)."""
        index = self.wait_for_index(accept, timeout, since)
        return None if index is None else self.lines[index]

    def wait_closed(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def tail(self, count: int = 60) -> str:
        with self._changed:
            return "\n".join(self.lines[-count:])


def matcher(pattern: str) -> Callable[[str], bool]:
    regex = re.compile(pattern)
    return lambda line: regex.search(line) is not None


def stop_process(process: subprocess.Popen, timeout: float) -> int | None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; the exit status of the first wait or None."""
    if process.poll() is not None:
        return process.returncode
    process.terminate()
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None
