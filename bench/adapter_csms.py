"""The baseline's central system served through the gateway: bench.baseline's central-system sides (a
mobilityhouse ``ocpp`` ChargePoint with @on handlers per version), unchanged, behind ``ocpp_gw.backend``.

    python -m bench.adapter_csms --broker 127.0.0.1:1883 --interval 30

Prints ``ready`` once subscribed. With bench.baseline this measures what moving an ``ocpp``-library CSMS
behind the gateway costs: the same handlers, connections arriving over MQTT instead of websockets.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from ocpp_gw.backend import Backend, BackendOptions

from .baseline import Interval, central_system_side


async def on_connect(connection, cid: str) -> None:
    await central_system_side(cid, connection, connection.subprotocol).start()


async def run(args) -> None:
    Interval.seconds = args.interval
    async with Backend(on_connect, BackendOptions(broker=args.broker, client_id="bench-adapter")):
        print("ready", flush=True)
        await asyncio.Future()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.adapter_csms")
    parser.add_argument("--broker", required=True, help="host:port of the broker the gateway uses")
    parser.add_argument("--interval", type=int, default=30, help="BootNotification interval (s)")
    args = parser.parse_args(argv)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
