"""SPEC §3 through the real listener: every refusal with its status and one-line reason, deadlines, limits."""

from __future__ import annotations

import base64
import hashlib
import socket
import time

import pytest
from websockets.exceptions import InvalidStatus

from tests.integration._support import (
    Closed,
    HttpResponse,
    connect_cp,
    http_exchange,
    logged_marker,
    recv_frame,
    topics,
    upgrade,
    upgrade_request,
    wait_closed,
)

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@pytest.fixture
def gw(shared_gw):
    """Most tests here only get refused, or use a cid no other test here uses: one gateway serves them all."""
    return shared_gw


def assert_refused(response: HttpResponse, status: int, reason: str) -> None:
    """The refusal of SPEC §3: the status, a one-line plain-text reason, and the connection closed."""
    assert (response.status, response.body) == (status, (reason + "\n").encode())
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == str(len(response.body))
    assert response.headers["connection"] == "close"
    assert "upgrade" not in response.headers and "sec-websocket-accept" not in response.headers
    assert response.closed


# -- 404 and 400: path and cid ------------------------------------------------------------------

@pytest.mark.parametrize("target", ["/other/CP001", "/CP001", "/ocppx/CP001", "/ocpp/CP001/extra", "/ocpp"])
def test_unknown_path_is_404(gw, target):
    response = http_exchange(gw, upgrade_request(target, {"Authorization": gw.auth_header("CP001")}))
    assert_refused(response, 404, "unknown path; expected /ocpp/<cid>")


@pytest.mark.parametrize("segment, reason", [
    ("CP+1", "cid must not contain '+': it is the MQTT single-level wildcard and the cid is a topic level"),
    ("%2B", "cid must not contain '+': it is the MQTT single-level wildcard and the cid is a topic level"),
    ("%23", "cid must not contain '#': it is the MQTT multi-level wildcard and the cid is a topic level"),
    ("a%2Fb", "cid must not contain '/': it separates MQTT topic levels and the cid is one level"),
    ("a%2fb", "cid must not contain '/': it separates MQTT topic levels and the cid is one level"),
    ("CP%3A1", "cid must not contain ':': it ends the user name in HTTP Basic authentication"),
    ("CP:1", "cid must not contain ':': it ends the user name in HTTP Basic authentication"),
    ("C" * 49, "cid is 49 characters long, at most 48 are allowed"),
    ("CP%01", "cid must not contain control characters"),
    ("CP%0A1", "cid must not contain control characters"),
    ("CP%7F", "cid must not contain control characters"),
    ("CP%C2%85", "cid must not contain control characters"),
    ("CP%zz", "bad percent-encoding in cid"),
    ("CP%FF", "cid is not valid UTF-8"),
    ("", "cid is empty"),
])
def test_bad_cid_is_400(gw, segment, reason):
    assert_refused(upgrade(gw, segment), 400, reason)


def test_raw_hash_in_the_path_is_400(gw):
    # A client library would cut "#1" off as a fragment; a raw request can still carry it.
    assert_refused(upgrade(gw, "CP#1"), 400, "invalid request target")


def test_cid_of_48_characters_passes_the_cid_check(gw):
    # No such credentials: the answer is 401, so the cid itself was accepted.
    assert upgrade(gw, "C" * 48).status == 401


def test_bad_cid_is_refused_before_credentials_are_asked_for(gw):
    assert_refused(upgrade(gw, "CP+1", headers={"Authorization": None}), 400, "cid must not contain '+': it is the MQTT single-level wildcard and the cid is a topic level")


# -- subprotocol (SPEC §9): none served → 101 without Sec-WebSocket-Protocol, then close 1002 --------

def closed_after_upgrade(gw, cid: str, offered) -> Closed:
    """Connect offering `offered` (a list, or None for no header); the upgrade must complete without a
    subprotocol and the gateway must close at once."""
    with connect_cp(gw, cid, subprotocols=offered) as cp:
        assert cp.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in cp.response.headers
        return wait_closed(cp)


@pytest.mark.parametrize("offered, reason", [
    (None, "no Sec-WebSocket-Protocol; serving ocpp2.1 ocpp2.0.1 ocpp1.6"),
    (["ocpp1.5", "ocpp2.0"], "no offered subprotocol is served; serving ocpp2.1 ocpp2.0.1 ocpp1.6"),
    (["OCPP1.6"], "no offered subprotocol is served; serving ocpp2.1 ocpp2.0.1 ocpp1.6"),
])
def test_client_offering_no_served_version_is_upgraded_then_closed_1002(gw, offered, reason):
    closed = closed_after_upgrade(gw, "CP001", offered)
    assert (closed.code, closed.reason) == (1002, reason)


def test_unserved_client_is_logged_with_its_cid_and_counted(gw):
    since = gw.mark()
    closed_after_upgrade(gw, "CP012", ["ocpp1.2"])
    line = gw.wait_for_log(r"WARNING .*\[CP012\] connection from .* closed: no offered subprotocol", since=since)
    assert "serving ocpp2.1 ocpp2.0.1 ocpp1.6" in line


@pytest.mark.parametrize("offered, chosen", [
    ("ocpp2.0.1", "ocpp2.0.1"), ("ocpp2.1", "ocpp2.1"), ("ocpp1.6, ocpp2.0.1", "ocpp2.0.1"),
    ("ocpp1.6, ocpp2.0.1, ocpp2.1", "ocpp2.1"),
])
def test_the_first_version_of_the_gateways_preference_that_is_offered_is_echoed(gw, offered, chosen):
    with connect_cp(gw, "CP011", subprotocols=[name.strip() for name in offered.split(",")]) as cp:
        assert cp.subprotocol == chosen


# -- 400: WebSocket headers -----------------------------------------------------------------------


@pytest.mark.parametrize("headers, reason", [
    ({"Upgrade": None}, "Upgrade: websocket required"),
    ({"Upgrade": "h2c"}, "Upgrade: websocket required"),
    ({"Connection": None}, "Connection: Upgrade required"),
    ({"Connection": "keep-alive"}, "Connection: Upgrade required"),
    ({"Sec-WebSocket-Key": None}, "invalid or missing Sec-WebSocket-Key"),
    ({"Sec-WebSocket-Key": "dG9vIHNob3J0"}, "invalid or missing Sec-WebSocket-Key"),
    ({"Sec-WebSocket-Version": None}, "Sec-WebSocket-Version required"),
    ({"Host": None}, "exactly one Host header required"),
])
def test_missing_websocket_headers_are_400(gw, headers, reason):
    assert_refused(upgrade(gw, "CP001", headers=headers), 400, reason)


def test_other_websocket_version_is_426_naming_version_13(gw):
    response = upgrade(gw, "CP001", headers={"Sec-WebSocket-Version": "8"})
    assert_refused(response, 426, "unsupported WebSocket version; 13 required")
    assert response.headers["sec-websocket-version"] == "13"


def test_chosen_subprotocol_is_echoed(gw):
    key = base64.b64encode(b"0123456789abcdef").decode()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(upgrade_request("/ocpp/CP009", {
            "Authorization": gw.auth_header("CP009"), "Sec-WebSocket-Key": key,
            "Sec-WebSocket-Protocol": "ocpp1.5, ocpp1.6, ocpp3"}))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            assert chunk, f"closed before the 101: {head!r}"
            head += chunk
    lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
    assert lines[0].startswith("HTTP/1.1 101 ")
    assert headers["sec-websocket-protocol"] == "ocpp1.6"
    assert headers["sec-websocket-accept"] == base64.b64encode(
        hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def test_client_library_sees_ocpp16_chosen(gw):
    with connect_cp(gw, "CP010", subprotocols=["ocpp1.5", "ocpp1.6"]) as cp:
        assert cp.subprotocol == "ocpp1.6"
        assert cp.response.headers["Sec-WebSocket-Protocol"] == "ocpp1.6"


@pytest.fixture(scope="module")
def lenient_gw(module_start):
    return module_start({"ocpp.listener.fail_if_no_subprotocol": "false", "auth.username_must_match_cid": "false"})


def test_client_without_subprotocol_header_gets_in_when_not_required(lenient_gw, watch):
    gw = lenient_gw
    probe = watch(gw)
    with connect_cp(gw, "CP001", subprotocols=None) as cp:
        assert cp.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in cp.response.headers
        cp.send('[2,"hb-1","Heartbeat",{}]')
        assert probe.expect_json(topics(gw, "CP001").call) == {
            "MessageTypeId": 2, "UniqueId": "hb-1", "Action": "Heartbeat", "Payload": {},
            "Protocol": "ocpp1.6"}
    event = probe.expect_json(topics(gw, "CP001").event, {"event": "connected"})
    assert event["subprotocol"] is None and event["version"] == "ocpp1.6"


def test_header_offering_only_other_protocols_is_closed_even_when_not_required(lenient_gw):
    closed = closed_after_upgrade(lenient_gw, "CP001", ["ocpp1.5"])
    assert (closed.code, closed.reason) == (1002, "no offered subprotocol is served; serving ocpp2.1 ocpp2.0.1 ocpp1.6")


# -- 401 and 403: credentials -------------------------------------------------------------------

UNAUTHORIZED_CHALLENGE = 'Basic realm="ocpp"'


@pytest.mark.parametrize("authorization, reason", [
    (None, "HTTP Basic credentials required"),
    ("Basic " + base64.b64encode(b"CP001:wrong").decode(), "invalid username or password"),
    ("Basic " + base64.b64encode(b"CP001:").decode(), "invalid username or password"),
    ("Basic " + base64.b64encode(b"NOBODY:secret-CP001").decode(), "invalid username or password"),
    ("Bearer abc", "malformed Authorization header; HTTP Basic credentials expected"),
    ("Basic !!!", "malformed Authorization header; HTTP Basic credentials expected"),
    ("Basic " + base64.b64encode(b"no-colon").decode(),
     "malformed Authorization header; HTTP Basic credentials expected"),
])
def test_missing_or_wrong_credentials_are_401_with_basic_challenge(gw, authorization, reason):
    response = upgrade(gw, "CP001", headers={"Authorization": authorization})
    assert_refused(response, 401, reason)
    assert response.headers["www-authenticate"] == UNAUTHORIZED_CHALLENGE


def test_wrong_password_never_reaches_mqtt_nor_the_log(gw, watch):
    probe = watch(gw)
    since = gw.mark()
    password = "wrong-password-7f3a"
    response = upgrade(gw, "CP007", headers={"Authorization": gw.auth_header("CP007", password)})
    assert response.status == 401
    # Everything the gateway published about CP007 would come before CP008's connected event.
    with connect_cp(gw, "CP008"):
        probe.expect_json(topics(gw, "CP008").event, {"event": "connected"})
    leaked = [message for message in probe.drain() if b"CP007" in message.payload or "CP007" in message.topic]
    assert leaked == []
    gw.wait_for_log(r"refused: 401 invalid username or password", since=since)
    assert not any(password in line for line in gw.logs)


def test_user_other_than_cid_is_403(gw):
    response = upgrade(gw, "CP001", headers={"Authorization": gw.auth_header("CP002")})
    assert_refused(response, 403, "username does not match the charge point id")


def test_user_other_than_cid_with_wrong_password_is_401_not_403(gw):
    response = upgrade(gw, "CP001", headers={"Authorization": gw.auth_header("CP002", "wrong")})
    assert_refused(response, 401, "invalid username or password")


def test_other_user_may_connect_when_names_need_not_match(lenient_gw, watch):
    gw = lenient_gw
    probe = watch(gw)
    with connect_cp(gw, "CP002", username="CP003"):
        event = probe.expect_json(topics(gw, "CP002").event, {"event": "connected"})
    assert (event["cid"], event["username"]) == ("CP002", "CP003")


# -- 503 and deadlines --------------------------------------------------------------------------

def test_connection_over_max_connections_is_503(start):
    gw = start({"ocpp.listener.max_connections": 1})
    with connect_cp(gw, "CP001") as cp:
        cp.send('[3,"nothing",{}]')
        gw.wait_for_log(r"\[CP001\] nothing dropped CP reply")
        assert_refused(upgrade(gw, "CP002"), 503, "too many connections")
    # The slot is free again once CP001's thread has ended, which nothing announces: retry for a while.
    deadline = time.monotonic() + 5
    while True:
        try:
            with connect_cp(gw, "CP002") as cp:
                logged_marker(cp, gw)
            break
        except InvalidStatus as refused:
            assert refused.response.status_code == 503
            assert time.monotonic() < deadline, "the slot of a closed connection was not freed"


@pytest.fixture(scope="module")
def idle_gw(module_start):
    return module_start({"ocpp.idle_timeout": "1s", "ocpp.listener.handshake_timeout": "1s"})


def test_connection_sending_nothing_is_closed_after_the_handshake_timeout(idle_gw):
    gw = idle_gw
    since = gw.mark()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        started = time.monotonic()
        assert sock.recv(100) == b""
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3.5
    gw.wait_for_log(r"closed: no handshake within 1s", since=since)


def test_connection_dribbling_its_request_is_closed_after_the_handshake_timeout(idle_gw):
    """The handshake deadline is one deadline for the whole request, not per read."""
    gw = idle_gw
    request = upgrade_request("/ocpp/CP001", {"Authorization": gw.auth_header("CP001")})
    with socket.create_connection(("127.0.0.1", gw.port)) as sock:
        started = time.monotonic()
        closed = False
        for byte in request[:-4]:  # never complete: the gateway must give up on its own
            if time.monotonic() - started > 4:
                break
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(0.2)  # paces the bytes, and is the moment a close would show
                closed = sock.recv(100) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
            if closed:
                break
        elapsed = time.monotonic() - started
    assert closed, "the gateway kept a half-sent handshake open"
    assert 0.9 <= elapsed < 3.5


def test_cp_sending_no_frame_after_the_handshake_is_closed_after_idle_timeout(idle_gw, watch):
    probe, cid = watch(idle_gw), "CP017"
    with connect_cp(idle_gw, cid) as cp:
        assert cp.ping().wait(2)  # a ping is not an OCPP frame
        closed = wait_closed(cp, timeout=4)
    assert (closed.code, closed.reason) == (1001, "idle timeout")
    assert 0.8 <= closed.elapsed < 3
    assert probe.expect_json(topics(idle_gw, cid).event, {"event": "disconnected"})["reason"] == "idle timeout"


def test_refused_handshake_publishes_nothing(gw, watch):
    probe = watch(gw)
    for segment, headers in [("CP+1", {}), ("CP003", {"Authorization": None})]:
        assert upgrade(gw, segment, headers=headers).status in (400, 401)
    closed_after_upgrade(gw, "CP003", None)
    with connect_cp(gw, "CP004"):
        probe.expect_json(topics(gw, "CP004").event, {"event": "connected"})
    about_refused = [m for m in probe.drain() if "CP003" in m.topic + repr(m.payload) or "CP+1" in m.topic]
    assert about_refused == []


def test_accepted_connection_publishes_connected_event_with_the_peer(gw, watch):
    probe = watch(gw)
    with connect_cp(gw, "CP005") as cp:
        host, port = cp.local_address[:2]
        event = probe.expect_json(topics(gw, "CP005").event, {"event": "connected"})
        cp.send('[2,"b1","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]')
        assert probe.expect_json(topics(gw, "CP005").call)["UniqueId"] == "b1"
        csms = {"MessageTypeId": 3, "UniqueId": "b1", "Payload": {"status": "Accepted", "interval": 60,
                                                                   "currentTime": "2024-01-01T00:00:00Z"}}
        probe.publish(topics(gw, "CP005").dnstream, csms)
        assert recv_frame(cp) == [3, "b1", csms["Payload"]]
    assert event["peer"] == f"{host}:{port}"
