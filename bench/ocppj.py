"""OCPP-J 1.6 frames the simulated charge points send, and the answers both central systems give (pure)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

CALL, CALLRESULT, CALLERROR = 2, 3, 4
SUBPROTOCOL = "ocpp1.6"
BOOT_PAYLOAD = {"chargePointVendor": "BenchVendor", "chargePointModel": "LoadGen"}
HEARTBEAT_PAYLOAD: dict = {}


def call_frame(unique_id: str, action: str, payload: dict) -> str:
    return json.dumps([CALL, unique_id, action, payload], separators=(",", ":"))


def result_frame(unique_id: str, payload: dict) -> str:
    return json.dumps([CALLRESULT, unique_id, payload], separators=(",", ":"))


def utc_iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def answer_payload(action: str, now_iso: str, interval: int) -> dict:
    """What a central system answers to a CP call; BootNotification tells the heartbeat interval."""
    if action == "BootNotification":
        return {"status": "Accepted", "currentTime": now_iso, "interval": interval}
    if action == "Heartbeat":
        return {"currentTime": now_iso}
    return {}


def envelope_answer(envelope: dict, now_iso: str, interval: int) -> dict | None:
    """The MQTT envelope answering a Call envelope from the gateway; None for anything that is not a Call."""
    if envelope.get("MessageTypeId") != CALL:
        return None
    return {"MessageTypeId": CALLRESULT, "UniqueId": envelope["UniqueId"],
            "Payload": answer_payload(envelope.get("Action", ""), now_iso, interval)}
