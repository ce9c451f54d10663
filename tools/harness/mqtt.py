"""An MQTT client for tests: subscribe, then block until an expected message arrives (with a deadline)."""

from __future__ import annotations

import itertools
import json
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

_client_ids = itertools.count(1)


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool

    @property
    def json(self) -> Any:
        """The payload decoded as JSON (raises ValueError when it is not JSON)."""
        return json.loads(self.payload)

    def __repr__(self) -> str:
        return f"Message({self.topic!r}, {self.payload[:300]!r}, qos={self.qos}, retain={self.retain})"


Predicate = Callable[[Message], bool]


def _json_or_none(message: Message) -> Any:
    try:
        return message.json
    except ValueError:
        return None


def json_matches(expected: dict) -> Predicate:
    """Messages whose JSON object contains every key of `expected` with the same value."""
    def accept(message: Message) -> bool:
        body = _json_or_none(message)
        return isinstance(body, dict) and all(body.get(key) == value for key, value in expected.items())
    return accept


class MqttProbe:
    """A paho 2.x client. Messages that a test has not asked for yet stay in a backlog for later `expect` calls."""

    def __init__(self, host: str, port: int, *, client_id: str | None = None, clean_session: bool = True,
                 protocol: paho.MQTTProtocolVersion = paho.MQTTProtocolVersion.MQTTv311):
        self.host, self.port = host, port
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-probe-{next(_client_ids)}-{time.monotonic_ns()}",
            clean_session=clean_session,
            protocol=protocol,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self._connected = threading.Event()
        self._connect_result: Any = None
        self._acks: dict[int, list] = {}
        self._acked = threading.Condition()
        self._inbox: "queue.Queue[Message]" = queue.Queue()
        self._backlog: list[Message] = []

    # paho callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connect_result = reason_code
        self._connected.set()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._acked:
            self._acks[mid] = list(reason_codes)
            self._acked.notify_all()

    def _on_message(self, client, userdata, msg) -> None:
        self._inbox.put(Message(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain)))

    # test API
    def connect(self, timeout: float = 5.0) -> "MqttProbe":
        """Connect (again, after `close`, for a persistent session) and wait for the CONNACK."""
        self._connected.clear()
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._connected.wait(timeout):
            raise TimeoutError(f"no CONNACK from {self.host}:{self.port} within {timeout}s")
        if self._connect_result.is_failure:
            raise ConnectionError(f"broker refused the connection: {self._connect_result}")
        return self

    def subscribe(self, topic_filter: str, qos: int = 1, timeout: float = 5.0) -> "MqttProbe":
        """Subscribe and return once the broker has acknowledged it (so nothing published after is missed)."""
        result, mid = self.client.subscribe(topic_filter, qos)
        if result != paho.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"subscribe {topic_filter!r} failed: {paho.error_string(result)}")
        with self._acked:
            if not self._acked.wait_for(lambda: mid in self._acks, timeout):
                raise TimeoutError(f"no SUBACK for {topic_filter!r} within {timeout}s")
            codes = self._acks.pop(mid)
        if any(code.is_failure for code in codes):
            raise ConnectionError(f"broker refused subscription {topic_filter!r}: {codes}")
        return self

    def publish(self, topic: str, body: Any, qos: int = 1, retain: bool = False, timeout: float = 5.0) -> None:
        """Publish `body` (dict/list → JSON, str/bytes as they are) and wait until the broker has it (QoS ≥ 1)."""
        payload = body if isinstance(body, (bytes, str)) else json.dumps(body)
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        info.wait_for_publish(timeout)
        if not info.is_published() and qos > 0:
            raise TimeoutError(f"publish to {topic!r} not acknowledged within {timeout}s")

    def expect(self, topic_filter: str = "#", predicate: Predicate | None = None, timeout: float = 5.0) -> Message:
        """The next message on `topic_filter` that `predicate` accepts; fails the test after `timeout` seconds."""
        found = self._take(topic_filter, predicate, timeout)
        if found is None:
            seen = "\n  ".join(repr(message) for message in self._backlog[-20:]) or "(nothing)"
            raise AssertionError(f"no message on {topic_filter!r} matching within {timeout}s; unclaimed:\n  {seen}")
        return found

    def expect_json(self, topic_filter: str, expected: dict | None = None, timeout: float = 5.0) -> Any:
        """Shorthand: the JSON body of the next message on `topic_filter` containing `expected`."""
        return self.expect(topic_filter, json_matches(expected or {}), timeout).json

    def expect_none(self, topic_filter: str = "#", predicate: Predicate | None = None, within: float = 0.5) -> None:
        """Fail if a matching message arrives within `within` seconds."""
        found = self._take(topic_filter, predicate, within)
        if found is not None:
            raise AssertionError(f"unexpected message: {found!r}")

    def drain(self) -> list[Message]:
        """Everything received and not yet claimed, emptied out."""
        while True:
            try:
                self._backlog.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        taken, self._backlog = self._backlog, []
        return taken

    def _take(self, topic_filter: str, predicate: Predicate | None, timeout: float) -> Message | None:
        def wanted(message: Message) -> bool:
            return paho.topic_matches_sub(topic_filter, message.topic) and (predicate is None or predicate(message))

        for index, message in enumerate(self._backlog):
            if wanted(message):
                return self._backlog.pop(index)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                message = self._inbox.get(timeout=remaining)
            except queue.Empty:
                return None
            if wanted(message):
                return message
            self._backlog.append(message)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "MqttProbe":
        return self.connect()

    def __exit__(self, *exc) -> None:
        self.close()
