"""Brute-force protection: failed logins counted per (address, cid) and per address, then HTTP 429 for a while
(issues 5 and 18, SPEC §10).

`FailureThrottle` is the pure bookkeeping (an injected clock, no I/O) for one kind of key; `ThrottledBackend` puts
two of them in front of an auth backend, so both listeners share the counts:

- per (address, cid): a charge point retrying a stale password blocks itself only, never its neighbours behind
  the same NAT router or proxy;
- per address, across cids: a much higher ceiling that slows a guesser spraying many ids from one address.

While a key is blocked its attempts are refused before the backend is asked, right or wrong, so a block tells a
guesser nothing and costs no KDF run; those refused attempts do not prolong the block and are not counted against
the address. Attempts already running when a limit is reached still finish: a guesser with many parallel
connections gets a few more tries than the limit, never many. `docs/security.md` gives the numbers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Callable, Hashable

from ..protocol.handshake import Throttled
from ..protocol.peers import address_key  # noqa: F401 - part of this module's surface (admin, tests)

log = logging.getLogger(__name__)

MAX_TRACKED = 10_000  # addresses remembered at once; the oldest is forgotten first


class FailureThrottle:
    """At most `max_failures` failures per key (an address, or an (address, cid) pair) within `window` seconds;
    the one that reaches the limit blocks the key for `block` seconds. Thread-safe."""

    def __init__(self, max_failures: int, window: float, block: float, *,
                 clock: Callable[[], float] = time.monotonic, max_tracked: int = MAX_TRACKED):
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self.max_failures = max_failures
        self.window = window
        self.block = block
        self.clock = clock
        self.max_tracked = max_tracked
        self._failures: dict[Hashable, deque[float]] = {}
        self._blocked_until: dict[Hashable, float] = {}
        self._lock = threading.Lock()

    def retry_after(self, address: Hashable) -> float | None:
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

    def record_failure(self, address: Hashable) -> bool:
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
    """An auth backend behind two FailureThrottles: `per_pair` keyed by (address, cid), `per_address` (None: no
    ceiling) keyed by address; `authenticate` raises handshake.Throttled while either blocks the attempt."""

    def __init__(self, backend, per_pair: FailureThrottle, per_address: FailureThrottle | None = None):
        self.backend = backend
        self.per_pair = per_pair
        self.per_address = per_address

    @property
    def requires_credentials(self) -> bool:
        return getattr(self.backend, "requires_credentials", True)

    def authenticate(self, username: str, password: str, *, cid: str = "", peer: str = "") -> bool:
        address = address_key(peer)
        pair = (address, cid or username)
        self._refuse_while_blocked(address, pair)
        allowed = self.backend.authenticate(username, password, cid=cid, peer=peer)
        if not allowed:
            self._count_failure(address, pair)
        return allowed

    def _refuse_while_blocked(self, address: str, pair: tuple[str, str]) -> None:
        waits = [self.per_pair.retry_after(pair)]
        if self.per_address is not None:
            waits.append(self.per_address.retry_after(address))
        waits = [wait for wait in waits if wait is not None]
        if waits:
            raise Throttled(max(waits))

    def _count_failure(self, address: str, pair: tuple[str, str]) -> None:
        pair_throttle = self.per_pair
        if pair_throttle.record_failure(pair):
            log.warning("%d failed logins for %s from %s within %gs; its logins from there are refused with 429 "
                        "for %gs (other charge points at that address are not affected)",
                        pair_throttle.max_failures, pair[1], address, pair_throttle.window, pair_throttle.block,
                        extra={"cid": pair[1]})
        ceiling = self.per_address
        if ceiling is not None and ceiling.record_failure(address):
            log.warning("%d failed logins from %s within %gs across charge point ids; every login from there is "
                        "refused with 429 for %gs", ceiling.max_failures, address, ceiling.window, ceiling.block)

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
