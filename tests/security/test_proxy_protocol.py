"""PROXY protocol on the listeners (SPEC §10), with raw sockets: a header is honoured only from a trusted proxy,
an untrusted peer is closed with or without one, a missing or malformed header closes the connection, and over
wss the header comes before the TLS handshake. Each refusal is logged at WARNING and counted."""

from __future__ import annotations

import json
import socket
import struct
import urllib.request

import pytest

from tools.harness import password_for
from tests.security.conftest import tls_settings, wss_address
from tests.security.wire import basic, request_bytes

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def v2_header(source: str, port: int) -> bytes:
    payload = socket.inet_aton(source) + socket.inet_aton("127.0.0.1") + struct.pack("!HH", port, 33033)
    return V2_SIGNATURE + b"\x21\x11" + struct.pack("!H", len(payload)) + payload


def v1_header(source: str, port: int) -> bytes:
    return f"PROXY TCP4 {source} 127.0.0.1 {port} 33033\r\n".encode()


def counters(gw) -> dict:
    with urllib.request.urlopen(gw.admin_url("/api/v1/stats"), timeout=5) as answer:
        return json.load(answer)["counters"]


def closed_without_answer(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


def upgrade_after(header: bytes, gw, cid: str, *, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=5, source_address=(source, 0))
    sock.sendall(header + request_bytes(f"/ocpp/{cid}", {"Authorization": basic(cid, password_for(cid))}))
    return sock


PROXIED = {"ocpp.listener.proxy_protocol": "any", "ocpp.listener.proxy_protocol.trusted": "127.0.0.1/32"}


@pytest.fixture(scope="module")
def proxied_gw(module_gateways):
    """Expects v1 or v2 headers from 127.0.0.1 only."""
    return module_gateways(PROXIED)


@pytest.mark.parametrize("cid, make_header", [("CP011", v2_header), ("CP012", v1_header)])
def test_a_trusted_proxys_header_names_the_charge_point(proxied_gw, cid, make_header):
    since = proxied_gw.mark()
    with upgrade_after(make_header("203.0.113.9", 40001), proxied_gw, cid) as sock:
        assert sock.recv(12) == b"HTTP/1.1 101"
        proxied_gw.wait_for_log(rf"\[{cid}\] connected from 203\.0\.113\.9:40001 ", since=since)


def test_a_header_from_an_untrusted_address_is_refused(module_gateways):
    gw = module_gateways(PROXIED)  # its own: the first refusal of a gateway is the one logged in full
    with upgrade_after(v2_header("203.0.113.9", 40002), gw, "CP013", source="127.0.0.2") as sock:
        assert closed_without_answer(sock)
    gw.wait_for_log(r"WARNING .*connection from 127\.0\.0\.2:\d+ closed: not a trusted PROXY protocol source "
                    r"\(ocpp\.listener\.proxy_protocol\.trusted\); 1 such connection\(s\) since the last warning")
    assert counters(gw)["refused.proxy_untrusted"] == 1
    assert not any("CP013" in line for line in gw.logs)


def test_an_untrusted_address_without_a_header_is_refused_too_and_a_flood_is_logged_once(proxied_gw):
    since, before = proxied_gw.mark(), counters(proxied_gw).get("refused.proxy_untrusted", 0)
    for _ in range(20):
        with upgrade_after(b"", proxied_gw, "CP014", source="127.0.0.3") as sock:
            assert closed_without_answer(sock)
    assert counters(proxied_gw)["refused.proxy_untrusted"] == before + 20
    # One warning per 10 s, with the count since the last: a flood adds at most one line here.
    assert sum("not a trusted PROXY protocol source" in line for line in proxied_gw.logs[since:]) <= 1


@pytest.mark.parametrize("sent, reason", [
    (b"", "no PROXY protocol v1 or v2 header"),
    (b"PROXY TCP4 203.0.113.9 127.0.0.1 99999 1\r\n", "PROXY v1 header malformed"),
    (V2_SIGNATURE + b"\x21\x11\x00\x04abcd", "PROXY v2 header malformed"),
])
def test_a_listener_expecting_proxy_closes_a_connection_without_a_valid_header(proxied_gw, sent, reason):
    since, before = proxied_gw.mark(), counters(proxied_gw).get("refused.proxy_header", 0)
    with upgrade_after(sent, proxied_gw, "CP015") as sock:
        assert closed_without_answer(sock)
    proxied_gw.wait_for_log(rf"WARNING .*connection from 127\.0\.0\.1:\d+ closed: {reason}", since=since)
    assert counters(proxied_gw)["refused.proxy_header"] == before + 1


def test_a_header_that_never_completes_is_closed_at_the_handshake_deadline(module_gateways):
    gw = module_gateways({"ocpp.listener.proxy_protocol": "v1", "ocpp.listener.handshake_timeout": "1s"})
    since = gw.mark()
    with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
        sock.sendall(b"PROXY TCP4 203.0.113.9")  # and then nothing
        assert closed_without_answer(sock)
    gw.wait_for_log(r"WARNING .*closed: no complete PROXY protocol header in time", since=since)


def test_over_wss_the_header_comes_before_the_tls_handshake(module_gateways, pki):
    gw = module_gateways(tls_settings(pki, **{"ocpp.listener.proxy_protocol": "v2",
                                              "ocpp.listener.ssl.verify": "verify_none"}))
    since = gw.mark()
    raw = socket.create_connection(wss_address(gw), timeout=5)
    raw.sendall(v2_header("198.51.100.23", 40003))
    with pki.client_context().wrap_socket(raw, server_hostname="localhost") as tls:
        tls.sendall(request_bytes("/ocpp/CP016", {"Authorization": basic("CP016", password_for("CP016"))}))
        assert tls.recv(12) == b"HTTP/1.1 101"
        gw.wait_for_log(r"\[CP016\] connected from 198\.51\.100\.23:40003 ", since=since)
