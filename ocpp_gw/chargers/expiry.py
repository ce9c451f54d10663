"""The daily warning that the wss server certificate is about to expire (SPEC §10).

`ExpiryWarning.check` decides on a clock it is given, so tests drive it through weeks without waiting; the
thread only sleeps until the next check is due.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger("ocpp_gw.tls")

WARN_BEFORE = 30 * 86400.0   # the warnings start this long before the certificate expires
WARN_EVERY = 86400.0         # ...and repeat daily
LONGEST_SLEEP = 3600.0       # the thread looks again at least hourly: the wall clock may be stepped


class ExpiryWarning:
    """Logs a WARNING on the first check inside the warning window and then once a day; `not_after` is read
    on each check, so a certificate swapped by SIGHUP is followed."""

    def __init__(self, describe: Callable[[], tuple[str, float]], clock: Callable[[], float] = time.time):
        self.describe = describe  # () -> (certificate file, its notAfter as Unix time)
        self.clock = clock
        self.last_warned: float | None = None
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def check(self) -> bool:
        """Warn when due; True when it warned."""
        now = self.clock()
        path, not_after = self.describe()
        if now < not_after - WARN_BEFORE:
            self.last_warned = None  # a renewed certificate: the next window warns at once
            return False
        if self.last_warned is not None and now - self.last_warned < WARN_EVERY:
            return False
        self.last_warned = now
        expires = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(not_after))
        if now >= not_after:
            log.warning("the wss server certificate %s EXPIRED on %s: charge points refuse it; "
                        "install a new one and reload (SIGHUP)", path, expires)
        else:
            log.warning("the wss server certificate %s expires on %s, in %.1f days; install a new one "
                        "and reload (SIGHUP)", path, expires, (not_after - now) / 86400)
        return True

    def seconds_to_next_check(self) -> float:
        now = self.clock()
        _, not_after = self.describe()
        if self.last_warned is not None:
            due = self.last_warned + WARN_EVERY
        else:
            due = not_after - WARN_BEFORE
        return min(max(1.0, due - now), LONGEST_SLEEP)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="ocpp-cert-expiry", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(2.0)

    def _run(self) -> None:
        self.check()
        while not self.stopping.wait(self.seconds_to_next_check()):
            self.check()
