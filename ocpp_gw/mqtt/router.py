"""Downstream routing: each CSMS message to its charge point's session, or held while it is away.

Runs on paho's network thread and never blocks there: a message for a connected charge point goes
onto its session's ``CSMSRx`` without waiting (a full channel is answered with gateway error
``queue_full``); one for a charge point that is not connected is held for ``ocpp.dnstream.offline_hold``
(``offline.py``) and delivered, in order, when it connects; one for a charge point that another
gateway instance serves now is left to that instance (``handover.py``).

The registry calls ``first_session``/``last_session`` under its lock (it is the router's watcher):
a charge point's first session subscribes its downstream topic and gets what was held, its last one
unsubscribes (after lingering one hold period, so what the CSMS sends meanwhile is held, not lost).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from ..protocol import envelope
from ..protocol.frames import Call
from .offline import OfflineHold

log = logging.getLogger("ocpp_gw.bridge")


@dataclass(frozen=True)
class HoldConfig:
    """``ocpp.dnstream.offline_hold`` and how many messages one charge point may have held."""

    seconds: float = 60.0
    max_per_cid: int = 100


class DownstreamRouter:
    def __init__(self, topics, hold: HoldConfig, link, upstream, stats, registry):
        self.topics = topics
        self.link = link
        self.upstream = upstream
        self.stats = stats
        self.registry = registry
        self._lock = threading.Lock()  # guards _attached and _moved
        self._attached: set[str] = set()  # cids with a session here
        self._moved: dict[str, str] = {}  # cid -> the instance that serves it now
        # Routing and releasing held messages under one lock keeps a reconnecting CP's order.
        self._route_lock = threading.Lock()
        self.offline = OfflineHold(hold.seconds, hold.max_per_cid, self._expired)

    def _subscription(self, cid: str) -> str:
        return self.topics.dnstream_topic.subscription(cid)

    # -- the registry's watcher (called under the registry lock) ------------------------------

    def first_session(self, session) -> None:
        """A cid's first session: subscribe, and hand it what was held while it was away."""
        cid = session.cid
        with self._lock:
            self._attached.add(cid)
            self._moved.pop(cid, None)
        self.link.subscribe(self._subscription(cid))
        with self._route_lock:
            held = self.offline.release(cid)
            for message, action, size in held:
                self._deliver(session, message, action, size)
        if held:
            log.info("[%s] %d message(s) held while offline delivered", cid, len(held),
                     extra={"cid": cid})

    def last_session(self, session) -> None:
        """A cid's last session left: keep listening for one hold period, then unsubscribe.

        A CP that moved to another instance does not linger: that instance has its messages.
        """
        cid = session.cid
        with self._lock:
            self._attached.discard(cid)
        if session.moved_to is None and self.offline.hold_seconds > 0:
            self.link.keep_until_reconnect(self._subscription(cid))
            self.offline.linger(cid)
        else:
            self.link.unsubscribe(self._subscription(cid))

    def routing_stopped(self) -> threading.Lock:
        """Hold this while settling a leaving session: no message is routed to it meanwhile."""
        return self._route_lock

    # -- for the handover ---------------------------------------------------------------------

    def is_attached(self, cid: str) -> bool:
        with self._lock:
            return cid in self._attached

    def mark_moved(self, cid: str, gateway: str, session_here: bool) -> bool:
        """Route `cid`'s messages no more (`gateway` serves it); False when no session of it was
        here a moment ago but one is attached now (it connected here in the meantime)."""
        with self._lock:
            if not session_here and cid in self._attached:
                return False
            self._moved[cid] = gateway
            return True

    def release_held(self, cid: str) -> list:
        with self._route_lock:
            return self.offline.release(cid)

    def stop_listening(self, cid: str) -> None:
        """Unsubscribe `cid`'s downstream topic unless a session of it is here."""
        if not self.is_attached(cid):
            self.link.unsubscribe(self._subscription(cid))

    # -- routing (paho's network thread: never block) -----------------------------------------

    def route(self, topic: str, payload: bytes) -> None:
        fields = self.topics.dnstream_topic.match(topic)
        if fields is None or not fields.get("cid"):
            log.warning("downstream message on unexpected topic %s dropped", topic)
            self.stats.incr("dropped.unexpected_topic")
            return
        cid = fields["cid"]
        try:
            if self.topics.bare:
                message = envelope.decode_bare(payload, fields.get("type", ""),
                                               fields.get("id", ""), fields.get("action") or None)
                action = fields.get("action") or None
            else:
                message, action = envelope.decode(payload)
        except envelope.EnvelopeError as err:
            self.refuse(cid, err.unique_id, fields.get("action") or None, "invalid_envelope", err.reason)
            return
        self.stats.incr("mqtt.received")
        with self._route_lock:
            self._route_decoded(cid, message, action, len(payload))

    def _route_decoded(self, cid: str, message, action: str | None, size: int) -> None:
        session = self.registry.get(cid)
        if session is not None:
            self._deliver(session, message, action, size)
        elif cid in self._moved:
            # Routed after the new instance subscribed (it published its event after that),
            # so it has this message too.
            log.info("[%s] %s left to %s, which serves this CP now", cid, message.unique_id,
                     self._moved[cid], extra={"cid": cid, "unique_id": message.unique_id})
            self.stats.incr("dnstream.served_elsewhere")
        elif self.offline.hold_seconds <= 0:
            self.refuse(cid, message.unique_id, action, "offline", f"{cid} is not connected",
                        is_call=isinstance(message, Call))
        elif self.offline.hold(cid, (message, action, size)):
            self.stats.incr("dnstream.held_offline")
        else:
            self.refuse(cid, message.unique_id, action, "queue_full",
                        f"{cid} is not connected and already has "
                        f"{self.offline.max_per_cid} messages held",
                        is_call=isinstance(message, Call))

    def _deliver(self, session, message, action, size: int) -> None:
        if not session.deliver(message, action, size):
            self.refuse(session.cid, message.unique_id, action, "queue_full",
                        f"the queue of {session.cid} is full", is_call=isinstance(message, Call))

    def _expired(self, cid: str, items: list, emptied: bool) -> None:
        for message, action, _size in items:
            self.refuse(cid, message.unique_id, action, "offline",
                        f"{cid} did not connect within {self.offline.hold_seconds:g}s",
                        is_call=isinstance(message, Call))
        if emptied:  # a subscription left over in the persistent session from a previous run
            self.stop_listening(cid)

    def refuse(self, cid: str, unique_id: str | None, action: str | None, reason: str,
               description: str, is_call: bool = True) -> None:
        """Log and count a downstream message that is not delivered; answer a Call with a gateway error."""
        log.warning("[%s] %s downstream message refused (%s): %s", cid, unique_id or "-", reason,
                    description, extra={"cid": cid, "unique_id": unique_id, "action": action})
        self.stats.incr(f"refused.{reason}")
        if unique_id is None or not is_call:
            return  # nothing to answer: no id, or a reply (answering a reply would loop)
        session = self.registry.get(cid)
        self.upstream.gateway_error(cid, envelope.gateway_error(unique_id, reason, description, action),
                                    action, session.history if session is not None else None)
