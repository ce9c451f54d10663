"""Helpers for the fault tests: what /proc says about the gateway process, its admin API, a backend whose MQTT
session outlives a broker restart, and a stand-in broker port that only counts connection attempts."""

from __future__ import annotations

import itertools
import json
import os
import socket
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Self

from tools.harness.ledger import health
from tools.harness import MqttProbe, wait_until

_backends = itertools.count(1)


def start_gateway(gateway_factory, overrides: dict | None = None, **options):
    """A running gateway with its admin listener on (for /healthz and the counters) and a mountpoint of its own,
    so that nothing retained or persisted by another test reaches it; `overrides` win."""
    settings = {"ocpp.mountpoint": f"faults-{uuid.uuid4().hex[:10]}/", "log.level": "debug", **(overrides or {})}
    return gateway_factory(settings, **options)


@dataclass(frozen=True)
class Resources:
    """What one process holds: threads (/proc/<pid>/status) and open file descriptors (/proc/<pid>/fd)."""

    threads: int
    files: int


def resources(pid: int) -> Resources:
    with open(f"/proc/{pid}/status") as status:
        threads = next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
    return Resources(threads, len(os.listdir(f"/proc/{pid}/fd")))


def settle_resources(pid: int, expected: Resources, timeout: float = 10.0) -> Resources:
    """Wait until the process is back to `expected` (threads and sockets end after a close timeout); the last
    reading either way."""
    wait_until(lambda: resources(pid) == expected, timeout, interval=0.05)
    return resources(pid)


def healthz(gateway) -> int:
    return health(gateway.admin_url("/healthz"))


def wait_for_health(gateway, status: int, timeout: float = 10.0) -> None:
    if not wait_until(lambda: healthz(gateway) == status, timeout, interval=0.05):
        raise AssertionError(f"/healthz did not answer {status} within {timeout} s (last: {healthz(gateway)})")


def counters(gateway) -> dict[str, int]:
    with urllib.request.urlopen(gateway.admin_url("/api/v1/stats"), timeout=5) as response:
        return json.load(response)["counters"]


def persistent_backend(broker) -> MqttProbe:
    """A backend probe with a persistent session: on a broker with persistence it misses nothing across a restart.
    Use as a context manager; subscribe before the restart."""
    return MqttProbe(broker.host, broker.port, client_id=f"faults-backend-{next(_backends)}-{os.getpid()}",
                     clean_session=False)


class AttemptCounter:
    """Listens on a port a broker has left and notes the time of each connection attempt (accept, then close)."""

    def __init__(self, host: str, port: int):
        self._server = socket.create_server((host, port))
        self._server.settimeout(0.1)
        self.attempts: list[float] = []
        self._arrived = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="faults-attempt-counter", daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            conn.close()
            with self._arrived:
                self.attempts.append(time.monotonic())
                self._arrived.notify_all()

    def wait_for(self, count: int, timeout: float) -> list[float]:
        """The attempt times once there are `count` (fewer if `timeout` passes first)."""
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.attempts) >= count, timeout)
            return list(self.attempts)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._server.close()
