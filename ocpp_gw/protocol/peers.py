"""Peer addresses as the gateway counts them: the unit that login throttling and the pending-connection slots
share (SPEC §10). Pure."""

from __future__ import annotations

import ipaddress


def address_key(peer: str) -> str:
    """The throttled unit of a `host:port` / `[v6]:port` peer: the IPv4 address, or the IPv6 /64 network
    (one host usually owns a whole /64, so counting single IPv6 addresses would be no limit)."""
    host = peer.rpartition(":")[0] if peer.count(":") == 1 or peer.startswith("[") else peer
    host = host.strip("[]") or peer
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))
