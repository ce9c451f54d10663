"""systemd integration without a C extension: sd_notify (READY, WATCHDOG, STOPPING, RELOADING).

The notify protocol is one datagram of ``KEY=value`` lines to ``$NOTIFY_SOCKET`` (a path, or an
abstract socket when it starts with ``@``); outside systemd every call is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Callable

log = logging.getLogger("ocpp_gw.systemd")


def under_systemd(environ=os.environ) -> bool:
    """Started by systemd as a service (it sets INVOCATION_ID for every unit it starts)."""
    return bool(environ.get("INVOCATION_ID") or environ.get("NOTIFY_SOCKET"))


def notify(state: str, environ=os.environ) -> bool:
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(state.encode(), address)
        return True
    except OSError as err:
        log.warning("sd_notify(%s) failed: %s", state.split("\n")[0], err)
        return False


def watchdog_interval(environ=os.environ) -> float | None:
    """Half of systemd's WatchdogSec, when the watchdog is meant for this process."""
    usec = environ.get("WATCHDOG_USEC")
    pid = environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


class Watchdog:
    """Pings systemd's watchdog while ``healthy()`` holds; stays silent (so systemd restarts us) when not."""

    def __init__(self, interval: float, healthy: Callable[[], bool], environ=os.environ):
        self.interval = interval
        self.healthy = healthy
        self.environ = environ
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="ocpp-watchdog", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(self.interval + 1)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.healthy():
                notify("WATCHDOG=1", self.environ)
            else:
                log.error("a core thread has died; withholding the watchdog ping")
