"""The central system of ocpp_lib_csms.py served through ocpp_gw (pip install 'ocpp-gw[backend]').

    python examples/csms_through_gateway.py      # charge points connect to the gateway

The difference from csms_over_websockets.py is how connections arrive: ocpp_gw.backend.serve
calls on_connect(connection, cid) for each charge point the gateway reports, and the connection
carries its OCPP-J frames over MQTT. The central system itself is the same.
"""

import asyncio
import logging

import ocpp_gw.backend

from ocpp_lib_csms import on_connect


async def main():
    await ocpp_gw.backend.serve(on_connect, broker="127.0.0.1:1883")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main())
