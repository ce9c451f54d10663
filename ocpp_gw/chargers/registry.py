"""Who is connected: cid → live session, with takeover and the downstream subscription kept in step."""

from __future__ import annotations

import threading
from typing import Callable, Iterator


class Registry:
    """The connected charge points of this process.

    ``on_first``/``on_last`` run under the registry lock when a cid gains its first session or
    loses its last one (the bridge subscribes, releases held messages and unsubscribes there), so
    a takeover never leaves a cid unsubscribed and a quick reconnect never races an unsubscribe.
    """

    def __init__(self, on_first: Callable[[object], None] = lambda session: None,
                 on_last: Callable[[object], None] = lambda session: None):
        self._lock = threading.Lock()
        self._sessions: dict = {}
        self._on_first = on_first
        self._on_last = on_last
        # Each is called with a session that has just left (outside the lock; the admin console).
        self.on_disconnect: list[Callable[[object], None]] = []

    def register(self, session):
        """Make ``session`` the cid's session; return the one it replaces, if any."""
        with self._lock:
            previous = self._sessions.get(session.cid)
            self._sessions[session.cid] = session
            if previous is None:
                self._on_first(session)
            return previous

    def unregister(self, session) -> bool:
        """Forget ``session`` unless it was already replaced; True if the cid is now gone."""
        with self._lock:
            gone = self._sessions.get(session.cid) is session
            if gone:
                del self._sessions[session.cid]
                self._on_last(session)
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
