"""The central system of ocpp_lib_csms.py served directly to charge points over websockets.

    python examples/csms_over_websockets.py      # charge points connect to ws://HOST:9000/<cid>
"""

import asyncio
import logging

import websockets

from ocpp_lib_csms import on_connect


async def on_websocket(websocket):
    await on_connect(websocket, websocket.request.path.strip("/").rsplit("/", 1)[-1])


async def main():
    async with websockets.serve(on_websocket, "0.0.0.0", 9000, subprotocols=["ocpp2.0.1", "ocpp1.6"]):
        await asyncio.Future()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main())
