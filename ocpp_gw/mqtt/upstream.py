"""What the gateway publishes for the CSMS: charge points' messages, gateway errors, connection events.

Called from the session threads (and, for gateway errors, from paho's network thread): rendering a
topic and encoding a payload need no lock, and the link's ``publish`` only queues.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from ..protocol import envelope
from ..protocol.frames import Call, CallError, CallResult, CallResultError, Message, Send
from ..protocol.history import TO_CSMS
from ..protocol.pipe import Upstream
from ..protocol.topics import Template
from ..protocol.versions import V16, OcppVersion

log = logging.getLogger("ocpp_gw.bridge")

_TYPE = {Call: "request", CallResult: "response", CallError: "error", CallResultError: "error",
         Send: "send"}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class ChannelRoute:
    """A command channel (SPEC §11): the topic another backend sends on, the actions it may send, and
    the reply topic where the CP's answers to its calls, and the gateway errors about them, go."""

    name: str
    topic: Template
    reply_topic: Template
    allowed_actions: frozenset[str]


@dataclass(frozen=True)
class TopicsConfig:
    """The topic templates (mountpoint included) and the payload format (the ``ocpp.*`` MQTT keys)."""

    call_topic: Template
    reply_topic: Template
    error_topic: Template
    dnstream_topic: Template
    events_topic: Template
    call_topics: dict[str, Template] = field(default_factory=dict)  # per-Action overrides
    channels: dict[str, ChannelRoute] = field(default_factory=dict)  # by name
    qos: int = 1
    bare: bool = False
    # ocpp.upstream.{topic,reply_topic,error_topic}.<version> where set: subprotocol -> (call, reply, error)
    version_topics: dict[str, tuple[Template, Template, Template]] = field(default_factory=dict)
    default_version: OcppVersion = V16  # of a CP not seen yet (ocpp.default_version)

    def encode(self, message: Message, action: str | None, version: OcppVersion = V16) -> str:
        """The payload of `message`; an envelope names the CP's version in Protocol (SPEC §9)."""
        if self.bare:
            return envelope.encode_bare(message)
        return envelope.encode(message, action, version.subprotocol)

    def upstream_template(self, message: Message, version: OcppVersion) -> Template:
        """Per-action override, else the version's template, else the general one; a SEND goes
        where a Call goes (SPEC §9)."""
        call, reply, error = self.version_topics.get(
            version.subprotocol, (self.call_topic, self.reply_topic, self.error_topic))
        kind = type(message)
        if kind is Call or kind is Send:
            return self.call_topics.get(message.action, call)
        return reply if kind is CallResult else error


class UpstreamPublisher:
    def __init__(self, topics: TopicsConfig, link, stats, gateway_id: str):
        self.topics = topics
        self.link = link
        self.stats = stats
        self.gateway_id = gateway_id

    def publish(self, cid: str, item: Upstream, history=None, version: OcppVersion | None = None) -> bool:
        """Publish one message of (or on behalf of) `cid`, whose CP speaks `version`; False when MQTT
        cannot take it (logged, counted)."""
        message, action = item.message, item.action
        topics = self.topics
        version = version or topics.default_version
        if item.channel is not None and not isinstance(message, Call):
            template = topics.channels[item.channel].reply_topic  # a channel's answers go to it alone
        else:
            template = topics.upstream_template(message, version)
        topic = template.render(cid, action or "", message.unique_id, _TYPE[type(message)],
                                version.subprotocol)
        payload = topics.encode(message, action, version)
        if history is not None:
            history.record(TO_CSMS, message, action, len(payload))
        rc = self.link.publish(topic, payload, topics.qos)
        # While the broker is away, QoS >= 1 messages wait in paho's bounded queue (NO_CONN).
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (rc == MQTTErrorCode.MQTT_ERR_NO_CONN and topics.qos):
            self.stats.incr("mqtt.published")
            return True
        reason = "mqtt_queue_full" if rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE else "mqtt_unavailable"
        log.warning("[%s] %s could not be published to %s: %s", cid, message.unique_id, topic,
                    mqtt.error_string(rc),
                    extra={"cid": cid, "unique_id": message.unique_id, "action": action})
        self.stats.incr(f"refused.{reason}")
        return False

    def gateway_error(self, cid: str, error: CallError, action: str | None, history=None,
                      channel: str | None = None, version: OcppVersion | None = None) -> None:
        self.publish(cid, Upstream(error, action, channel), history, version)

    def event(self, peer, event: str, reason: str, retain: bool = True, *, code: int | None = None) -> None:
        """The retained connection event of a charge point (other instances read these: handover.py); `code`: the
        close code of a disconnect (1006 when the line ended without a close frame)."""
        version = peer.version.subprotocol
        body = {"cid": peer.cid, "event": event, "reason": reason, "peer": peer.address,
                "username": peer.username, "subprotocol": peer.subprotocol, "version": version,
                "gateway": self.gateway_id, "ts": utc_now()}
        if code is not None:
            body["code"] = code
        self.link.publish(self.topics.events_topic.render(peer.cid, version=version), json.dumps(body), 1,
                          retain=retain)
