"""Brute-force protection: failed logins counted per peer address, then HTTP 429 for a while (issue 5).

`FailureThrottle` is the pure bookkeeping (an injected clock, no I/O); `ThrottledBackend` puts it in front of an
auth backend, so both listeners share one count per address. While an address is blocked its attempts are
refused before the backend is asked, right or wrong, so a block tells a guesser nothing and costs no KDF run;
those refused attempts do not prolong the block. Attempts already running when the limit is reached still
finish: a guesser with many parallel connections gets a few more tries than the limit, never many.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import deque
from typing import Callable

from ..protocol.handshake import Throttled

log = logging.getLogger(__name__)

MAX_TRACKED = 10_000  # addresses remembered at once; the oldest is forgotten first


def address_key(peer: str) -> str:
    """The throttled unit of a `host:port` / `[v6]:port` peer: the IPv4 address, or the IPv6 /64 network
    (one host usually owns a whole /64, so counting single IPv6 addresses would be no limit)."""
    host = peer.rpartition(":")[0] if peer.count(":") == 1 or peer.startswith("[") else peer
    host = host.strip("[]") or peer
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


class FailureThrottle:
    """At most `max_failures` failures per address within `window` seconds; the one that reaches the limit
    blocks the address for `block` seconds. Thread-safe."""

    def __init__(self, max_failures: int, window: float, block: float, *,
                 clock: Callable[[], float] = time.monotonic, max_tracked: int = MAX_TRACKED):
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self.max_failures = max_failures
        self.window = window
        self.block = block
        self.clock = clock
        self.max_tracked = max_tracked
        self._failures: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: str) -> float | None:
        """Seconds until `address` may try again, or None when it may try now."""
        with self._lock:
            until = self._blocked_until.get(address)
            if until is None:
                return None
            remaining = until - self.clock()
            if remaining > 0:
                return remaining
            del self._blocked_until[address]
            return None

    def record_failure(self, address: str) -> bool:
        """Count one failed login; True when it is the one that blocks the address (log it then, once)."""
        with self._lock:
            now = self.clock()
            if self._blocked_until.get(address, now) > now:
                return False  # an attempt that was already running when the block began
            failures = self._failures.pop(address, None) or deque()
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            failures.append(now)
            if len(failures) < self.max_failures:
                self._failures[address] = failures  # re-inserted last: the dict stays oldest-first
                self._forget_oldest(now)
                return False
            self._blocked_until[address] = now + self.block
            self._forget_oldest(now)
            return True

    def tracked(self) -> int:
        with self._lock:
            return len(self._failures) + len(self._blocked_until)

    def _forget_oldest(self, now: float) -> None:
        for table, expired in ((self._failures, lambda times: times[-1] <= now - self.window),
                               (self._blocked_until, lambda until: until <= now)):
            while table and expired(next(iter(table.values()))):
                del table[next(iter(table))]
            while len(table) > self.max_tracked:
                del table[next(iter(table))]


class ThrottledBackend:
    """An auth backend behind a FailureThrottle; `authenticate` raises handshake.Throttled while blocked."""

    def __init__(self, backend, throttle: FailureThrottle):
        self.backend = backend
        self.throttle = throttle

    @property
    def requires_credentials(self) -> bool:
        return getattr(self.backend, "requires_credentials", True)

    def authenticate(self, username: str, password: str, *, cid: str = "", peer: str = "") -> bool:
        address = address_key(peer)
        wait = self.throttle.retry_after(address)
        if wait is not None:
            raise Throttled(wait)
        allowed = self.backend.authenticate(username, password, cid=cid, peer=peer)
        if not allowed and self.throttle.record_failure(address):
            log.warning("%d failed logins from %s within %gs; its logins are refused with 429 for %gs",
                        self.throttle.max_failures, address, self.throttle.window, self.throttle.block)
        return allowed

    def profile(self, username: str) -> int | None:
        profile_of = getattr(self.backend, "profile", None)
        return profile_of(username) if profile_of is not None else None

    def reload(self) -> None:
        reload = getattr(self.backend, "reload", None)
        if reload is not None:
            reload()

    def __getattr__(self, name: str):
        # Anything else (cids(), path, ...) is the wrapped backend's.
        return getattr(self.backend, name)
