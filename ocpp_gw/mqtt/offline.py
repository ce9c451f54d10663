"""Downstream messages for a charge point that is not connected, held for ``ocpp.dnstream.offline_hold``.

After a gateway restart the persistent MQTT session delivers what the CSMS sent meanwhile, usually
before the chargers are back; a charger that reconnects within the hold gets them, in order. A
charger that has just left keeps its subscription for one hold period too ("linger"), so what the
CSMS sends it meanwhile is held rather than lost at the broker. What expires is handed to
``on_expire(cid, items, emptied)``; ``emptied`` says nothing is held or lingering for the cid any
more (the bridge answers expired Calls with gateway error ``offline`` and drops the subscription).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable


class OfflineHold:
    def __init__(self, hold: float, max_per_cid: int,
                 on_expire: Callable[[str, list, bool], None],
                 clock: Callable[[], float] = time.monotonic):
        self.hold_seconds = hold
        self.max_per_cid = max_per_cid
        self.on_expire = on_expire
        self.clock = clock
        self._held: dict[str, deque] = {}
        self._linger: dict[str, float] = {}  # cid -> end of its linger period
        self._cond = threading.Condition()
        self._stopping = False
        self.thread = threading.Thread(target=self._run, name="ocpp-offline-hold", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self.thread.join(2.0)

    def hold(self, cid: str, item, seconds: float | None = None) -> bool:
        """Keep ``item`` for ``cid`` for ``seconds`` (default the hold); False when that cid already
        has ``max_per_cid`` held."""
        with self._cond:
            queue = self._held.setdefault(cid, deque())
            if len(queue) >= self.max_per_cid:
                return False
            keep = self.hold_seconds if seconds is None else min(seconds, self.hold_seconds)
            queue.append((self.clock() + keep, item))
            self._cond.notify()
            return True

    def linger(self, cid: str) -> None:
        """``cid`` has just left: keep it (and its subscription) for one hold period."""
        with self._cond:
            self._linger[cid] = self.clock() + self.hold_seconds
            self._cond.notify()

    def release(self, cid: str) -> list:
        """Everything held for ``cid``, oldest first; ends its linger period."""
        with self._cond:
            self._linger.pop(cid, None)
            queue = self._held.pop(cid, None)
        return [item for _, item in queue] if queue else []

    def count(self) -> int:
        with self._cond:
            return sum(len(q) for q in self._held.values())

    def expire(self) -> float | None:
        """Hand over what is due; return the next deadline (or None)."""
        now = self.clock()
        due: list[tuple[str, list, bool]] = []
        with self._cond:
            for cid, queue in list(self._held.items()):
                # Items may have different lengths of stay: look at each, keep the others' order.
                expired = [item for deadline, item in queue if deadline <= now]
                if expired:
                    kept = [entry for entry in queue if entry[0] > now]
                    queue.clear()
                    queue.extend(kept)
                if not queue:
                    del self._held[cid]
                if expired:
                    due.append((cid, expired, not queue and cid not in self._linger))
            for cid, end in list(self._linger.items()):
                if end <= now:
                    del self._linger[cid]
                    if cid not in self._held:
                        due.append((cid, [], True))
            deadlines = [min(entry[0] for entry in q) for q in self._held.values()] + list(self._linger.values())
        for cid, items, emptied in due:
            self.on_expire(cid, items, emptied)
        return min(deadlines, default=None)

    def _run(self) -> None:
        while True:
            next_deadline = self.expire()
            with self._cond:
                if self._stopping:
                    return
                timeout = None if next_deadline is None else max(0.0, next_deadline - self.clock())
                self._cond.wait(timeout)
                if self._stopping:
                    return
