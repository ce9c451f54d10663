"""Payload checking against each OCPP-J version's JSON schemas (SPEC §7, §9).

Every schema of a version is loaded and compiled once, at start-up, into a :class:`SchemaChecker`;
:func:`load_checkers` builds one per version and :class:`Checkers` hands a connection the one of
its version. A check is a fast yes/no (a compiled predicate, see "Fast path" below); only a
payload that fails is run through jsonschema to find the most relevant error and map it to the
version's error code (``versions.ErrorCodes``).

Where a version's schemas are and how they are named is in its ``versions.OcppVersion`` row:
1.6 sits at the top of the schema directory and is found by id
(``<json_schema_id_prefix><Action>Request|Response``), as operators' own directories expect;
2.0.1 and 2.1 sit in ``ocpp2.0.1/`` and ``ocpp2.1/`` and are found by file name
(``<Action>Request.json``, ``<Action>Response.json``, and for a 2.1 SEND ``<Action>.json``),
because the OCA files' ids differ between releases and the 2.0.1 copies have none.
"""

from __future__ import annotations

import decimal
import json
import numbers
import re
import sys
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import jsonschema
import referencing
import referencing.exceptions
from jsonschema import Draft4Validator, Draft6Validator, Draft7Validator
from jsonschema.exceptions import SchemaError as _MetaschemaError
from jsonschema.exceptions import ValidationError
from jsonschema.validators import extend, validator_for
from referencing.jsonschema import DRAFT4, UnknownDialect, specification_with

from .text import bounded, excerpt, one_line
from .versions import V16, VERSIONS, ErrorCodes, OcppVersion

DEFAULT_ID_PREFIX = "urn:OCPP:1.6:2019:12:"
_REQUEST, _RESPONSE = "Request", "Response"
_SIGNED = "-Signed"  # a signed message's action (2.x Part 4 §7), on versions with signed_actions

# Which of a version's ErrorCodes a failed keyword is reported with.
_OCCURRENCE, _TYPE, _PROPERTY, _FORMAT = "occurrence", "type", "property", "format"
# When a payload has several errors, the shallowest wins, then the first kind in this order.
_KIND_RANK = {_OCCURRENCE: 0, _TYPE: 1, _PROPERTY: 2, _FORMAT: 3}
_KIND_OF_KEYWORD = {
    "required": _OCCURRENCE, "minItems": _OCCURRENCE, "maxItems": _OCCURRENCE,
    "dependencies": _OCCURRENCE, "minProperties": _OCCURRENCE, "maxProperties": _OCCURRENCE,
    "type": _TYPE,
    "enum": _PROPERTY, "const": _PROPERTY, "maxLength": _PROPERTY, "minLength": _PROPERTY,
    "maximum": _PROPERTY, "minimum": _PROPERTY, "exclusiveMaximum": _PROPERTY,
    "exclusiveMinimum": _PROPERTY, "multipleOf": _PROPERTY, "format": _PROPERTY,
    "pattern": _PROPERTY, "uniqueItems": _PROPERTY,
}  # anything else (additionalProperties, additionalItems, anyOf, not ...): a format violation


def _code(codes: ErrorCodes, kind: str) -> str:
    return {_OCCURRENCE: codes.occurrence_violation, _TYPE: codes.type_violation,
            _PROPERTY: codes.property_violation, _FORMAT: codes.format_violation}[kind]


MAX_DESCRIPTION = 255
_MAX_VALUE = 40
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class SchemaError(Exception):
    """The schema directory is missing, empty or holds a file that cannot be used."""


class Violation(NamedTuple):
    code: str          # an error code of the checker's OCPP version
    description: str   # "<json path>: <reason>", one line, at most MAX_DESCRIPTION characters


def default_schema_dir() -> Path:
    """The shipped schemas: the installed data path, else the repository's ``schemas/``."""
    installed = Path(sys.prefix) / "share" / "ocpp-gw" / "schemas"
    if installed.is_dir():
        return installed
    return Path(__file__).resolve().parents[2] / "schemas"


class SchemaChecker:
    """Checks one version's Call, CallResult and SEND payloads; thread-safe, nothing is compiled
    after __init__."""

    def __init__(self, directory: str | Path, id_prefix: str = DEFAULT_ID_PREFIX, *,
                 check_formats: bool = False, version: OcppVersion = V16) -> None:
        """Load and compile every ``*.json`` in ``directory``; raise SchemaError if any is unusable.

        ``id_prefix`` only matters to a version whose schemas are keyed by id (1.6).
        ``check_formats`` also enforces ``"format": "date-time"`` (RFC 3339); off by default
        because real charge points send timestamps without a zone or with odd precision.
        """
        self.directory = Path(directory)
        self.id_prefix = id_prefix
        self.version = version
        self._codes = version.codes
        files = _load_directory(self.directory)
        compiled = _Compiler(_FORMAT_CHECKER if check_formats else None, version.codes)
        if version.schema_keyed_by_id:
            tables = _by_id(files, id_prefix, compiled)
        else:
            tables = _by_file_name(files, version, compiled)
        self._requests, self._responses, self._sends = tables
        _require_pairs(self._requests, self._responses, self.directory)
        self.actions: frozenset[str] = frozenset(self._requests)
        self.send_actions: frozenset[str] = frozenset(self._sends)

    def check_request(self, action: str, payload: object) -> Violation | None:
        """None if ``payload`` is a valid ``action`` Call payload, else the Violation to answer.

        A SEND-only action (2.1's NotifyPeriodicEventStream) is checked against its SEND schema
        here too: whether it came as a Call or a SEND is the frame's business, not its format's.
        """
        if action in self._sends and action not in self._requests:
            return self.check_send(action, payload)
        return self._check(self._requests, action, payload, "unknown action")

    def check_response(self, action: str, payload: object) -> Violation | None:
        """Like check_request, for the CallResult to a Call of ``action``."""
        return self._check(self._responses, action, payload, "no schema for the response to")

    def check_send(self, action: str, payload: object) -> Violation | None:
        """Like check_request, for a SEND (2.1 type 6) of ``action``: only SEND actions."""
        return self._check(self._sends, action, payload, "unknown SEND action")

    def is_signed(self, action: str) -> bool:
        """``action`` is a signed message of this version (``<Action>-Signed``): never checked."""
        return self.version.signed_actions and action.endswith(_SIGNED) and len(action) > len(_SIGNED)

    def _check(self, table: dict[str, _Check], action: str, payload: object, unknown: str):
        check = table.get(action)
        if check is not None:
            return check(payload)
        if self.is_signed(action):
            return None  # a JWS no schema describes: the receiver unwraps and checks it
        return Violation(self._codes.not_implemented, _bounded(f"{unknown} {_short(action)}"))


class Checkers:
    """The checker of each version the gateway checks, by version."""

    def __init__(self, checkers: Iterable[SchemaChecker] = ()) -> None:
        self._by_subprotocol = {checker.version.subprotocol: checker for checker in checkers}

    def for_version(self, version: OcppVersion | str | None) -> SchemaChecker | None:
        """The checker of ``version`` (an OcppVersion or its subprotocol); None: not checked."""
        name = version.subprotocol if isinstance(version, OcppVersion) else version
        return self._by_subprotocol.get(name)

    def __iter__(self):
        return iter(self._by_subprotocol.values())

    def __bool__(self) -> bool:
        return bool(self._by_subprotocol)


def version_schema_dir(directory: str | Path, version: OcppVersion,
                       shipped: str | Path | None = None) -> Path:
    """Where ``version``'s schemas are: ``directory`` for 1.6, ``directory/<subdir>`` for 2.x.

    A configured directory without the subdirectory of a version (an operator's own 1.6
    directory from before 2.x) gets the shipped schemas of that version.
    """
    root = Path(directory)
    if not version.schema_subdir:
        return root
    own = root / version.schema_subdir
    if own.is_dir():
        return own
    return Path(shipped if shipped is not None else default_schema_dir()) / version.schema_subdir


def load_checkers(directory: str | Path, versions: Iterable[OcppVersion] = VERSIONS.values(), *,
                  id_prefix: str = DEFAULT_ID_PREFIX, check_formats: bool = False,
                  shipped: str | Path | None = None) -> Checkers:
    """One SchemaChecker per version, from ``directory`` (see version_schema_dir)."""
    return Checkers(SchemaChecker(version_schema_dir(directory, v, shipped), id_prefix,
                                  check_formats=check_formats, version=v) for v in versions)


# ---------------------------------------------------------------------------------------------
# Loading

_Files = list[tuple[Path, dict]]


def _load_directory(directory: Path) -> _Files:
    """Every ``*.json`` schema in ``directory`` (not its subdirectories), with its path."""
    if not directory.is_dir():
        raise SchemaError(f"schema directory {directory} does not exist or is not a directory")
    paths = sorted(directory.glob("*.json"))
    if not paths:
        raise SchemaError(f"schema directory {directory} holds no *.json schema files")
    files = []
    for path in paths:
        try:  # utf-8-sig: OCA schema files may start with a byte order mark (the OCPP 2.0 set does)
            schema = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise SchemaError(f"{path}: cannot read schema: {one_line(str(exc))}") from None
        if not isinstance(schema, dict):
            raise SchemaError(f"{path}: a schema must be a JSON object")
        files.append((path, schema))
    return files


def _specification(path: Path, schema: dict):
    dialect = schema.get("$schema")
    try:
        return DRAFT4 if dialect is None else specification_with(dialect)
    except UnknownDialect:
        raise SchemaError(f"{path}: unknown \"$schema\" {_short(dialect)}") from None


class _Compiler:
    """Compiles the schemas of one directory into _Checks, with one version's codes."""

    def __init__(self, format_checker, codes: ErrorCodes) -> None:
        self.format_checker = format_checker
        self.codes = codes
        self._valid_definitions: set[tuple[type, str]] = set()

    def __call__(self, path: Path, schema: dict, registry: referencing.Registry,
                 resolver: referencing.Resolver) -> _Check:
        try:
            self._check_against_metaschema(schema)
            return _Check(schema, registry, resolver, self.format_checker, self.codes)
        except (referencing.exceptions.Unresolvable, _MetaschemaError) as exc:
            raise SchemaError(_bounded(f"{path}: unusable schema: {one_line(str(exc))}")) from None

    def _check_against_metaschema(self, schema: dict) -> None:
        """``check_schema``, with each distinct entry of ``definitions`` checked once.

        The 2.x files repeat the same definitions (IdTokenType, CustomDataType ...) in file after
        file; checking each once halves the start-up cost. Equivalent: in the draft 4 to 7
        metaschemas every ``definitions`` value is checked against the metaschema itself.
        """
        base = validator_for(schema, default=Draft4Validator)
        definitions = schema.get("definitions")
        if not isinstance(definitions, dict):
            base.check_schema(schema)
            return
        for definition in definitions.values():
            key = (base, json.dumps(definition, sort_keys=True))
            if key not in self._valid_definitions:
                base.check_schema(definition)
                self._valid_definitions.add(key)
        base.check_schema({k: v for k, v in schema.items() if k != "definitions"})


def _by_id(files: _Files, prefix: str, compiled: _Compiler):
    """Requests and responses by action, from ids ``<prefix><Action>Request|Response``; the
    schemas share one registry, so one may refer to another by id."""
    by_uri: dict[str, tuple[Path, dict]] = {}
    for path, schema in files:
        uri = schema.get("$id", schema.get("id"))
        if not isinstance(uri, str) or not uri:
            raise SchemaError(f"{path}: the schema has no id")
        if uri in by_uri:
            raise SchemaError(f"{path}: id {uri} is also the id of {by_uri[uri][0]}")
        by_uri[uri] = (path, schema)
    registry = referencing.Registry().with_resources(
        (uri, _specification(path, schema).create_resource(schema))
        for uri, (path, schema) in by_uri.items()).crawl()
    requests: dict[str, _Check] = {}
    responses: dict[str, _Check] = {}
    for uri, (path, schema) in by_uri.items():
        check = compiled(path, schema, registry, registry.resolver(uri))
        name = uri[len(prefix):] if uri.startswith(prefix) else ""
        if name.endswith(_REQUEST) and len(name) > len(_REQUEST):
            requests[name[:-len(_REQUEST)]] = check
        elif name.endswith(_RESPONSE) and len(name) > len(_RESPONSE):
            responses[name[:-len(_RESPONSE)]] = check
        else:
            raise SchemaError(f"{path}: id {uri} is not <prefix><Action>Request|Response "
                              f"for the configured prefix {prefix!r} (ocpp.json_schema_id_prefix)")
    return requests, responses, {}


def _by_file_name(files: _Files, version: OcppVersion, compiled: _Compiler):
    """Requests, responses and SENDs by action, from file names; each schema stands alone, so
    whatever ids the files carry (none, or one per release) do not matter."""
    requests: dict[str, _Check] = {}
    responses: dict[str, _Check] = {}
    sends: dict[str, _Check] = {}
    for path, schema in files:
        registry = referencing.Registry()
        resolver = registry.resolver_with_root(_specification(path, schema).create_resource(schema))
        check = compiled(path, schema, registry, resolver)
        name = path.stem
        if name.endswith(_REQUEST) and len(name) > len(_REQUEST):
            requests[name[:-len(_REQUEST)]] = check
        elif name.endswith(_RESPONSE) and len(name) > len(_RESPONSE):
            responses[name[:-len(_RESPONSE)]] = check
        elif version.has_send:
            sends[name] = check
        else:
            raise SchemaError(f"{path}: an {version.subprotocol} schema file is named "
                              f"<Action>Request.json or <Action>Response.json")
    return requests, responses, sends


def _require_pairs(requests: dict, responses: dict, directory: Path) -> None:
    unpaired = sorted(requests.keys() ^ responses.keys())
    if unpaired:
        raise SchemaError(f"schema directory {directory}: no request and response pair for "
                          f"{', '.join(unpaired)}")


# ---------------------------------------------------------------------------------------------
# Keyword semantics shared by the fast path and jsonschema

_DECIMALS = decimal.Context(prec=60)


def _is_multiple(value: object, divisor: object) -> bool:
    """``value`` is a multiple of ``divisor``, in the decimal notation both were written in.

    Binary floats make 7.3 / 0.1 == 72.99999999999999, so jsonschema's own check rejects a
    charging limit of 7.3 A against the schema's ``"multipleOf": 0.1``.
    """
    if isinstance(value, int) and isinstance(divisor, int):
        return value % divisor == 0
    try:
        quotient = _DECIMALS.divide(_as_decimal(value), _as_decimal(divisor))
    except (decimal.DecimalException, TypeError, ValueError):
        return False
    return quotient.is_finite() and quotient == quotient.to_integral_value()


def _as_decimal(number: object) -> decimal.Decimal:
    # repr() of a float is the shortest text that reads back as the same float: what was sent.
    return decimal.Decimal(repr(number)) if isinstance(number, float) else decimal.Decimal(number)


def _multiple_of_keyword(validator, divisor, instance, schema):
    if validator.is_type(instance, "number") and not _is_multiple(instance, divisor):
        yield ValidationError(f"{instance!r} is not a multiple of {divisor!r}")


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d+)?([Zz]|[+-]\d\d:\d\d)\Z")


def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


_FORMAT_CHECKER = jsonschema.FormatChecker(formats=())
_FORMAT_CHECKER.checks("date-time")(_is_date_time)

_EXTENDED: dict[type, type] = {}
_FAST_PATH_DIALECTS = {Draft4Validator: True, Draft6Validator: False, Draft7Validator: False}


class _Check:
    """One schema: a compiled predicate for valid payloads, jsonschema for explaining the rest."""

    def __init__(self, schema: dict, registry: referencing.Registry, resolver: referencing.Resolver,
                 format_checker, codes: ErrorCodes) -> None:
        self._codes = codes
        base = validator_for(schema, default=Draft4Validator)  # the dialect the schema declares
        if base not in _EXTENDED:
            _EXTENDED[base] = extend(base, {"multipleOf": _multiple_of_keyword})
        self._validator = _EXTENDED[base](schema, registry=registry, format_checker=format_checker)
        self.is_valid: _Predicate = self._validator.is_valid
        if base in _FAST_PATH_DIALECTS:
            dialect = _Dialect(_FAST_PATH_DIALECTS[base], format_checker)
            try:
                self.is_valid = _compile(schema, resolver, dialect, 0)
            except _Unsupported:
                pass

    def __call__(self, payload: object) -> Violation | None:
        if not isinstance(payload, dict):
            return Violation(self._codes.format_violation,
                             f"$: the payload must be a JSON object, not {_json_type(payload)}")
        if self.is_valid(payload):
            return None
        return _explain(self._validator.iter_errors(payload), self._codes)


# ---------------------------------------------------------------------------------------------
# Explaining a failure

def _explain(errors: Iterable[ValidationError], codes: ErrorCodes) -> Violation | None:
    best, best_key = None, None
    for index, error in enumerate(errors):
        kind = _KIND_OF_KEYWORD.get(error.validator, _FORMAT)
        key = (len(error.absolute_path), _KIND_RANK[kind], index)
        if best_key is None or key < best_key:
            best, best_key = (error, kind), key
    if best is None:
        return None  # the fast path was stricter than jsonschema; jsonschema is the reference
    error, kind = best
    path, reason = _describe(error)
    return Violation(_code(codes, kind), _bounded(f"{path}: {reason}"))


def _describe(error: ValidationError) -> tuple[str, str]:
    keyword, expected, value = error.validator, error.validator_value, error.instance
    path = _json_path(error.absolute_path)
    if keyword == "required":
        missing = [name for name in expected if name not in value]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return _json_path([*error.absolute_path, missing[0]]), f"required property is missing{more}"
    if keyword == "additionalProperties":
        known = error.schema.get("properties", {})
        patterns = error.schema.get("patternProperties", {})
        extra = [k for k in value if k not in known and not any(re.search(p, k) for p in patterns)]
        more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
        return _json_path([*error.absolute_path, extra[0]]), f"unexpected property{more}"
    if keyword == "type":
        wanted = " or ".join(repr(t) for t in ([expected] if isinstance(expected, str) else expected))
        return path, f"{_short(value)} is not of type {wanted}"
    if keyword == "enum":
        return path, f"{_short(value)} is not one of {_short_list(expected)}"
    if keyword in ("maxLength", "minLength"):
        bound = "at most" if keyword == "maxLength" else "at least"
        state = "too long" if keyword == "maxLength" else "too short"
        return path, f"{_short(value)} is {state} ({len(value)} characters, {bound} {expected})"
    if keyword in ("maxItems", "minItems"):
        bound = f"at most {expected} allowed" if keyword == "maxItems" else f"at least {expected} required"
        return path, f"{len(value)} items, {bound}"
    return path, one_line(error.message)


def _json_path(parts: Iterable[object]) -> str:
    text = "$"
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.match(part) and len(part) <= _MAX_VALUE:
            text += f".{part}"
        else:
            text += f"[{_short(part)}]"
    return text


def _short(value: object) -> str:
    return excerpt(value, _MAX_VALUE)


def _short_list(values: list) -> str:
    return excerpt(values, 120)


def _bounded(text: str) -> str:
    return bounded(text, MAX_DESCRIPTION)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, numbers.Number):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


# ---------------------------------------------------------------------------------------------
# Fast path: a schema compiled into nested closures answering only "valid?".
#
# jsonschema re-interprets the schema for each payload (about 230 µs for a MeterValues with six
# sampled values, 25 µs for a BootNotification); these predicates take a few µs. They cover the
# keywords the OCPP 1.6 schemas use; a schema using anything else raises _Unsupported and is
# checked by jsonschema alone. A predicate that is too lenient would let invalid payloads through,
# so tests/unit/test_schemas.py compares both on mutated payloads; one that is too strict only
# costs time, because jsonschema has the last word on every rejection.

class _Unsupported(Exception):
    pass


class _Dialect(NamedTuple):
    draft4: bool
    format_checker: jsonschema.FormatChecker | None


_Predicate = Callable[[object], bool]
_ANNOTATIONS = frozenset({"$schema", "title", "description", "definitions", "default", "examples",
                          "javaType", "comment", "$comment"})
_MAX_DEPTH = 64
_OBJECT_KEYWORDS = frozenset({"properties", "required", "additionalProperties"})
_ARRAY_KEYWORDS = frozenset({"items", "minItems", "maxItems"})


def _is_number(x: object) -> bool:
    return isinstance(x, numbers.Number) and not isinstance(x, bool)


def _is_integer_draft4(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_integer_draft6(x: object) -> bool:
    return _is_integer_draft4(x) or (isinstance(x, float) and x.is_integer())


_TYPE_TESTS: dict[str, _Predicate] = {
    "string": lambda x: isinstance(x, str),
    "object": lambda x: isinstance(x, dict),
    "array": lambda x: isinstance(x, list),
    "boolean": lambda x: isinstance(x, bool),
    "null": lambda x: x is None,
    "number": _is_number,
}


def _always(x: object) -> bool:
    return True


def _never(x: object) -> bool:
    return False


def _compile(schema: object, resolver: referencing.Resolver, dialect: _Dialect, depth: int) -> _Predicate:
    if depth > _MAX_DEPTH:
        raise _Unsupported("nesting")
    if schema is True:
        return _always
    if schema is False:
        return _never
    if not isinstance(schema, dict):
        raise _Unsupported(schema)
    if "$ref" in schema:  # draft 4 and 6: siblings of $ref are ignored
        resolved = resolver.lookup(schema["$ref"])
        return _compile(resolved.contents, resolved.resolver, dialect, depth + 1)
    if depth and ("$id" in schema or (dialect.draft4 and "id" in schema)):
        raise _Unsupported("nested id")
    keywords = set(schema) - _ANNOTATIONS - {"id", "$id"}

    def sub(subschema: object) -> _Predicate:
        return _compile(subschema, resolver, dialect, depth + 1)

    types = schema.get("type")
    single = types if isinstance(types, str) else None
    by_type: dict[str, list[_Predicate]] = {"string": [], "number": []}
    anything: list[_Predicate] = []
    for keyword in sorted(keywords):
        value = schema[keyword]
        if keyword == "enum":
            anything.append(_enum(value))
        elif keyword in ("maxLength", "minLength", "pattern", "format"):
            check = _string_keyword(keyword, value, dialect)
            if check is not None:
                by_type["string"].append(check)
        elif keyword in ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum", "multipleOf"):
            check = _number_keyword(keyword, value, schema, dialect)
            if check is not None:
                by_type["number"].append(check)
        elif keyword not in _OBJECT_KEYWORDS | _ARRAY_KEYWORDS | {"type", "additionalItems"}:
            raise _Unsupported(keyword)
    # With a single type, keywords of other types never apply (the official schemas put
    # "additionalProperties" on strings). An object or array check rejects other types itself.
    self_typed = single in ("object", "array")
    if keywords & _OBJECT_KEYWORDS and single in (None, "object"):
        anything.append(_object(schema, sub, typed=single == "object"))
    if keywords & _ARRAY_KEYWORDS and single in (None, "array"):
        anything.append(_array(schema, sub, typed=single == "array"))

    if single is None:
        guarded = [_guard(_TYPE_TESTS[family], _all(checks)) for family, checks in by_type.items() if checks]
        return _all([_type_test(types, dialect), *anything, *guarded])
    checks = [*anything, *by_type.get("number" if single == "integer" else single, [])]
    if self_typed and len(anything) == 1 or single == "string" and "enum" in keywords:
        return _all(checks)  # an enum admits strings only
    if single == "string" and keywords == {"type", "maxLength"}:
        limit = schema["maxLength"]
        return lambda x: isinstance(x, str) and len(x) <= limit
    return _all([_type_test(types, dialect), *checks])


def _type_test(types: object, dialect: _Dialect) -> _Predicate:
    if types is None:
        return _always
    names = [types] if isinstance(types, str) else types
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _Unsupported(types)
    integer = _is_integer_draft4 if dialect.draft4 else _is_integer_draft6
    try:
        tests = [integer if n == "integer" else _TYPE_TESTS[n] for n in names]
    except KeyError:
        raise _Unsupported(types) from None
    if len(tests) == 1:
        return tests[0]
    return lambda x: any(test(x) for test in tests)


def _all(checks: list[_Predicate]) -> _Predicate:
    checks = [c for c in checks if c is not _always]
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda x: first(x) and second(x)
    return lambda x: all(check(x) for check in checks)


def _guard(applies: _Predicate, check: _Predicate) -> _Predicate:
    return lambda x: not applies(x) or check(x)


def _enum(values: object) -> _Predicate:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _Unsupported("enum of non-strings")  # jsonschema's equality rules (1 vs True ...)
    allowed = frozenset(values)
    return lambda x: isinstance(x, str) and x in allowed


def _string_keyword(keyword: str, value: object, dialect: _Dialect) -> _Predicate | None:
    if keyword == "maxLength":
        return lambda x: len(x) <= value
    if keyword == "minLength":
        return lambda x: len(x) >= value
    if keyword == "pattern":
        regex = re.compile(value)
        return lambda x: regex.search(x) is not None
    checker = dialect.format_checker
    if checker is None or value not in checker.checkers:
        return None
    return lambda x: checker.conforms(x, value)


def _number_keyword(keyword: str, value: object, schema: dict, dialect: _Dialect) -> _Predicate | None:
    if keyword == "multipleOf":
        return lambda x: _is_multiple(x, value)
    if dialect.draft4 and keyword.startswith("exclusive"):
        return None  # a boolean modifier of maximum/minimum in draft 4
    if keyword == "maximum":
        if dialect.draft4 and schema.get("exclusiveMaximum", False):
            return lambda x: x < value
        return lambda x: x <= value
    if keyword == "minimum":
        if dialect.draft4 and schema.get("exclusiveMinimum", False):
            return lambda x: x > value
        return lambda x: x >= value
    if keyword == "exclusiveMaximum":
        return lambda x: x < value
    return lambda x: x > value


def _object(schema: dict, sub: Callable[[object], _Predicate], typed: bool) -> _Predicate:
    if "patternProperties" in schema:
        raise _Unsupported("patternProperties")
    allowed = frozenset(schema.get("properties", {}))
    compiled = {name: sub(s) for name, s in schema.get("properties", {}).items()}
    lookup = {name: check for name, check in compiled.items() if check is not _always}.get
    required = frozenset(schema.get("required", ()))
    extra = schema.get("additionalProperties", True)
    closed = extra is False
    extra_check = None if closed else sub(extra)
    if extra_check is _always:
        extra_check = None

    def check(x: object) -> bool:
        if not isinstance(x, dict):
            return not typed
        keys = x.keys()
        if required and not keys >= required:
            return False
        if closed and not keys <= allowed:
            return False
        for name, item in x.items():
            prop = lookup(name)
            if prop is None:
                if extra_check is not None and name not in allowed and not extra_check(item):
                    return False
            elif not prop(item):
                return False
        return True
    return check


def _array(schema: dict, sub: Callable[[object], _Predicate], typed: bool) -> _Predicate:
    items = schema.get("items", True)
    if isinstance(items, list):
        raise _Unsupported("tuple items")
    item_check = sub(items)
    low = schema.get("minItems", 0)
    high = schema.get("maxItems")

    def check(x: object) -> bool:
        if not isinstance(x, list):
            return not typed
        if len(x) < low or (high is not None and len(x) > high):
            return False
        return item_check is _always or all(item_check(item) for item in x)
    return check
