"""The adapter's MQTT connection: paho in its own network thread, handing messages to asyncio.

Why paho and a thread rather than an asyncio MQTT library: paho is already the gateway's client
(the same TLS, credential and MQTT 5 handling, no new dependency), and its thread keeps socket
reads and packet decoding off the event loop. Messages cross into the loop in batches: the network
thread appends to a deque and schedules one drain only when none is pending, so a burst costs one
loop wake-up, not one per message (``docs/performance.md`` has the figures). Order is kept: one
thread appends, one drain pops, oldest first.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .options import BackendOptions

log = logging.getLogger("ocpp_gw.backend")


class MqttLink:
    """Subscribes to ``filters``; calls ``on_message(topic, payload)`` on the event loop."""

    def __init__(self, options: BackendOptions, filters: list[str],
                 on_message: Callable[[str, bytes], None]):
        self.options = options
        self.filters = list(dict.fromkeys(filters))
        self.on_message = on_message
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbox: deque[tuple[str, bytes]] = deque()
        self._drain_scheduled = False
        self._subscribed: asyncio.Future | None = None
        self._pending_subscriptions: set[int] = set()
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        o = self.options
        v5 = o.protocol == "5"
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=o.client_id,
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        if o.username:
            client.username_pw_set(o.username, o.password or None)
        if o.cafile or o.certfile:
            client.tls_set(ca_certs=o.cafile, certfile=o.certfile, keyfile=o.keyfile)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)  # unbounded: the CSMS's answers are never refused here
        client.reconnect_delay_set(1, 5)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    async def start(self, timeout: float = 10.0) -> None:
        """Connect and subscribe; returns once the broker has granted every subscription."""
        self._loop = asyncio.get_running_loop()
        self._subscribed = self._loop.create_future()
        host, port = self.options.host_port()
        self.client.connect_async(host, port, max(1, int(self.options.keepalive)))
        self.client.loop_start()
        try:
            await asyncio.wait_for(asyncio.shield(self._subscribed), timeout)
        except asyncio.TimeoutError:
            self.stop()
            raise ConnectionError(f"no MQTT connection to {self.options.broker} within {timeout:g}s") from None

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue one message (thread-safe, never blocks); paho sends it, or after a reconnect."""
        self.client.publish(topic, payload, qos=self.options.qos)

    # -- paho's network thread ----------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker %s refused the adapter: %s", self.options.broker, reason_code)
            return
        sock = client.socket()
        if sock is not None:  # a CSMS answer must not wait for Nagle (~40 ms a hop)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        result, mid = client.subscribe([(topic, 1) for topic in self.filters])
        self._pending_subscriptions.add(mid)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [code for code in reason_codes if code.is_failure]
        if failed:
            log.error("MQTT broker refused a subscription of the adapter: %s", failed)
        self._pending_subscriptions.discard(mid)
        if not self._pending_subscriptions and self._loop is not None:
            self._loop.call_soon_threadsafe(self._set_subscribed)

    def _set_subscribed(self) -> None:
        if self._subscribed is not None and not self._subscribed.done():
            self._subscribed.set_result(None)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code != 0:
            log.warning("MQTT connection of the adapter lost (%s); reconnecting", reason_code)

    def _on_message(self, client, userdata, msg) -> None:
        self._inbox.append((msg.topic, msg.payload))
        if not self._drain_scheduled:
            self._drain_scheduled = True
            self._loop.call_soon_threadsafe(self._drain)

    # -- the event loop -----------------------------------------------------------------------

    def _drain(self) -> None:
        self._drain_scheduled = False  # first: a message appended from now on schedules a new drain
        inbox = self._inbox
        while inbox:
            topic, payload = inbox.popleft()
            try:
                self.on_message(topic, payload)
            except Exception:  # noqa: BLE001 - one bad message must not stop the others
                log.exception("adapter could not handle a message on %s", topic)
