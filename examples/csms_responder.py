#!/usr/bin/env python3
"""A reference CSMS backend for ocpp_gw, in one file.

It talks to the gateway over MQTT only, with the envelope of docs/mqtt-api.md:

- every Call a charge point makes arrives on `<mountpoint>cp/<cid>`; this program answers it on
  `<mountpoint>cs/<cid>` with a CallResult valid in the charge point's OCPP version (the envelope's
  `Protocol`: ocpp1.6, ocpp2.0.1 or ocpp2.1), or a NotImplemented CallError;
- a 2.1 SEND (MessageTypeId 6) is taken in and never answered, as OCPP 2.1 requires;
- `send CID ACTION JSON` makes a call to a charge point and prints its answer, which comes back on
  `<mountpoint>cp/<cid>/Reply` with the `Action` merged in.

    python examples/csms_responder.py                         # answer every charge point
    python examples/csms_responder.py send CP001 Reset '{"type": "Soft"}'

Backend authors: start from here and put your business logic in `ChargingBackend`.
Tests use `Responder` in-process (start/stop, what it saw, `call()`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import queue
import signal
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

log = logging.getLogger("csms_responder")

CALL, CALL_RESULT, CALL_ERROR, CALL_RESULT_ERROR, SEND = 2, 3, 4, 5, 6
OCPP16 = "ocpp1.6"


def utc_now() -> str:
    """An OCPP dateTime: RFC 3339, UTC, milliseconds."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def is_gateway_error(envelope: dict) -> bool:
    """A CallError made by the gateway itself (queue_full, timeout, offline, ...), not by a charge point."""
    details = envelope.get("ErrorDetails")
    is_error = envelope.get("MessageTypeId") == CALL_ERROR
    return is_error and isinstance(details, dict) and details.get("origin") == "ocpp_gw"


class ActionNotImplemented(Exception):
    pass


class ChargingBackend:
    """The answers to charge point calls: accept everything. Replace with real business logic."""

    def __init__(self, heartbeat_interval: int = 300):
        self.heartbeat_interval = heartbeat_interval
        self._transaction_ids = itertools.count(1)
        self._lock = threading.Lock()
        v2 = self._answers_2x()
        # Per OCPP version (the envelope's Protocol): 2.1 answers what 2.0.1 does.
        self._answers_by_version: dict[str, dict[str, Callable[[dict], dict]]] = {
            OCPP16: self._answers_16(), "ocpp2.0.1": v2, "ocpp2.1": v2,
        }

    def _boot(self, payload: dict) -> dict:
        return {"status": "Accepted", "currentTime": utc_now(), "interval": self.heartbeat_interval}

    def _answers_16(self) -> dict[str, Callable[[dict], dict]]:
        accepted_tag = {"idTagInfo": {"status": "Accepted"}}
        return {
            "BootNotification": self._boot,
            "Heartbeat": lambda payload: {"currentTime": utc_now()},
            "Authorize": lambda payload: accepted_tag,
            "StartTransaction": lambda payload: {**accepted_tag, "transactionId": self._next_transaction_id()},
            "StopTransaction": lambda payload: accepted_tag if "idTag" in payload else {},
            "StatusNotification": lambda payload: {},
            "MeterValues": lambda payload: {},
            "DataTransfer": lambda payload: {"status": "Accepted"},
            "DiagnosticsStatusNotification": lambda payload: {},
            "FirmwareStatusNotification": lambda payload: {},
            # OCPP 1.6 security extension
            "SecurityEventNotification": lambda payload: {},
            "SignedFirmwareStatusNotification": lambda payload: {},
            "LogStatusNotification": lambda payload: {},
            "SignCertificate": lambda payload: {"status": "Accepted"},
        }

    def _answers_2x(self) -> dict[str, Callable[[dict], dict]]:
        accepted_token = {"idTokenInfo": {"status": "Accepted"}}
        nothing_to_say = lambda payload: {}  # noqa: E731 - the answer of every notification
        answers = {
            "BootNotification": self._boot,
            "Heartbeat": lambda payload: {"currentTime": utc_now()},
            "Authorize": lambda payload: accepted_token,
            # The CSMS tells the station what it thinks of an idToken it reports.
            "TransactionEvent": lambda payload: accepted_token if "idToken" in payload else {},
            "DataTransfer": lambda payload: {"status": "Accepted"},
            "SignCertificate": lambda payload: {"status": "Accepted"},
            "NotifyEVChargingNeeds": lambda payload: {"status": "Accepted"},
            "NotifyEVChargingSchedule": lambda payload: {"status": "Accepted"},
        }
        for action in ("StatusNotification", "MeterValues", "NotifyReport", "NotifyEvent",
                       "NotifyMonitoringReport", "SecurityEventNotification", "FirmwareStatusNotification",
                       "LogStatusNotification", "NotifyChargingLimit", "ClearedChargingLimit",
                       "ReportChargingProfiles", "ReservationStatusUpdate", "NotifyCustomerInformation",
                       "NotifyDisplayMessages", "PublishFirmwareStatusNotification"):
            answers[action] = nothing_to_say
        return answers

    def _next_transaction_id(self) -> int:
        with self._lock:  # answers are made on paho's thread, but keep it safe for reuse elsewhere
            return next(self._transaction_ids)

    def answer(self, action: str, payload: dict, protocol: str = OCPP16) -> dict:
        """The CallResult payload for a charge point's `action` call in OCPP version `protocol`."""
        try:
            make_answer = self._answers_by_version[protocol][action]
        except KeyError:
            raise ActionNotImplemented(action) from None
        return make_answer(payload)


class TopicTemplate:
    """A topic like `cp/${cid}` under a mountpoint: its subscription filter, the cid a topic carries, rendering."""

    def __init__(self, template: str, mountpoint: str = ""):
        self.levels = (mountpoint + template).split("/")
        if "${cid}" not in self.levels:
            raise ValueError(f"topic {template!r} needs ${{cid}} as a whole level")
        self._cid_level = self.levels.index("${cid}")

    @property
    def filter(self) -> str:
        return "/".join("+" if level.startswith("${") else level for level in self.levels)

    def cid_of(self, topic: str) -> str | None:
        levels = topic.split("/")
        if len(levels) != len(self.levels) or not mqtt.topic_matches_sub(self.filter, topic):
            return None
        return levels[self._cid_level]

    def render(self, cid: str) -> str:
        return "/".join(cid if level == "${cid}" else level for level in self.levels)


@dataclass(frozen=True)
class Received:
    """An envelope the responder got from the gateway."""
    topic: str
    cid: str
    envelope: dict

    @property
    def action(self) -> str | None:
        return self.envelope.get("Action")


class Responder:
    """Answers charge point calls and makes calls to charge points, over one MQTT connection."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        mountpoint: str = "ocpp/",
        upstream_topics: tuple[str, ...] = ("cp/${cid}",),
        reply_topic: str = "cp/${cid}/Reply",
        dnstream_topic: str = "cs/${cid}",
        heartbeat_interval: int = 300,
        answer_calls: bool = True,
        username: str | None = None,
        password: str | None = None,
        client_id: str | None = None,
    ):
        self.host, self.port = host, port
        self.upstream = [TopicTemplate(topic, mountpoint) for topic in upstream_topics]
        self.replies = TopicTemplate(reply_topic, mountpoint)
        self.dnstream = TopicTemplate(dnstream_topic, mountpoint)
        self.backend = ChargingBackend(heartbeat_interval)
        self.answer_calls = answer_calls
        self.received: list[Received] = []
        self._seen = threading.Condition()
        self._waiting: dict[str, queue.Queue] = {}  # UniqueId of our call → where its answer goes
        self._ready = threading.Event()
        self._subscribe_mid: int | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"csms-responder-{uuid.uuid4().hex[:12]}",
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # lifecycle
    def start(self, timeout: float = 10.0) -> "Responder":
        """Connect and subscribe; returns once the broker has confirmed the subscriptions."""
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        if not self._ready.wait(timeout):
            self.stop()
            raise TimeoutError(f"not subscribed on {self.host}:{self.port} within {timeout}s")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "Responder":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # calls to charge points
    def call(self, cid: str, action: str, payload: dict, timeout: float = 10.0) -> dict:
        """Send a CSMS Call to `cid`; return the answer envelope: a CallResult, or a CallError from the charge point
        or the gateway. Raises TimeoutError when nothing comes back within `timeout` seconds."""
        unique_id = str(uuid.uuid4())
        answer: queue.Queue = queue.Queue(maxsize=1)
        self._waiting[unique_id] = answer
        try:
            envelope = {"MessageTypeId": CALL, "UniqueId": unique_id, "Action": action, "Payload": payload}
            self._publish(self.dnstream.render(cid), envelope).wait_for_publish(timeout)
            log.info("%s ⇐ %s %s", cid, action, json.dumps(payload))
            return answer.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{cid} did not answer {action} ({unique_id}) within {timeout}s") from None
        finally:
            self._waiting.pop(unique_id, None)

    # what was seen
    def actions(self, cid: str) -> list[str]:
        """The actions of the calls `cid` made, in arrival order."""
        with self._seen:
            return [r.action for r in self.received if r.cid == cid and r.envelope.get("MessageTypeId") == CALL]

    def wait_for(self, accept: Callable[[Received], bool], timeout: float = 10.0) -> Received:
        """The first received envelope that `accept` takes, waiting up to `timeout` seconds for it."""
        match: Received | None = None

        def arrived() -> bool:
            nonlocal match
            match = next((r for r in self.received if accept(r)), None)
            return match is not None

        with self._seen:
            if not self._seen.wait_for(arrived, timeout):
                raise TimeoutError(f"nothing matching arrived within {timeout}s")
        return match

    def wait_for_call(self, cid: str, action: str, timeout: float = 10.0) -> dict:
        """The envelope of the first `action` call from `cid`."""
        return self.wait_for(
            lambda r: r.cid == cid and r.action == action and r.envelope.get("MessageTypeId") == CALL, timeout
        ).envelope

    # paho callbacks (paho's network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("broker refused the connection: %s", reason_code)
            return
        filters = [template.filter for template in self.upstream] if self.answer_calls else []
        filters.append(self.replies.filter)
        _, self._subscribe_mid = client.subscribe([(topic_filter, 1) for topic_filter in dict.fromkeys(filters)])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid != self._subscribe_mid:
            return
        if any(code.is_failure for code in reason_codes):
            log.error("broker refused a subscription: %s", reason_codes)
            return
        self._ready.set()

    def _on_message(self, client, userdata, message) -> None:
        cid = self._cid_of(message.topic)
        try:
            envelope = json.loads(message.payload)
            kind = envelope["MessageTypeId"]
        except (ValueError, TypeError, KeyError):
            log.warning("ignored a message that is not an envelope on %s: %r", message.topic, message.payload[:200])
            return
        if cid is None:
            log.warning("ignored a message on %s: no cid in the topic", message.topic)
            return
        with self._seen:
            self.received.append(Received(message.topic, cid, envelope))
            self._seen.notify_all()
        if kind == CALL:
            if self.answer_calls:
                self._answer(cid, envelope)
        elif kind in (CALL_RESULT, CALL_ERROR):
            self._take_answer(cid, envelope)
        elif kind == SEND:   # 2.1: never answered
            log.info("%s ⇒ SEND %s %s", cid, envelope.get("Action"), json.dumps(envelope.get("Payload")))
        elif kind == CALL_RESULT_ERROR:   # 2.1: the CP could not use our answer to its call
            log.warning("%s could not process our answer %s to %s: %s %s", cid, envelope.get("UniqueId"),
                        envelope.get("Action"), envelope.get("ErrorCode"), envelope.get("ErrorDescription"))

    def _cid_of(self, topic: str) -> str | None:
        for template in (*self.upstream, self.replies):
            cid = template.cid_of(topic)
            if cid is not None:
                return cid
        return None

    def _answer(self, cid: str, call: dict) -> None:
        action, unique_id = call.get("Action"), call.get("UniqueId")
        protocol = call.get("Protocol", OCPP16)
        log.info("%s ⇒ %s %s", cid, action, json.dumps(call.get("Payload")))
        try:
            reply = {
                "MessageTypeId": CALL_RESULT,
                "UniqueId": unique_id,
                "Action": action,
                "Payload": self.backend.answer(action, call.get("Payload") or {}, protocol),
            }
        except ActionNotImplemented:
            reply = {
                "MessageTypeId": CALL_ERROR,
                "UniqueId": unique_id,
                "Action": action,
                "ErrorCode": "NotImplemented",
                "ErrorDescription": f"this backend does not handle {action}",
                "ErrorDetails": {},
            }
        self._publish(self.dnstream.render(cid), reply)

    def _take_answer(self, cid: str, reply: dict) -> None:
        waiting = self._waiting.get(reply.get("UniqueId"))
        if waiting is not None:
            waiting.put_nowait(reply)
        elif is_gateway_error(reply):
            log.warning("%s: the gateway refused our message %s: %s", cid, reply.get("UniqueId"), reply)
        else:
            log.info("%s: answer to a call nobody waits for: %s", cid, reply)

    def _publish(self, topic: str, envelope: dict) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, json.dumps(envelope), qos=1)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Reference CSMS backend for ocpp_gw (envelope payload format).")
    parser.add_argument("--host", default="127.0.0.1", help="MQTT broker host [127.0.0.1]")
    parser.add_argument("--port", type=int, default=1883, help="MQTT broker port [1883]")
    parser.add_argument("--username", help="MQTT username")
    parser.add_argument("--password", help="MQTT password")
    parser.add_argument("--mountpoint", default="ocpp/", help="the gateway's ocpp.mountpoint [ocpp/]")
    parser.add_argument("--upstream-topic", action="append", dest="upstream_topics",
                        help="the gateway's ocpp.upstream.topic, repeatable for per-action topics [cp/${cid}]")
    parser.add_argument("--reply-topic", default="cp/${cid}/Reply",
                        help="the gateway's ocpp.upstream.reply_topic (= error_topic) [cp/${cid}/Reply]")
    parser.add_argument("--dnstream-topic", default="cs/${cid}", help="the gateway's ocpp.dnstream.topic [cs/${cid}]")
    parser.add_argument("--interval", type=int, default=300, help="heartbeat interval sent in BootNotification [300]")
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("serve", help="answer every charge point call (the default)")
    send = commands.add_parser("send", help="send one call to a charge point and print its answer")
    send.add_argument("cid")
    send.add_argument("action", help="e.g. Reset, RemoteStartTransaction, GetConfiguration")
    send.add_argument("payload", nargs="?", default="{}", help="the call's payload as JSON [{}]")
    send.add_argument("--timeout", type=float, default=35.0, help="seconds to wait for the answer [35]")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    sending = args.command == "send"
    responder = Responder(
        args.host, args.port,
        mountpoint=args.mountpoint,
        upstream_topics=tuple(args.upstream_topics or ["cp/${cid}"]),
        reply_topic=args.reply_topic,
        dnstream_topic=args.dnstream_topic,
        heartbeat_interval=args.interval,
        answer_calls=not sending,
        username=args.username,
        password=args.password,
    )
    if sending:
        return send(responder, args)
    return serve(responder)


def send(responder: Responder, args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.payload)
    except ValueError as error:
        print(f"payload is not JSON: {error}", file=sys.stderr)
        return 2
    with responder:
        try:
            reply = responder.call(args.cid, args.action, payload, timeout=args.timeout)
        except TimeoutError as error:
            print(error, file=sys.stderr)
            return 1
    print(json.dumps(reply))
    return 0 if reply.get("MessageTypeId") == CALL_RESULT else 1


def serve(responder: Responder) -> int:
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    with responder:
        log.info("answering charge points on %s", ", ".join(t.filter for t in responder.upstream))
        stopping.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
