"""The MQTT link: the process's one broker connection (SPEC §6).

It owns paho's client: connecting (persistent session), the will and the retained status of this
gateway instance, the standing subscriptions (renewed on every reconnect) and publishing. What a
message means is not its business: each one received goes to ``on_message(topic, payload)`` on
paho's network thread, which must never block.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .client import BufferedClient

log = logging.getLogger("ocpp_gw.bridge")

RECEIVE_MAXIMUM_DEFAULT = 65535  # an MQTT 5 broker's limit on unacknowledged QoS 1 messages when it names none


@dataclass(frozen=True)
class LinkConfig:
    """The broker and how to reach it (the ``mqtt.*`` keys)."""

    servers: tuple[tuple[str, int], ...] = (("127.0.0.1", 1883),)  # tried in turn (the nodes of a cluster)
    client_id: str = "ocpp-gw"
    mqtt5: bool = False
    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    max_queued_messages: int = 10000
    keepalive: float = 30.0
    session_expiry: float = 3600.0
    status_topic: str = "ocpp/gateway/ocpp-gw/status"


class MqttLink:
    """paho's client, connected with a persistent session; thread-safe ``publish``."""

    def __init__(self, config: LinkConfig, stats, on_message: Callable[[str, bytes], None]):
        self.config = config
        self.stats = stats
        self.on_message = on_message
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._standing: set[str] = set()  # topic filters subscribed again after a reconnect
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        c = self.config
        client = BufferedClient(
            CallbackAPIVersion.VERSION2, client_id=c.client_id,
            protocol=mqtt.MQTTv5 if c.mqtt5 else mqtt.MQTTv311,
            clean_session=None if c.mqtt5 else False)
        if c.username:
            client.username_pw_set(c.username, c.password or None)
        if c.cafile or c.certfile:
            client.tls_set(ca_certs=c.cafile, certfile=c.certfile, keyfile=c.keyfile)
        client.max_queued_messages_set(c.max_queued_messages)
        # MQTT 3.1.1 has no flow control: messages go out without waiting for earlier PUBACKs. An MQTT 5
        # broker's limit (Receive Maximum) comes in each CONNACK (_on_connect).
        client.max_inflight_messages_set(0)
        # Short cap: after an outage the broker's per-client queue for us fills fast (Mosquitto
        # drops beyond max_queued_messages), so come back soon.
        client.reconnect_delay_set(1, 5)
        client.will_set(c.status_topic, "offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_received = self._on_received
        return client

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        c = self.config
        self.client.use_servers(c.servers)
        host, port = c.servers[0]
        keepalive = max(1, int(c.keepalive))
        if c.mqtt5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = int(c.session_expiry)
            self.client.connect_async(host, port, keepalive, clean_start=False, properties=props)
        else:
            self.client.connect_async(host, port, keepalive)
        self.client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish our offline status, wait for the queue to drain, disconnect."""
        if self.connected.is_set():
            info = self.client.publish(self.config.status_topic, "offline", qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()

    def server_in_use(self) -> str:
        """host:port of the broker connected to, or else the one being tried."""
        host, port = self.client.host, self.client.port
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def unacknowledged(self) -> int:
        """QoS 1 messages sent to the broker and not yet acknowledged."""
        return self.client.unacknowledged()

    def is_alive(self) -> bool:
        """paho's network thread runs."""
        return self.client.network_thread_alive()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker refused the connection: %s", reason_code)
            return
        if self.config.mqtt5:  # absent: 65,535 (MQTT 5, 3.2.2.3.3)
            client.limit_in_flight(getattr(properties, "ReceiveMaximum", RECEIVE_MAXIMUM_DEFAULT))
        sock = client.socket()
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        log.info("MQTT connected to %s (session present: %s)", self.server_in_use(), flags.session_present)
        client.publish(self.config.status_topic, "online", qos=1, retain=True)
        with self._lock:
            standing = sorted(self._standing)
        for topic_filter in standing:
            client.subscribe(topic_filter, qos=1)
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()
        if reason_code != 0:
            log.warning("MQTT connection lost (%s); reconnecting", reason_code)
            self.stats.incr("mqtt.disconnects")

    def _on_message(self, client, userdata, msg) -> None:
        self._on_received(msg.topic, msg.payload)

    def _on_received(self, topic: str, payload: bytes) -> None:
        try:
            self.on_message(topic, payload)
        except Exception:  # noqa: BLE001 - the network thread must survive any message
            log.exception("downstream message on %s could not be handled", topic)
            self.stats.incr("errors.downstream")

    # -- subscriptions -----------------------------------------------------------------------

    def subscribe(self, topic_filter: str, now: bool = True) -> None:
        """Subscribe now (if connected; else `now=False`) and again after every reconnect."""
        with self._lock:
            self._standing.add(topic_filter)
        if now:
            self.client.subscribe(topic_filter, qos=1)

    def keep_until_reconnect(self, topic_filter: str) -> None:
        """Stay subscribed for now, but do not subscribe again after a reconnect."""
        with self._lock:
            self._standing.discard(topic_filter)

    def unsubscribe(self, topic_filter: str) -> None:
        with self._lock:
            self._standing.discard(topic_filter)
        self.client.unsubscribe(topic_filter)

    # -- publishing (any thread: paho only queues) --------------------------------------------

    def publish(self, topic: str, payload: str | bytes, qos: int, retain: bool = False) -> MQTTErrorCode:
        return self.client.publish(topic, payload, qos=qos, retain=retain).rc
