"""Accepted connections whose client has not sent a byte yet, watched by the accept loop (one selector).

A connection gets its thread when its client speaks, not when it is accepted. In a storm the TCP connections
complete in the kernel before the clients send their requests; with a thread each, thousands of threads wait
in `recv()` and become runnable together when the requests arrive, all asking for the GIL at once (the collapse
of `docs/performance.md`, item 22). Here they wait as file descriptors instead, and the accept loop starts
their threads as its reading places come free. A connection that stays silent until its handshake deadline is
closed from here, without ever having had a thread.
"""

from __future__ import annotations

import selectors
import socket
from dataclasses import dataclass

from .admission import Slot


@dataclass(frozen=True)
class Accepted:
    """A connection the accept loop took, with its pending slot and the end of its handshake (monotonic)."""

    conn: socket.socket
    peer: str
    slot: Slot
    deadline: float

    def has_spoken(self) -> bool:
        """Whether its first bytes (or its end) have arrived."""
        try:
            self.conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            pass  # reset: the connection's thread will find out and say so
        return True

    def drop(self) -> None:
        """Close it unserved and give its pending slot back."""
        self.slot.release()
        self.conn.close()


class WaitingRoom:
    """The listening socket and the silent connections, in one selector. Used by the accept loop's thread only."""

    def __init__(self, listening: socket.socket):
        self._listening = listening
        self._selector = selectors.DefaultSelector()
        self._selector.register(listening, selectors.EVENT_READ)
        self._waiting: dict[int, Accepted] = {}  # by descriptor, in arrival order: deadlines come in order

    def add(self, accepted: Accepted) -> None:
        self._waiting[accepted.conn.fileno()] = accepted
        self._selector.register(accepted.conn, selectors.EVENT_READ)

    def wait(self, timeout: float, now: float) -> tuple[bool, list[Accepted]]:
        """Wait at most `timeout` s, less when a deadline comes sooner: (whether connections wait to be accepted,
        the silent connections that have spoken since, no longer watched)."""
        earliest = next(iter(self._waiting.values()), None)
        if earliest is not None:
            timeout = max(0.0, min(timeout, earliest.deadline - now))
        incoming, spoken = False, []
        for key, _events in self._selector.select(timeout):
            if key.fileobj is self._listening:
                incoming = True
            else:
                spoken.append(self._take(key.fd))
        return incoming, spoken

    def expired(self, now: float) -> list[Accepted]:
        """The silent connections whose handshake deadline has passed, no longer watched."""
        late = []
        for fd, accepted in self._waiting.items():
            if accepted.deadline > now:
                break
            late.append(fd)
        return [self._take(fd) for fd in late]

    def close(self) -> list[Accepted]:
        """Stop watching; the silent connections still waiting, for the caller to close."""
        left = [self._take(fd) for fd in list(self._waiting)]
        self._selector.close()
        return left

    def _take(self, fd: int) -> Accepted:
        accepted = self._waiting.pop(fd)
        self._selector.unregister(accepted.conn)
        return accepted
