"""OCPP-J frames the simulated charge points send, and the answers both central systems give (pure)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

CALL, CALLRESULT, CALLERROR = 2, 3, 4
HEARTBEAT_PAYLOAD: dict = {}  # the same in every version


@dataclass(frozen=True)
class Dialect:
    """What a simulated CP of one OCPP version says differently: its subprotocol and its boot.
    The answers (BootNotification's currentTime, interval and status; Heartbeat's currentTime)
    have the same shape in 1.6, 2.0.1 and 2.1."""

    subprotocol: str
    boot_payload: dict


DIALECTS = {
    "1.6": Dialect("ocpp1.6", {"chargePointVendor": "BenchVendor", "chargePointModel": "LoadGen"}),
    "2.0.1": Dialect("ocpp2.0.1", {"reason": "PowerUp",
                                   "chargingStation": {"vendorName": "BenchVendor", "model": "LoadGen"}}),
    "2.1": Dialect("ocpp2.1", {"reason": "PowerUp",
                               "chargingStation": {"vendorName": "BenchVendor", "model": "LoadGen"}}),
}
DEFAULT_VERSION = "1.6"


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
