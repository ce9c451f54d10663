"""Connections that have not authenticated never starve those that have (SPEC §10): they hold pending slots, bounded
in total and per address, apart from max_connections, with their own handshake deadline; what is shed is closed
at once, logged and counted."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import time
import urllib.request
import uuid

import pytest
import websockets
from ocpp.v16 import ChargePoint, call

from tools.harness import GatewayProcess, stop_process, wait_until
from tests.security.conftest import tls_settings, wss_address
from tests.security.wire import basic, request_bytes

CHARGER = "CP020"
CHARGER_HOST = "127.0.0.2"  # the flood comes from 127.0.0.1
SILENT_PER_LISTENER = 5000


def counters(gw) -> dict:
    with urllib.request.urlopen(gw.admin_url("/api/v1/stats"), timeout=5) as answer:
        return json.load(answer)["counters"]


def threads_and_descriptors(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as status:
        threads = next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
    return threads, len(os.listdir(f"/proc/{pid}/fd"))


def silent_sockets(address: tuple[str, int], count: int) -> list[socket.socket]:
    """`count` connections that never send a byte (a TLS listener waits for a ClientHello that never comes)."""
    opened = []
    try:
        for _ in range(count):
            opened.append(socket.create_connection(address, timeout=5))
    except BaseException:
        close_all(opened)
        raise
    return opened


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


def boot_seconds(gw) -> float:
    """A registered charge point (mobilityhouse `ocpp`) from CHARGER_HOST: seconds from connecting to the answer
    of its BootNotification, which the reference backend gives."""
    async def boot() -> float:
        started = time.monotonic()
        async with websockets.connect(gw.ws_url(CHARGER), subprotocols=["ocpp1.6"], open_timeout=10,
                                      additional_headers={"Authorization": gw.auth_header(CHARGER)},
                                      local_addr=(CHARGER_HOST, 0)) as connection:
            charge_point = ChargePoint(CHARGER, connection, response_timeout=10)
            loop = asyncio.create_task(charge_point.start())
            try:
                answer = await charge_point.call(call.BootNotification(charge_point_model="m", charge_point_vendor="v"))
            finally:
                loop.cancel()
            assert answer.status == "Accepted"
            return time.monotonic() - started
    return asyncio.run(boot())


@pytest.fixture
def default_gateway(tmp_path, broker, passwd_file, pki):
    """A gateway with every default (ws and wss listeners; the reference backend's mountpoint), the admin API on."""
    gateway = GatewayProcess(tmp_path / "gateway", broker, passwd_file,
                             tls_settings(pki, **{"ocpp.listener.ssl.verify": "verify_none", "log.level": "info"}))
    yield gateway.start()
    stop_process(gateway.process, timeout=10)
    print(f"--- gateway log (last lines) ---\n{gateway.output.tail(60)}")


def test_5000_silent_sockets_per_listener_from_one_address_do_not_keep_a_registered_charger_out(
        default_gateway, responder):
    gw = default_gateway
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 10,000 sockets here, a few hundred there
    try:
        normal = boot_seconds(gw)
        assert wait_until(lambda: counters(gw).get("connections.closed", 0) == 1, timeout=5)
        idle = threads_and_descriptors(gw.process.pid)
        since = gw.mark()
        flood = silent_sockets(("127.0.0.1", gw.port), SILENT_PER_LISTENER)
        try:
            flood += silent_sockets(wss_address(gw), SILENT_PER_LISTENER)
            shed = 2 * SILENT_PER_LISTENER - 500  # all but max_pending_per_address
            assert wait_until(lambda: counters(gw).get("shed.pending_per_address", 0) >= shed, timeout=10)
            flooded = boot_seconds(gw)
            print(f"boot {normal:.3f}s idle, {flooded:.3f}s under {len(flood)} silent sockets; "
                  f"counters {counters(gw)}")
            assert flooded < normal + 1.0, f"boot took {flooded:.2f}s under the flood, {normal:.2f}s without"
            gw.wait_for_log(r"WARNING .*closed \d+ connection\(s\) that had not authenticated.*from 127\.0\.0\.1",
                            since=since)
        finally:
            close_all(flood)
        assert wait_until(lambda: threads_and_descriptors(gw.process.pid) == idle, timeout=10), \
            f"gateway at {threads_and_descriptors(gw.process.pid)} (threads, descriptors), idle was {idle}"
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_silent_sockets_cannot_take_the_slots_of_authenticated_charge_points(module_gateways):
    gw = module_gateways({"ocpp.listener.max_connections": 2, "ocpp.mountpoint": f"slots-{uuid.uuid4().hex[:6]}/"})
    flood = silent_sockets(("127.0.0.1", gw.port), 50)
    try:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=5) as sock:
            sock.sendall(request_bytes("/ocpp/CP021", {"Authorization": basic("CP021", gw.password("CP021"))}))
            assert sock.recv(12) == b"HTTP/1.1 101"
    finally:
        close_all(flood)
