"""The MQTT payload of a message, both ways (SPEC §6).

Envelope mode: a JSON object ``{"MessageTypeId", "UniqueId", "Action"?, "Payload"}`` for
Call/CallResult/Send and ``{"MessageTypeId": 4|5, "UniqueId", "Action"?, "ErrorCode",
"ErrorDescription", "ErrorDetails"}`` for CallError/CallResultError. Upstream envelopes also
carry ``"Protocol"``, the CP's subprotocol (SPEC §9); a downstream envelope may carry it, and
one naming another version than the CP's is refused (reason ``version_mismatch``). Which
MessageTypeIds, Actions and ErrorCodes a downstream envelope may hold is the CP's version's
rule. Bare mode (EMQX 4.x topic-addressed):
only the payload object travels, or ``{"ErrorCode", "ErrorDescription", "ErrorDetails"}``
for a CallError; type, action and id come from the topic.

Decoding is strict: optional keys (``Action`` on replies, ``ErrorDescription`` defaulting
to ``""``, ``ErrorDetails`` defaulting to ``{}``) may be absent, but when present must
have the right JSON type (``null`` is not absent). Unknown keys are ignored. The JSON
hazards are refused as in frames.py; when they (or any other JSON breakage) hide the
UniqueId, it is still read from the text if ``"UniqueId": "<plain id>"`` occurs exactly once.
Bytes must be UTF-8 without a byte order mark.
"""

from __future__ import annotations

import re

from .frames import (
    CALL, CALLERROR, CALLRESULT, Call, CallError, CallResult, CallResultError, JSONError,
    Message, Send, action_problem, decode_json, encode_json, excerpt, json_type,
    readable_unique_id, unique_id_problem,
)
from .versions import CALLRESULTERROR, SEND, V16, VERSIONS, OcppVersion, foreign_error_codes

TYPE_NAMES: dict[type, str] = {Call: "request", CallResult: "response", CallError: "error",
                               CallResultError: "error", Send: "request"}
_TYPE_IDS: dict[type, int] = {Call: CALL, CallResult: CALLRESULT, CallError: CALLERROR,
                              CallResultError: CALLRESULTERROR, Send: SEND}

# Reasons of SPEC §6 and §9, and the error code (an ErrorCodes field, spelled as the CP's
# version spells it) each one is reported with. What the gateway gives up on is its own
# failure to deliver (InternalError); what it refuses is the sender's malformed message
# (FormationViolation in 1.6, FormatViolation in 2.x). A schema failure defaults to the
# format violation; callers that know the precise code (the checker does) pass it.
GATEWAY_REASONS: dict[str, str] = {
    "queue_full": "internal_error",
    "timeout": "internal_error",
    "offline": "internal_error",
    "disconnected": "internal_error",
    "invalid_envelope": "format_violation",
    "schema": "format_violation",
    "version_mismatch": "format_violation",
    # A command channel (SPEC §11) sent what it may not: a policy refusal, not a malformed message.
    "not_allowed": "security_error",
}


# The UniqueId of an envelope whose JSON is broken further on, so that it can still be
# answered; trusted only when the key occurs once (a payload could hold its own "UniqueId").
_ID_MEMBER = re.compile(r'"UniqueId"[ \t\r\n]*:[ \t\r\n]*"([^"\\\x00-\x1f]{1,36})"')


class EnvelopeError(Exception):
    """An MQTT payload that is not a valid message; ``unique_id`` is set when it could be read."""

    def __init__(self, reason: str, unique_id: str | None = None,
                 gateway_reason: str = "invalid_envelope"):
        super().__init__(reason)
        self.reason = reason
        self.unique_id = unique_id
        self.gateway_reason = gateway_reason   # the SPEC §6 reason of the gateway error


def type_name(msg: Message) -> str:
    """The topic ``${type}`` of a message: request, response or error."""
    return TYPE_NAMES[type(msg)]


def _to_bytes(value: object) -> bytes:
    # Unpaired surrogates cannot be UTF-8 encoded; inside JSON strings their \\uXXXX escape
    # (what backslashreplace writes) is valid and decodes back to the same character.
    return encode_json(value).encode("utf-8", "backslashreplace")


def encode(msg: Message, action: str | None = None, protocol: str | None = None) -> bytes:
    """The envelope of ``msg``; for a reply, ``action`` (the call's Action) is merged in;
    ``protocol`` (the CP's subprotocol) is added as ``Protocol`` when given."""
    kind = type(msg)
    type_id = _TYPE_IDS.get(kind)
    if type_id is None:
        raise TypeError(f"not an OCPP message: {kind.__name__}")
    envelope: dict = {"MessageTypeId": type_id, "UniqueId": msg.unique_id}
    if kind is Call or kind is Send:
        envelope["Action"] = msg.action
        envelope["Payload"] = msg.payload
    else:
        if action is not None:
            envelope["Action"] = action
        if kind is CallResult:
            envelope["Payload"] = msg.payload
        else:
            envelope["ErrorCode"] = msg.code
            envelope["ErrorDescription"] = msg.description
            envelope["ErrorDetails"] = msg.details
    if protocol is not None:
        envelope["Protocol"] = protocol
    return _to_bytes(envelope)


def encode_bare(msg: Message) -> bytes:
    """The bare-mode payload of ``msg``."""
    if type(msg) is Call or type(msg) is CallResult or type(msg) is Send:
        return _to_bytes(msg.payload)
    if type(msg) is CallError or type(msg) is CallResultError:
        return _to_bytes({"ErrorCode": msg.code, "ErrorDescription": msg.description,
                          "ErrorDetails": msg.details})
    raise TypeError(f"not an OCPP message: {type(msg).__name__}")


def _load_object(data: bytes | str, what: str, unique_id: str | None = None) -> dict:
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        value = decode_json(text)
    except UnicodeDecodeError as exc:
        raise EnvelopeError(f"{what} is not UTF-8 (byte {exc.start})", unique_id) from None
    except JSONError as exc:
        if unique_id is None:
            found = _ID_MEMBER.findall(text)
            unique_id = found[0] if len(found) == 1 else None
        raise EnvelopeError(f"{what}: {exc}", unique_id) from None
    if type(value) is not dict:
        raise EnvelopeError(f"{what} must be a JSON object, not {json_type(value)}", unique_id)
    return value


def _error_fields(obj: dict, unique_id: str | None,
                  version: OcppVersion) -> tuple[str, str, dict]:
    code = obj.get("ErrorCode")
    if type(code) is not str:
        raise EnvelopeError(f"ErrorCode must be a string, not {_present_type(obj, 'ErrorCode')}",
                            unique_id)
    if code in foreign_error_codes(version):
        # Another version's spelling (FormationViolation on 2.x, FormatViolation on 1.6): the
        # CP would not understand it. Codes no version defines (vendor codes) pass as they are.
        raise EnvelopeError(f"ErrorCode {code} is not an {version.subprotocol} code", unique_id)
    description = obj.get("ErrorDescription", "")
    if type(description) is not str:
        raise EnvelopeError(f"ErrorDescription must be a string, not {json_type(description)}",
                            unique_id)
    details = obj.get("ErrorDetails", {})
    if type(details) is not dict:
        raise EnvelopeError(f"ErrorDetails must be a JSON object, not {json_type(details)}",
                            unique_id)
    return code, description, details


def _present_type(obj: dict, key: str) -> str:
    return json_type(obj[key]) if key in obj else "missing"


def _payload(obj: dict, unique_id: str | None) -> dict:
    payload = obj.get("Payload")
    if type(payload) is not dict:
        raise EnvelopeError(f"Payload must be a JSON object, not {_present_type(obj, 'Payload')}",
                            unique_id)
    return payload


def decode(data: bytes, version: OcppVersion = V16, *,
           trust_protocol: bool = False) -> tuple[Message, str | None]:
    """Read an envelope for a CP of ``version``: (message, its Action or None). Raises
    EnvelopeError. With ``trust_protocol`` (the CP's version is not known: it is offline and
    has not been seen), a ``Protocol`` naming a known version is taken for the CP's."""
    obj = _load_object(data, "envelope")
    if trust_protocol and obj.get("Protocol") in VERSIONS:
        version = VERSIONS[obj["Protocol"]]
    raw_id = obj.get("UniqueId")
    unique_id = readable_unique_id(raw_id)
    if "UniqueId" not in obj:
        raise EnvelopeError("UniqueId missing")
    problem = unique_id_problem(raw_id)
    if problem:
        # Not answerable: the answer's topic may carry the id (${id}).
        raise EnvelopeError(problem)
    _check_protocol(obj, unique_id, version)
    type_id = _message_type_id(obj, unique_id, version)

    if "Action" in obj:
        action = obj["Action"]
        problem = action_problem(action, version.signed_actions)
        if problem:
            raise EnvelopeError(problem, unique_id)
    elif type_id == CALL or type_id == SEND:
        raise EnvelopeError("Action missing", unique_id)
    else:
        action = None

    if type_id == CALL or type_id == SEND:
        kind = Call if type_id == CALL else Send
        return kind(unique_id, action, _payload(obj, unique_id)), action
    if type_id == CALLRESULT:
        return CallResult(unique_id, _payload(obj, unique_id)), action
    kind = CallError if type_id == CALLERROR else CallResultError
    return kind(unique_id, *_error_fields(obj, unique_id, version)), action


def _check_protocol(obj: dict, unique_id: str | None, version: OcppVersion) -> None:
    if "Protocol" not in obj:
        return
    named = obj["Protocol"]
    if type(named) is not str:
        raise EnvelopeError(f"Protocol must be a string, not {json_type(named)}", unique_id)
    if named != version.subprotocol:
        raise EnvelopeError(f"envelope is for {excerpt(named)} but the charge point speaks "
                            f"{version.subprotocol}", unique_id, "version_mismatch")


def _message_type_id(obj: dict, unique_id: str | None, version: OcppVersion) -> int:
    type_id = obj.get("MessageTypeId")
    if type(type_id) is int and type_id in version.message_types:
        return type_id
    if "MessageTypeId" not in obj:
        raise EnvelopeError("MessageTypeId missing", unique_id)
    allowed = sorted(version.message_types)
    names = ", ".join(str(n) for n in allowed[:-1]) + f" or {allowed[-1]}"
    found = excerpt(type_id, 24) if type(type_id) is int else json_type(type_id)
    raise EnvelopeError(f"MessageTypeId must be {names}, not {found}", unique_id)


def decode_bare(data: bytes, message_type: str, unique_id: str, action: str | None,
                version: OcppVersion = V16) -> Message:
    """Read a bare-mode payload; type, id and action (used for requests) come from the topic."""
    problem = unique_id_problem(unique_id)
    if problem:
        raise EnvelopeError(f"topic {problem}")
    if message_type == "request":
        problem = action_problem(action)
        if problem:
            raise EnvelopeError(f"topic {problem}", unique_id)
        payload = _load_object(data, "payload", unique_id)
        return Call(unique_id, action, payload)  # type: ignore[arg-type]
    if message_type == "response":
        return CallResult(unique_id, _load_object(data, "payload", unique_id))
    if message_type == "error":
        obj = _load_object(data, "payload", unique_id)
        return CallError(unique_id, *_error_fields(obj, unique_id, version))
    raise EnvelopeError(
        f"topic type must be request, response or error, not {excerpt(message_type)}", unique_id)


def gateway_error(unique_id: str, reason: str, description: str, action: str | None = None,
                  *, code: str | None = None, version: OcppVersion = V16,
                  **extra: object) -> CallError:
    """The CallError the gateway sends the CSMS for what it refused or gave up on (SPEC §6).

    ``reason`` is one of GATEWAY_REASONS and picks the ErrorCode, spelled as the CP's
    ``version`` spells it, unless ``code`` is given (a schema failure's precise code). ErrorDetails is ``{"origin": "ocpp_gw",
    "reason": reason, "action"?: action, **extra}``: the action is recorded there because a
    CallError has no field of its own for it (pass it to ``encode`` as well for the envelope).
    """
    code_field = GATEWAY_REASONS.get(reason)
    if code_field is None:
        raise ValueError(f"unknown gateway error reason {reason!r}")
    default_code = getattr(version.codes, code_field)
    details: dict = {"origin": "ocpp_gw", "reason": reason}
    if action is not None:
        details["action"] = action
    clash = details.keys() & extra.keys()
    if clash:
        raise ValueError(f"ErrorDetails keys reserved by the gateway: {sorted(clash)}")
    details.update(extra)
    return CallError(unique_id, code or default_code, description, details)
