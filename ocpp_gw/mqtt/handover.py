"""Moving a charge point between gateway instances (several instances behind one load balancer).

A charge point that reconnects may land on another instance. Each instance publishes a retained
``connected`` event with its own id when a charge point connects (upstream.py) and reads the other
instances' events (the events topic is a standing subscription). The story, in order:

1. Instance B publishes "CP1 connected, gateway B" after it subscribed CP1's downstream topic, so
   from then on B receives every CSMS message for CP1.
2. Instance A reads it (:meth:`Handover.on_event`). An event older than A's own connection of CP1
   is ignored (A's is the current one). Otherwise A stops routing CP1's messages
   (``DownstreamRouter.mark_moved``: B has them too) and
   - if CP1 is connected to A, closes that connection ("taken over by B", ``Session.move_to``);
     when it finishes, its unfinished CSMS calls are handed over (step 3);
   - else republishes the calls it held for CP1 while CP1 was away, and stops listening.
3. :meth:`Handover.hand_over` republishes a call on CP1's downstream topic (wildcard levels
   filled with ``handover``); B receives it and drops it if it already had it (same UniqueId).
4. A's ``disconnected`` event is published without retain, so the retained event stays B's.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from ..protocol.frames import Call

log = logging.getLogger("ocpp_gw.bridge")


class Handover:
    def __init__(self, topics, link, router, registry, stats, gateway_id: str):
        self.topics = topics
        self.link = link
        self.router = router
        self.registry = registry
        self.stats = stats
        self.gateway_id = gateway_id

    def events_filter(self) -> str:
        """The subscription to every instance's connection events."""
        return self.topics.events_topic.wildcard()

    def is_event(self, topic: str) -> bool:
        return self.topics.events_topic.match(topic) is not None

    def on_event(self, payload: bytes) -> None:
        """Another instance reports a CP connected: if we hold that CP, our connection is stale."""
        moved = self._moved_to(payload)
        if moved is None:
            return
        cid, gateway, stamp = moved
        session = self.registry.get(cid)
        if session is not None and stamp <= session.connected_at:
            return  # an older connection elsewhere; ours is the current one
        if not self.router.mark_moved(cid, gateway, session_here=session is not None):
            return  # the CP connected here in the meantime
        if session is not None:
            session.move_to(gateway)
            return
        for message, _action, _size, channel in self.router.release_held(cid):
            if isinstance(message, Call):
                self.hand_over(cid, message, channel)
        self.router.stop_listening(cid)  # no lingering on a CP that another instance serves now

    def _moved_to(self, payload: bytes) -> tuple[str, str, float] | None:
        """(cid, gateway, when) of another instance's connected event, else None."""
        try:
            event = json.loads(payload)
            cid, gateway = event["cid"], event["gateway"]
            if event["event"] != "connected" or gateway == self.gateway_id:
                return None  # most events: our own connects come back here, one per CP (a storm's worth)
            stamp = datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError, AttributeError):
            return None  # not one of ours to act on; events are informational
        return cid, gateway, stamp

    def hand_over(self, cid: str, call: Call, channel: str | None = None) -> None:
        """Hand a CSMS call to whichever instance holds the CP now (it drops duplicates by id); a
        channel's call goes back on that channel's topic, so its answer still goes to the channel."""
        template = self.topics.channels[channel].topic if channel is not None else self.topics.dnstream_topic
        version = self.router.version_of(cid)
        topic = template.render(cid, call.action, call.unique_id, "request", version.subprotocol)
        topic = "/".join("handover" if level in ("+", "#") else level for level in topic.split("/"))
        self.link.publish(topic, self.topics.encode(call, call.action, version), 1)
        self.stats.incr("dnstream.handed_over")
