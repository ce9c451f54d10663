"""Who is connected: cid → live session, with takeover and the downstream subscription kept in step.

Lock order (the one place it is written down; take them only in this order, never the reverse):

1. ``Registry._lock`` — held while the watcher's ``first_session``/``last_session`` run;
2. ``DownstreamRouter._lock`` (attached and moved cids) — released before 3 is taken;
3. ``DownstreamRouter._route_lock`` — routing a downstream message, releasing held ones, and a
   leaving session settling its unfinished calls (``routing_stopped``);
4. leaf locks, taken last and alone: ``OfflineHold._cond``, ``MqttLink._lock`` (standing
   subscriptions), a session's channel (``queue.Queue`` mutex), paho's own locks (publish,
   subscribe), ``Stats._lock``.

Nothing that holds 2, 3 or 4 takes the registry lock: routing looks sessions up with ``get``,
which reads the dict without it (a single dict read is atomic in CPython).
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator, Protocol


class Watcher(Protocol):
    """Told, under the registry lock, when a cid gains its first session or loses its last one."""

    def first_session(self, session) -> None: ...

    def last_session(self, session) -> None: ...


class _NoWatcher:
    def first_session(self, session) -> None:
        pass

    def last_session(self, session) -> None:
        pass


class Registry:
    """The connected charge points of this process.

    The watcher (the downstream router) subscribes, releases held messages and unsubscribes under
    the registry lock, so a takeover never leaves a cid unsubscribed and a quick reconnect never
    races an unsubscribe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict = {}
        self._watcher: Watcher = _NoWatcher()
        # Each is called with a session that has just left (outside the lock; the admin console).
        self.on_disconnect: list[Callable[[object], None]] = []

    def watch(self, watcher: Watcher) -> None:
        """Set the watcher (once, while the runtime is built, before any session registers)."""
        self._watcher = watcher

    def register(self, session):
        """Make ``session`` the cid's session; return the one it replaces, if any."""
        with self._lock:
            previous = self._sessions.get(session.cid)
            self._sessions[session.cid] = session
            if previous is None:
                self._watcher.first_session(session)
            return previous

    def unregister(self, session) -> bool:
        """Forget ``session`` unless it was already replaced; True if the cid is now gone."""
        with self._lock:
            gone = self._sessions.get(session.cid) is session
            if gone:
                del self._sessions[session.cid]
                self._watcher.last_session(session)
        for callback in self.on_disconnect:
            callback(session)
        return gone

    def get(self, cid: str):
        return self._sessions.get(cid)

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator:
        with self._lock:
            return iter(list(self._sessions.values()))

    def cids(self) -> list[str]:
        with self._lock:
            return sorted(self._sessions)
