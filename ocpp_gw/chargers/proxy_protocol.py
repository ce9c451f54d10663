"""PROXY protocol on the charge point listeners (SPEC §10): who may send a header, and reading it off a socket.

The header is read before anything else, over wss before the TLS handshake, and never a byte further: what follows
it (the HTTP request, the TLS ClientHello) stays in the socket for the next reader. `protocol.proxy_header` says
how many bytes may still be taken; a version 1 line is peeked at first (MSG_PEEK) so that only its own bytes are
consumed.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass

from ..protocol import proxy_header
from ..protocol.proxy_header import Header, Malformed, Need


LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class ProxyPolicy:
    """`versions` accepted (empty: PROXY protocol off) and the proxies trusted to send them (built by
    ``ocpp_gw.config`` from ocpp.listener.proxy_protocol and its .trusted)."""

    versions: tuple[int, ...] = ()
    trusted: tuple = LOOPBACK

    @property
    def enabled(self) -> bool:
        return bool(self.versions)

    def trusts(self, host: str) -> bool:
        """Whether a connection from `host` (the socket's peer) may carry a header."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == network.version and address in network for network in self.trusted)


def read_header(sock: socket.socket, deadline: float, versions: tuple[int, ...]) -> Header | Malformed:
    """The header at the start of `sock`, read by the monotonic `deadline`; exactly its bytes are consumed."""
    received = b""
    while True:
        verdict = proxy_header.examine(received, versions)
        if not isinstance(verdict, Need):
            return verdict
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Malformed("no complete PROXY protocol header in time")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(_how_much(sock, verdict))
        except TimeoutError:
            return Malformed("no complete PROXY protocol header in time")
        if not chunk:
            return Malformed("connection closed before a complete PROXY protocol header"
                             if received else "connection closed without a PROXY protocol header")
        received += chunk


def _how_much(sock: socket.socket, need: Need) -> int:
    """Bytes to take now: `need.count`, or for a line, up to its end among the bytes that have arrived."""
    if not need.line:
        return need.count
    ahead = sock.recv(need.count, socket.MSG_PEEK)
    end = ahead.find(b"\n")
    return end + 1 if end >= 0 else max(1, len(ahead))
