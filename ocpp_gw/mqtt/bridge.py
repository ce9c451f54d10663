"""The one MQTT client of the process (SPEC §6).

paho's network loop thread only decodes downstream messages and puts them, without blocking, on
the CSMSRx channel of the charge point they address. Upstream publishing is called from the
session threads (paho's ``publish`` is thread-safe and only queues).
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..protocol import envelope
from ..protocol.frames import Call, CallError, CallResult
from ..protocol.history import FROM_CSMS, TO_CSMS
from .client import BufferedClient
from .offline import OfflineHold
from ..protocol.pipe import Upstream
from ..protocol.topics import Template

log = logging.getLogger("ocpp_gw.bridge")

_TYPE = {Call: "request", CallResult: "response", CallError: "error"}


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Bridge:
    def __init__(self, settings, stats, registry):
        self.settings = settings
        self.stats = stats
        self.registry = registry
        mountpoint = settings["ocpp.mountpoint"]
        self.client_id = settings["mqtt.client_id"]
        self.qos = settings["ocpp.upstream.qos"]
        self.bare = settings["ocpp.payload_format"] == "bare"
        self.call_topic = Template(settings["ocpp.upstream.topic"], mountpoint)
        self.call_topics = {action: Template(t, mountpoint)
                            for action, t in settings.topic_overrides.items()}
        self.reply_topic = Template(settings["ocpp.upstream.reply_topic"], mountpoint)
        self.error_topic = Template(settings["ocpp.upstream.error_topic"], mountpoint)
        self.dnstream_topic = Template(settings["ocpp.dnstream.topic"], mountpoint)
        self.events_topic = Template(settings["ocpp.events.topic"], mountpoint)
        self.status_topic = f"{mountpoint}gateway/{self.client_id}/status"
        self.connected = threading.Event()
        self._subscribed: set[str] = set()
        self._lock = threading.Lock()
        # Routing and releasing held messages under one lock keeps a reconnecting CP's order.
        self._route_lock = threading.Lock()
        self._moved: dict[str, str] = {}  # cid -> the instance that serves it now
        self.offline = OfflineHold(settings["ocpp.dnstream.offline_hold"],
                                   settings["ocpp.dnstream.max_mqueue_len"], self._expired)
        self.client = self._make_client()

    # -- lifecycle ---------------------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        s = self.settings
        v5 = s["mqtt.protocol"] == "5"
        client = BufferedClient(
            CallbackAPIVersion.VERSION2, client_id=self.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False)
        if s["mqtt.username"]:
            client.username_pw_set(s["mqtt.username"], s["mqtt.password"] or None)
        if s["mqtt.ssl.cafile"] or s["mqtt.ssl.certfile"]:
            client.tls_set(ca_certs=s["mqtt.ssl.cafile"], certfile=s["mqtt.ssl.certfile"],
                           keyfile=s["mqtt.ssl.keyfile"])
        client.max_queued_messages_set(s["mqtt.max_queued_messages"])
        client.max_inflight_messages_set(100)
        # Short cap: after an outage the broker's per-client queue for us fills fast (Mosquitto
        # drops beyond max_queued_messages), so come back soon.
        client.reconnect_delay_set(1, 5)
        client.will_set(self.status_topic, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        s = self.settings
        host, port = s["mqtt.server"]
        keepalive = max(1, int(s["mqtt.keepalive"]))
        if s["mqtt.protocol"] == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = int(s["mqtt.session_expiry"])
            self.client.connect_async(host, port, keepalive, clean_start=False, properties=props)
        else:
            self.client.connect_async(host, port, keepalive)
        self.client.loop_start()
        self.offline.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish our offline status, wait for the queue to drain, disconnect."""
        self.offline.stop()
        if self.connected.is_set():
            info = self.client.publish(self.status_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def is_alive(self) -> bool:
        thread = getattr(self.client, "_thread", None)
        return thread is not None and thread.is_alive()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker refused the connection: %s", reason_code)
            return
        sock = client.socket()
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.info("MQTT connected to %s:%s (session present: %s)", *self.settings["mqtt.server"],
                 flags.session_present)
        client.publish(self.status_topic, "online", qos=1, retain=True)
        with self._lock:
            cids = list(self._subscribed)
        for cid in cids:
            client.subscribe(self.dnstream_topic.subscription(cid), qos=1)
        # Other instances' connect events tell us when a CP we hold has moved (takeover).
        client.subscribe(self.events_topic.wildcard(), qos=1)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if reason_code != 0:
            log.warning("MQTT connection lost (%s); reconnecting", reason_code)
            self.stats.incr("mqtt.disconnects")

    # -- subscriptions (called under the registry lock) --------------------------------------

    def routing_stopped(self) -> threading.Lock:
        """Hold this while settling a leaving pipe: no message is routed to it meanwhile."""
        return self._route_lock

    def attach(self, session) -> None:
        """A cid's first session: subscribe, and hand it what was held while it was away."""
        cid = session.cid
        with self._lock:
            self._subscribed.add(cid)
            self._moved.pop(cid, None)
        self.client.subscribe(self.dnstream_topic.subscription(cid), qos=1)
        with self._route_lock:
            held = self.offline.release(cid)
            for message, action, size in held:
                self._deliver(session, message, action, size)
        if held:
            log.info("[%s] %d message(s) held while offline delivered", cid, len(held),
                     extra={"cid": cid})

    def detach(self, cid: str, linger: bool = True) -> None:
        """A cid's last session left: keep listening for one hold period, then unsubscribe.

        A CP that moved to another instance does not linger: that instance has its messages.
        """
        with self._lock:
            self._subscribed.discard(cid)
        if linger and self.offline.hold_seconds > 0:
            self.offline.linger(cid)
        else:
            self.client.unsubscribe(self.dnstream_topic.subscription(cid))

    def _expired(self, cid: str, items: list, emptied: bool) -> None:
        for message, action, _size in items:
            self._refuse(cid, message.unique_id, action, "offline",
                         f"{cid} did not connect within "
                         f"{self.settings['ocpp.dnstream.offline_hold']:g}s",
                         is_call=isinstance(message, Call))
        with self._lock:
            stale = emptied and cid not in self._subscribed
        if stale:  # a subscription left over in the persistent session from a previous run
            self.client.unsubscribe(self.dnstream_topic.subscription(cid))

    # -- upstream ----------------------------------------------------------------------------

    def publish_upstream(self, cid: str, item: Upstream, history=None) -> bool:
        message, action = item.message, item.action
        if isinstance(message, Call):
            template = self.call_topics.get(message.action, self.call_topic)
        elif isinstance(message, CallResult):
            template = self.reply_topic
        else:
            template = self.error_topic
        topic = template.render(cid, action or "", message.unique_id, _TYPE[type(message)])
        payload = envelope.encode_bare(message) if self.bare else envelope.encode(message, action)
        if history is not None:
            history.record(TO_CSMS, message, action, len(payload))
        rc = self.client.publish(topic, payload, qos=self.qos).rc
        # While the broker is away, QoS >= 1 messages wait in paho's bounded queue (NO_CONN).
        if rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self.qos):
            self.stats.incr("mqtt.published")
            return True
        reason = "mqtt_queue_full" if rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE else "mqtt_unavailable"
        log.warning("[%s] %s could not be published to %s: %s", cid, message.unique_id, topic,
                    mqtt.error_string(rc),
                    extra={"cid": cid, "unique_id": message.unique_id, "action": action})
        self.stats.incr(f"refused.{reason}")
        return False

    def publish_event(self, session, event: str, reason: str, retain: bool = True) -> None:
        peer = session.peer
        body = {"cid": peer.cid, "event": event, "reason": reason, "peer": peer.address,
                "username": peer.username, "subprotocol": peer.subprotocol,
                "gateway": self.client_id, "ts": utc_now()}
        self.client.publish(self.events_topic.render(peer.cid), json.dumps(body), qos=1,
                            retain=retain)

    def republish_downstream(self, cid: str, call: Call) -> None:
        """Hand a CSMS call to whichever instance holds the CP now (it drops duplicates by id)."""
        topic = self.dnstream_topic.render(cid, call.action, call.unique_id, "request")
        topic = "/".join("handover" if level in ("+", "#") else level for level in topic.split("/"))
        payload = envelope.encode_bare(call) if self.bare else envelope.encode(call, call.action)
        self.client.publish(topic, payload, qos=1)
        self.stats.incr("dnstream.handed_over")

    def _on_event(self, payload: bytes) -> None:
        """Another instance reports a CP connected: if we hold that CP, our connection is stale."""
        try:
            event = json.loads(payload)
            cid, gateway = event["cid"], event["gateway"]
            moved = event["event"] == "connected" and gateway != self.client_id
            stamp = datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError, AttributeError):
            return  # not one of ours to act on; events are informational
        if not moved:
            return
        session = self.registry.get(cid)
        if session is not None and stamp <= session.connected_at:
            return  # an older connection elsewhere; ours is the current one
        with self._lock:
            if session is None and cid in self._subscribed:
                return  # the CP connected here in the meantime
            self._moved[cid] = gateway
        if session is not None:
            session.taken_over_by(gateway)
            return
        with self._route_lock:
            held = self.offline.release(cid)
        for message, _action, _size in held:
            if isinstance(message, Call):
                self.republish_downstream(cid, message)
        with self._lock:
            mine = cid in self._subscribed
        if not mine:  # stop lingering on a CP that another instance serves now
            self.client.unsubscribe(self.dnstream_topic.subscription(cid))

    def publish_gateway_error(self, cid: str, error: CallError, action: str | None) -> None:
        session = self.registry.get(cid)
        self.publish_upstream(cid, Upstream(error, action),
                              session.pipe.history if session is not None else None)

    # -- downstream (paho's network thread: never block) -------------------------------------

    def _on_message(self, client, userdata, msg) -> None:
        try:
            self._route(msg.topic, msg.payload)
        except Exception:  # noqa: BLE001 - the network thread must survive any message
            log.exception("downstream message on %s could not be handled", msg.topic)
            self.stats.incr("errors.downstream")

    def _route(self, topic: str, payload: bytes) -> None:
        if self.events_topic.match(topic) is not None:
            self._on_event(payload)
            return
        fields = self.dnstream_topic.match(topic)
        if fields is None or not fields.get("cid"):
            log.warning("downstream message on unexpected topic %s dropped", topic)
            self.stats.incr("dropped.unexpected_topic")
            return
        cid = fields["cid"]
        try:
            if self.bare:
                message = envelope.decode_bare(payload, fields.get("type", ""),
                                               fields.get("id", ""), fields.get("action") or None)
                action = fields.get("action") or None
            else:
                message, action = envelope.decode(payload)
        except envelope.EnvelopeError as err:
            self._refuse(cid, err.unique_id, fields.get("action") or None, "invalid_envelope",
                         err.reason)
            return
        self.stats.incr("mqtt.received")
        with self._route_lock:
            session = self.registry.get(cid)
            if session is not None:
                self._deliver(session, message, action, len(payload))
            elif cid in self._moved:
                # Routed after the new instance subscribed (it published its event after that),
                # so it has this message too.
                log.info("[%s] %s left to %s, which serves this CP now", cid, message.unique_id,
                         self._moved[cid], extra={"cid": cid, "unique_id": message.unique_id})
                self.stats.incr("dnstream.served_elsewhere")
            elif self.offline.hold_seconds <= 0:
                self._refuse(cid, message.unique_id, action, "offline", f"{cid} is not connected",
                             is_call=isinstance(message, Call))
            elif self.offline.hold(cid, (message, action, len(payload))):
                self.stats.incr("dnstream.held_offline")
            else:
                self._refuse(cid, message.unique_id, action, "queue_full",
                             f"{cid} is not connected and already has "
                             f"{self.offline.max_per_cid} messages held",
                             is_call=isinstance(message, Call))

    def _deliver(self, session, message, action, size: int) -> None:
        session.pipe.history.record(FROM_CSMS, message, action, size)
        try:
            session.pipe.CSMSRx.put_nowait((message, action))
        except queue.Full:
            self._refuse(session.cid, message.unique_id, action, "queue_full",
                         f"the queue of {session.cid} is full", is_call=isinstance(message, Call))

    def _refuse(self, cid: str, unique_id: str | None, action: str | None, reason: str,
                description: str, is_call: bool = True) -> None:
        log.warning("[%s] %s downstream message refused (%s): %s", cid, unique_id or "-", reason,
                    description, extra={"cid": cid, "unique_id": unique_id, "action": action})
        self.stats.incr(f"refused.{reason}")
        if unique_id is None or not is_call:
            return  # nothing to answer: no id, or a reply (answering a reply would loop)
        self.publish_gateway_error(
            cid, envelope.gateway_error(unique_id, reason, description, action), action)
