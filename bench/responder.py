"""The fast MQTT backend: answers every CP call envelope the gateway publishes, at once.

    python -m bench.responder --port 1883 --interval 30

Subscribes to `<mountpoint>cp/+` (the gateway's default call topic) and publishes the CallResult on
`<mountpoint>cs/<cid>` (QoS 1 both ways, like a CSMS would). Prints `ready` once subscribed. All work
happens on paho's network thread; nothing is queued elsewhere.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time

from paho.mqtt.enums import CallbackAPIVersion

from ocpp_gw.mqtt.client import BufferedClient

from .ocppj import envelope_answer, utc_iso


class Responder:
    def __init__(self, mountpoint: str, interval: int):
        self.call_prefix = f"{mountpoint}cp/"
        self.reply_prefix = f"{mountpoint}cs/"
        self.interval = interval
        self._second = 0
        self._now_iso = ""
        self.answered = 0

    def now_iso(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second, self._now_iso = second, utc_iso(second)
        return self._now_iso

    def answer(self, topic: str, payload: bytes) -> tuple[str, str] | None:
        if not topic.startswith(self.call_prefix):
            return None
        try:
            envelope = json.loads(payload)
        except ValueError:
            return None
        reply = envelope_answer(envelope, self.now_iso(), self.interval) if isinstance(envelope, dict) else None
        if reply is None:
            return None
        self.answered += 1
        return self.reply_prefix + topic[len(self.call_prefix):], json.dumps(reply, separators=(",", ":"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.responder")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mountpoint", default="ocpp/")
    parser.add_argument("--interval", type=int, default=30, help="BootNotification interval (s)")
    args = parser.parse_args(argv)
    responder = Responder(args.mountpoint, args.interval)
    # The gateway's own paho subclass: large socket reads instead of a few system calls per packet.
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id="bench-responder", clean_session=True)
    client.max_inflight_messages_set(0)  # unlimited: the broker is local
    client.max_queued_messages_set(0)

    def on_connect(client, userdata, flags, reason_code, properties):
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe(f"{args.mountpoint}cp/+", qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        print("ready", flush=True)

    def on_message(client, userdata, message):
        answer = responder.answer(message.topic, message.payload)
        if answer is not None:
            client.publish(answer[0], answer[1], qos=1)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(args.host, args.port, keepalive=60)
    client.loop_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
