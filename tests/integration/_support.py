"""Helpers for the integration tests: raw charge point connections, raw HTTP upgrades, topics, markers.

Every wait here has a deadline and ends on something observable (a frame, a close, a log line, an MQTT
message); nothing sleeps to let things settle.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import paho.mqtt.client as paho
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tools.harness import json_matches

OCPP16 = "ocpp1.6"
_markers = itertools.count(1)

# Settings every integration gateway starts with (a test's overrides win). A mountpoint of its own keeps
# each gateway's topics, retained events included, apart from every other test's on the shared broker.
# The admin API is not what these tests are about: off, so they depend on nothing it needs. Every
# test connects from 127.0.0.1 and many fail to log in on purpose: the failed-login throttle is off.
FAST_SETTINGS = {
    "ocpp.awaiting_timeout": "1s",
    "ocpp.idle_timeout": "5s",
    "ocpp.listener.handshake_timeout": "5s",
    "admin.listener": "off",
    "auth.throttle.max_failures": 0,
}


# The EMQX 4.x topic layout in bare payload mode (issue 9), for tests that run a gateway that way.
EMQX4 = {
    "ocpp.payload_format": "bare",
    "ocpp.upstream.topic": "${clientid}/up/${type}/${action}/${id}",
    "ocpp.upstream.reply_topic": "${clientid}/up/${type}/${action}/${id}",
    "ocpp.upstream.error_topic": "${clientid}/up/${type}/${action}/${id}",
    "ocpp.dnstream.topic": "${clientid}/dn/${type}/${action}/${id}",
}


def unique_mountpoint() -> str:
    return f"it-{uuid.uuid4().hex[:10]}/"


def start_gateway(gateway_factory, overrides: dict | None = None, **options):
    """A running gateway with FAST_SETTINGS and a mountpoint of its own, then `overrides`."""
    settings = {**FAST_SETTINGS, "ocpp.mountpoint": unique_mountpoint(), **(overrides or {})}
    return gateway_factory(settings, **options)


# -- topics -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Topics:
    """The default topic templates of SPEC §6, rendered for one gateway and one cid."""

    mountpoint: str
    cid: str

    @property
    def call(self) -> str:
        return f"{self.mountpoint}cp/{self.cid}"

    @property
    def reply(self) -> str:
        return f"{self.mountpoint}cp/{self.cid}/Reply"

    error = reply

    @property
    def dnstream(self) -> str:
        return f"{self.mountpoint}cs/{self.cid}"

    @property
    def event(self) -> str:
        return f"{self.mountpoint}events/{self.cid}"

    @property
    def upstream(self) -> str:
        """Filter for everything the gateway publishes about this cid's OCPP traffic."""
        return f"{self.mountpoint}cp/{self.cid}/#"


def topics(gateway, cid: str) -> Topics:
    return Topics(gateway.mountpoint, cid)


def status_topic(gateway) -> str:
    return f"{gateway.mountpoint}gateway/{gateway.client_id}/status"


# -- charge points ------------------------------------------------------------------------------

def connect_cp(gateway, cid: str, *, password: str | None = None, username: str | None = None,
               authorization: str | None = None, subprotocols: Sequence[str] | None = (OCPP16,),
               timeout: float = 5.0) -> ClientConnection:
    """A raw OCPP-J client for `cid` (use as a context manager). It never pings and never compresses,
    so every byte on the wire is one the test sent; `authorization=""` sends no Authorization header."""
    if authorization is None:
        authorization = gateway.auth_header(username or cid, password)
    headers = {"Authorization": authorization} if authorization else {}
    offered = None if subprotocols is None else list(subprotocols)
    return connect(gateway.ws_url(cid), subprotocols=offered, additional_headers=headers, compression=None,
                   proxy=None, open_timeout=timeout, ping_interval=None, close_timeout=2, max_size=None)


def recv_text(cp: ClientConnection, timeout: float = 5.0) -> str:
    """The next text frame; fails on a timeout, a binary frame or a close."""
    try:
        data = cp.recv(timeout)
    except TimeoutError:
        raise AssertionError(f"no frame from the gateway within {timeout}s") from None
    except ConnectionClosed as closed:
        raise AssertionError(f"gateway closed the connection instead: {closed}") from None
    assert isinstance(data, str), f"expected a text frame, got {data!r}"
    return data


def recv_frame(cp: ClientConnection, timeout: float = 5.0) -> list:
    """The next text frame, decoded."""
    return json.loads(recv_text(cp, timeout))


@dataclass(frozen=True)
class Closed:
    code: int | None
    reason: str
    elapsed: float
    frames: list = field(default_factory=list)


def wait_closed(cp: ClientConnection, timeout: float = 5.0, *, allow_frames: bool = False) -> Closed:
    """Wait for the gateway to close; the close code and reason it sent. Frames that arrive first fail
    the test unless `allow_frames` (then they are returned, decoded)."""
    started = time.monotonic()
    deadline = started + timeout
    frames = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"the gateway did not close the connection within {timeout}s")
        try:
            data = cp.recv(remaining)
        except TimeoutError:
            continue
        except ConnectionClosed as closed:
            received = closed.rcvd
            return Closed(received.code if received else None, received.reason if received else "",
                          time.monotonic() - started, frames)
        if not allow_frames:
            raise AssertionError(f"expected a close, got a frame: {data!r}")
        frames.append(json.loads(data) if isinstance(data, str) else data)


def next_marker(prefix: str = "mark") -> str:
    return f"{prefix}-{next(_markers)}"


def answered_marker(cp: ClientConnection, timeout: float = 5.0) -> list:
    """Send a frame the gateway must answer on its own (broken JSON with a readable id) and return the
    frames that arrived before that answer, decoded. `[]` proves the gateway sent nothing until now.
    The marker counts as a bad frame (ocpp.max_bad_frames)."""
    marker = next_marker()
    cp.send(f'[2,"{marker}","Heartbeat",')
    before = []
    deadline = time.monotonic() + timeout
    while True:
        frame = recv_frame(cp, max(0.01, deadline - time.monotonic()))
        if frame[:3] == [4, marker, "FormationViolation"]:
            return before
        before.append(frame)


def logged_marker(cp: ClientConnection, gateway, since: int = 0, timeout: float = 5.0) -> str:
    """Send a well-formed reply that matches nothing and wait for the gateway to log dropping it: every
    frame sent before has then been handled. Resets the bad-frame count; sends nothing to MQTT."""
    marker = next_marker()
    cp.send(f'[3,"{marker}",{{}}]')
    return gateway.wait_for_log(rf"{marker} dropped CP reply", timeout, since)


def csms_marker(probe, gateway, cid: str, timeout: float = 5.0) -> str:
    """Publish, on the cid's downstream topic, a CSMS reply that matches nothing, and wait for the pipe
    to log dropping it: every downstream message published before it has then reached the pipe."""
    marker = next_marker("csms-mark")
    since = gateway.mark()
    probe.publish(topics(gateway, cid).dnstream, {"MessageTypeId": 3, "UniqueId": marker, "Payload": {}})
    return gateway.wait_for_log(rf"\[{cid}\] {marker} dropped CSMS reply", timeout, since)


# -- raw HTTP -----------------------------------------------------------------------------------

def websocket_key() -> str:
    return base64.b64encode(os.urandom(16)).decode()


def upgrade_request(target: str, headers: dict[str, str | None] | None = None) -> bytes:
    """A valid WebSocket upgrade request for `target`; `headers` adds or replaces headers, None drops one."""
    fields: dict[str, str | None] = {
        "Host": "127.0.0.1",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": websocket_key(),
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": OCPP16,
    }
    for name, value in (headers or {}).items():
        fields[name] = value
    lines = [f"GET {target} HTTP/1.1"] + [f"{name}: {value}" for name, value in fields.items()
                                           if value is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    closed: bool  # the gateway closed the connection after the response


def read_http_response(sock: socket.socket, timeout: float = 5.0) -> HttpResponse:
    """Read one HTTP response head, its Content-Length body, and whether the peer then closes."""
    deadline = time.monotonic() + timeout
    buf = b""

    def more() -> bytes:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            return sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"incomplete HTTP response within {timeout}s: {buf!r}") from None

    while b"\r\n\r\n" not in buf:
        chunk = more()
        if not chunk:
            raise AssertionError(f"connection closed before a complete response: {buf!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, status, *_ = status_line.split(" ", 2)
    assert version == "HTTP/1.1", status_line
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = more()
        if not chunk:
            break
        rest += chunk
    body, extra = rest[:length], rest[length:]
    closed = False
    if int(status) != 101:
        assert not extra, f"bytes after the response body: {extra!r}"
        try:
            closed = more() == b""
        except ConnectionResetError:
            closed = True
    return HttpResponse(int(status), headers, body, closed)


def http_exchange(gateway, request: bytes, timeout: float = 5.0) -> HttpResponse:
    """Send raw request bytes to the gateway's ws listener and read the response."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as sock:
        sock.sendall(request)
        return read_http_response(sock, timeout)


def upgrade(gateway, cid_segment: str, *, path: str | None = None, cid: str | None = None,
            headers: dict[str, str | None] | None = None) -> HttpResponse:
    """A raw upgrade for `<path>/<cid_segment>` (sent as is), with Basic credentials of `cid` (default:
    the segment) unless `headers` says otherwise."""
    base = gateway.path if path is None else path
    credentials = {"Authorization": gateway.auth_header(cid or cid_segment)}
    return http_exchange(gateway, upgrade_request(f"{base.rstrip('/')}/{cid_segment}",
                                                  {**credentials, **(headers or {})}))


# -- MQTT ---------------------------------------------------------------------------------------

def upstream_of(messages, gateway, cid: str) -> list:
    """The messages published on the cid's upstream topics (calls, replies, errors)."""
    wanted = topics(gateway, cid).upstream
    return [message for message in messages if paho.topic_matches_sub(wanted, message.topic)]


def published_before_marker(cp: ClientConnection, probe, gateway, cid: str, timeout: float = 5.0) -> list:
    """Send a Heartbeat call and wait for it upstream; return what else the cid had published upstream and
    the test had not claimed. `[]` proves nothing else went up (the gateway publishes in order). Leaves the
    pipe waiting for the CSMS's answer to the marker."""
    marker = next_marker("mqtt-mark")
    cp.send(f'[2,"{marker}","Heartbeat",{{}}]')
    probe.expect(topics(gateway, cid).call, json_matches({"UniqueId": marker}), timeout)
    return upstream_of(probe.drain(), gateway, cid)


def connected_event(probe, gateway, cid: str, timeout: float = 5.0) -> dict:
    """Wait for the cid's `connected` event (the probe must have subscribed before the CP connected).
    The gateway publishes it after subscribing to the cid's downstream topic, on the same MQTT
    connection: from then on, what the test publishes there reaches the CP."""
    return probe.expect_json(topics(gateway, cid).event, {"event": "connected"}, timeout)
