"""Slots for connections that have not authenticated yet (SPEC §10), apart from `max_connections`.

A connection takes a pending slot when it is accepted and gives it back when its handshake ends, however it ends;
only an authenticated charge point takes one of the `max_connections` slots. So silent or slow sockets (a scanner,
a flood, a broken modem) can fill the pending slots at most - bounded in total and per address - and never the
slots of charge points that log in. What is shed is closed at once, unread, counted, and logged at most once per
`WARNING_EVERY` seconds with the count since.

Two more bounds keep a storm of connections from crowding the GIL: the reading places (threads runnable before
their set-up turn) and the set-up turns themselves (`READS_AT_ONCE`, `SETUPS_AT_ONCE`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass

log = logging.getLogger("ocpp_gw.listener")

# In a storm, thousands of threads with a request read would all wait for the GIL at once. Each waiter that
# waits longer than the switch interval asks the holder to let go, so the GIL then changes hands every few
# microseconds and little else happens: a 3,000-CP storm took 27-120 s instead of 4 s with the threads on
# one CPU (docs/performance.md). Threads beyond this many wait their turn on a semaphore instead, outside
# the GIL's queue. The requests are read before (a slow client holds no turn), TLS is done before.
SETUPS_AT_ONCE = 32
# How long a connection whose request is read waits for a turn. Not the handshake deadline: the client
# has done its part, and in a storm of password hashes (20 ms each, one per CPU at a time) the last of
# 5,000 logins waits over a minute. The waiters are bounded by the pending slots.
SETUP_WAIT = 180.0
# The same storm one step earlier: the accept loop started threads faster than they read their requests and
# reached a turn (in a storm of 5,000 it had started all 5,000 before most had), and each such thread waits
# for the GIL with its request in hand, as in the collapse above. So the accept loop keeps at most this many
# started threads runnable ahead of their turn, and starts the next one only when one of them has moved on:
# to its turn, to waiting for bytes its client has not sent yet, or to its end. Meanwhile the connections
# wait in the listen backlog and the accept loop's waiting room (``waiting_room.py``), outside any thread.
READS_AT_ONCE = 64
# How often the accept loop, waiting for a reading place, looks whether the listener is stopping.
PLACE_POLL = 0.5

WARNING_EVERY = 10.0


@dataclass(frozen=True)
class PendingLimits:
    """ocpp.listener.max_pending and max_pending_per_address (built by ``ocpp_gw.config``)."""

    total: int = 2000
    per_address: int = 500


class PendingSlots:
    """Counts connections before authentication, in total and per address key. Thread-safe."""

    def __init__(self, limits: PendingLimits, stats, *, clock=time.monotonic):
        self.limits = limits
        self._stats = stats
        self._clock = clock
        self._lock = threading.Lock()
        self._total = 0
        self._by_address: Counter[str] = Counter()
        self._shed_since_warning: Counter[str] = Counter()
        self._warned_at = -WARNING_EVERY

    def admit(self) -> "Slot | None":
        """A pending slot for a connection just accepted; None (shed, counted) when all are taken. The slot of its
        address is claimed once the address is known (`Slot.claim_address`)."""
        return Slot(self) if self.take() else None

    def take(self) -> bool:
        """A slot in the total; False (shed, counted) when all are taken."""
        with self._lock:
            if self._total >= self.limits.total:
                self._shed("total")
                return False
            self._total += 1
            return True

    def take_address(self, address: str) -> bool:
        """A slot of `address` (the charge point's, or its /64); False (shed, counted) when it has them all."""
        with self._lock:
            if self._by_address[address] >= self.limits.per_address:
                self._shed("per_address", address)
                return False
            self._by_address[address] += 1
            return True

    def give_back(self, address: str | None = None) -> None:
        """Give back the total slot and, when `address` is given, that address's slot."""
        with self._lock:
            self._total -= 1
            if address is not None:
                self._by_address[address] -= 1
                if self._by_address[address] <= 0:
                    del self._by_address[address]

    def pending(self) -> int:
        with self._lock:
            return self._total

    def _shed(self, which: str, address: str = "") -> None:
        self._stats.incr(f"shed.pending_{which}")
        self._shed_since_warning[address or "any address"] += 1
        now = self._clock()
        if now - self._warned_at < WARNING_EVERY:
            return
        counts = ", ".join(f"{count} from {where}" for where, count in self._shed_since_warning.most_common(3))
        log.warning("closed %d connection(s) that had not authenticated, since the last such warning (%s): "
                    "over ocpp.listener.max_pending (%d) or ocpp.listener.max_pending_per_address (%d)",
                    sum(self._shed_since_warning.values()), counts, self.limits.total, self.limits.per_address)
        self._shed_since_warning.clear()
        self._warned_at = now


class Slot:
    """One connection's pending slot, given back once (`release`) when its handshake ends, however it ends."""

    def __init__(self, slots: PendingSlots):
        self._slots = slots
        self._address: str | None = None
        self._held = True

    def claim_address(self, address: str) -> bool:
        """Count this connection against `address` too; False (shed) when that address has all its slots."""
        if not self._slots.take_address(address):
            return False
        self._address = address
        return True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots.give_back(self._address)


class ReadingPlaces:
    """The READS_AT_ONCE places of connection threads that run ahead of their set-up turn. Thread-safe."""

    def __init__(self, count: int = READS_AT_ONCE):
        self._free = threading.Semaphore(count)

    def take(self, timeout: float) -> "ReadingPlace | None":
        """A place, waiting for one at most `timeout` seconds; None when none came free."""
        return ReadingPlace(self._free) if self._free.acquire(timeout=timeout) else None


class ReadingPlace:
    """One connection thread's place, given back once (`give_back`): when the thread waits, or ends."""

    def __init__(self, free: threading.Semaphore):
        self._free = free
        self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self._free.release()
