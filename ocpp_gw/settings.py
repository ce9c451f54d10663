"""The configuration (SPEC §2): every key of ``ocpp.conf`` as data, and the loader.

``KEYS`` is the single source of truth: the loader, ``Settings.defaults()``, the shipped
``etc/ocpp.conf`` and ``docs/configuration.md`` (both written by ``tools/gen_conf.py``) all
come from it.

Decisions where SPEC §2 is silent:

* A value wrapped in one pair of quotes loses them (``mqtt.password = "pa#ss"``): that is
  the only way to put ``#`` in a value, since configobj takes any ``#`` for the start of a
  comment. An unquoted value with a ``#`` glued to it is refused rather than silently cut
  short. Nothing else is touched: ``${cid}`` placeholders and commas come through verbatim.
* Only the first problem of a file is reported, in file order; cross-key problems come
  after every single key has passed.
* ``ocpp.listener.path`` is stored without its trailing ``/`` (``/`` becomes ``""``), so a
  charge point's URL path is always ``path + "/" + cid``.
* TLS to the broker is on exactly when ``mqtt.ssl.cafile`` is set.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import os
import re
import socket
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from configobj import ConfigObj, ConfigObjError, DuplicateError

from .protocol.topics import placeholders
from .protocol.versions import VERSIONS, parse_version_list

OVERRIDE_PREFIX = "ocpp.upstream.topic."
CHANNEL_PREFIX = "ocpp.dnstream.channel."
CHANNEL_FIELDS = ("topic", "allowed_actions", "reply_topic")
CHANNEL_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
ACTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")
# Per-version topic keys: <template key>.<subprotocol>, e.g. ocpp.upstream.topic.ocpp2.0.1.
VERSIONED_TOPIC_KEYS = ("ocpp.upstream.topic", "ocpp.upstream.reply_topic", "ocpp.upstream.error_topic")
SECRET_MASK = "******"

# Who sends which Call in OCPP 1.6 (core profiles plus the security whitepaper) and in 2.0.1
# (plus 2.1's SEND): an upstream topic override can only ever apply to an action a charge
# point sends. Names of 2.1 that are not listed pass unchecked.
CP_ACTIONS = frozenset({
    "Authorize", "BootNotification", "DataTransfer", "DiagnosticsStatusNotification",
    "FirmwareStatusNotification", "Heartbeat", "MeterValues", "StartTransaction",
    "StatusNotification", "StopTransaction", "LogStatusNotification",
    "SecurityEventNotification", "SignCertificate", "SignedFirmwareStatusNotification",
    # 2.0.1
    "ClearedChargingLimit", "Get15118EVCertificate", "GetCertificateStatus", "NotifyChargingLimit",
    "NotifyCustomerInformation", "NotifyDisplayMessages", "NotifyEVChargingNeeds",
    "NotifyEVChargingSchedule", "NotifyEvent", "NotifyMonitoringReport", "NotifyReport",
    "PublishFirmwareStatusNotification", "ReportChargingProfiles", "ReservationStatusUpdate",
    "TransactionEvent",
    # 2.1 (SEND)
    "NotifyPeriodicEventStream",
})
CSMS_ACTIONS = frozenset({
    "CancelReservation", "ChangeAvailability", "ChangeConfiguration", "ClearCache",
    "ClearChargingProfile", "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics",
    "GetLocalListVersion", "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow",
    "Reset", "SendLocalList", "SetChargingProfile", "TriggerMessage", "UnlockConnector",
    "UpdateFirmware", "CertificateSigned", "DeleteCertificate", "ExtendedTriggerMessage",
    "GetInstalledCertificateIds", "GetLog", "InstallCertificate", "SignedUpdateFirmware",
})


class ConfigError(Exception):
    """A configuration the gateway refuses to run with; ``str()`` is ``file:line: key: problem``."""

    def __init__(self, problem: str, *, source: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.source = source
        self.line = line
        self.key = key
        self.others: list[ConfigError] = []  # further errors of the same file, in line order

    @classmethod
    def of_all(cls, errors: list[ConfigError]) -> ConfigError:
        """One error that reports every one of ``errors`` (the first is its own)."""
        first = errors[0]
        first.others = errors[1:]
        return first

    @property
    def all(self) -> list[ConfigError]:
        return [self, *self.others]

    def location(self) -> str:
        where = self.source or ""
        if self.line is not None:
            where = f"{where}:{self.line}"
        return ": ".join(part for part in (where, self.key, self.problem) if part)

    def __str__(self) -> str:
        """``file:line: key: problem``, one line per error."""
        return "\n".join(error.location() for error in self.all)


# --- value parsers -------------------------------------------------------------------------
# Each parser turns the text of a value into its Python value or raises ValueError saying
# what is wrong; ``accepts`` says in words what it takes (shown in errors and in the docs).

class Parser:
    accepts = ""

    def __call__(self, text: str) -> Any:
        raise NotImplementedError


_NUMBER = r"(?:\d+(?:\.\d+)?|\.\d+)"
_DURATION = re.compile(rf"({_NUMBER})\s*(ms|s|m|h|d)?", re.IGNORECASE)
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE = re.compile(r"(\d+)\s*(b|kb|mb|gb)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}


@dataclasses.dataclass(frozen=True)
class Duration(Parser):
    """Seconds as a float."""
    positive: bool = False
    maximum: float | None = None

    @property
    def accepts(self) -> str:
        bound = "more than 0" if self.positive else "0 or more"
        if self.maximum is not None:
            bound += f", at most {_format_seconds(self.maximum)}"
        return f"a duration: a number with unit ms, s, m, h or d (500ms, 1.5s, 30s, 5m, 1h) or plain seconds; {bound}"

    def __call__(self, text: str) -> float:
        match = _DURATION.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is negative" if text.lstrip().startswith("-")
                             else f"{text!r} is not a duration")
        seconds = float(match[1]) * _DURATION_UNITS[(match[2] or "s").lower()]
        if self.positive and seconds == 0:
            raise ValueError(f"{text!r} must be more than 0")
        if self.maximum is not None and seconds > self.maximum:
            raise ValueError(f"{text!r} is more than {_format_seconds(self.maximum)}")
        return seconds


def _format_seconds(seconds: float) -> str:
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds}s"


@dataclasses.dataclass(frozen=True)
class Size(Parser):
    """Bytes as an int."""

    accepts = ("a size: a whole number of bytes, optionally with unit B, KB, MB or GB "
               "(1 KB = 1024 bytes), e.g. 512B, 64KB, 1MB; at least 1 byte")

    def __call__(self, text: str) -> int:
        match = _SIZE.fullmatch(text)
        if match is None:
            raise ValueError(f"{text!r} is negative" if text.lstrip().startswith("-")
                             else f"{text!r} is not a size")
        size = int(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()]
        if size < 1:
            raise ValueError(f"{text!r} must be at least 1 byte")
        return size


@dataclasses.dataclass(frozen=True)
class Integer(Parser):
    minimum: int
    maximum: int | None = None

    @property
    def accepts(self) -> str:
        if self.maximum is None:
            return f"a whole number, at least {self.minimum}"
        return f"a whole number from {self.minimum} to {self.maximum}"

    def __call__(self, text: str) -> int:
        if not re.fullmatch(r"[+-]?\d+", text):
            raise ValueError(f"{text!r} is not a whole number")
        number = int(text)
        if number < self.minimum or (self.maximum is not None and number > self.maximum):
            raise ValueError(f"{text!r} is out of range")
        return number


@dataclasses.dataclass(frozen=True)
class CpuChoice(Parser):
    """``one``, ``all``, or CPU numbers and ranges (``1``, ``0,2-3``) as a frozenset of ints."""

    accepts = "one, all, or CPU numbers and ranges separated by commas (e.g. 1 or 0,2-3)"

    def __call__(self, text: str) -> str | frozenset[int]:
        if text in ("one", "all"):
            return text
        cpus: set[int] = set()
        for part in text.split(","):
            match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
            if match is None or (match[2] is not None and int(match[2]) < int(match[1])):
                raise ValueError(f"{text!r} is not one, all or a list of CPU numbers")
            cpus.update(range(int(match[1]), int(match[2] or match[1]) + 1))
        return frozenset(cpus)


@dataclasses.dataclass(frozen=True)
class Number(Parser):
    minimum: float

    @property
    def accepts(self) -> str:
        return f"a number, at least {self.minimum:g} (decimals allowed, e.g. 1.5)"

    def __call__(self, text: str) -> float:
        if not re.fullmatch(rf"[+-]?{_NUMBER}", text):
            raise ValueError(f"{text!r} is not a number")
        number = float(text)
        if number < self.minimum:
            raise ValueError(f"{text!r} is less than {self.minimum:g}")
        return number


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


@dataclasses.dataclass(frozen=True)
class Boolean(Parser):
    accepts = "true or false (also yes/no, on/off, 1/0)"

    def __call__(self, text: str) -> bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"{text!r} is not a boolean")


@dataclasses.dataclass(frozen=True)
class Choice(Parser):
    choices: tuple[str, ...]

    @property
    def accepts(self) -> str:
        return "one of " + ", ".join(self.choices)

    def __call__(self, text: str) -> str:
        if text not in self.choices:
            raise ValueError(f"{text!r} is not a valid choice")
        return text


_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
ANY_HOST = "0.0.0.0"


@dataclasses.dataclass(frozen=True)
class Networks(Parser):
    """IP networks (or single addresses), separated by commas or spaces, as a tuple of canonical network texts
    ("10.0.0.0/24", "192.0.2.7/32")."""

    accepts = ("IP networks or addresses separated by commas or spaces, e.g. 10.0.0.0/24, 192.0.2.7 ::1; "
               "empty for none")

    def __call__(self, text: str) -> tuple:
        networks = []
        for word in re.split(r"[\s,]+", text.strip()):
            if not word:
                continue
            try:
                networks.append(str(ipaddress.ip_network(word, strict=False)))
            except ValueError:
                raise ValueError(f"{word!r} is not an IP network or address") from None
        return tuple(networks)


def _split_address(text: str) -> tuple[str, str | None]:
    """``host[:port]`` or ``[ipv6][:port]`` → (host, port text or None)."""
    if text.startswith("["):
        match = re.fullmatch(r"\[([^\]]*)\](?::(.*))?", text)
        if match is None:
            raise ValueError(f"{text!r} is not an address")
        try:
            ipaddress.IPv6Address(match[1])
        except ValueError:
            raise ValueError(f"{match[1]!r} in brackets is not an IPv6 address") from None
        return match[1], match[2]
    if text.count(":") > 1:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [::1]:1883")
    host, colon, port = text.partition(":")
    if host and not _HOST_NAME.fullmatch(host):
        raise ValueError(f"{host!r} is not a host name or address")
    return host, port if colon else None


def _port(text: str, minimum: int) -> int:
    if not text.isdigit() or not minimum <= int(text) <= 65535:
        raise ValueError(f"port {text!r} is not a number from {minimum} to 65535")
    return int(text)


@dataclasses.dataclass(frozen=True)
class Listen(Parser):
    """Where to listen: ``(host, port)``, or None for ``off``."""

    accepts = ("host:port, [IPv6]:port, :port or port (all IPv4 interfaces), or off to disable; "
               "port 0 picks a free port")

    def __call__(self, text: str) -> tuple[str, int] | None:
        if text == "off":
            return None
        if text.isdigit():
            return ANY_HOST, _port(text, 0)
        host, port = _split_address(text)
        if port is None:
            raise ValueError(f"{text!r} has no port")
        return host or ANY_HOST, _port(port, 0)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses: reachable from this machine only."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclasses.dataclass(frozen=True)
class Server(Parser):
    """Where to connect: ``(host, port)``."""
    default_port: int

    @property
    def accepts(self) -> str:
        return f"host:port, [IPv6]:port, or a host alone for port {self.default_port}"

    def __call__(self, text: str) -> tuple[str, int]:
        if text == "off":
            raise ValueError("the broker address cannot be off")
        host, port = _split_address(text)
        if not host:
            raise ValueError(f"{text!r} has no host")
        return host, self.default_port if port is None else _port(port, 1)


@dataclasses.dataclass(frozen=True)
class Servers(Parser):
    """Several places to connect to, in order: a tuple of ``(host, port)``; separated by commas or spaces."""
    default_port: int

    @property
    def accepts(self) -> str:
        return (f"one or more of host:port, [IPv6]:port or a host alone (port {self.default_port}), "
                "separated by commas or spaces")

    def __call__(self, text: str) -> tuple[tuple[str, int], ...]:
        parts = [part for part in re.split(r"[,\s]+", text.strip()) if part]
        if not parts:
            raise ValueError(f"{text.strip()!r} has no host")
        servers = tuple(Server(self.default_port)(part) for part in parts)
        repeated = sorted({server for server in servers if servers.count(server) > 1})
        if repeated:
            raise ValueError(f"{_shown_address(repeated[0])} is listed twice")
        return servers


def _shown_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclasses.dataclass(frozen=True)
class Text(Parser):
    """Free text; with ``optional`` an empty value means unset (None)."""
    optional: bool = True
    what: str = "text"

    @property
    def accepts(self) -> str:
        return f"{self.what}, or empty for none" if self.optional else self.what

    def __call__(self, text: str) -> str | None:
        if not text:
            if self.optional:
                return None
            raise ValueError("must not be empty")
        return text


@dataclasses.dataclass(frozen=True)
class Names(Parser):
    """Names separated by spaces or commas, each matching ``pattern``; empty for none."""
    pattern: re.Pattern = CHANNEL_NAME
    what: str = "names of letters, digits, _ and -"

    @property
    def accepts(self) -> str:
        return f"{self.what}, separated by spaces or commas, or empty for none"

    def __call__(self, text: str) -> tuple[str, ...]:
        names = tuple(dict.fromkeys(name for name in re.split(r"[\s,]+", text) if name))
        for name in names:
            if not self.pattern.fullmatch(name):
                raise ValueError(f"{name!r} is not one of {self.what}")
        return names


@dataclasses.dataclass(frozen=True)
class CommandChannel:
    """A named extra command channel (SPEC §11): who may send the CP which actions, and where answers go."""
    name: str
    topic: str
    allowed_actions: frozenset[str]
    reply_topic: str


@dataclasses.dataclass(frozen=True)
class UrlPath(Parser):
    accepts = "a URL path starting with /, without query or fragment"

    def __call__(self, text: str) -> str:
        if not text.startswith("/") or re.search(r"[?#\s]", text):
            raise ValueError(f"{text!r} is not a URL path")
        return text.rstrip("/")


@dataclasses.dataclass(frozen=True)
class HttpUrl(Parser):
    accepts = "an http:// or https:// URL, or empty for none"

    def __call__(self, text: str) -> str | None:
        if not text:
            return None
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.netloc or re.search(r"\s", text):
            raise ValueError(f"{text!r} is not an http:// or https:// URL")
        return text


@dataclasses.dataclass(frozen=True)
class TopicPrefix(Parser):
    accepts = "a topic prefix, usually ending in /, or empty for none; no + or #, no ${...}"

    def __call__(self, text: str) -> str:
        if re.search(r"[+#\x00]|\$\{", text):
            raise ValueError(f"{text!r} contains a wildcard, a placeholder or a NUL")
        return text


@dataclasses.dataclass(frozen=True)
class ClientId(Parser):
    accepts = "an MQTT client id without +, # or /, or empty for ocpp-gw-<hostname>"

    def __call__(self, text: str) -> str:
        if not text:
            return f"ocpp-gw-{socket.gethostname()}"
        # The id is a level of the gateway's status topic, so it must be one plain level.
        if re.search(r"[+#/\x00]", text):
            raise ValueError(f"{text!r} contains +, #, / or a NUL")
        return text


CID_PLACEHOLDERS = frozenset({"cid", "clientid"})
UPSTREAM, DNSTREAM, EVENTS = "upstream", "dnstream", "events"


@dataclasses.dataclass(frozen=True)
class VersionList(Parser):
    """OCPP-J subprotocol names, separated by commas or spaces; kept in order, as a tuple."""

    @property
    def accepts(self) -> str:
        return "one or more of " + ", ".join(VERSIONS) + ", separated by spaces or commas"

    def __call__(self, text: str) -> tuple[str, ...]:
        return tuple(version.subprotocol for version in parse_version_list(text))


@dataclasses.dataclass(frozen=True)
class TopicTemplate(Parser):
    """An MQTT topic template; ``role`` decides which placeholders and wildcards it may hold.
    ``optional``: empty means "not set" (None)."""
    role: str
    optional: bool = False

    @property
    def accepts(self) -> str:
        if self.role == EVENTS:
            return ("a topic template; placeholders ${cid} (alias ${clientid}) and ${version}; "
                    "no + or # wildcards")
        known = ("placeholders ${cid} (alias ${clientid}), ${action}, ${id}, ${type}, ${version}; "
                 "must contain ${cid}")
        if self.role == UPSTREAM:
            return f"a topic template; {known}; no + or # wildcards"
        return (f"a topic filter template; {known}; + and # wildcards allowed; "
                "${action}, ${id}, ${type} and ${version} must each be a whole topic level")

    def __call__(self, text: str) -> str | None:
        if not text:
            if self.optional:
                return None
            raise ValueError("must not be empty")
        if "\x00" in text:
            raise ValueError("contains a NUL character")
        names = placeholders(text)
        if self.role == DNSTREAM:
            _check_filter_levels(text)
        elif re.search(r"[+#]", text):
            raise ValueError(f"{text!r} contains a wildcard (+ or #); published topics cannot")
        if self.role == EVENTS:
            extra = sorted(set(names) - CID_PLACEHOLDERS - {"version"})
            if extra:
                raise ValueError("events have no action, id or type; remove "
                                 + ", ".join(f"${{{n}}}" for n in extra))
        elif not CID_PLACEHOLDERS & set(names):
            raise ValueError(f"{text!r} lacks ${{cid}} (or ${{clientid}}), so it cannot tell charge points apart")
        return text


def _check_filter_levels(template: str) -> None:
    levels = template.split("/")
    seen: set[str] = set()
    for position, level in enumerate(levels):
        if "#" in level and (level != "#" or position != len(levels) - 1):
            raise ValueError(f"{template!r}: # must be the whole last topic level")
        if "+" in level and level != "+":
            raise ValueError(f"{template!r}: + must be a whole topic level")
        for name in [n for n in dict.fromkeys(placeholders(level)) if n not in CID_PLACEHOLDERS]:
            # Subscribed as "+" and read back from the level of each received topic.
            if level != f"${{{name}}}":
                raise ValueError(f"{template!r}: ${{{name}}} must be a whole topic level")
            if name in seen:
                raise ValueError(f"{template!r}: ${{{name}}} appears twice")
            seen.add(name)


# --- the table ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Key:
    name: str
    parse: Parser
    default: str        # as written in the file; the parsed default is parse(default)
    doc: str            # paragraphs separated by blank lines; "- " lines are list items
    group: str = ""
    secret: bool = False


def _group(title: str, *keys: Key) -> tuple[Key, ...]:
    return tuple(dataclasses.replace(key, group=title) for key in keys)


_TEMPLATE_HELP = (
    "Placeholders: ${cid} (alias ${clientid}) is the charge point id, ${action} the OCPP action, "
    "${id} the message's UniqueId, ${type} one of request, response or error and ${version} the "
    "charge point's OCPP version (its subprotocol, e.g. ocpp2.0.1). The topic actually "
    "used is ocpp.mountpoint followed by the rendered template.")

KEYS: tuple[Key, ...] = (
    *_group(
        "Listeners",
        Key("ocpp.listener.ws", Listen(), "0.0.0.0:33033", """
Address of the plain WebSocket (ws://) listener that charge points connect to.

Over ws:// Basic-auth passwords travel in clear text: use it only on a trusted network, or
turn it off and use ocpp.listener.wss."""),
        Key("ocpp.listener.wss", Listen(), "off", """
Address of the WebSocket-over-TLS (wss://) listener. It needs ocpp.listener.ssl.certfile."""),
        Key("ocpp.listener.path", UrlPath(), "/ocpp", """
URL path in front of the charge point id: a charge point connects to
ws://<host>:<port><path>/<cid>, e.g. ws://gw.example:33033/ocpp/CP001. With / the URL is
ws://<host>:<port>/<cid>. Requests for other paths get HTTP 404."""),
        Key("ocpp.listener.max_connections", Integer(1), "10000", """
Maximum number of charge point connections open at once, ws and wss together, counting only charge points
that have authenticated (those still in their handshake are bounded by ocpp.listener.max_pending). One
over the limit is refused with HTTP 503 and Retry-After; the charge point retries later. Each connection
uses one thread."""),
        Key("ocpp.listener.handshake_timeout", Duration(positive=True), "10s", """
Time a new connection has for its whole handshake - PROXY protocol header, TLS handshake and the HTTP
upgrade request - before it is closed. Short, because a connection holds a pending slot (and a thread)
until then; long enough for a TLS handshake over a slow cellular link. Waiting for the credentials
check does not count against it."""),
        Key("ocpp.listener.max_pending", Integer(1), "2000", """
Maximum number of connections that have not authenticated yet, ws and wss together, apart from
ocpp.listener.max_connections: sockets that never send a byte fill these at most, never the slots of
charge points that log in. A connection over the limit is closed at once, unread; the gateway logs (at
most every 10s, with the count) and counts it (shed.pending_total)."""),
        Key("ocpp.listener.max_pending_per_address", Integer(1), "500", """
Maximum number of connections not yet authenticated from one address (for IPv6, one /64; behind a
PROXY protocol proxy, the address the proxy names). Sized for a depot of 500 charge points behind one
NAT router reconnecting at once; a flood from one address is shed beyond it (shed.pending_per_address)
and leaves the rest of ocpp.listener.max_pending to everyone else."""),
        Key("ocpp.listener.ssl.certfile", Text(what="a PEM file path"), "", """
The wss listener's certificate, with its chain, in PEM. The private key may be in the same
file. Required when ocpp.listener.wss is on. Re-read on SIGHUP (systemctl reload ocpp-gw) with the
key, CA and CRL files: new connections get the new certificate, connected charge points stay;
if a file does not load, the running certificate stays and an ERROR names the file. From 30
days before the certificate expires a WARNING is logged daily; /metrics exports its expiry."""),
        Key("ocpp.listener.ssl.keyfile", Text(what="a PEM file path"), "", """
The private key of ocpp.listener.ssl.certfile, in PEM. Empty: the key is in the certfile."""),
        Key("ocpp.listener.ssl.cacertfile", Text(what="a PEM file path"), "", """
CA certificates, in PEM, that charge point client certificates are checked against. Required
when ocpp.listener.ssl.verify is verify_peer."""),
        Key("ocpp.listener.ssl.crlfile", Text(what="a PEM file path"), "", """
Certificate revocation lists, in PEM, of the CAs in ocpp.listener.ssl.cacertfile. A client
certificate that a CRL revokes is refused in the TLS handshake. Each CA that issues charge point
certificates needs its CRL in this file (a certificate whose issuer has none is refused too).
Re-read on SIGHUP with the certificate, key and CA file. Needs verify_peer. Empty: no CRL."""),
        Key("ocpp.listener.ssl.verify", Choice(("verify_none", "verify_peer")), "verify_none", """
Whether wss asks charge points for a client certificate (OCPP security profile 3).

- verify_none: no client certificate; charge points authenticate with HTTP Basic (security
profiles 1 and 2).
- verify_peer: a client certificate is requested and checked against
ocpp.listener.ssl.cacertfile; its subject CN must contain the charge point id."""),
        Key("ocpp.listener.ssl.fail_if_no_peer_cert", Boolean(), "false", """
With verify_peer: true refuses a TLS client that presents no certificate; false lets it in,
to authenticate with HTTP Basic instead."""),
        Key("ocpp.listener.ssl.organization", Text(), "", """
When set, a client certificate's subject Organization (O) must equal this value (the OCPP
security whitepaper puts the charging station operator's name there). Empty: not checked."""),
        Key("ocpp.listener.proxy_protocol", Choice(("off", "v1", "v2", "any")), "off", """
Whether every connection to the ws and wss listeners starts with a PROXY protocol header (HAProxy's, as
sent by send-proxy or send-proxy-v2; also AWS NLB, nginx stream), naming the charge point's own address.
That address is then the charge point's peer everywhere: events, logs, login throttling, the http auth
backend and the admin API.

- off: no header; the peer is the socket's.
- v1 or v2: that version only. any: either; a header is still required.

A header is honoured only from ocpp.listener.proxy_protocol.trusted; a connection from anywhere else,
with or without a header, and one whose header is missing or malformed, is closed, logged at WARNING and
counted. Over wss the header comes before the TLS handshake."""),
        Key("ocpp.listener.proxy_protocol.trusted", Networks(), "127.0.0.0/8 ::1", """
The networks of the proxies allowed to send PROXY protocol headers, separated by commas or spaces, e.g.
10.0.0.5, 10.0.0.6 or 10.0.1.0/28. Only used when ocpp.listener.proxy_protocol is on."""),
        Key("ocpp.listener.fail_if_no_subprotocol", Boolean(), "true", """
A charge point must offer one of ocpp.versions in Sec-WebSocket-Protocol. One that offers none
of them (or, with true, sends no such header at all) gets the WebSocket upgrade without a
Sec-WebSocket-Protocol header and is closed at once with code 1002 and a reason naming the
versions served, as OCPP-J asks. false lets in, as ocpp.default_version, old firmware that
sends no header at all."""),
        Key("ocpp.versions", VersionList(), "ocpp2.1 ocpp2.0.1 ocpp1.6", """
The OCPP-J versions served, as subprotocol names, in the gateway's order of preference: when
a charge point offers several, the first of this list that it offers wins. With
ocpp.payload_format = bare only ocpp1.6 is served (bare mode has no way to carry the 2.x
message types); a charge point that offers only 2.x versions is then closed with a reason
saying so. A charge point's line in the credentials file may restrict it to some versions."""),
        Key("ocpp.default_version", Choice(tuple(VERSIONS)), "ocpp1.6", """
The version of a charge point that sends no Sec-WebSocket-Protocol header (only let in with
ocpp.listener.fail_if_no_subprotocol = false). It must be one of ocpp.versions."""),
    ),
    *_group(
        "Protocol",
        Key("ocpp.mountpoint", TopicPrefix(), "ocpp/", """
Prefix put in front of every MQTT topic the gateway publishes or subscribes to: upstream,
downstream, events and the gateway's own status topic. Empty for none."""),
        Key("ocpp.default_heartbeat_interval", Duration(), "60s", """
Heartbeat interval assumed for a charge point until an accepted BootNotification's answer
sets one (its interval field). The gateway disconnects (close code 1001) a charge point from
which nothing arrived for interval x ocpp.heartbeat_checking_times_backoff, plus half an interval
of tolerance for network delay, counted from the last bytes received. 0 turns the check off, as an
interval of 0 in a BootNotification answer does. An answer's interval above 2147483647 s
(68 years) is taken as 2147483647 s, with a warning."""),
        Key("ocpp.heartbeat_checking_times_backoff", Number(1), "1", """
How many heartbeat intervals of silence are tolerated before a charge point is disconnected;
see ocpp.default_heartbeat_interval."""),
        Key("ocpp.idle_timeout", Duration(positive=True), "30s", """
Time a charge point has, once its WebSocket handshake is complete, to send its first OCPP frame;
one that does not is closed. (The handshake itself has ocpp.listener.handshake_timeout.)"""),
        Key("ocpp.max_frame_size", Size(), "64KB", """
Largest WebSocket message accepted from a charge point. A bigger one closes the connection
with code 1009."""),
        Key("ocpp.awaiting_timeout", Duration(positive=True), "30s", """
How long a call, in either direction, waits for its answer. When it expires the gateway stops
waiting; for a call of the CSMS, the CSMS gets a gateway error (reason timeout). An answer
that comes later is still forwarded where it can be matched."""),
        Key("ocpp.retry_interval", Duration(positive=True), "30s", """
A CSMS call the charge point has not answered is sent again, with the same UniqueId, every
retry_interval until ocpp.awaiting_timeout ends. At the defaults (both 30s) it is never sent
again."""),
        Key("ocpp.max_bad_frames", Integer(1), "10", """
Malformed frames in a row (not JSON, wrong shape) after which the gateway closes the
connection with code 1002. A well-formed frame resets the count. (Not in EMQX.)"""),
        Key("ocpp.recent_csms_calls", Integer(1), "16", """
How many of its latest CSMS calls the gateway remembers per charge point, so that a late
answer, or one that comes after a call of the charge point's own, is still forwarded
upstream with its Action. Answers to older calls are dropped with a warning. As many
answered calls are remembered too: the same call delivered again (MQTT QoS 1 allows it, e.g.
after a broker restart) is dropped with a warning instead of reaching the charge point twice.
(Not in EMQX.)"""),
        Key("ocpp.close_timeout", Duration(), "1s", """
How long the gateway waits for a charge point to answer its WebSocket close frame before it
drops the TCP connection. (Not in EMQX.)"""),
        Key("ocpp.message_format_checking", Choice(("all", "upstream_only", "dnstream_only", "disable")),
            "disable", """
Which messages are checked against the JSON schemas of the charge point's OCPP version
(1.6, 2.0.1, 2.1), each answered with that version's error codes.

- all: both directions.
- upstream_only: messages from charge points. A Call that fails is answered with a CallError
naming the problem; a CallResult that fails reaches the CSMS as a gateway error.
- dnstream_only: messages from the CSMS. One that fails is not sent; the CSMS gets a gateway
error (reason schema).
- disable: nothing is checked."""),
        Key("ocpp.json_schema_dir", Text(what="a directory path"), "", """
Directory of the JSON schemas. Empty: the schemas shipped with the gateway. OCPP 1.6: the
directory itself, <Action>.json for calls and <Action>Response.json for their answers, found
by id (see ocpp.json_schema_id_prefix). OCPP 2.0.1 and 2.1: its subdirectories ocpp2.0.1 and
ocpp2.1, <Action>Request.json and <Action>Response.json, found by file name; a directory
without such a subdirectory uses the shipped schemas of that version."""),
        Key("ocpp.json_schema_id_prefix", Text(optional=False, what="text"), "urn:OCPP:1.6:2019:12:", """
Prefix of the OCPP 1.6 schemas' ids: the schema of a call is <prefix><Action>Request, the
one of its answer <prefix><Action>Response. (2.x schemas are found by file name.)"""),
    ),
    *_group(
        "Topics",
        Key("ocpp.upstream.topic", TopicTemplate(UPSTREAM), "cp/${cid}", f"""
Topic template of the Calls charge points send (for example BootNotification). With the
defaults, charge point CP001 publishes on ocpp/cp/CP001. An action can have a topic of its
own: see ocpp.upstream.topic.<Action> below.

{_TEMPLATE_HELP}"""),
        Key("ocpp.upstream.reply_topic", TopicTemplate(UPSTREAM), "cp/${cid}/Reply", """
Topic template of the CallResults charge points send, answers to CSMS calls, with the
call's Action merged in. Default: ocpp/cp/CP001/Reply. Placeholders as for
ocpp.upstream.topic."""),
        Key("ocpp.upstream.error_topic", TopicTemplate(UPSTREAM), "cp/${cid}/Reply", """
Topic template of the CallErrors charge points send, and of the gateway errors: what the
gateway tells the CSMS when it refuses or gives up on a CSMS call (queue full, timeout,
charge point offline or disconnected, invalid message, schema failure). Placeholders as for
ocpp.upstream.topic."""),
        Key("ocpp.upstream.qos", Integer(0, 2), "1", """
MQTT QoS of upstream messages. With 0, messages are lost while the broker is unreachable."""),
        Key("ocpp.dnstream.topic", TopicTemplate(DNSTREAM), "cs/${cid}", f"""
Topic template the gateway subscribes to (QoS 1) for each connected charge point, to receive
what the CSMS sends it: Calls, and answers to the charge point's Calls. With the defaults the
CSMS publishes to ocpp/cs/CP001. The template may hold + and # wildcards (quote a value with
a #, as in "cs/${{cid}}/#"); ${{action}}, ${{id}} and ${{type}} are subscribed as + and read back
from the topic of each message.

{_TEMPLATE_HELP}"""),
        Key("ocpp.dnstream.channels", Names(), "", """
Names of extra command channels: another backend (billing, monitoring, an installer's tool) that
may send charge points only some actions. Each name needs the three keys
ocpp.dnstream.channel.<name>.topic, .allowed_actions and .reply_topic (see below). Watching
needs no channel: any number of backends may subscribe to the upstream topics."""),
        Key("ocpp.dnstream.max_mqueue_len", Integer(1), "100", """
Maximum number of CSMS calls queued for one charge point, waiting their turn (only one call is out at a
time). A call over the limit is refused: the CSMS gets a gateway error (reason queue_full)."""),
        Key("ocpp.dnstream.offline_hold", Duration(), "60s", """
How long the gateway holds downstream messages for a charge point that is not connected (for
example those the broker delivers right after a gateway restart, before the chargers are back).
If the charge point connects in time they are delivered in order; otherwise Calls are answered
with a gateway error (reason offline). At most ocpp.dnstream.max_mqueue_len are held per charge
point. 0 answers at once. Calls still queued when a charge point disconnects are answered with
reason disconnected right away."""),
        Key("ocpp.events.topic", TopicTemplate(EVENTS), "events/${cid}", """
Topic template of the connect and disconnect events, published with QoS 1 and retained: a
JSON object with cid, event (connected or disconnected), reason, peer, username, subprotocol,
gateway and ts. Placeholder ${cid} (alias ${clientid})."""),
        Key("ocpp.payload_format", Choice(("envelope", "bare")), "envelope", """
Shape of MQTT payloads, both ways.

- envelope: a JSON object with MessageTypeId, UniqueId, Action, and Payload or ErrorCode,
ErrorDescription and ErrorDetails.
- bare: only the OCPP payload object (a CallError as ErrorCode, ErrorDescription,
ErrorDetails); type, action and UniqueId travel in the topic, as in EMQX 4.x. The upstream
Call templates must then contain ${type}, ${action} and ${id}, the reply and error templates
${type} and ${id}, and ocpp.dnstream.topic ${type}, ${action} and ${id}."""),
    ),
    *_group(
        "Topics per OCPP version",
        *(Key(f"{name}.{version}", TopicTemplate(UPSTREAM, optional=True), "", f"""
When set, used instead of {name} for charge points that speak {version}. Empty: {name}.
A per-action override (ocpp.upstream.topic.<Action>) still wins over this one.""")
          for version in VERSIONS for name in VERSIONED_TOPIC_KEYS),
    ),
    *_group(
        "MQTT broker",
        Key("mqtt.server", Servers(1883), "127.0.0.1:1883", """
Address of the MQTT broker, or of several nodes of one broker cluster, separated by commas or
spaces (e.g. mq1:1883, mq2:1883). The gateway connects to the first; when the connection is lost or
cannot be made it tries the next, in turn, so losing one node of a cluster does not stop it.
Charge points stay connected meanwhile. The nodes must share sessions and messages (a cluster,
or bridged brokers): docs/reliability.md says what is lost otherwise. /healthz and the console
show the node in use."""),
        Key("mqtt.client_id", ClientId(), "", """
MQTT client id of the gateway. The broker keeps the gateway's session (its subscriptions and
the downstream messages queued while it is away) under this id, so it must be unique per
gateway instance and stable across restarts. Empty: ocpp-gw-<hostname>."""),
        Key("mqtt.username", Text(), "", """
User name for the broker. Empty: none."""),
        Key("mqtt.password", Text(), "", """
Password for the broker; never logged or shown by the admin API. Quote it if it contains #.
Empty: none.""", secret=True),
        Key("mqtt.protocol", Choice(("3.1.1", "5")), "3.1.1", """
MQTT protocol version spoken with the broker. 5 lets the gateway set how long the broker
keeps its session (mqtt.session_expiry), and the gateway then keeps to the limit the broker states
on unacknowledged QoS 1 messages (its Receive Maximum; Mosquitto: max_inflight_messages), holding
the rest back in order. With 3.1.1, which has no such limit, messages go out without waiting for
earlier acknowledgements."""),
        Key("mqtt.keepalive", Duration(maximum=65535), "30s", """
MQTT keepalive interval, rounded to whole seconds. 0 turns keepalive off."""),
        Key("mqtt.session_expiry", Duration(maximum=4294967295), "1h", """
How long the broker keeps the gateway's session, and the downstream messages published for
it, while the gateway is disconnected (MQTT 5 session expiry interval). With MQTT 3.1.1 the
gateway asks for a persistent session and the broker's own setting decides."""),
        Key("mqtt.ssl.cafile", Text(what="a PEM file path"), "", """
CA certificates, in PEM, that the broker's certificate is checked against. Setting it turns
TLS to the broker on; for the system's CAs use /etc/ssl/certs/ca-certificates.crt. Empty:
plain TCP."""),
        Key("mqtt.ssl.certfile", Text(what="a PEM file path"), "", """
Client certificate for the broker, in PEM (the key may be in the same file). Needs
mqtt.ssl.cafile. Empty: none."""),
        Key("mqtt.ssl.keyfile", Text(what="a PEM file path"), "", """
Private key of mqtt.ssl.certfile, in PEM. Empty: the key is in the certfile."""),
        Key("mqtt.max_queued_messages", Integer(1), "10000", """
Maximum number of outgoing MQTT messages buffered while the broker is unreachable; charge points stay
connected meanwhile. When the buffer is full, further messages are refused (logged and
counted) rather than let memory grow without bound."""),
    ),
    *_group(
        "Authentication",
        Key("auth.backend", Choice(("file", "http", "none")), "file", """
How the HTTP Basic credentials of charge points are checked.

- file: user names and salted password hashes in auth.file.
- http: ask the service at auth.http.url.
- none: not at all; anyone who reaches the listener may connect. Only for tests and closed
networks."""),
        Key("auth.file", Text(optional=False, what="a file path"), "/etc/ocpp_gw/passwd", """
Credential file of the file backend: one cid:hash line per charge point, managed with
ocpp-gw passwd, optionally followed by :profile (the security profile) and :versions (the OCPP
versions the charge point may use, e.g. CP001:<hash>::ocpp1.6). Re-read on SIGHUP (systemctl
reload ocpp-gw) without dropping connections."""),
        Key("auth.http.url", HttpUrl(), "", """
URL of the http backend. The gateway POSTs a JSON object {cid, username, password, peer};
HTTP 200 lets the charge point in, anything else refuses it. Required with auth.backend =
http; use https unless the service runs on the same host."""),
        Key("auth.http.timeout", Duration(positive=True), "5s", """
How long the gateway waits for the http backend. No answer in time refuses the charge point."""),
        Key("auth.http.cache_ttl", Duration(), "60s", """
How long the http backend's yes is remembered for the same cid, user name and password (held
as a salted hash, never in clear), so that a storm of reconnecting charge points does not
flood the service. Refusals are never remembered. 0 asks the service every time."""),
        Key("auth.username_must_match_cid", Boolean(), "true", """
An authenticated charge point whose user name differs from its id in the URL is refused with
HTTP 403."""),
        Key("auth.throttle.max_failures", Integer(0), "5", """
Failed logins (wrong user name or password) allowed for one charge point id from one peer address (for
IPv6, one /64 network) within auth.throttle.window. The attempt after that, and every attempt of that
charge point from that address for auth.throttle.block, is answered HTTP 429 with Retry-After, whatever
its credentials. Other charge points at the same address (behind one NAT router or proxy) are not
affected. 0 turns throttling off (this key and the next)."""),
        Key("auth.throttle.max_failures_per_address", Integer(0), "100", """
Failed logins allowed from one peer address across all charge point ids within auth.throttle.window;
reaching it blocks every login from that address for auth.throttle.block. It slows a guesser spraying
many ids; it is high enough that a depot of hundreds of charge points behind one address, some with a
stale password, never reaches it (each of those is stopped by auth.throttle.max_failures first:
docs/security.md). 0: no ceiling per address."""),
        Key("auth.throttle.window", Duration(positive=True), "1m", """
The period over which failed logins are counted (per charge point and address, and per address)."""),
        Key("auth.throttle.block", Duration(positive=True), "5m", """
How long a charge point (or, over the ceiling, an address) that made too many failed logins is answered
HTTP 429."""),
    ),
    *_group(
        "Admin API and logs",
        Key("admin.listener", Listen(), "127.0.0.1:33080", """
Address of the admin HTTP API (clients, kick, stats, /metrics, /healthz; ocpp-gw ctl uses it)
and of the operator console, a web page at /. On a loopback address (127.0.0.1, [::1],
localhost) it needs no login; on any other address admin.token_file is required."""),
        Key("admin.token_file", Text(what="a file path"), "", """
File holding the admin token: one line of at least 16 characters (e.g. the output of
openssl rand -hex 32), not readable by every user (else the gateway refuses to start). When
set, every admin request needs it, as an Authorization: Bearer header (ocpp-gw ctl sends it)
or through the console's login form; /healthz stays open. Required when admin.listener is not
a loopback address. Read at start."""),
        Key("admin.history_len", Integer(0, 1000), "20", """
How many of the last messages of each connected charge point the gateway keeps in memory for the
operator console and the admin API (direction, type, action, UniqueId, time, size). 0 keeps none."""),
        Key("admin.history_payloads", Boolean(), "false", """
Keep the payloads of those messages too. They may carry personal data (idTags, meter values),
so this is off unless an operator needs it for troubleshooting."""),
        Key("log.level", Choice(("debug", "info", "warning", "error")), "info", """
Lowest severity of the messages logged. Re-read on SIGHUP."""),
    ),
    *_group(
        "Process",
        Key("process.cpus", CpuChoice(), "one", """
The CPUs the gateway's threads run on. one: a single CPU, the highest-numbered this process may
use. Python runs one thread at a time anyway, and threads that hand each message to each other on
one CPU spend less CPU than threads on two (docs/performance.md); a password hash or a TLS handshake
(work that runs beside Python) still uses every CPU while it lasts. all: wherever the system puts
them. Or CPU numbers and ranges, e.g. 1 or 2-3. Read at start."""),
    ),
)
KEYS_BY_NAME: Mapping[str, Key] = MappingProxyType({key.name: key for key in KEYS})


# --- Settings ---------------------------------------------------------------------------------

class Settings(Mapping[str, Any]):
    """Read-only parsed configuration: ``settings["ocpp.idle_timeout"]`` → 30.0."""

    __slots__ = ("_values", "_overrides", "_channel_keys", "source")

    def __init__(self, values: Mapping[str, Any], overrides: Mapping[str, str],
                 source: str | None, channel_keys: Mapping[str, Any] | None = None) -> None:
        self._values = MappingProxyType(dict(values))
        self._overrides = MappingProxyType(dict(overrides))
        self._channel_keys = MappingProxyType(dict(channel_keys or {}))
        self.source = source

    @classmethod
    def defaults(cls) -> Settings:
        return cls(_default_values(), {}, None)

    @property
    def topic_overrides(self) -> dict[str, str]:
        """Action → upstream topic template, from the ``ocpp.upstream.topic.<Action>`` keys."""
        return dict(self._overrides)

    @property
    def channels(self) -> dict[str, CommandChannel]:
        """The command channels of ``ocpp.dnstream.channels``, from their ``ocpp.dnstream.channel.*`` keys."""
        return _channels(self._values, self._channel_keys)

    def replace(self, **changes: Any) -> Settings:
        return self.with_values(changes)

    def with_values(self, changes: Mapping[str, Any]) -> Settings:
        """A copy with ``changes`` applied and checked.

        A str is parsed as if read from a file; anything else is taken as the parsed value.
        ``ocpp.upstream.topic.<Action>`` keys set overrides (None removes one).
        """
        values, overrides = dict(self._values), dict(self._overrides)
        channel_keys = dict(self._channel_keys)
        for name, value in changes.items():
            try:
                _apply(name, value, values, overrides, channel_keys)
            except ValueError as exc:
                raise ConfigError(str(exc), key=name) from None
        for name, problem, _ in _cross_problems(values, overrides, channel_keys):
            raise ConfigError(problem, key=name)
        return Settings(values, overrides, self.source, channel_keys)

    def public_dict(self) -> dict[str, Any]:
        """Every value (overrides as their keys), secrets masked: safe to log or show."""
        public = {name: SECRET_MASK if KEYS_BY_NAME[name].secret and value else value
                  for name, value in self._values.items()}
        public.update({OVERRIDE_PREFIX + action: topic for action, topic in self._overrides.items()})
        public.update({CHANNEL_PREFIX + name: " ".join(sorted(value)) if isinstance(value, frozenset) else value
                       for name, value in self._channel_keys.items()})
        return public

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return (dict(self._values) == dict(other._values) and dict(self._overrides) == dict(other._overrides)
                and dict(self._channel_keys) == dict(other._channel_keys))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Settings(source={self.source!r}, overrides={sorted(self._overrides)})"


_OVERRIDE_TEMPLATE = TopicTemplate(UPSTREAM)


def _default_values() -> dict[str, Any]:
    return {key.name: key.parse(key.default) for key in KEYS}


def _apply(name: str, value: Any, values: dict[str, Any], overrides: dict[str, str],
           channel_keys: dict[str, Any]) -> None:
    """Set one key from its file text (a str) or its parsed value; ValueError says what is wrong."""
    if name in KEYS_BY_NAME:
        values[name] = _parse(KEYS_BY_NAME[name].parse, value) if isinstance(value, str) else value
    elif name.startswith(CHANNEL_PREFIX):
        _apply_channel_key(name[len(CHANNEL_PREFIX):], value, channel_keys)
    elif not name.startswith(OVERRIDE_PREFIX):
        raise ValueError(_unknown_key(name))
    elif value is None:
        overrides.pop(_override_action(name), None)
    elif not isinstance(value, str):
        raise ValueError("a topic template must be a string")
    else:
        overrides[_override_action(name)] = _parse(_OVERRIDE_TEMPLATE, value)


_CHANNEL_PARSERS: Mapping[str, Parser] = MappingProxyType({
    "topic": TopicTemplate(DNSTREAM),
    "allowed_actions": Names(ACTION_NAME, "OCPP action names (letters and digits, starting with a letter)"),
    "reply_topic": TopicTemplate(UPSTREAM),
})


def _apply_channel_key(rest: str, value: Any, channel_keys: dict[str, Any]) -> None:
    """``<name>.<field>`` of an ``ocpp.dnstream.channel.`` key."""
    channel, _, field = rest.rpartition(".")
    if field not in _CHANNEL_PARSERS or not channel:
        raise ValueError(f"unknown key; a channel has the keys {CHANNEL_PREFIX}<name>."
                         + ", .".join(CHANNEL_FIELDS))
    if not CHANNEL_NAME.fullmatch(channel):
        raise ValueError(f"{channel!r} is not a channel name: letters, digits, _ and -")
    if value is None:
        channel_keys.pop(rest, None)
    elif isinstance(value, str):
        parsed = _parse(_CHANNEL_PARSERS[field], value)
        channel_keys[rest] = frozenset(parsed) if field == "allowed_actions" else parsed
    else:
        channel_keys[rest] = frozenset(value) if field == "allowed_actions" else value


def _channels(values: Mapping[str, Any], channel_keys: Mapping[str, Any]) -> dict[str, CommandChannel]:
    return {name: CommandChannel(name, channel_keys.get(f"{name}.topic", ""),
                                 channel_keys.get(f"{name}.allowed_actions", frozenset()),
                                 channel_keys.get(f"{name}.reply_topic", ""))
            for name in values["ocpp.dnstream.channels"]}


def _channel_problems(values: Mapping[str, Any],
                      channel_keys: Mapping[str, Any]) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    listed = values["ocpp.dnstream.channels"]
    for rest in channel_keys:
        name = rest.rpartition(".")[0]
        if name not in listed:
            yield (CHANNEL_PREFIX + rest, f"channel {name!r} is not listed in ocpp.dnstream.channels",
                   (CHANNEL_PREFIX + rest,))
    for name in listed:
        for field in CHANNEL_FIELDS:
            if f"{name}.{field}" not in channel_keys:
                yield (f"{CHANNEL_PREFIX}{name}.{field}", f"required for channel {name!r}",
                       ("ocpp.dnstream.channels",))
        topic = channel_keys.get(f"{name}.topic")
        if topic is not None and topic == values["ocpp.dnstream.topic"]:
            yield (f"{CHANNEL_PREFIX}{name}.topic", "is the primary ocpp.dnstream.topic: a channel needs a topic "
                   "of its own", (f"{CHANNEL_PREFIX}{name}.topic",))


def _parse(parser: Parser, text: str) -> Any:
    try:
        return parser(_unquote(text))
    except ValueError as exc:
        raise ValueError(f"{exc}; expected {parser.accepts}") from None


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    return text


def _override_action(name: str) -> str:
    action = name[len(OVERRIDE_PREFIX):]
    if "." in action and action.startswith("ocpp"):
        raise ValueError(f"unknown OCPP version {action!r}; the per-version keys are "
                         + ", ".join(f"{OVERRIDE_PREFIX}{version}" for version in VERSIONS))
    if not ACTION_NAME.fullmatch(action):
        raise ValueError(f"{action!r} is not an OCPP action name: letters and digits, starting with a letter")
    if action in CSMS_ACTIONS:
        raise ValueError(f"{action} is a call of the CSMS, never of a charge point: this override would never apply")
    if action not in CP_ACTIONS:
        close = [known for known in CP_ACTIONS
                 if difflib.SequenceMatcher(None, action.lower(), known.lower()).ratio() >= 0.85]
        if close:
            raise ValueError(f"unknown action {action!r}; did you mean {OVERRIDE_PREFIX}{min(close)}?")
    return action


def _unknown_key(name: str) -> str:
    names = {key.name.lower(): key.name for key in KEYS}
    close = difflib.get_close_matches(name.lower(), names, n=1)
    return f"unknown key; did you mean {names[close[0]]}?" if close else "unknown key"


# --- cross-key checks -----------------------------------------------------------------------

_BARE_NEEDS = {
    "call": ("type", "action", "id"),
    "answer": ("type", "id"),
    "dnstream": ("type", "action", "id"),
}


def _cross_problems(values: Mapping[str, Any], overrides: Mapping[str, str],
                    channel_keys: Mapping[str, Any]) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """Yield (key, problem, keys to blame for the line) for every combination that cannot work."""
    yield from _channel_problems(values, channel_keys)
    yield from _bare_mode_problems(values, overrides, channel_keys)
    yield from _version_problems(values)
    yield from _tls_and_auth_problems(values)
    yield from _listener_problems(values)


def _bare_mode_problems(values: Mapping[str, Any], overrides: Mapping[str, str],
                        channel_keys: Mapping[str, Any]) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """With ocpp.payload_format = bare, every topic template must carry type, action and id."""
    if values["ocpp.payload_format"] != "bare":
        return
    templates = [("ocpp.upstream.topic", values["ocpp.upstream.topic"], "call")]
    templates += [(CHANNEL_PREFIX + rest, topic, "dnstream" if rest.endswith(".topic") else "answer")
                  for rest, topic in channel_keys.items() if not rest.endswith(".allowed_actions")]
    templates += [(OVERRIDE_PREFIX + action, topic, "call") for action, topic in overrides.items()]
    templates += [(f"{name}.{version}", values[f"{name}.{version}"], kind)
                  for version in VERSIONS if VERSIONS[version].bare_mode
                  for name, kind in zip(VERSIONED_TOPIC_KEYS, ("call", "answer", "answer"))
                  if values[f"{name}.{version}"] is not None]
    templates += [("ocpp.upstream.reply_topic", values["ocpp.upstream.reply_topic"], "answer"),
                  ("ocpp.upstream.error_topic", values["ocpp.upstream.error_topic"], "answer"),
                  ("ocpp.dnstream.topic", values["ocpp.dnstream.topic"], "dnstream")]
    for name, template, kind in templates:
        present = set(placeholders(template))
        lacking = [f"${{{p}}}" for p in _BARE_NEEDS[kind] if p not in present]
        if lacking:
            needs = ", ".join(f"${{{p}}}" for p in _BARE_NEEDS[kind])
            yield (name, f"with ocpp.payload_format = bare the topic carries the message type, action and id, "
                         f"so this template needs {needs}; it lacks {', '.join(lacking)}",
                   (name, "ocpp.payload_format"))


def _tls_and_auth_problems(values: Mapping[str, Any]) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """TLS, broker TLS, auth and admin keys that need one another."""
    if values["ocpp.listener.wss"] is not None:
        if values["ocpp.listener.ssl.certfile"] is None:
            yield ("ocpp.listener.ssl.certfile", "required when ocpp.listener.wss is on",
                   ("ocpp.listener.wss",))
        if values["ocpp.listener.ssl.verify"] == "verify_peer" and values["ocpp.listener.ssl.cacertfile"] is None:
            yield ("ocpp.listener.ssl.cacertfile", "required when ocpp.listener.ssl.verify is verify_peer",
                   ("ocpp.listener.ssl.verify",))

    if values["ocpp.listener.ssl.crlfile"] is not None and values["ocpp.listener.ssl.verify"] != "verify_peer":
        yield ("ocpp.listener.ssl.crlfile", "has no effect unless ocpp.listener.ssl.verify is verify_peer",
               ("ocpp.listener.ssl.crlfile",))

    if values["mqtt.ssl.cafile"] is None:
        for name in ("mqtt.ssl.certfile", "mqtt.ssl.keyfile"):
            if values[name] is not None:
                yield (name, "needs TLS to the broker: set mqtt.ssl.cafile too", (name,))
    if values["mqtt.ssl.keyfile"] is not None and values["mqtt.ssl.certfile"] is None:
        yield ("mqtt.ssl.keyfile", "set without mqtt.ssl.certfile", ("mqtt.ssl.keyfile",))

    if values["auth.backend"] == "http" and values["auth.http.url"] is None:
        yield ("auth.http.url", "required when auth.backend is http", ("auth.backend",))

    if values["admin.listener"] is not None and values["admin.token_file"] is None \
            and not is_loopback(values["admin.listener"][0]):
        yield ("admin.token_file", "required when admin.listener is not a loopback address",
               ("admin.listener",))


def _listener_problems(values: Mapping[str, Any]) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    """Two listeners on one port."""
    listeners = [(name, values[name]) for name in ("ocpp.listener.ws", "ocpp.listener.wss", "admin.listener")
                 if values[name] is not None]
    for index, (name, (host, port)) in enumerate(listeners):
        for other, (other_host, other_port) in listeners[:index]:
            if port and port == other_port and (host == other_host or ANY_HOST in (host, other_host)
                                                 or "::" in (host, other_host)):
                yield (name, f"port {port} is already taken by {other}", (name,))


def _version_problems(values: Mapping[str, Any]) -> Iterator[tuple[str, str, tuple[str, ...]]]:
    served = values["ocpp.versions"]
    default = values["ocpp.default_version"]
    if default not in served:
        yield ("ocpp.default_version", f"{default} is not served: ocpp.versions is {' '.join(served)}",
               ("ocpp.default_version", "ocpp.versions"))
    if values["ocpp.payload_format"] == "bare":
        bare = [name for name in served if VERSIONS[name].bare_mode]
        if not bare:
            yield ("ocpp.versions", "with ocpp.payload_format = bare only ocpp1.6 can be served, "
                                    "and ocpp.versions does not name it", ("ocpp.versions", "ocpp.payload_format"))
        elif not VERSIONS[default].bare_mode:
            yield ("ocpp.default_version", f"with ocpp.payload_format = bare only {', '.join(bare)} "
                                           "can be served", ("ocpp.default_version", "ocpp.payload_format"))


# --- loading a file ---------------------------------------------------------------------------

def load(path: str | os.PathLike[str]) -> Settings:
    """Read and check a configuration file; ConfigError names the file, line and key at fault."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8-sig") as stream:
            text = stream.read()
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", source=source) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read: not UTF-8 text (byte {exc.start})", source=source) from None
    return loads(text, source)


def loads(text: str, source: str = "<string>") -> Settings:
    """Like ``load`` for text already read; ``source`` names it in errors."""
    lines = text.splitlines()
    first_lines, cut_short = _scan(lines)
    try:
        parsed = ConfigObj(lines, interpolation=False, list_values=False, file_error=True)
    except ConfigObjError as exc:
        raise _syntax_error(exc, source, first_lines) from None

    errors: list[ConfigError] = []
    entries = [(first_lines.get(f"[{name}]", 0), f"[{name}]", None) for name in parsed.sections]
    entries += [(first_lines.get(name, 0), name, parsed[name]) for name in parsed.scalars]
    values, overrides, channel_keys = _default_values(), {}, {}
    for _, name, raw in sorted(entries, key=lambda entry: entry[0]):
        problem = _entry_problem(name, raw, cut_short)
        if problem is None:
            try:
                _apply(name, raw, values, overrides, channel_keys)
            except ValueError as exc:
                problem = str(exc)
        if problem is not None:
            errors.append(ConfigError(problem, source=source, line=first_lines.get(name), key=name))
    if not errors:  # combinations are judged once every value is right
        for name, problem, blamed in _cross_problems(values, overrides, channel_keys):
            line = next((first_lines[b] for b in blamed if b in first_lines), None)
            errors.append(ConfigError(problem, source=source, line=line, key=name))
    if errors:
        raise ConfigError.of_all(errors)
    return Settings(values, overrides, source, channel_keys)


def _entry_problem(name: str, raw: str | None, cut_short: set[str]) -> str | None:
    """What is wrong with one entry's form (before its value is parsed), or None."""
    if raw is None:
        return "sections are not supported: write flat key = value lines"
    if "\n" in raw:
        return "a value must fit on one line"
    if name in cut_short:
        return ("the # right after the value starts a comment and cuts the value short; "
                "quote the whole value if the # belongs to it")
    return None


_SECTION_LINE = re.compile(r"\[+\s*([^\]]*?)\s*\]")


def _scan(lines: list[str]) -> tuple[dict[str, int], set[str]]:
    """What configobj does not tell: the 1-based line each key (or ``[section]``) first appears
    on, and the keys whose unquoted value has a # glued to it (``pa#ss``), which configobj
    silently takes for the start of a comment."""
    first_lines: dict[str, int] = {}
    cut_short: set[str] = set()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        section = _SECTION_LINE.match(stripped)
        if section:
            first_lines.setdefault(f"[{section[1]}]", number)
        elif stripped and not stripped.startswith("#") and "=" in stripped:
            name, value = (part.strip() for part in stripped.split("=", 1))
            name = _unquote(name)
            first_lines.setdefault(name, number)
            kept = re.split(r"\s#", value, maxsplit=1)[0]   # what configobj keeps of an unquoted value
            if value[:1] not in ("'", '"') and "#" in kept:
                cut_short.add(name)
    return first_lines, cut_short


def _syntax_error(exc: ConfigObjError, source: str, first_lines: Mapping[str, int]) -> ConfigError:
    errors = getattr(exc, "errors", None) or [exc]
    first = min(errors, key=lambda error: getattr(error, "line_number", 0) or 0)
    line_number = getattr(first, "line_number", None)
    text = (getattr(first, "line", "") or "").strip()
    if text.startswith("["):
        return ConfigError("sections are not supported: write flat key = value lines",
                           source=source, line=line_number, key=text)
    if "=" not in text:
        return ConfigError("not a key = value line", source=source, line=line_number, key=text[:40] or None)
    name = _unquote(text.split("=", 1)[0].strip())
    if isinstance(first, DuplicateError):
        return ConfigError(f"duplicate key, already set on line {first_lines.get(name)}",
                           source=source, line=line_number, key=name)
    return ConfigError("cannot parse the value; check its quotes", source=source, line=line_number, key=name)
