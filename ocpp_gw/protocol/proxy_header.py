"""The PROXY protocol header at the start of a connection (versions 1 and 2, as HAProxy documents them): how much of
it has arrived, what it says, or why it is not one. Pure: bytes in, a verdict out, no I/O.

The `proxy-protocol` package parses the header itself; this module decides how many more bytes a reader may take
without eating into what follows the header (the HTTP request, or the TLS ClientHello that must reach OpenSSL
untouched), bounds the sizes, and turns the package's many ways of failing into one `Malformed`.

A reader keeps calling `examine(received, versions)`:

- `Need(count, line)`: read at most `count` more bytes; with `line`, stop after the first b"\\n" (a version 1
  header ends there and its length is not known before).
- `Header(source)`: the header is exactly `received`; `source` is the (host, port) it names, or None when it
  names none (a v2 LOCAL connection - the proxy's own health check - or a v1 UNKNOWN).
- `Malformed(reason)`: not a header of the accepted versions.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from proxyprotocol import ProxyProtocolChecksumError, ProxyProtocolIncompleteError, ProxyProtocolSyntaxError
from proxyprotocol.result import ProxyResultIPv4, ProxyResultIPv6
from proxyprotocol.v1 import ProxyProtocolV1
from proxyprotocol.v2 import ProxyProtocolV2

V1_SIGNATURE = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V1_MAX = 107  # the longest version 1 line, CRLF included (the specification's bound)
V2_FIXED = 16  # signature, version and command, family and transport, length
V2_MAX_PAYLOAD = 1024  # addresses (at most 216 bytes) and TLVs; HAProxy sends far less unless told otherwise
# Both headers are longer than this, so the first bytes of a valid header never reach past it.
SNIFF = 8

VERSIONS = {"v1": (1,), "v2": (2,), "any": (1, 2)}

_V1 = ProxyProtocolV1()
_V2 = ProxyProtocolV2()
# Everything the package raises for bytes that are not a valid header.
_PARSE_ERRORS = (ProxyProtocolSyntaxError, ProxyProtocolChecksumError, ProxyProtocolIncompleteError, ValueError,
                 struct.error, IndexError, KeyError, UnicodeError)


@dataclass(frozen=True)
class Need:
    count: int
    line: bool = False


@dataclass(frozen=True)
class Header:
    source: tuple[str, int] | None
    version: int


@dataclass(frozen=True)
class Malformed:
    reason: str


def examine(received: bytes, versions: tuple[int, ...]) -> Need | Header | Malformed:
    """What `received` (the first bytes of a connection) is, for a listener accepting `versions` (1, 2)."""
    version = _version(received[:SNIFF], versions)
    if isinstance(version, Malformed):
        return version
    if len(received) < SNIFF:
        return Need(SNIFF - len(received))
    return _examine_v1(received) if version == 1 else _examine_v2(received)


def _version(start: bytes, versions: tuple[int, ...]) -> int | Malformed:
    """The version whose signature `start` begins (or may yet begin); Malformed when none accepted can."""
    for version, signature in ((1, V1_SIGNATURE), (2, V2_SIGNATURE)):
        if version in versions and signature[:len(start)] == start[:len(signature)]:
            return version
    expected = " or ".join(f"v{version}" for version in versions)
    return Malformed(f"no PROXY protocol {expected} header")


def _examine_v1(received: bytes) -> Need | Header | Malformed:
    end = received.find(b"\n")
    if end < 0:
        if len(received) >= V1_MAX:
            return Malformed(f"PROXY v1 header longer than {V1_MAX} bytes")
        return Need(V1_MAX - len(received), line=True)
    if end != len(received) - 1:
        return Malformed("bytes after the PROXY v1 header were read as part of it")
    try:
        return Header(_source(_V1.unpack(received)), 1)
    except _PARSE_ERRORS as error:
        return Malformed(f"PROXY v1 header malformed: {_said(error)}")


def _examine_v2(received: bytes) -> Need | Header | Malformed:
    if len(received) < V2_FIXED:
        return Need(V2_FIXED - len(received))
    if received[:len(V2_SIGNATURE)] != V2_SIGNATURE:
        return Malformed("no PROXY protocol v2 signature")
    payload = int.from_bytes(received[14:16], "big")
    if payload > V2_MAX_PAYLOAD:
        return Malformed(f"PROXY v2 header announces {payload} bytes, more than {V2_MAX_PAYLOAD}")
    missing = V2_FIXED + payload - len(received)
    if missing > 0:
        return Need(missing)
    if missing < 0:
        return Malformed("bytes after the PROXY v2 header were read as part of it")
    try:
        return Header(_source(_V2.unpack(received)), 2)
    except _PARSE_ERRORS as error:
        return Malformed(f"PROXY v2 header malformed: {_said(error)}")


def _source(result) -> tuple[str, int] | None:
    if isinstance(result, (ProxyResultIPv4, ProxyResultIPv6)):
        address, port = result.source
        return str(address), int(port)
    return None  # LOCAL, UNKNOWN, or a family without an IP address (unix): the proxy names no client


def _said(error: Exception) -> str:
    return str(error) or type(error).__name__
