"""A doorbell a thread can wait for in ``poll()`` together with its socket.

The connection thread sleeps in one ``poll()`` on the charge point's socket and this doorbell's
eventfd, so a frame from the CP and a message from the paho thread wake the same thread, once.
It has the two methods of :class:`threading.Event` the pipe uses, ``set`` and ``clear``.

The eventfd is written and read without releasing the GIL (:mod:`ocpp_gw.gil_io`): both calls
return at once, and in the paho thread - through which every downstream message passes - giving the
GIL away for each ring would mean waiting for it again behind the connection threads.
"""

from __future__ import annotations

import os
import threading

from .gil_io import eventfd_add, eventfd_take


class Doorbell:
    """``set`` from any thread makes :meth:`fileno` readable until the owner calls ``clear``."""

    def __init__(self):
        self._fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        # `_rung` mirrors "the eventfd's counter is non-zero", which saves a system call per put
        # while the owner has not cleared yet; the lock keeps the two in step.
        self._rung = False
        self._lock = threading.Lock()

    def fileno(self) -> int:
        return self._fd

    def is_set(self) -> bool:
        return self._rung

    def set(self) -> None:
        if self._rung:  # already ringing: the owner has not drained yet and will see the new item
            return
        with self._lock:
            if not self._rung:
                eventfd_add(self._fd)
                self._rung = True

    def clear(self) -> None:
        if not self._rung:
            return
        with self._lock:
            if self._rung and self._fd >= 0:
                eventfd_take(self._fd)
                self._rung = False

    def close(self) -> None:
        # A late ring (a CSMS message racing the close) must not write to a reused descriptor:
        # it finds the bell rung for good and does nothing.
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
                self._rung = True
