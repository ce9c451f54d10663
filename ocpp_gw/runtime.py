"""What every connection shares, built in one place: configuration, auth, the checkers, counters,
the registry of sessions, the MQTT bridge, the connection slots and the pending (not yet authenticated) ones."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .chargers.admission import SETUPS_AT_ONCE, PendingSlots, ReadingPlaces
from .chargers.registry import Registry
from .config import Config
from .mqtt.bridge import Bridge
from .protocol.handshake import AuthBackend
from .stats import Stats

if TYPE_CHECKING:  # imported only when checking is on: jsonschema is a heavy import
    from .protocol.schemas import Checkers, SchemaChecker
    from .protocol.versions import OcppVersion


@dataclass(frozen=True)
class Runtime:
    config: Config
    auth: AuthBackend  # see ocpp_gw.auth
    checkers: Checkers | None  # one per served version; None: format checking is off
    stats: Stats
    registry: Registry
    bridge: Bridge
    connections: threading.BoundedSemaphore  # one slot per authenticated connection, up to max_connections
    pending: PendingSlots  # the connections still in their handshake, bounded apart (SPEC §10)
    # Connections between a complete upgrade request and a running session (authorization, the 101,
    # the MQTT subscription), bounded: see SETUPS_AT_ONCE.
    setting_up: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(SETUPS_AT_ONCE))
    # Connection threads runnable ahead of their set-up turn, bounded: see READS_AT_ONCE.
    reading: ReadingPlaces = field(default_factory=ReadingPlaces)

    def checker_for(self, version: OcppVersion | str) -> SchemaChecker | None:
        """The schema checker of a connection speaking ``version``; None: not checked."""
        return None if self.checkers is None else self.checkers.for_version(version)


def build_runtime(config: Config, auth, checkers: Checkers | None) -> Runtime:
    """Make the shared parts and wire them: the registry tells the bridge's router who comes and goes."""
    stats = Stats()
    registry = Registry()
    bridge = Bridge(config.mqtt, stats, registry)
    registry.watch(bridge.router)
    return Runtime(config=config, auth=auth, checkers=checkers, stats=stats, registry=registry,
                   bridge=bridge, connections=threading.BoundedSemaphore(config.max_connections),
                   pending=PendingSlots(config.listener.pending, stats))
