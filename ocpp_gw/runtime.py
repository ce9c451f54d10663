"""What every connection shares: settings, the bridge, the registry, counters, auth, the checkers."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from .protocol.pipe import PipeConfig
from .stats import Stats


@dataclass
class Runtime:
    settings: object
    auth: object
    checkers: object = None  # protocol.schemas.Checkers; None: format checking is off
    stats: Stats = field(default_factory=Stats)
    registry: object = None
    bridge: object = None
    pipe_config: PipeConfig = None
    connections: threading.BoundedSemaphore = None

    def __post_init__(self):
        if self.pipe_config is None:
            self.pipe_config = PipeConfig.from_settings(self.settings)
        if self.connections is None:
            self.connections = threading.BoundedSemaphore(
                self.settings["ocpp.listener.max_connections"])

    def checker_for(self, version):
        """The schema checker of a connection speaking ``version`` (an OcppVersion or its
        subprotocol); None: not checked."""
        return None if self.checkers is None else self.checkers.for_version(version)
