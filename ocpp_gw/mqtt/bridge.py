"""The MQTT side of the gateway, wired together (SPEC §6).

- ``link.py``: the one broker connection (persistent session, will, standing subscriptions, publish);
- ``upstream.py``: charge points' messages, gateway errors and connection events, published;
- ``router.py``: each downstream message to its charge point, or held while it is away (``offline.py``);
- ``handover.py``: charge points moving between gateway instances.

paho's network thread runs :meth:`Bridge._on_message` and never blocks there; upstream publishing
is called from the session threads (paho's ``publish`` is thread-safe and only queues).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from .handover import Handover
from .link import LinkConfig, MqttLink
from .router import DownstreamRouter, HoldConfig
from .upstream import TopicsConfig, UpstreamPublisher


@dataclass(frozen=True)
class MqttConfig:
    link: LinkConfig
    topics: TopicsConfig
    hold: HoldConfig


class Bridge:
    def __init__(self, config: MqttConfig, stats, registry):
        gateway_id = config.link.client_id
        self.link = MqttLink(config.link, stats, self._on_message)
        self.upstream = UpstreamPublisher(config.topics, self.link, stats, gateway_id)
        self.router = DownstreamRouter(config.topics, config.hold, self.link, self.upstream, stats, registry)
        self.handover = Handover(config.topics, self.link, self.router, registry, stats, gateway_id)
        # Other instances' connect events tell us when a CP we hold has moved (takeover).
        self.link.subscribe(self.handover.events_filter(), now=False)

    @property
    def connected(self) -> threading.Event:
        return self.link.connected

    def start(self) -> None:
        self.link.start()
        self.router.offline.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.router.offline.stop()
        self.link.stop(timeout)

    def is_alive(self) -> bool:
        return self.link.is_alive()

    def server_in_use(self) -> str:
        return self.link.server_in_use()

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self.handover.is_event(topic):
            self.handover.on_event(payload)
        else:
            self.router.route(topic, payload)
