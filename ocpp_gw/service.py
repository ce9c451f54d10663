"""Wiring and lifecycle: start order, signals (handlers only enqueue), graceful stop (SPEC §8)."""

from __future__ import annotations

import logging
import queue
import signal
import ssl
import sys
import threading
import time

from . import auth, logs, systemd
from .admin import AdminServer
from .bridge import Bridge
from .listener import Listener
from .registry import Registry
from .runtime import Runtime
from .tls import make_ssl_context

log = logging.getLogger("ocpp_gw.service")

CLOSE_GOING_AWAY = 1001
STOP_BUDGET = 8.0  # seconds for closing every CP; SPEC allows 10 for the whole stop
# Two threads per charge point: glibc's default 8 MiB stack reservation each adds up to tens of
# GiB of address space at 10,000 CPs. Our threads recurse shallowly (JSON depth is capped at 64).
THREAD_STACK_SIZE = 512 * 1024
# With thousands of threads waiting for the GIL, CPython's 5 ms switch interval makes them force
# each other off it constantly (measured: a 3,000-CP burst got no answer in 30 s; with 50 ms every
# burst completed, docs/performance.md). Our threads give the GIL up on every blocking call anyway.
SWITCH_INTERVAL = 0.05


class StartupError(Exception):
    """The service cannot start with this configuration (exit 2)."""


def make_auth(settings):
    try:
        return auth.make_backend(settings)
    except auth.CredentialsError as err:
        raise StartupError(f"auth.file: {err}") from err


def make_checker(settings):
    if settings["ocpp.message_format_checking"] == "disable":
        return None
    from . import schemas
    directory = settings["ocpp.json_schema_dir"] or schemas.default_schema_dir()
    try:
        return schemas.SchemaChecker(directory, settings["ocpp.json_schema_id_prefix"])
    except schemas.SchemaError as err:
        raise StartupError(f"{settings.source}: ocpp.json_schema_dir: {err}") from err


class Service:
    def __init__(self, settings):
        threading.stack_size(THREAD_STACK_SIZE)
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.settings = settings
        self.runtime = Runtime(settings=settings, auth=make_auth(settings),
                               checker=make_checker(settings))
        self.runtime.registry = Registry(on_first=self._subscribe, on_last=self._unsubscribe)
        self.runtime.bridge = Bridge(settings, self.runtime.stats, self.runtime.registry)
        self.listeners: list[Listener] = []
        self.admin: AdminServer | None = None
        self.watchdog: systemd.Watchdog | None = None
        self.signals: queue.Queue = queue.Queue()
        self.started_at = time.time()

    def _subscribe(self, session) -> None:
        self.runtime.bridge.attach(session)

    def _unsubscribe(self, session) -> None:
        self.runtime.bridge.detach(session.cid, linger=session.moved_to is None)

    def start(self, mqtt_wait: float = 10.0) -> None:
        settings = self.settings
        self.runtime.bridge.start()
        try:
            if settings["ocpp.listener.ws"]:
                self.listeners.append(Listener(self.runtime, settings["ocpp.listener.ws"], "ws"))
            if settings["ocpp.listener.wss"]:
                self.listeners.append(Listener(self.runtime, settings["ocpp.listener.wss"], "wss",
                                               make_ssl_context(settings)))
            if settings["admin.listener"]:
                self.admin = AdminServer(self, settings["admin.listener"])
        except (OSError, ssl.SSLError) as err:
            self.runtime.bridge.stop(0)
            raise StartupError(f"cannot listen: {err}") from err
        for listener in self.listeners:
            listener.start()
        if self.admin is not None:
            self.admin.start()
        if self.runtime.bridge.connected.wait(mqtt_wait):
            log.info("ocpp_gw ready")
        else:
            log.warning("ocpp_gw ready, but the MQTT broker at %s:%s is not reachable yet; "
                        "upstream messages are queued", *settings["mqtt.server"])
        systemd.notify("READY=1\nSTATUS=serving charge points")
        interval = systemd.watchdog_interval()
        if interval:
            self.watchdog = systemd.Watchdog(interval, self.core_threads_alive)
            self.watchdog.start()

    def core_threads_alive(self) -> bool:
        """The accept loops and the MQTT loop run (a broker outage is not a reason to restart)."""
        return self.runtime.bridge.is_alive() and all(l.is_alive() for l in self.listeners)

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; the handlers only enqueue, this loop acts."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, lambda num, frame: self.signals.put(num))
        self.start()
        while True:
            signum = self.signals.get()
            if signum == signal.SIGHUP:
                self.reload()
                continue
            log.info("stopping on %s", signal.Signals(signum).name)
            self.stop()
            return 0

    def reload(self) -> None:
        """SIGHUP: re-read credentials and the log level; connections stay up."""
        systemd.notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
        try:
            self._reload()
        finally:
            systemd.notify("READY=1")

    def _reload(self) -> None:
        from .settings import ConfigError, load
        try:
            fresh = load(self.settings.source)
        except ConfigError as err:
            log.error("reload refused, keeping the running configuration: %s", err)
            return
        logs.set_level(fresh["log.level"])
        reload_auth = getattr(self.runtime.auth, "reload", None)
        if reload_auth is not None:
            try:
                reload_auth()
            except auth.CredentialsError as err:
                log.error("credentials not reloaded, keeping the old ones: %s", err)
                return
        log.info("reloaded credentials and log level (%s)", fresh["log.level"])

    def stop(self) -> None:
        systemd.notify("STOPPING=1")
        for listener in self.listeners:
            listener.stop()
        sessions = list(self.runtime.registry)
        for session in sessions:
            session.pipe.request_close(CLOSE_GOING_AWAY, "shutdown")
        deadline = time.monotonic() + STOP_BUDGET
        for session in sessions:
            session.finished.wait(max(0.0, deadline - time.monotonic()))
        self.runtime.bridge.stop()
        if self.admin is not None:
            self.admin.stop()
        if self.watchdog is not None:
            self.watchdog.stop()
        log.info("stopped")
