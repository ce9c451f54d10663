"""OCPP-J frames: parse a text frame into a message, serialize a message (SPEC §4, §9).

Every function that depends on the OCPP version takes the connection's
:class:`~ocpp_gw.protocol.versions.OcppVersion` (1.6 when none is given) and consults its
rules: which MessageTypeIds exist (5 CALLRESULTERROR and 6 SEND on 2.1 only), whether
``<Action>-Signed`` actions exist, how malformed frames are answered.

Decisions where OCPP-J leaves room:

* A frame whose JSON is broken (not JSON at all, truncated, trailing garbage, one of the
  hazards below) is still answered when it starts like ``[2|3|4, "<id>",`` with a plain
  id: the CP then learns its message failed instead of waiting for a timeout.
* A UniqueId that is not a string, is empty or is longer than 36 characters makes the
  frame unanswerable (``FrameError.unique_id is None``): echoing it would itself be an
  invalid frame.
* A CallError must have all five elements; the four-element form some firmware sends
  (no details) is rejected like any other wrong arity.
* Error codes received from a peer are kept as they are, known to 1.6 or not.
* Duplicate keys in a JSON object: the last one wins (what ``json`` does).
* Whitespace around the JSON text is allowed (JSON allows it); a byte order mark is not.
* ``NaN``, ``Infinity``, numbers too large for a float (``1e400``), integers of more than
  4300 digits, unpaired UTF-16 surrogate escapes and nesting deeper than ``MAX_DEPTH``
  (the frame's own array counts as level 1) are all rejected as malformed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from .text import excerpt
from .versions import CALLRESULTERROR, SEND, V16, OcppVersion

ERROR_CODES: frozenset[str] = frozenset({
    "NotImplemented",
    "NotSupported",
    "InternalError",
    "ProtocolError",
    "SecurityError",
    "FormationViolation",
    "PropertyConstraintViolation",
    "OccurenceConstraintViolation",
    "TypeConstraintViolation",
    "GenericError",
})

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_UNIQUE_ID_LENGTH = 36
MAX_ACTION_LENGTH = 64
MAX_DEPTH = 64
MAX_INT_DIGITS = 4300   # CPython's default int/str limit, enforced whatever the interpreter's is

_ACTION = re.compile(r"[A-Za-z][A-Za-z0-9]*")
SIGNED_SUFFIX = "-Signed"   # a signed message (OCPP 2.x Part 4 §7): passed through as it is
# A UniqueId may become an MQTT topic level (${id}): no level separator, wildcard or control char.
_TOPIC_UNSAFE = re.compile(r"[/+#\x00-\x1f\x7f]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# The start of a frame whose JSON is broken further on: enough to answer it (SPEC §4).
_WS = r"[ \t\r\n]*"   # JSON whitespace, narrower than \s
_FRAME_HEAD = re.compile(rf'{_WS}\[{_WS}([23456]){_WS},{_WS}"([^"\\\x00-\x1f]{{1,36}})"{_WS}[,\]]')


@dataclass(frozen=True, slots=True)
class Call:
    unique_id: str
    action: str
    payload: dict


@dataclass(frozen=True, slots=True)
class CallResult:
    unique_id: str
    payload: dict


@dataclass(frozen=True, slots=True)
class CallError:
    unique_id: str
    code: str
    description: str
    details: dict


@dataclass(frozen=True, slots=True)
class CallResultError:
    """OCPP 2.1: the receiver of a CallResult could not process it (same id as the CallResult)."""

    unique_id: str
    code: str
    description: str
    details: dict


@dataclass(frozen=True, slots=True)
class Send:
    """OCPP 2.1: a message outside the call discipline; it is never answered."""

    unique_id: str
    action: str
    payload: dict


Message = Call | CallResult | CallError | CallResultError | Send
ERRORS = (CallError, CallResultError)   # the messages that carry an ErrorCode


class FrameError(Exception):
    """A malformed frame.

    ``description`` is one line meant for the peer (the FormationViolation text);
    ``unique_id`` is the frame's id when it could be read and is valid, else None;
    ``kind`` is what is wrong, for the versions that tell those apart (see
    ``OcppVersion.malformed_code``): "json", "rpc" or "payload".
    """

    def __init__(self, description: str, unique_id: str | None = None, kind: str = "rpc"):
        super().__init__(description)
        self.description = description
        self.unique_id = unique_id
        self.kind = kind


class UnknownMessageType(FrameError):
    """MessageTypeId is an integer the version does not define (OCPP-J §4.1.3): 1.6 and 2.1
    ignore it, 2.0.1 answers MessageTypeNotSupported."""


class JSONError(ValueError):
    """Text that is not acceptable JSON; ``str(err)`` is a one-line reason."""


# --- JSON with the hazards removed (shared with envelope.py) -------------------------------

def _reject_constant(name: str) -> float:
    raise JSONError(f"{name} is not a valid JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JSONError(f"number out of range: {excerpt(text)}")
    return value


def _bounded_int(text: str) -> int:
    if len(text) - text.startswith("-") > MAX_INT_DIGITS:
        raise JSONError(f"integer longer than {MAX_INT_DIGITS} digits")
    return int(text)


_DECODER = json.JSONDecoder(
    parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _too_deep(root: object) -> bool:
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        for child in (node.values() if type(node) is dict else node):
            if type(child) is dict or type(child) is list:
                stack.append((child, depth + 1))
    return False


def decode_json(text: str) -> object:
    """``json.loads`` that raises JSONError for anything the gateway must not pass on."""
    try:
        value = _DECODER.decode(text)
    except JSONError:
        raise
    except json.JSONDecodeError as exc:
        if text.startswith("\ufeff"):
            raise JSONError("not valid JSON: starts with a byte order mark") from None
        raise JSONError(f"not valid JSON: {exc.msg} at char {exc.pos}") from None
    except RecursionError:
        raise JSONError(f"nesting deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:   # the interpreter's own int/str limit
        raise JSONError(f"not valid JSON: {excerpt(str(exc), 60)}") from None
    # Each container takes at least one bracket, so few brackets means shallow: skip the walk.
    if (text.count("[") + text.count("{") > MAX_DEPTH
            and (type(value) is dict or type(value) is list) and _too_deep(value)):
        raise JSONError(f"nesting deeper than {MAX_DEPTH} levels")
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        try:
            _ENCODER.encode(value).encode("utf-8")
        except UnicodeEncodeError:
            raise JSONError("string contains an unpaired UTF-16 surrogate") from None
    return value


def encode_json(value: object) -> str:
    """Compact JSON text, non-ASCII kept as is; NaN and infinities raise ValueError."""
    return _ENCODER.encode(value)


def json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for error descriptions."""
    if value is None:
        return "null"
    if type(value) is bool:
        return "boolean"
    if type(value) is int or type(value) is float:
        return "number"
    if type(value) is str:
        return "string"
    if type(value) is list:
        return "array"
    if type(value) is dict:
        return "object"
    return type(value).__name__


# --- validation shared with envelope.py -----------------------------------------------------

def unique_id_problem(value: object) -> str | None:
    """Why ``value`` is not a valid UniqueId, or None when it is one."""
    if type(value) is not str:
        return f"UniqueId must be a string, not {json_type(value)}"
    if not value:
        return "UniqueId must not be empty"
    if len(value) > MAX_UNIQUE_ID_LENGTH:
        return f"UniqueId longer than {MAX_UNIQUE_ID_LENGTH} characters"
    if _TOPIC_UNSAFE.search(value):
        return "UniqueId must not contain '/', '+', '#' or control characters"
    return None


def action_problem(value: object, signed: bool = False) -> str | None:
    """Why ``value`` is not a valid Action (letters and digits, it ends up in MQTT topics).
    With ``signed`` (2.x), ``<Action>-Signed`` is an Action too."""
    if type(value) is not str:
        return f"Action must be a string, not {json_type(value)}"
    if not value:
        return "Action must not be empty"
    if len(value) > MAX_ACTION_LENGTH:
        return f"Action longer than {MAX_ACTION_LENGTH} characters"
    name = value[:-len(SIGNED_SUFFIX)] if signed and value.endswith(SIGNED_SUFFIX) else value
    if not _ACTION.fullmatch(name):
        return f"Action {excerpt(value)} must be letters and digits, starting with a letter"
    return None


def readable_unique_id(value: object) -> str | None:
    """``value`` when it can be echoed in an answer (a string of 1 to 36 characters), else None."""
    if type(value) is str and 0 < len(value) <= MAX_UNIQUE_ID_LENGTH:
        return value
    return None


# --- frames ---------------------------------------------------------------------------------

_ARITY = {CALL: 4, CALLRESULT: 3, CALLERROR: 5, CALLRESULTERROR: 5, SEND: 4}
_KIND = {CALL: "Call", CALLRESULT: "CallResult", CALLERROR: "CallError",
         CALLRESULTERROR: "CallResultError", SEND: "Send"}


def parse(text: str, version: OcppVersion = V16) -> Message:
    """Parse one text frame. Raises FrameError (answer when it has an id) or UnknownMessageType."""
    if type(text) is not str:
        raise FrameError("frame must be text")
    try:
        frame = decode_json(text)
    except JSONError as exc:
        head = _FRAME_HEAD.match(text)
        known = head is not None and int(head.group(1)) in version.message_types
        raise FrameError(str(exc), head.group(2) if known else None, "json") from None
    if type(frame) is not list:
        raise FrameError(f"frame must be a JSON array, not {json_type(frame)}")
    if not frame:
        raise FrameError("frame must not be an empty array")

    unique_id = readable_unique_id(frame[1]) if len(frame) > 1 else None
    type_id = frame[0]
    if type(type_id) is not int:
        raise FrameError(f"MessageTypeId must be an integer, not {json_type(type_id)}", unique_id)
    if type_id not in version.message_types:
        raise UnknownMessageType(f"unknown MessageTypeId {excerpt(type_id, 24)}", unique_id)
    arity = _ARITY[type_id]
    if len(frame) != arity:
        raise FrameError(
            f"{_KIND[type_id]} must have {arity} elements, not {len(frame)}", unique_id)
    problem = unique_id_problem(frame[1])
    if problem:
        raise FrameError(problem, unique_id)
    if type_id == CALL or type_id == SEND:
        return _parse_call(frame, unique_id, version)
    if type_id == CALLRESULT:
        return CallResult(unique_id, _payload(frame[2], unique_id))
    return _parse_error(frame, unique_id)


def _payload(payload: object, unique_id: str) -> dict:
    if type(payload) is not dict:
        raise FrameError(f"payload must be a JSON object, not {json_type(payload)}", unique_id,
                         "payload")
    return payload


def _parse_call(frame: list, unique_id: str, version: OcppVersion) -> Call | Send:
    problem = action_problem(frame[2], version.signed_actions)
    if problem:
        raise FrameError(problem, unique_id)
    payload = _payload(frame[3], unique_id)
    return (Call if frame[0] == CALL else Send)(unique_id, frame[2], payload)


def _parse_error(frame: list, unique_id: str) -> CallError | CallResultError:
    code, description, details = frame[2], frame[3], frame[4]
    if type(code) is not str:
        raise FrameError(f"ErrorCode must be a string, not {json_type(code)}", unique_id)
    if type(description) is not str:
        raise FrameError(
            f"ErrorDescription must be a string, not {json_type(description)}", unique_id)
    if type(details) is not dict:
        raise FrameError(
            f"ErrorDetails must be a JSON object, not {json_type(details)}", unique_id)
    return (CallError if frame[0] == CALLERROR else CallResultError)(
        unique_id, code, description, details)


_TYPE_IDS = {Call: CALL, CallResult: CALLRESULT, CallError: CALLERROR,
             CallResultError: CALLRESULTERROR, Send: SEND}


def type_id(msg: Message) -> int:
    """The MessageTypeId of ``msg``."""
    return _TYPE_IDS[type(msg)]


def serialize(msg: Message, version: OcppVersion = V16) -> str:
    """The OCPP-J text frame of ``msg`` (compact JSON, UTF-8 characters kept); an
    ErrorDescription longer than the version allows is cut short."""
    kind = type(msg)
    if kind is Call:
        return _ENCODER.encode([CALL, msg.unique_id, msg.action, msg.payload])
    if kind is CallResult:
        return _ENCODER.encode([CALLRESULT, msg.unique_id, msg.payload])
    if kind is CallError or kind is CallResultError:
        type_id = CALLERROR if kind is CallError else CALLRESULTERROR
        return _ENCODER.encode([type_id, msg.unique_id, msg.code,
                                version.error_description(msg.description), msg.details])
    if kind is Send:
        return _ENCODER.encode([SEND, msg.unique_id, msg.action, msg.payload])
    raise TypeError(f"not an OCPP message: {type(msg).__name__}")


def formation_violation(err: FrameError) -> CallError | None:
    """The CallError answering a malformed frame on 1.6, or None when it cannot be answered."""
    return answer_malformed(err, V16)


def answer_malformed(err: FrameError, version: OcppVersion) -> CallError | None:
    """The CallError answering a malformed frame in ``version``'s words, or None when it cannot
    be answered (1.6 without a readable id; an unknown MessageTypeId the version ignores)."""
    if isinstance(err, UnknownMessageType):
        code = version.codes.message_type_not_supported
        if not version.answers_unknown_message_type or code is None:
            return None
    else:
        code = version.malformed_code(err.kind, err.unique_id is not None)
    unique_id = err.unique_id if err.unique_id is not None else version.unreadable_id
    if unique_id is None:
        return None
    return CallError(unique_id, code, err.description, {})
