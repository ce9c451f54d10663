"""The last few messages of one charge point, kept in memory for the operator (admin API, console)."""

from __future__ import annotations

import time
from collections import deque
from typing import NamedTuple

from .frames import Call, CallError, CallResult, CallResultError, Message, Send

FROM_CP, TO_CP, TO_CSMS, FROM_CSMS = "from_cp", "to_cp", "to_csms", "from_csms"
_TYPES = {Call: "Call", CallResult: "CallResult", CallError: "CallError",
          CallResultError: "CallResultError", Send: "Send"}


class Entry(NamedTuple):
    ts: float
    direction: str
    type: str
    action: str | None
    unique_id: str
    size: int
    payload: object | None
    gateway_error: str | None  # the reason, when this is a gateway error to the CSMS

    def as_dict(self) -> dict:
        return self._asdict()


class History:
    """A bounded ring; appends are thread-safe (deque), readers take a copy."""

    def __init__(self, length: int, keep_payloads: bool):
        self._entries: deque[Entry] = deque(maxlen=length)
        self.enabled = length > 0
        self.keep_payloads = keep_payloads

    def record(self, direction: str, message: Message, action: str | None, size: int) -> None:
        if not self.enabled:
            return
        kind = type(message)  # the five message classes are final: no isinstance needed
        reason = None
        if kind is Call or kind is Send:
            action, payload = message.action, message.payload
        elif kind is CallResult:
            payload = message.payload
        else:
            if kind is CallError and message.details.get("origin") == "ocpp_gw":
                reason = message.details.get("reason")
            payload = {"ErrorCode": message.code, "ErrorDescription": message.description,
                       "ErrorDetails": message.details}
        self._entries.append(Entry(time.time(), direction, _TYPES[kind], action, message.unique_id, size,
                                   payload if self.keep_payloads else None, reason))

    def entries(self) -> list[dict]:
        return [entry.as_dict() for entry in list(self._entries)]
