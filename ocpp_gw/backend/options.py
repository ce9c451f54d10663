"""What the adapter needs to know of the gateway's MQTT API: the same topic keys and broker settings.

Defaults are the gateway's own defaults, read from ``settings.KEYS``, so an adapter and a gateway
left at their defaults talk to each other. ``BackendOptions.from_settings`` takes a gateway
configuration (``settings.load("/etc/ocpp_gw/ocpp.conf")``) for a backend that shares its file.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from .. import settings as gateway_settings
from ..protocol.topics import Template

# option name -> gateway key it mirrors
MIRRORED_KEYS: Mapping[str, str] = {
    "mountpoint": "ocpp.mountpoint",
    "upstream_topic": "ocpp.upstream.topic",
    "reply_topic": "ocpp.upstream.reply_topic",
    "error_topic": "ocpp.upstream.error_topic",
    "dnstream_topic": "ocpp.dnstream.topic",
    "events_topic": "ocpp.events.topic",
    "qos": "ocpp.upstream.qos",
    "username": "mqtt.username",
    "password": "mqtt.password",
    "protocol": "mqtt.protocol",
    "keepalive": "mqtt.keepalive",
    "cafile": "mqtt.ssl.cafile",
    "certfile": "mqtt.ssl.certfile",
    "keyfile": "mqtt.ssl.keyfile",
}


def _gateway_default(option: str):
    key = gateway_settings.KEYS_BY_NAME[MIRRORED_KEYS[option]]
    return key.parse(key.default)


def _default(option: str):
    return field(default_factory=lambda: _gateway_default(option))


def default_client_id() -> str:
    """Unique per process: never the gateway's own id (two clients with one id keep kicking each other)."""
    return f"ocpp-gw-backend-{socket.gethostname()}-{os.getpid()}"[:64]


@dataclass(frozen=True)
class BackendOptions:
    """Topic templates and broker settings, named after the gateway keys in ``MIRRORED_KEYS``."""

    broker: str = "127.0.0.1:1883"
    mountpoint: str = _default("mountpoint")
    upstream_topic: str = _default("upstream_topic")
    upstream_topics: Mapping[str, str] = field(default_factory=dict)  # ocpp.upstream.topic.<Action>
    reply_topic: str = _default("reply_topic")
    error_topic: str = _default("error_topic")
    dnstream_topic: str = _default("dnstream_topic")
    events_topic: str = _default("events_topic")
    qos: int = _default("qos")
    client_id: str = field(default_factory=default_client_id)
    username: str | None = _default("username")
    password: str | None = _default("password")
    protocol: str = _default("protocol")
    keepalive: float = _default("keepalive")
    cafile: str | None = _default("cafile")
    certfile: str | None = _default("certfile")
    keyfile: str | None = _default("keyfile")

    def __post_init__(self) -> None:
        wildcard = [level for level in self.dnstream_topic.split("/") if level in ("+", "#")]
        if wildcard:
            raise ValueError(f"dnstream_topic {self.dnstream_topic!r} holds a wildcard: the adapter "
                             "publishes on it, so give it as the gateway renders it (e.g. cs/${cid})")
        self.host_port()  # fails early on a bad broker address

    @classmethod
    def from_settings(cls, config, **changes) -> "BackendOptions":
        """The options that match a gateway configuration (a ``settings.Settings``)."""
        if config["ocpp.payload_format"] != "envelope":
            raise ValueError("the adapter speaks the envelope payload format only")
        host, port = config["mqtt.server"]
        values = {option: config[key] for option, key in MIRRORED_KEYS.items()}
        values.update(broker=f"{host}:{port}", upstream_topics=dict(config.topic_overrides))
        values.update(changes)
        return cls(**values)

    def replace(self, **changes) -> "BackendOptions":
        return dataclasses.replace(self, **changes)

    def host_port(self) -> tuple[str, int]:
        host, _, port = self.broker.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"broker {self.broker!r} is not host:port")
        return host.strip("[]"), int(port)

    def upstream_templates(self) -> list[Template]:
        """Every topic the gateway publishes a CP's messages on."""
        texts = [self.upstream_topic, *self.upstream_topics.values(), self.reply_topic, self.error_topic]
        return [Template(text, self.mountpoint) for text in dict.fromkeys(texts)]

    def dnstream_template(self) -> Template:
        return Template(self.dnstream_topic, self.mountpoint)

    def events_template(self) -> Template:
        return Template(self.events_topic, self.mountpoint)

    def status_filter(self) -> str:
        """The gateways' own status topics (their MQTT will says "offline" there)."""
        return f"{self.mountpoint}gateway/+/status"
