"""ocpp_gw.backend's Connection as the `ocpp` library uses it: frames in order, the end after them, what send() hands
on to MQTT."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.exceptions import ConnectionClosed

from ocpp_gw.backend import Connection
from ocpp_gw.protocol.frames import Call, CallResult


def envelope(**fields) -> bytes:
    return json.dumps(fields).encode()


def test_recv_yields_the_frames_received_then_raises_connection_closed_on_every_later_call():
    published = []

    async def run():
        connection = Connection("CP1", None, "gw", lambda *args: published.append(args))
        assert connection.deliver(envelope(MessageTypeId=2, UniqueId="a", Action="Heartbeat", Payload={}))
        assert not connection.deliver(b"not json")
        connection.end("closed by charge point")
        frames = [await connection.recv()]
        for _ in range(2):
            with pytest.raises(ConnectionClosed) as closed:
                await connection.recv()
            assert closed.value.rcvd.reason == "closed by charge point"
        with pytest.raises(ConnectionClosed):
            await connection.send('[3,"a",{}]')
        return connection, frames

    connection, frames = asyncio.run(run())
    assert frames == ['[2,"a","Heartbeat",{}]']
    assert connection.subprotocol == "ocpp1.6" and connection.closed and published == []


def test_send_hands_on_the_message_with_the_action_of_the_cps_call_it_answers():
    published = []

    async def run():
        connection = Connection("CP1", "ocpp2.0.1", None, lambda *args: published.append(args))
        connection.deliver(envelope(MessageTypeId=2, UniqueId="b", Action="BootNotification", Payload={}))
        await connection.recv()
        await connection.send('[3,"b",{"status":"Accepted"}]')
        await connection.send('[2,"c","Reset",{"type":"Soft"}]')
        connection.end("gone")
        return [frame async for frame in connection]

    assert asyncio.run(run()) == []
    assert published == [("CP1", CallResult("b", {"status": "Accepted"}), "BootNotification"),
                         ("CP1", Call("c", "Reset", {"type": "Soft"}), "Reset")]
