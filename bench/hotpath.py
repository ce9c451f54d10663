"""The Python work of one round trip through the gateway, stage by stage, in one thread.

    python -m bench.hotpath [--count 20000] [--ocpp 2.0.1] [--setup]

Times the calls a CP Heartbeat and its answer go through (the WebSocket framing, the frame codec, the
pipe, the envelope, paho's publish) in a loop, without threads or sockets: what a round trip costs before
any thread hand-off. Compare with the CPU per round trip the sustained figure records
(`cpu_us_per_round_trip`) to see what running it across threads adds (docs/performance.md).
With ``--setup``, the stages a connection goes through once instead (compare with the storm figure's
`cpu_ms_per_cp`).
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import threading
import time

from paho.mqtt.enums import CallbackAPIVersion
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

from ocpp_gw.auth.backends import NoAuth
from ocpp_gw.chargers import text_frames
from ocpp_gw.chargers.websocket import CpWebSocket, LockedSocket
from ocpp_gw.netio.doorbell import Doorbell
from ocpp_gw.protocol import handshake
from ocpp_gw.protocol.peers import address_key
from ocpp_gw.protocol import envelope
from ocpp_gw.protocol import frames
from ocpp_gw.mqtt.client import BufferedClient
from ocpp_gw.protocol.pipe import Pipe, PipeConfig, drain
from ocpp_gw.stats import Stats
from ocpp_gw.protocol.topics import Template
from ocpp_gw.protocol.versions import VERSIONS

from .ocppj import DEFAULT_VERSION, DIALECTS

HEARTBEAT = '[2,"123456","Heartbeat",{}]'
ANSWER = b'{"MessageTypeId":3,"UniqueId":"123456","Payload":{"currentTime":"2026-11-22T23:00:00.000Z"}}'


def per_call_us(fn, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        fn()
    return 1e6 * (time.perf_counter() - started) / count


def stages(ocpp: str = DEFAULT_VERSION) -> tuple[dict, dict]:
    """The stages of a round trip, and what wsproto would cost for the two framing stages."""
    subprotocol = DIALECTS[ocpp].subprotocol
    version = VERSIONS[subprotocol]
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="cp", target="/ocpp/CP1", subprotocols=[subprotocol])))
    list(server.events())
    client.receive_data(server.send(AcceptConnection(subprotocol=subprotocol)))
    list(client.events())
    frame = client.send(TextMessage(data=HEARTBEAT))
    call = frames.parse(HEARTBEAT, version)
    answer, _ = envelope.decode(ANSWER, version)
    topic = Template("ocpp/cp/${cid}")
    pipe = Pipe("CP1", PipeConfig(), stats=Stats(), version=version)
    mqtt = BufferedClient(CallbackAPIVersion.VERSION2, client_id="hotpath")
    mqtt.max_queued_messages_set(0)

    def ws_in():  # what the gateway skips for a whole text frame (chargers/text_frames.py)
        server.receive_data(frame)
        list(server.events())

    def pipe_round_trip():
        pipe.ChargeStationRx.put_quietly(HEARTBEAT)
        pipe.step()
        list(drain(pipe.CSMSTx))
        pipe.CSMSRx.put_nowait((answer, "Heartbeat"))
        pipe.step()
        list(drain(pipe.ChargeStationTx))

    return {
        "websocket: receive a frame": lambda: text_frames.client_texts(frame, 65536),
        "frames.parse": lambda: frames.parse(HEARTBEAT, version),
        "pipe: call up and answer down (two steps)": pipe_round_trip,
        "topic render": lambda: topic.render("CP1", "Heartbeat", "123456", "request"),
        "envelope.encode": lambda: envelope.encode(call, "Heartbeat", subprotocol),
        "paho publish (queued, QoS 1)": lambda: mqtt.publish("ocpp/cp/CP1", ANSWER, qos=1),
        "envelope.decode": lambda: envelope.decode(ANSWER, version),
        "frames.serialize": lambda: frames.serialize(answer, version),
        "websocket: send a frame": lambda: text_frames.server_text(frames.serialize(answer, version)),
    }, {
        "wsproto: receive a frame": ws_in,
        "wsproto: send a frame": lambda: server.send(TextMessage(data=frames.serialize(answer, version))),
    }


def setup_stages(ocpp: str = DEFAULT_VERSION) -> dict:
    """The Python stages of one connection's set-up, up to its first message (MQTT not included)."""
    subprotocol = DIALECTS[ocpp].subprotocol
    version = VERSIONS[subprotocol]
    raw = (b"GET /ocpp/CP000123 HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: " + base64.b64encode(os.urandom(16)) +
           b"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + subprotocol.encode() + b"\r\n\r\n")
    request = handshake.parse_request(raw, path_prefix="/ocpp")
    upgrade = handshake.Upgrade.of(request, b"")
    ours, theirs = socket.socketpair()
    stats, bell = Stats(), Doorbell()

    def websocket():  # the 101 is sent on construction; the other end reads it
        CpWebSocket(LockedSocket(ours, lambda: None, send_timeout=30), upgrade, subprotocol, max_message_size=65536)
        theirs.recv(65536)

    def doorbell():
        Doorbell().close()

    def thread():  # the accept loop's Thread.start() returns once the new thread runs
        started = threading.Thread(target=int)
        started.start()
        started.join()

    return {
        "handshake.parse_request": lambda: handshake.parse_request(raw, path_prefix="/ocpp"),
        "address_key (the pending slot)": lambda: address_key("127.0.0.1:40000"),
        "handshake.authorize (auth.backend = none)": lambda: handshake.authorize(
            request, NoAuth(), peer="127.0.0.1:40000", transport=handshake.PLAIN, must_match_cid=True),
        "handshake.negotiate": lambda: handshake.negotiate(request.subprotocols, handshake.VersionPolicy(), None),
        "doorbell (eventfd) opened and closed": doorbell,
        "Pipe (four queue.Queue channels)": lambda: Pipe("CP1", PipeConfig(), stats=stats, version=version,
                                                         doorbell=bell),
        "WebSocket object and the 101 sent": websocket,
        "thread started and joined": thread,
    }


def _print_stages(timed: dict, rounds_for) -> None:
    """Each stage's µs per call, then their total."""
    total = 0.0
    for name, fn in timed.items():
        us = per_call_us(fn, rounds_for(name))
        total += us
        print(f"{name:45s} {us:7.1f} µs")
    print(f"{'total':45s} {total:7.1f} µs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hotpath")
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--ocpp", choices=DIALECTS, default=DEFAULT_VERSION, help="the CP's OCPP version")
    parser.add_argument("--setup", action="store_true", help="time a connection's set-up stages instead")
    args = parser.parse_args(argv)
    if args.setup:  # each stage builds something that lives on (sockets, threads): fewer rounds
        _print_stages(setup_stages(args.ocpp), lambda name: min(args.count, 2000))
        return 0
    path, wsproto = stages(args.ocpp)
    # paho keeps every queued QoS 1 message: fewer rounds for it.
    _print_stages(path, lambda name: min(args.count, 5000) if name.startswith("paho") else args.count)
    print("for comparison, wsproto's general path (taken for control frames, fragments, deflate):")
    for name, fn in wsproto.items():
        print(f"{name:45s} {per_call_us(fn, args.count):7.1f} µs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
