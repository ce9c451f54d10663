"""The PROXY protocol header, v1 and v2: what examine() makes of complete, partial, foreign and random bytes, and a
reader following its Need never takes a byte of what comes after the header."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_gw.protocol.proxy_header import V2_SIGNATURE, Header, Malformed, Need, examine

BOTH = (1, 2)


def v1(source: str, destination: str, source_port: int, destination_port: int) -> bytes:
    family = "TCP6" if ":" in source else "TCP4"
    return f"PROXY {family} {source} {destination} {source_port} {destination_port}\r\n".encode()


def v2(source: str, destination: str, source_port: int, destination_port: int, *, command: int = 0x1,
       tlvs: bytes = b"") -> bytes:
    six = ":" in source
    family = 0x21 if six else 0x11
    pack = (lambda a: socket.inet_pton(socket.AF_INET6, a)) if six else socket.inet_aton
    addresses = pack(source) + pack(destination) + struct.pack("!HH", source_port, destination_port)
    payload = addresses + tlvs
    return V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(payload)) + payload


def read_like_the_listener(stream: bytes, versions, chunk: int) -> tuple[Header | Malformed, bytes]:
    """Follow examine()'s Need over `stream` arriving `chunk` bytes at a time (a line peeks, like MSG_PEEK); the
    verdict and what is left unread."""
    received, rest = b"", stream
    while True:
        verdict = examine(received, versions)
        if not isinstance(verdict, Need):
            return verdict, rest
        arrived = rest[:chunk]
        if not arrived:
            return Malformed("end of stream"), rest
        take = min(verdict.count, len(arrived))
        if verdict.line and b"\n" in arrived[:take]:
            take = arrived.index(b"\n") + 1
        received, rest = received + rest[:take], rest[take:]


@pytest.mark.parametrize("header, source, version", [
    (v1("192.0.2.7", "198.51.100.1", 50412, 33033), ("192.0.2.7", 50412), 1),
    (v1("2001:db8::7", "2001:db8::1", 1, 65535), ("2001:db8::7", 1), 1),
    (b"PROXY UNKNOWN\r\n", None, 1),
    (b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", None, 1),
    (v2("192.0.2.7", "198.51.100.1", 50412, 33033), ("192.0.2.7", 50412), 2),
    (v2("2001:db8::7", "2001:db8::1", 443, 33443), ("2001:db8::7", 443), 2),
    (v2("192.0.2.7", "198.51.100.1", 1, 2, tlvs=b"\x04\x00\x03abc"), ("192.0.2.7", 1), 2),  # a NOOP TLV
    (V2_SIGNATURE + b"\x20\x00\x00\x00", None, 2),  # LOCAL: the proxy's own health check
])
def test_a_complete_header_names_the_charge_points_address(header, source, version):
    assert examine(header, BOTH) == Header(source, version)


@pytest.mark.parametrize("data, reason", [
    (b"GET /ocpp/CP001 HTTP/1.1\r\n", "no PROXY protocol v1 or v2 header"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "no PROXY protocol v1 or v2 header"),  # a TLS ClientHello
    (b"PROXY TCP4 192.0.2.7 198.51.100.1 50412\r\n", "PROXY v1 header malformed"),
    (b"PROXY TCP4 300.0.2.7 198.51.100.1 1 2\r\n", "PROXY v1 header malformed"),
    (b"PROXY TCP4 192.0.2.7 198.51.100.1 1 99999\r\n", "PROXY v1 header malformed"),
    (b"PROXY TCP5 192.0.2.7 198.51.100.1 1 2\r\n", "PROXY v1 header malformed"),
    (b"PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n", "PROXY v1 header malformed"),  # LF without CR
    (b"PROXY " + b"x" * 101, "PROXY v1 header longer than 107 bytes"),
    (V2_SIGNATURE + b"\x11\x11\x00\x0c" + bytes(12), "PROXY v2 header malformed"),  # version 1 in a v2 header
    (V2_SIGNATURE + b"\x21\x11\x00\x04" + bytes(4), "PROXY v2 header malformed"),  # too short for IPv4
    (V2_SIGNATURE + b"\x21\x11\xff\xff", "PROXY v2 header announces 65535 bytes, more than 1024"),
])
def test_what_is_not_a_header_is_malformed_with_a_reason(data, reason):
    verdict = examine(data, BOTH)
    assert isinstance(verdict, Malformed) and verdict.reason.startswith(reason), verdict


def test_a_listener_for_one_version_refuses_the_other():
    assert examine(v1("192.0.2.7", "198.51.100.1", 1, 2), (2,)) == Malformed("no PROXY protocol v2 header")
    assert examine(v2("192.0.2.7", "198.51.100.1", 1, 2), (1,)) == Malformed("no PROXY protocol v1 header")


addresses4 = st.ip_addresses(v=4).map(str)
addresses6 = st.ip_addresses(v=6).map(str)
ports = st.integers(0, 65535)
headers = st.one_of(
    st.tuples(st.sampled_from([v1, v2]), addresses4, addresses4, ports, ports),
    st.tuples(st.sampled_from([v1, v2]), addresses6, addresses6, ports, ports))


@settings(max_examples=300, deadline=None)
@given(headers, st.binary(max_size=64), st.integers(1, 40))
def test_a_reader_following_need_gets_the_header_and_leaves_what_follows(made, after, chunk):
    make, source, destination, source_port, destination_port = made
    header = make(source, destination, source_port, destination_port)
    verdict, rest = read_like_the_listener(header + after, BOTH, chunk)
    assert verdict == Header((str(ipaddress.ip_address(source)), source_port), 1 if make is v1 else 2)
    assert rest == after


@settings(max_examples=300, deadline=None)
@given(headers, st.data())
def test_every_proper_prefix_of_a_header_asks_for_more_and_never_past_its_end(made, data):
    make, *fields = made
    header = make(*fields)
    cut = data.draw(st.integers(0, len(header) - 1))
    verdict = examine(header[:cut], BOTH)
    assert isinstance(verdict, Need)
    assert verdict.line or cut + verdict.count <= len(header)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 st.binary(max_size=250).map(lambda tail: V2_SIGNATURE + tail),
                 st.binary(max_size=120).map(lambda tail: b"PROXY " + tail)),
       st.sampled_from([(1,), (2,), BOTH]))
def test_any_bytes_get_a_verdict_and_never_an_exception(data, versions):
    verdict = examine(data, versions)
    assert isinstance(verdict, (Need, Header, Malformed))
    if isinstance(verdict, Need):
        assert verdict.count > 0
