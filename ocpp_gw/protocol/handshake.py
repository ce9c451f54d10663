"""The HTTP upgrade request of SPEC §3: parsing and decisions only, no sockets.

`parse_request` runs the checks below in this order; the first failure is the answer:

1. size and framing: a header block over MAX_REQUEST_BYTES → 431 (the caller caps its reads and sends
   `too_large()` itself; parse_request re-checks); no blank line ending the header block → 400.
2. request line: exactly `GET <target> HTTP/1.1` with an origin-form target (`/path[?query]`) → else 400.
   A raw `#`, a non-ASCII byte or a character outside RFC 3986 in the path is a 400 here, before the path check.
3. header syntax (latin-1): obs-fold, a line without a colon, an invalid name, a control character in a value,
   a missing or repeated Host → 400 (wsproto's handshake insisted on Host; we keep that rule).
4. path: `<path_prefix>/<one segment>`, query ignored → else 404 "unknown path".
5. cid: `check_cid` on the segment → 400.
6. WebSocket headers: Upgrade lists `websocket`, Connection lists `upgrade`, Sec-WebSocket-Version present,
   Sec-WebSocket-Key is base64 of 16 bytes → else 400. A version other than 13 → 426 with
   `Sec-WebSocket-Version: 13`, as RFC 6455 §4.2.2 asks, so a client can tell what to retry with.
7. `authorize` (separate: it calls the auth backend) → 401 / 403 / 429 / 503; see its docstring.
8. `negotiate` (separate: it needs the charge point's own restriction from the credentials) picks the OCPP
   version (SPEC §9). When nothing offered can be served it is no HTTP refusal: OCPP-J asks the server to
   complete the upgrade without Sec-WebSocket-Protocol and to close the WebSocket at once (code 1002, with the
   reason `negotiate` gives).

An accepted request is answered by `switching_protocols` with what `Upgrade.of` keeps of it (the key, the
extensions offered, the bytes behind it): the 101 wsproto would send, without its parsing the request again.

Reasons are one line for the operator and the CP; they never contain a password or an Authorization header.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import math
import re
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Protocol
from urllib.parse import unquote_to_bytes

from .identity import cid_problem
from .text import one_line
from .versions import V16, V21, V201, VERSIONS, OcppVersion

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 8192

_HEADER_END = b"\r\n\r\n"
# RFC 3986 pchar plus "/" (path) and "%" (checked per segment later).
_PATH = re.compile(r"/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")
# The query is ignored, so anything visible but "#" is let through.
_QUERY = re.compile(r"[\x21\x22\x24-\x7e]*")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE_CHARACTER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_PERCENT_ENCODED = re.compile(r"(?:[^%]|%[0-9A-Fa-f]{2})*")


class AuthBackend(Protocol):
    """What `authorize` needs from an auth backend (see ocpp_gw.auth).

    `authenticate` may raise AuthUnavailable (→ 503) or Throttled (→ 429). A backend that knows each charge
    point's OCPP security profile has `profile(username) -> int | None` too, and one with a register of charge
    points `knows(cid) -> bool`.
    """

    requires_credentials: bool

    def authenticate(self, username: str, password: str, *, cid: str = "", peer: str = "") -> bool: ...


class AuthUnavailable(Exception):
    """The backend could not give an answer (down, timed out, answered nonsense); the message says why."""


class Throttled(Exception):
    """Too many failed logins from this peer; try again in `retry_after` seconds."""

    def __init__(self, retry_after: float):
        super().__init__(f"retry after {retry_after:g}s")
        self.retry_after = retry_after


@dataclass(frozen=True)
class Transport:
    """How the charge point reached us: over TLS or not, and whether TLS verified a client certificate that
    names the cid (checked by ocpp_gw.tls.certificate_refusal before `authorize` is asked)."""

    tls: bool = False
    client_certificate: bool = False


PLAIN = Transport()


@dataclass
class Refusal:
    """An HTTP answer that refuses the upgrade; the connection is closed after it."""

    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        body = (one_line(self.reason) + "\n").encode("utf-8")
        try:
            phrase = HTTPStatus(self.status).phrase
        except ValueError:
            phrase = "Error"
        lines = [
            f"HTTP/1.1 {self.status} {phrase}",
            "Content-Type: text/plain; charset=utf-8",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        lines += [f"{one_line(name)}: {one_line(value)}" for name, value in self.headers.items()]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")
        return head + body


@dataclass
class UpgradeRequest:
    """A request that passed checks 1–7; `authorize` is still to be asked."""

    method: str
    target: str
    path: str
    cid: str
    headers: dict[str, str] = field(repr=False)  # lower-case name → value; holds Authorization
    subprotocols: list[str] | None  # None: no Sec-WebSocket-Protocol header at all
    username: str | None  # None: no Authorization header, or a malformed one
    password: str | None = field(repr=False)
    key: str

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


@dataclass(frozen=True)
class Upgrade:
    """What completing an accepted upgrade needs: the CP's key, the extensions it offered (each offer with
    its parameters), and any bytes that came right behind its request (frames sent before our answer)."""

    key: str
    extension_offers: tuple[str, ...] = ()
    early_data: bytes = b""

    @classmethod
    def of(cls, request: UpgradeRequest, early_data: bytes = b"") -> "Upgrade":
        offers = request.header("sec-websocket-extensions") or ""
        return cls(request.key, tuple(filter(None, (offer.strip() for offer in offers.split(",")))), early_data)


WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


def accept_token(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + WEBSOCKET_GUID).encode("ascii")).digest()).decode("ascii")


def switching_protocols(key: str, subprotocol: str | None, extensions: str | None = None) -> bytes:
    """The 101 answer that completes an upgrade, with the subprotocol echoed (None: no header, OCPP-J §3) and
    the extensions agreed (None: none); the same bytes wsproto sends for it."""
    lines = ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Accept: {accept_token(key)}"]
    if subprotocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    if extensions:
        lines.append(f"Sec-WebSocket-Extensions: {extensions}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def too_large() -> Refusal:
    return Refusal(431, f"request header larger than {MAX_REQUEST_BYTES} bytes")


def find_header_end(buf: bytes) -> int:
    """Index just past the blank line ending the header block, or -1 while it has not arrived."""
    index = buf.find(_HEADER_END)
    return -1 if index < 0 else index + len(_HEADER_END)


def parse_request(raw: bytes, *, path_prefix: str) -> UpgradeRequest | Refusal:
    """Checks 1–6 of the module docstring on the bytes read so far (anything after the header block is ignored)."""
    end = find_header_end(raw)
    if end < 0:
        return too_large() if len(raw) > MAX_REQUEST_BYTES else Refusal(400, "incomplete request header")
    if end > MAX_REQUEST_BYTES:
        return too_large()
    request_line, *header_lines = raw[: end - len(_HEADER_END)].decode("latin-1").split("\r\n")

    target = _parse_request_line(request_line)
    if isinstance(target, Refusal):
        return target
    headers = _parse_headers(header_lines)
    if isinstance(headers, Refusal):
        return headers

    path = target.partition("?")[0]
    segment = _cid_segment(path, path_prefix)
    if isinstance(segment, Refusal):
        return segment
    cid = check_cid(segment)
    if isinstance(cid, Refusal):
        return cid

    key = _check_websocket_headers(headers)
    if isinstance(key, Refusal):
        return key

    offered = _parse_subprotocols(headers.get("sec-websocket-protocol"))
    authorization = headers.get("authorization")
    credentials = parse_basic_auth(authorization) if authorization is not None else None
    username, password = credentials if credentials else (None, None)
    return UpgradeRequest(
        method="GET", target=target, path=path, cid=cid, headers=headers, subprotocols=offered,
        username=username, password=password, key=key,
    )


@dataclass(frozen=True)
class VersionPolicy:
    """Which OCPP versions the gateway serves (SPEC §9; built by ``ocpp_gw.config``)."""

    served: tuple[OcppVersion, ...] = (V21, V201, V16)  # in the gateway's order of preference
    default: OcppVersion = V16       # for a CP that sends no Sec-WebSocket-Protocol header
    fail_if_no_subprotocol: bool = True
    why_not_served: str = ""         # said to a CP offering a known version that is not served


@dataclass(frozen=True)
class Negotiated:
    """The version a connection speaks; `echo` is the Sec-WebSocket-Protocol to answer (None: none)."""

    version: OcppVersion
    echo: str | None


@dataclass(frozen=True)
class NoVersion:
    """Nothing offered can be served: upgrade without a subprotocol, then close 1002 with `reason`."""

    reason: str


def negotiate(offered: list[str] | None, policy: VersionPolicy,
              allowed: frozenset[str] | None = None) -> Negotiated | NoVersion:
    """The first version of the gateway's preference list that the CP offers and may use.

    `allowed` (from the credentials file) restricts the CP to some versions. Names are case-sensitive
    (RFC 6455 §4.1). No header at all: the default version when `fail_if_no_subprotocol` is off.
    Reasons fit a WebSocket close frame (123 bytes).
    """
    served = [v for v in policy.served if allowed is None or v.subprotocol in allowed]
    names = " ".join(v.subprotocol for v in served) or "nothing"
    if offered is None:
        if policy.fail_if_no_subprotocol:
            return NoVersion(f"no Sec-WebSocket-Protocol; serving {names}")
        if policy.default not in served:
            return NoVersion(f"no Sec-WebSocket-Protocol; {policy.default.subprotocol} not allowed, serving {names}")
        return Negotiated(policy.default, None)
    for version in served:
        if version.subprotocol in offered:
            return Negotiated(version, version.subprotocol)
    known = [name for name in offered if name in VERSIONS]
    if known and policy.why_not_served and not any(VERSIONS[n] in policy.served for n in known):
        return NoVersion(f"{' '.join(known)} not served {policy.why_not_served}; serving {names}")
    if known and allowed is not None:
        return NoVersion(f"this charge point may use only {names}")
    return NoVersion(f"no offered subprotocol is served; serving {names}")


def parse_basic_auth(value: str) -> tuple[str, str] | None:
    """(username, password) from an `Authorization: Basic …` value, or None when it is anything else.

    Bytes that are not UTF-8 survive as surrogate escapes, so a binary password still matches its hash.
    """
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token, validate=True)
    except (binascii.Error, ValueError):
        return None
    username, colon, password = decoded.decode("utf-8", "surrogateescape").partition(":")
    if not colon or not username:
        return None
    return username, password


def check_cid(raw_segment: str) -> str | Refusal:
    """Percent-decode a path segment (UTF-8) into a cid, or a 400."""
    if not _PERCENT_ENCODED.fullmatch(raw_segment):
        return Refusal(400, "bad percent-encoding in cid")
    try:
        cid = unquote_to_bytes(raw_segment).decode("utf-8")
    except UnicodeDecodeError:
        return Refusal(400, "cid is not valid UTF-8")
    problem = cid_problem(cid)
    return Refusal(400, problem) if problem else cid


def authorize(req: UpgradeRequest, backend: AuthBackend, *, must_match_cid: bool, peer: str = "",
              transport: Transport = PLAIN) -> Refusal | None:
    """None to let the CP in; else a Refusal, the first of:

    - a verified client certificate naming the cid (security profile 3) lets the CP in, when the backend has a
      register (`knows`, the file backend) only if the cid is in it (else 403); the Authorization header is then
      not looked at;
    - a backend without `requires_credentials` (auth.backend = none) lets everyone in and ignores names;
    - 401: no, malformed or wrong credentials (never saying whether the user or the password was wrong);
      429: too many failed logins from this address; 503: the backend cannot answer;
    - 403: name ≠ cid. Credentials are checked first, so a 403 is only ever said to someone who knows a password;
    - 403: the user is registered for security profile 3 (needs a client certificate) or for profile 2 and came
      over plain ws (no downgrade: the password has crossed the network in clear, so it is refused even though
      it was right).
    """
    if transport.client_certificate:
        knows = getattr(backend, "knows", None)
        if knows is not None and not knows(req.cid):
            return Refusal(403, "charge point is not registered")
        return None
    if not getattr(backend, "requires_credentials", True):
        return None
    if req.username is None:
        if "authorization" in req.headers:
            return _unauthorized("malformed Authorization header; HTTP Basic credentials expected")
        return _unauthorized("HTTP Basic credentials required")
    try:
        allowed = backend.authenticate(req.username, req.password or "", cid=req.cid, peer=peer)
    except Throttled as throttled:
        return Refusal(429, "too many failed logins; try again later",
                       {"Retry-After": str(max(1, math.ceil(throttled.retry_after)))})
    except AuthUnavailable as error:
        log.warning("auth backend unavailable, cid %r refused: %s", req.cid, error)
        return Refusal(503, "authentication backend unavailable")
    except Exception:
        log.exception("auth backend failed for cid %r", req.cid)
        return Refusal(503, "authentication backend unavailable")
    if not allowed:
        return _unauthorized("invalid username or password")
    if must_match_cid and req.username != req.cid:
        return Refusal(403, "username does not match the charge point id")
    profile_of = getattr(backend, "profile", None)
    profile = profile_of(req.username) if profile_of is not None else None
    if profile == 3:
        return Refusal(403, "security profile 3: a TLS client certificate is required")
    if profile == 2 and not transport.tls:
        return Refusal(403, "security profile 2: connect over wss")
    return None


def _unauthorized(reason: str) -> Refusal:
    return Refusal(401, reason, {"WWW-Authenticate": 'Basic realm="ocpp"'})


def _parse_request_line(line: str) -> str | Refusal:
    parts = line.split(" ")
    if len(parts) != 3:
        return Refusal(400, "malformed request line")
    method, target, version = parts
    if method != "GET":
        return Refusal(400, "method must be GET")
    if version != "HTTP/1.1":
        return Refusal(400, "HTTP/1.1 required")
    path, question_mark, query = target.partition("?")
    if not _PATH.fullmatch(path) or (question_mark and not _QUERY.fullmatch(query)):
        return Refusal(400, "invalid request target")
    return target


def _parse_headers(lines: list[str]) -> dict[str, str] | Refusal:
    headers: dict[str, str] = {}
    host_count = 0
    for line in lines:
        if line[:1] in (" ", "\t"):
            return Refusal(400, "obsolete line folding in header")
        name, colon, value = line.partition(":")
        if not colon:
            return Refusal(400, "header line without a colon")
        if not _TOKEN.fullmatch(name):
            return Refusal(400, "invalid header name")
        value = value.strip(" \t")
        if _BAD_VALUE_CHARACTER.search(value):
            return Refusal(400, f"control character in header {name}")
        name = name.lower()
        host_count += name == "host"
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    if host_count != 1:
        return Refusal(400, "exactly one Host header required")
    return headers


def _cid_segment(path: str, path_prefix: str) -> str | Refusal:
    prefix = path_prefix.strip("/")
    expected = f"/{prefix}/" if prefix else "/"
    segment = path[len(expected):]
    if not path.startswith(expected) or "/" in segment:
        return Refusal(404, f"unknown path; expected {expected}<cid>")
    return segment


def _tokens(value: str | None) -> list[str]:
    return [token.strip(" \t").lower() for token in (value or "").split(",")]


def _check_websocket_headers(headers: dict[str, str]) -> str | Refusal:
    if "websocket" not in _tokens(headers.get("upgrade")):
        return Refusal(400, "Upgrade: websocket required")
    if "upgrade" not in _tokens(headers.get("connection")):
        return Refusal(400, "Connection: Upgrade required")
    version = headers.get("sec-websocket-version")
    if version is None:
        return Refusal(400, "Sec-WebSocket-Version required")
    if version != "13":
        return Refusal(426, "unsupported WebSocket version; 13 required", {"Sec-WebSocket-Version": "13"})
    key = headers.get("sec-websocket-key", "")
    try:
        if len(base64.b64decode(key, validate=True)) == 16:
            return key
    except (binascii.Error, ValueError):
        pass
    return Refusal(400, "invalid or missing Sec-WebSocket-Key")


def _parse_subprotocols(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [name for name in (part.strip(" \t") for part in value.split(",")) if name]
