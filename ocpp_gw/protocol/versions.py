"""The OCPP-J versions the gateway speaks, each a table of its transport rules (SPEC §9).

The codec, the pipe, the schema checker and the handshake consult a connection's
:class:`OcppVersion` instead of testing version names. Sources for every rule:
``reference/ocpp-j-versions.md`` (OCPP-J 1.6 §4, 2.0.1 Part 4 §4, 2.1 Part 4 §4).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

CALL, CALLRESULT, CALLERROR, CALLRESULTERROR, SEND = 2, 3, 4, 5, 6


@dataclass(frozen=True, slots=True)
class ErrorCodes:
    """How one version spells the error codes the gateway itself sends."""

    format_violation: str            # malformed frame or payload not an object
    occurrence_violation: str        # a required field is missing
    property_violation: str          # enum, length, range, format
    type_violation: str              # wrong JSON type
    not_implemented: str             # unknown action
    internal_error: str
    security_error: str
    generic_error: str
    message_type_not_supported: str | None  # 2.x only
    rpc_framework_error: str | None          # 2.x only: e.g. the id cannot be read
    known: frozenset[str]            # every code the version defines


_CODES_16 = ErrorCodes(
    format_violation="FormationViolation",
    occurrence_violation="OccurenceConstraintViolation",  # sic: 1.6's spelling, "won't fix"
    property_violation="PropertyConstraintViolation",
    type_violation="TypeConstraintViolation",
    not_implemented="NotImplemented",
    internal_error="InternalError",
    security_error="SecurityError",
    generic_error="GenericError",
    message_type_not_supported=None,
    rpc_framework_error=None,
    known=frozenset({
        "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
        "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
        "TypeConstraintViolation", "GenericError",
    }),
)

# 2.x renamed two codes and added two; the rest are spelled as in 1.6.
_CODES_2X = replace(
    _CODES_16,
    format_violation="FormatViolation",
    occurrence_violation="OccurrenceConstraintViolation",
    message_type_not_supported="MessageTypeNotSupported",
    rpc_framework_error="RpcFrameworkError",
    known=(_CODES_16.known - {"FormationViolation", "OccurenceConstraintViolation"})
    | {"FormatViolation", "OccurrenceConstraintViolation", "MessageTypeNotSupported", "RpcFrameworkError"},
)


@dataclass(frozen=True, slots=True)
class OcppVersion:
    """The transport rules of one OCPP-J version."""

    subprotocol: str                   # the Sec-WebSocket-Protocol token, e.g. "ocpp2.0.1"
    codes: ErrorCodes
    message_types: frozenset[int]      # the MessageTypeIds this version defines
    answers_unknown_message_type: bool  # 2.0.1: answer MessageTypeNotSupported; 1.6, 2.1: ignore
    unreadable_id: str | None          # the id of an answer to a frame whose id cannot be read
    schema_subdir: str                 # where its schemas live under the schema directory ("" = top)
    bare_mode: bool                    # may be served with ocpp.payload_format = bare
    signed_actions: bool               # "<Action>-Signed" calls exist (2.x Part 4 §7)
    max_error_description: int | None  # a longer ErrorDescription is sent as "" (2.x Table 7)
    # How the checker finds an action's schemas: by id, <ocpp.json_schema_id_prefix><Action>Request
    # and ...Response (1.6: operators' own schema directories rely on it), or by file name,
    # <Action>Request.json and <Action>Response.json (2.x: the OCA files' ids differ per release).
    schema_keyed_by_id: bool = False

    @property
    def has_send(self) -> bool:
        return SEND in self.message_types

    @property
    def has_callresulterror(self) -> bool:
        """A receiver answers a CallResult it cannot process with a CALLRESULTERROR (2.1)."""
        return CALLRESULTERROR in self.message_types

    def malformed_code(self, kind: str, id_readable: bool) -> str:
        """The ErrorCode answering a malformed frame: ``kind`` is "json" (the text is not JSON),
        "rpc" (not a valid RPC frame: shape, MessageTypeId, id, action) or "payload" (the
        payload is not an object). 1.6 says FormationViolation to all; 2.x answers a frame whose
        id it cannot read, or that is no RPC frame, with RpcFrameworkError, bad JSON or a bad
        payload with FormatViolation."""
        rpc = self.codes.rpc_framework_error
        if rpc is not None and (kind == "rpc" or not id_readable):
            return rpc
        return self.codes.format_violation

    def error_description(self, text: str) -> str:
        """``text``, or "" where it is longer than the version allows (2.x Table 7 says so, rather than
        cutting it: a cut text may no longer say what it meant)."""
        limit = self.max_error_description
        return text if limit is None or len(text) <= limit else ""


V16 = OcppVersion(
    subprotocol="ocpp1.6", codes=_CODES_16, message_types=frozenset({CALL, CALLRESULT, CALLERROR}),
    answers_unknown_message_type=False, unreadable_id=None, schema_subdir="", bare_mode=True,
    signed_actions=False, max_error_description=None, schema_keyed_by_id=True)
V201 = OcppVersion(
    subprotocol="ocpp2.0.1", codes=_CODES_2X, message_types=frozenset({CALL, CALLRESULT, CALLERROR}),
    answers_unknown_message_type=True, unreadable_id="-1", schema_subdir="ocpp2.0.1", bare_mode=False,
    signed_actions=True, max_error_description=255)
V21 = OcppVersion(
    subprotocol="ocpp2.1", codes=_CODES_2X,
    message_types=frozenset({CALL, CALLRESULT, CALLERROR, CALLRESULTERROR, SEND}),
    answers_unknown_message_type=False, unreadable_id="-1", schema_subdir="ocpp2.1", bare_mode=False,
    signed_actions=True, max_error_description=255)

VERSIONS: dict[str, OcppVersion] = {v.subprotocol: v for v in (V16, V201, V21)}


_ALL_CODES = frozenset().union(*(v.codes.known for v in VERSIONS.values()))


def foreign_error_codes(version: OcppVersion) -> frozenset[str]:
    """Codes other versions define and ``version`` does not (e.g. FormationViolation for 2.x)."""
    return _ALL_CODES - version.codes.known


def by_subprotocol(name: str) -> OcppVersion:
    """The version negotiated as ``name``; KeyError for one the gateway does not know."""
    return VERSIONS[name]


def parse_version_list(text: str) -> tuple[OcppVersion, ...]:
    """Versions named in ``text`` (separated by commas or spaces), in order; ValueError names an
    unknown or repeated one."""
    names = [name for name in text.replace(",", " ").split() if name]
    if not names:
        raise ValueError("names no version")
    chosen: list[OcppVersion] = []
    for name in names:
        version = VERSIONS.get(name)
        if version is None:
            raise ValueError(f"unknown OCPP version {name!r}; known: {', '.join(VERSIONS)}")
        if version in chosen:
            raise ValueError(f"{name} is named twice")
        chosen.append(version)
    return tuple(chosen)
