"""Each component's configuration as a typed object, built from the parsed settings in one place.

``settings.KEYS`` declares every key once (name, parser, default, doc); this module is the only one
that reads the keys by name for the running service. A component gets its own frozen object
(``PipeConfig``, ``SessionConfig``, ``ListenerConfig``, ``TlsConfig``, ``MqttConfig``, ``AdminConfig``),
defined next to the code that uses it, and never looks a key up itself. (The auth backends are made
by ``auth.make_backend``, the factory of that package; ``cli`` reads ``log.level`` before anything else runs.)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from .admin.api import AdminConfig
from .chargers.admission import PendingLimits
from .chargers.listener import ListenerConfig
from .chargers.proxy_protocol import ProxyPolicy
from .chargers.session import SessionConfig
from .chargers.tls import TlsConfig
from .mqtt.bridge import MqttConfig
from .mqtt.link import LinkConfig
from .mqtt.router import HoldConfig
from .mqtt.upstream import ChannelRoute, TopicsConfig
from .protocol import proxy_header
from .protocol.handshake import VersionPolicy
from .protocol.pipe import PipeConfig
from .protocol.topics import Template
from .protocol.versions import VERSIONS
from .settings import Settings

Address = tuple[str, int]
# A shell's open files limit is advice-worthy only when someone raised this (service.open_files_advice).
DEFAULT_MAX_CONNECTIONS: int = Settings.defaults()["ocpp.listener.max_connections"]


@dataclass(frozen=True)
class CheckerConfig:
    """``ocpp.message_format_checking`` and where the schemas are (None: no checking)."""

    schema_dir: str | None
    id_prefix: str


@dataclass(frozen=True)
class Config:
    """What the service builds its parts from."""

    settings: Settings  # for the admin API's display of the effective configuration, and reload
    pipe: PipeConfig
    session: SessionConfig
    listener: ListenerConfig
    tls: TlsConfig
    mqtt: MqttConfig
    admin: AdminConfig
    checker: CheckerConfig | None
    ws: Address | None
    wss: Address | None
    admin_listener: Address | None
    max_connections: int
    cpus: str | frozenset[int] = "one"  # process.cpus: "one", "all" or CPU numbers (netio.cpus)

    @classmethod
    def from_settings(cls, settings: Settings) -> "Config":
        return cls(
            settings=settings, pipe=pipe_config(settings), session=session_config(settings),
            listener=listener_config(settings), tls=tls_config(settings), mqtt=mqtt_config(settings),
            admin=admin_config(settings), checker=checker_config(settings),
            ws=settings["ocpp.listener.ws"], wss=settings["ocpp.listener.wss"],
            admin_listener=settings["admin.listener"],
            max_connections=settings["ocpp.listener.max_connections"], cpus=settings["process.cpus"])


def pipe_config(settings: Settings) -> PipeConfig:
    checking = settings["ocpp.message_format_checking"]
    return PipeConfig(
        awaiting_timeout=settings["ocpp.awaiting_timeout"],
        retry_interval=settings["ocpp.retry_interval"],
        max_mqueue_len=settings["ocpp.dnstream.max_mqueue_len"],
        heartbeat_interval=settings["ocpp.default_heartbeat_interval"],
        heartbeat_backoff=settings["ocpp.heartbeat_checking_times_backoff"],
        idle_timeout=settings["ocpp.idle_timeout"],
        max_bad_frames=settings["ocpp.max_bad_frames"],
        recent_csms_calls=settings["ocpp.recent_csms_calls"],
        check_upstream=checking in ("all", "upstream_only"),
        check_dnstream=checking in ("all", "dnstream_only"),
        history_len=settings["admin.history_len"],
        history_payloads=settings["admin.history_payloads"],
    )


def session_config(settings: Settings) -> SessionConfig:
    return SessionConfig(
        # A CP that stops reading must not hold its thread in a send for longer than a call may take.
        send_timeout=max(1.0, settings["ocpp.awaiting_timeout"]),
        max_frame_size=settings["ocpp.max_frame_size"],
        close_timeout=settings["ocpp.close_timeout"])


def listener_config(settings: Settings) -> ListenerConfig:
    return ListenerConfig(
        path=settings["ocpp.listener.path"],
        handshake_timeout=settings["ocpp.listener.handshake_timeout"],
        versions=version_policy(settings),
        close_timeout=settings["ocpp.close_timeout"],
        username_must_match_cid=settings["auth.username_must_match_cid"],
        ssl_organization=settings["ocpp.listener.ssl.organization"],
        proxy=proxy_policy(settings),
        pending=PendingLimits(settings["ocpp.listener.max_pending"], settings["ocpp.listener.max_pending_per_address"]))


def proxy_policy(settings: Settings) -> ProxyPolicy:
    return ProxyPolicy(
        versions=proxy_header.VERSIONS.get(settings["ocpp.listener.proxy_protocol"], ()),
        trusted=tuple(ipaddress.ip_network(network) for network in settings["ocpp.listener.proxy_protocol.trusted"]))


def version_policy(settings: Settings) -> VersionPolicy:
    """ocpp.versions in order, the default version; bare mode serves only the versions it can carry."""
    served = tuple(VERSIONS[name] for name in settings["ocpp.versions"])
    why = ""
    if settings["ocpp.payload_format"] == "bare":   # SPEC §9: bare mode is 1.6 only
        served = tuple(version for version in served if version.bare_mode)
        why = "with the bare MQTT payload format"
    return VersionPolicy(served, VERSIONS[settings["ocpp.default_version"]],
                         settings["ocpp.listener.fail_if_no_subprotocol"], why)


def tls_config(settings: Settings) -> TlsConfig:
    return TlsConfig(
        certfile=settings["ocpp.listener.ssl.certfile"],
        keyfile=settings["ocpp.listener.ssl.keyfile"],
        cacertfile=settings["ocpp.listener.ssl.cacertfile"],
        crlfile=settings["ocpp.listener.ssl.crlfile"],
        verify_peer=settings["ocpp.listener.ssl.verify"] == "verify_peer",
        fail_if_no_peer_cert=settings["ocpp.listener.ssl.fail_if_no_peer_cert"])


def mqtt_config(settings: Settings) -> MqttConfig:
    mountpoint = settings["ocpp.mountpoint"]
    client_id = settings["mqtt.client_id"]
    link = LinkConfig(
        servers=settings["mqtt.server"], client_id=client_id, mqtt5=settings["mqtt.protocol"] == "5",
        username=settings["mqtt.username"], password=settings["mqtt.password"],
        cafile=settings["mqtt.ssl.cafile"], certfile=settings["mqtt.ssl.certfile"],
        keyfile=settings["mqtt.ssl.keyfile"], max_queued_messages=settings["mqtt.max_queued_messages"],
        keepalive=settings["mqtt.keepalive"], session_expiry=settings["mqtt.session_expiry"],
        status_topic=f"{mountpoint}gateway/{client_id}/status")
    topics = TopicsConfig(
        call_topic=Template(settings["ocpp.upstream.topic"], mountpoint),
        call_topics={action: Template(text, mountpoint) for action, text in settings.topic_overrides.items()},
        reply_topic=Template(settings["ocpp.upstream.reply_topic"], mountpoint),
        error_topic=Template(settings["ocpp.upstream.error_topic"], mountpoint),
        dnstream_topic=Template(settings["ocpp.dnstream.topic"], mountpoint),
        events_topic=Template(settings["ocpp.events.topic"], mountpoint),
        channels={name: ChannelRoute(name, Template(channel.topic, mountpoint),
                                     Template(channel.reply_topic, mountpoint), frozenset(channel.allowed_actions))
                  for name, channel in settings.channels.items()},
        qos=settings["ocpp.upstream.qos"], bare=settings["ocpp.payload_format"] == "bare",
        version_topics=version_topics(settings, mountpoint),
        default_version=VERSIONS[settings["ocpp.default_version"]])
    hold = HoldConfig(seconds=settings["ocpp.dnstream.offline_hold"],
                      max_per_cid=settings["ocpp.dnstream.max_mqueue_len"],
                      call_seconds=settings["ocpp.awaiting_timeout"])
    return MqttConfig(link=link, topics=topics, hold=hold)


def version_topics(settings: Settings, mountpoint: str) -> dict[str, tuple[Template, Template, Template]]:
    """Each version's (call, reply, error) templates: ocpp.upstream.*.<version> where set, else the
    general key (SPEC §9)."""
    def pick(key: str, version: str) -> Template:
        return Template(settings[f"{key}.{version}"] or settings[key], mountpoint)
    return {version: (pick("ocpp.upstream.topic", version), pick("ocpp.upstream.reply_topic", version),
                      pick("ocpp.upstream.error_topic", version)) for version in VERSIONS}


def admin_config(settings: Settings) -> AdminConfig:
    return AdminConfig(
        token_file=settings["admin.token_file"], auth_backend=settings["auth.backend"],
        credentials_file=settings["auth.file"], ocpp_path=settings["ocpp.listener.path"],
        mqtt_server=settings["mqtt.server"], mqtt_client_id=settings["mqtt.client_id"],
        mqtt_protocol=settings["mqtt.protocol"], config_file=settings.source,
        effective=settings.public_dict())


def checker_config(settings: Settings) -> CheckerConfig | None:
    if settings["ocpp.message_format_checking"] == "disable":
        return None
    return CheckerConfig(settings["ocpp.json_schema_dir"], settings["ocpp.json_schema_id_prefix"])
