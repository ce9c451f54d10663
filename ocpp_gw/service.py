"""Wiring and lifecycle: start order, signals (handlers only enqueue), graceful stop (SPEC §8)."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import queue
import resource
import signal
import ssl
import sys
import threading
import time

from . import logs, systemd
from . import auth
from .admin import access as admin_access
from .admin.api import AdminApi, AdminServer, ListenerState
from .chargers.listener import Listener
from .netio import cpus
from .chargers.expiry import ExpiryWarning
from .chargers.tls import ServerTls, TlsFileError
from .config import DEFAULT_MAX_CONNECTIONS, CheckerConfig, Config, tls_config
from .runtime import build_runtime
from .protocol.close_codes import CLOSE_GOING_AWAY

log = logging.getLogger("ocpp_gw.service")

STOP_BUDGET = 8.0  # seconds for closing every CP; SPEC allows 10 for the whole stop
# A thread per charge point: glibc's default 8 MiB stack reservation each adds up to tens of GiB
# of address space at 10,000 CPs. Our threads recurse shallowly (JSON depth is capped at 64).
THREAD_STACK_SIZE = 512 * 1024
# With thousands of threads waiting for the GIL, CPython's 5 ms switch interval makes them force
# each other off it constantly (measured: a 3,000-CP burst got no answer in 30 s; with 50 ms every
# burst completed, docs/performance.md). Our threads give the GIL up on every blocking call anyway.
SWITCH_INTERVAL = 0.05
# A connection's set-up leaves about 125 objects the cycle collector tracks, for as long as the CP
# stays. With CPython's default young-generation threshold (700) a storm of 3,000 connections ran 5
# full collections over the growing heap: 0.33 s of the 3.4 s it took (docs/performance.md, item 17).
# Ten times the threshold makes every generation's collections ten times rarer; the garbage our
# threads make is freed by reference counting, so little waits for the collector meanwhile.
GC_THRESHOLDS = (7000, 10, 10)
# glibc gives each thread that allocates while another holds an arena's lock an arena of its own,
# up to 8 per core, and raises its mmap threshold to the largest block freed so far. After the
# first logins, each scrypt's 8 MiB of working memory comes from such an arena and stays there: a
# 1,000-CP storm left 333 MB RSS. Two arenas (scrypt runs on at most one thread per core) bound
# what stays; fixing the mmap threshold instead gave 88 MB but made every login page-fault its
# 8 MiB afresh (storm 1.59x the baseline instead of 1.19x; docs/performance.md).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number (malloc.h)


def limit_malloc_arenas() -> bool:
    """Cap glibc's malloc arenas, unless the operator set MALLOC_ARENA_MAX; False if not glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return True
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    return mallopt is not None and mallopt(_M_ARENA_MAX, MALLOC_ARENAS) == 1


# Descriptors besides the charge points' (listeners, MQTT, admin, logs, schema files...).
SPARE_DESCRIPTORS = 64


def raise_open_files_limit(max_connections: int, environ=os.environ) -> int:
    """Soft RLIMIT_NOFILE up to the hard limit; say so when that cannot hold max_connections (each
    charge point needs two: its socket and its doorbell). Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    advice = open_files_advice(hard, max_connections, environ)
    if advice is not None:
        log.log(*advice)
    return hard


def open_files_advice(hard: int, max_connections: int, environ=os.environ) -> tuple[int, str] | None:
    """(level, message) when the open files limit holds fewer than max_connections charge points.

    A WARNING naming LimitNOFILE under systemd, where the unit sets the limit; in a shell a WARNING
    naming ulimit only when max_connections was raised from its default (someone asked for more), else
    an INFO line: a developer's `make run` is not a depot, and the default limit there is no fault."""
    needed = 2 * max_connections + SPARE_DESCRIPTORS
    if hard == resource.RLIM_INFINITY or hard >= needed:
        return None
    holds = (f"the open files limit ({hard}) holds only about {max(0, (hard - SPARE_DESCRIPTORS) // 2)} "
             f"charge points, fewer than ocpp.listener.max_connections ({max_connections})")
    if systemd.under_systemd(environ):
        return logging.WARNING, f"{holds}; raise LimitNOFILE to at least {needed}"
    level = logging.WARNING if max_connections != DEFAULT_MAX_CONNECTIONS else logging.INFO
    return level, f"{holds}; raise it with ulimit -n {needed} before starting"


class StartupError(Exception):
    """The service cannot start with this configuration (exit 2)."""


def make_auth(settings):
    try:
        return auth.make_backend(settings)
    except auth.CredentialsError as err:
        raise StartupError(f"auth.file: {err}") from err


def make_checkers(config: CheckerConfig | None, source: str | None, versions=None):
    """The schema checker of each version in ``versions`` (default: every version the gateway
    knows), compiled now; None when format checking is off. The service passes the versions it
    serves: a 1.6-only gateway does not pay for the 2.x schemas (about 8 MB and 0.25 s)."""
    if config is None:
        return None  # and jsonschema is never imported: a heavy import
    from .protocol import schemas
    from .protocol.versions import VERSIONS
    directory = config.schema_dir or schemas.default_schema_dir()
    try:
        checkers = schemas.load_checkers(directory, VERSIONS.values() if versions is None else versions,
                                         id_prefix=config.id_prefix)
    except schemas.SchemaError as err:
        raise StartupError(f"{source}: ocpp.json_schema_dir: {err}") from err
    for checker in checkers:
        log.info("format checking %s against the schemas in %s", checker.version.subprotocol,
                 checker.directory)
    return checkers


class Service:
    def __init__(self, settings):
        threading.stack_size(THREAD_STACK_SIZE)
        sys.setswitchinterval(SWITCH_INTERVAL)
        gc.set_threshold(*GC_THRESHOLDS)
        limit_malloc_arenas()
        self.settings = settings
        self.config = config = Config.from_settings(settings)
        self.runtime = build_runtime(config, make_auth(settings), make_checkers(config.checker, settings.source,
                                                                       config.listener.versions.served))
        self.listeners: list[Listener] = []
        self.admin: AdminServer | None = None
        self.watchdog: systemd.Watchdog | None = None
        self.server_tls: ServerTls | None = None
        self.expiry_warning: ExpiryWarning | None = None
        self.signals: queue.Queue = queue.Queue()
        self.started_at = time.time()

    def start(self, mqtt_wait: float = 10.0) -> None:
        config = self.config
        raise_open_files_limit(config.max_connections)
        self._place_threads()
        self.runtime.bridge.start()
        try:
            if config.ws:
                self.listeners.append(Listener(self.runtime, config.ws, "ws"))
            if config.wss:
                self.server_tls = ServerTls(config.tls)
                self.listeners.append(Listener(self.runtime, config.wss, "wss", self.server_tls))
            if config.admin_listener:
                self.admin = AdminServer(self._admin_api(), config.admin, config.admin_listener)
        except admin_access.TokenError as err:
            self.runtime.bridge.stop(0)
            raise StartupError(f"admin.token_file: {err}") from err
        except TlsFileError as err:
            self._close_listeners()
            self.runtime.bridge.stop(0)
            raise StartupError(f"cannot load the wss certificate: {err}") from err
        except (OSError, ssl.SSLError) as err:
            self._close_listeners()
            self.runtime.bridge.stop(0)
            raise StartupError(f"cannot listen: {err}") from err
        for listener in self.listeners:
            listener.start()
        if self.admin is not None:
            self.admin.start()
        if self.server_tls is not None:
            self.expiry_warning = ExpiryWarning(self.server_certificate)
            self.expiry_warning.start()
        if self.runtime.bridge.connected.wait(mqtt_wait):
            log.info("ocpp_gw ready")
        else:
            log.warning("ocpp_gw ready, but no MQTT broker of %s is reachable yet; upstream messages are "
                        "queued", ", ".join(f"{host}:{port}" for host, port in config.mqtt.link.servers))
        systemd.notify("READY=1\nSTATUS=serving charge points")
        interval = systemd.watchdog_interval()
        if interval:
            self.watchdog = systemd.Watchdog(interval, self.core_threads_alive)
            self.watchdog.start()

    def _admin_api(self) -> AdminApi:
        runtime = self.runtime
        return AdminApi(runtime.registry, runtime.bridge.connected, runtime.stats, runtime.auth, self.config.admin,
                        started_at=self.started_at, listeners=self.listener_states,
                        certificate=self.server_certificate,
                        mqtt_server_in_use=runtime.bridge.server_in_use)

    def listener_states(self) -> list[ListenerState]:
        """Each listener (the charge points', the admin one) with whether its thread runs."""
        states = [ListenerState(l.name, l.address, self.config.listener.path + "/<cid>", l.is_alive())
                  for l in self.listeners]
        if self.admin is not None:
            states.append(ListenerState("admin", self.admin.address, "/", self.admin.thread.is_alive(), admin=True))
        return states

    def server_certificate(self) -> tuple[str, float] | None:
        """The wss server certificate's file and expiry (Unix time); None without wss."""
        if self.server_tls is None:
            return None
        return self.server_tls.credentials.certfile, self.server_tls.not_after

    def _place_threads(self) -> None:
        """process.cpus, before the first thread starts: threads start where their creator runs."""
        try:
            placement = cpus.apply(self.config.cpus)
        except ValueError as err:
            raise StartupError(f"{self.settings.source}: process.cpus: {err}") from err
        except OSError as err:  # a sandbox that forbids it: run where the system puts us
            log.warning("process.cpus not applied: %s; threads run on any CPU", err)
            return
        if placement.pinned:
            log.info("threads run on CPU %s of %s (process.cpus); password hashes and TLS handshakes on any",
                     ",".join(map(str, sorted(placement.running_on))),
                     ",".join(map(str, sorted(placement.allowed))))

    def _close_listeners(self) -> None:
        """Listeners made before a later one failed: their sockets are open but their threads not started."""
        for listener in self.listeners:
            listener.sock.close()
        self.listeners.clear()

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
        """SIGHUP: re-read credentials, the log level and the wss certificate files; connections stay up."""
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
        if self.server_tls is not None and self.server_tls.reload(tls_config(fresh)):
            self.expiry_warning.last_warned = None  # say at once whether the new one expires soon too
            self.expiry_warning.check()
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
            session.close(CLOSE_GOING_AWAY, "shutdown")
        deadline = time.monotonic() + STOP_BUDGET
        for session in sessions:
            session.finished.wait(max(0.0, deadline - time.monotonic()))
        self.runtime.bridge.stop()
        if self.admin is not None:
            self.admin.stop()
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.expiry_warning is not None:
            self.expiry_warning.stop()
        log.info("stopped")
