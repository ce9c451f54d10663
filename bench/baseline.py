"""The baseline: a central system written directly with the mobilityhouse `ocpp` library.

    python -m bench.baseline --port 9000 --interval 30 [--passwd FILE]

asyncio, `websockets.serve` and the library's defaults (its message validation included), answering
the same actions as the bench's MQTT responder, in the version the CP negotiated: the library's
`v16`, `v201` or `v21` ChargePoint. With --passwd it checks the same Basic credentials as
the gateway (same file, same scrypt verification, run off the event loop in asyncio's thread pool), so
both sides pay the same price per login. Two settings differ from the defaults, so that a connection
storm compares how fast each server gets CPs in rather than two limits the gateway does not have: the
listen backlog is 4096 (the gateway's value) instead of 100, and the handshake timeout is 120 s instead
of 10 s (with 10 s, a 1,000-CP storm with per-CP credentials had 850 handshakes aborted while they
queued behind the password hash).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from ocpp import v16, v21, v201
from ocpp.routing import on
from websockets.asyncio.server import basic_auth, serve

from .ocppj import DIALECTS, utc_iso

PATH_PREFIX = "/ocpp/"
BACKLOG = 4096
OPEN_TIMEOUT = 120


class Interval:
    """The BootNotification interval every central-system side answers (set once at start)."""

    seconds = 30


class CentralSystemSide(v16.ChargePoint):
    """The central system's end of one OCPP 1.6 CP connection."""

    @on(v16.enums.Action.boot_notification)
    async def on_boot_notification(self, charge_point_vendor, charge_point_model, **kwargs):
        return v16.call_result.BootNotification(current_time=utc_iso(time.time()), interval=Interval.seconds,
                                                status=v16.enums.RegistrationStatus.accepted)

    @on(v16.enums.Action.heartbeat)
    async def on_heartbeat(self, **kwargs):
        return v16.call_result.Heartbeat(current_time=utc_iso(time.time()))


def _side_2x(version, name: str) -> type:
    """The same answers to an OCPP 2.x CP: 2.0.1 and 2.1 spell them alike, each in its own package."""

    class Side(version.ChargePoint):
        @on(version.enums.Action.boot_notification)
        async def on_boot_notification(self, charging_station, reason, **kwargs):
            return version.call_result.BootNotification(
                current_time=utc_iso(time.time()), interval=Interval.seconds,
                status=version.enums.RegistrationStatusEnumType.accepted)

        @on(version.enums.Action.heartbeat)
        async def on_heartbeat(self, **kwargs):
            return version.call_result.Heartbeat(current_time=utc_iso(time.time()))

    Side.__name__ = Side.__qualname__ = name
    return Side


CentralSystemSide201 = _side_2x(v201, "CentralSystemSide201")
CentralSystemSide21 = _side_2x(v21, "CentralSystemSide21")


SIDES = {"ocpp1.6": CentralSystemSide, "ocpp2.0.1": CentralSystemSide201, "ocpp2.1": CentralSystemSide21}
SUBPROTOCOLS = [dialect.subprotocol for dialect in DIALECTS.values()]


def central_system_side(cid: str, connection, subprotocol: str | None):
    """The central-system side for the version the CP negotiated (1.6 when it offered none)."""
    return SIDES.get(subprotocol or "ocpp1.6", CentralSystemSide)(cid, connection)


async def serve_charge_point(connection) -> None:
    cid = connection.request.path[len(PATH_PREFIX):].strip("/")
    if not connection.request.path.startswith(PATH_PREFIX) or not cid:
        await connection.close(1008, "unknown path")
        return
    username = getattr(connection, "username", None)
    if username is not None and username != cid:
        await connection.close(1008, "username does not match the charge point id")
        return
    await central_system_side(cid, connection, connection.subprotocol).start()


def credential_checker(path: str):
    from ocpp_gw.auth import load_credentials, verify
    table = load_credentials(path)

    async def check(username: str, password: str) -> bool:
        entry = table.get(username)
        return entry is not None and await asyncio.to_thread(verify, entry.password_hash, password)

    return check


async def run(args) -> None:
    Interval.seconds = args.interval
    process_request = basic_auth(realm="ocpp", check_credentials=credential_checker(args.passwd)) \
        if args.passwd else None
    async with serve(serve_charge_point, args.host, args.port, subprotocols=SUBPROTOCOLS,
                     process_request=process_request, backlog=BACKLOG, open_timeout=OPEN_TIMEOUT) as server:
        print("ready", flush=True)
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.baseline")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=int, default=30, help="BootNotification interval (s)")
    parser.add_argument("--passwd", help="credentials file to check Basic auth against (default: no check)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
