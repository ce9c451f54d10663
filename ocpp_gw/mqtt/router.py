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
from ..protocol.versions import VERSIONS, OcppVersion
from .offline import OfflineHold

log = logging.getLogger("ocpp_gw.bridge")


@dataclass(frozen=True)
class HoldConfig:
    """``ocpp.dnstream.offline_hold`` and how many messages one charge point may have held."""

    seconds: float = 60.0
    max_per_cid: int = 100
    # A held Call waits no longer than ocpp.awaiting_timeout: its backend's deadline has passed by then,
    # and a stale command (a RemoteStart, a Reset) must not run on a CP that comes back later, nor
    # hold up that CP's fresh calls. None: as long as any message.
    call_seconds: float | None = 30.0


class DownstreamRouter:
    def __init__(self, topics, hold: HoldConfig, link, upstream, stats, registry):
        self.topics = topics
        self.link = link
        self.upstream = upstream
        self.stats = stats
        self.registry = registry
        self._lock = threading.Lock()  # guards _attached, _moved and _versions
        self._attached: set[str] = set()  # cids with a session here
        self._moved: dict[str, str] = {}  # cid -> the instance that serves it now
        self._versions: dict[str, OcppVersion] = {}  # cid -> the OCPP version it spoke last here
        # Routing and releasing held messages under one lock keeps a reconnecting CP's order.
        self._route_lock = threading.Lock()
        self.hold = hold
        self.offline = OfflineHold(hold.seconds, hold.max_per_cid, self._expired)

    def _subscriptions(self, cid: str) -> list[str]:
        """One CP's downstream filters: the primary topic and each command channel's."""
        return [self.topics.dnstream_topic.subscription(cid),
                *(channel.topic.subscription(cid) for channel in self.topics.channels.values())]

    def _hold_seconds(self, is_call: bool) -> float:
        if is_call and self.hold.call_seconds is not None:
            return min(self.hold.seconds, self.hold.call_seconds)
        return self.hold.seconds

    # -- the registry's watcher (called under the registry lock) ------------------------------

    def first_session(self, session) -> None:
        """A cid's first session: subscribe, and hand it what was held while it was away."""
        cid = session.cid
        with self._lock:
            self._attached.add(cid)
            self._moved.pop(cid, None)
            self._versions[cid] = session.version
        for topic_filter in self._subscriptions(cid):
            self.link.subscribe(topic_filter)
        with self._route_lock:
            held = self.offline.release(cid)
            for message, action, size, channel in held:
                self._deliver(session, message, action, size, channel)
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
            for topic_filter in self._subscriptions(cid):
                self.link.keep_until_reconnect(topic_filter)
            self.offline.linger(cid)
        else:
            for topic_filter in self._subscriptions(cid):
                self.link.unsubscribe(topic_filter)

    def routing_stopped(self) -> threading.Lock:
        """Hold this while settling a leaving session: no message is routed to it meanwhile."""
        return self._route_lock

    # -- versions (SPEC §9) ---------------------------------------------------------------------

    def version_of(self, cid: str) -> OcppVersion:
        """The version `cid` speaks here, or spoke last, or ocpp.default_version."""
        return self._known_version(cid) or self.topics.default_version

    def _known_version(self, cid: str) -> OcppVersion | None:
        session = self.registry.get(cid)
        if session is not None:
            return session.version
        with self._lock:
            return self._versions.get(cid)

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
            for topic_filter in self._subscriptions(cid):
                self.link.unsubscribe(topic_filter)

    # -- routing (paho's network thread: never block) -----------------------------------------

    def route(self, topic: str, payload: bytes) -> None:
        fields, channel = self._match(topic)
        if fields is None or not fields.get("cid"):
            log.warning("downstream message on unexpected topic %s dropped", topic)
            self.stats.incr("dropped.unexpected_topic")
            return
        cid = fields["cid"]
        try:
            message, action = self._decode(payload, fields, self._known_version(cid))
        except envelope.EnvelopeError as err:
            self.refuse(cid, err.unique_id, fields.get("action") or None, err.gateway_reason, err.reason,
                        channel=channel)
            return
        self.stats.incr("mqtt.received")
        if channel is not None and not self._allowed(cid, channel, message, action):
            return
        with self._route_lock:
            self._route_decoded(cid, message, action, len(payload), channel)

    def _decode(self, payload: bytes, fields: dict[str, str], known: OcppVersion | None):
        """(message, action) of a downstream payload for a CP speaking `known`; EnvelopeError.
        A CP not known (offline and not seen since the start) is taken to speak what the topic's
        ${version} or the envelope's Protocol says, else ocpp.default_version."""
        named = fields.get("version")
        version = known or VERSIONS.get(named or "", self.topics.default_version)
        if self.topics.bare:
            action = fields.get("action") or None
            message = envelope.decode_bare(payload, fields.get("type", ""), fields.get("id", ""),
                                           action, version)
        else:
            message, action = envelope.decode(payload, version,
                                              trust_protocol=known is None and named is None)
        if named is not None and named != version.subprotocol:
            raise envelope.EnvelopeError(
                f"topic is for {named} but the charge point speaks {version.subprotocol}",
                message.unique_id, "version_mismatch")
        return message, action

    def _match(self, topic: str) -> tuple[dict | None, str | None]:
        """The topic's placeholder values and the command channel it is (None: the primary topic).
        Channels first: a primary template with wildcards may cover a channel's topic too."""
        for channel in self.topics.channels.values():
            fields = channel.topic.match(topic)
            if fields is not None:
                return fields, channel.name
        return self.topics.dnstream_topic.match(topic), None

    def _allowed(self, cid: str, channel: str, message, action: str | None) -> bool:
        """A channel may send only Calls of its allowed actions (SPEC §11); the rest is refused."""
        if not isinstance(message, Call):
            description = f"channel {channel} may not answer calls of {cid}"
        elif message.action not in self.topics.channels[channel].allowed_actions:
            description = f"channel {channel} may not send {message.action}"
        else:
            return True
        self.refuse(cid, message.unique_id, action, "not_allowed", description, channel=channel)
        return False

    def _route_decoded(self, cid: str, message, action: str | None, size: int, channel: str | None) -> None:
        session = self.registry.get(cid)
        is_call = isinstance(message, Call)
        if session is not None:
            self._deliver(session, message, action, size, channel)
        elif cid in self._moved:
            # Routed after the new instance subscribed (it published its event after that),
            # so it has this message too.
            log.info("[%s] %s left to %s, which serves this CP now", cid, message.unique_id,
                     self._moved[cid], extra={"cid": cid, "unique_id": message.unique_id})
            self.stats.incr("dnstream.served_elsewhere")
        elif self.offline.hold_seconds <= 0:
            self.refuse(cid, message.unique_id, action, "offline", f"{cid} is not connected",
                        is_call=is_call, channel=channel)
        elif self.offline.hold(cid, (message, action, size, channel), self._hold_seconds(is_call)):
            self.stats.incr("dnstream.held_offline")
            log.debug("[%s] %s held until the charge point connects", cid, message.unique_id,
                      extra={"cid": cid, "unique_id": message.unique_id})
        else:
            self.refuse(cid, message.unique_id, action, "queue_full",
                        f"{cid} is not connected and already has "
                        f"{self.offline.max_per_cid} messages held", is_call=is_call, channel=channel)

    def _deliver(self, session, message, action, size: int, channel: str | None = None) -> None:
        if not session.deliver(message, action, size, channel):
            self.refuse(session.cid, message.unique_id, action, "queue_full",
                        f"the queue of {session.cid} is full", is_call=isinstance(message, Call),
                        channel=channel)

    def _expired(self, cid: str, items: list, emptied: bool) -> None:
        for message, action, _size, channel in items:
            is_call = isinstance(message, Call)
            self.refuse(cid, message.unique_id, action, "offline",
                        f"{cid} did not connect within {self._hold_seconds(is_call):g}s",
                        is_call=is_call, channel=channel)
        if emptied:  # a subscription left over in the persistent session from a previous run
            self.stop_listening(cid)

    def refuse(self, cid: str, unique_id: str | None, action: str | None, reason: str,
               description: str, is_call: bool = True, channel: str | None = None) -> None:
        """Log and count a downstream message that is not delivered; answer a Call with a gateway error
        (on the channel's reply topic for a channel's message)."""
        where = f" on channel {channel}" if channel is not None else ""
        log.warning("[%s] %s downstream message%s refused (%s): %s", cid, unique_id or "-", where, reason,
                    description, extra={"cid": cid, "unique_id": unique_id, "action": action})
        self.stats.incr(f"refused.{reason}")
        # Nothing to answer without an id. A reply on the primary topic is not answered (that could
        # loop); a channel's replies are, on its reply topic, which it does not publish on (SPEC §11).
        if unique_id is None or (not is_call and channel is None):
            return
        session = self.registry.get(cid)
        version = self.version_of(cid)
        self.upstream.gateway_error(
            cid, envelope.gateway_error(unique_id, reason, description, action, version=version),
            action, session.history if session is not None else None, channel, version)
