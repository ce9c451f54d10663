"""Serve a CSMS written with the PyPI ``ocpp`` library through the gateway (SPEC §11).

Over websockets::

    async with websockets.serve(on_connect, "0.0.0.0", 9000, subprotocols=["ocpp1.6"]):

Through the gateway::

    await ocpp_gw.backend.serve(on_connect, broker="127.0.0.1:1883")

``on_connect(connection, cid)`` is called once per CP visit; ``connection.recv()``/``send()``
carry OCPP-J frames, ``connection.subprotocol`` names the CP's version. Install with
``pip install 'ocpp-gw[backend]'``.
"""

from .connection import Connection
from .options import BackendOptions
from .server import Backend, serve

__all__ = ["Backend", "BackendOptions", "Connection", "serve"]
