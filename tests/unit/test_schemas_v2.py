"""Format checking of OCPP 2.0.1 and 2.1 (SPEC §7, §9): the shipped OCA schemas, one checker per
version with that version's error codes, and real peers' valid traffic passing untouched."""

from __future__ import annotations

import asyncio
import copy
import importlib.metadata
import json
import os
import shutil
from pathlib import Path

import jsonschema
import pytest
from jsonschema.validators import validator_for
from ocpp.messages import Call, CallResult, validate_payload

from ocpp_gw.protocol.schemas import (
    MAX_DESCRIPTION,
    Checkers,
    SchemaChecker,
    SchemaError,
    load_checkers,
    version_schema_dir,
)
from ocpp_gw.protocol.versions import V16, V21, V201, by_subprotocol
from ocpp_gw.config import Config
from ocpp_gw.runtime import build_runtime
from ocpp_gw.settings import load as load_settings
from tools.harness import ocpp2_traffic
from tests.unit.test_schemas import REPLACEMENTS, mutations, resolve

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "schemas"
CASE_DIR = REPO / "tests" / "data" / "schema_cases"
V2 = ["ocpp2.0.1", "ocpp2.1"]
PACKAGE_DIRS = {"ocpp2.0.1": "v201", "ocpp2.1": "v21"}
SIGNED_JWS = {"protected": "eyJhbGciOiJFUzI1NiJ9", "payload": "e30", "signature": "c2ln"}


@pytest.fixture(scope="module")
def checkers() -> Checkers:
    return load_checkers(SCHEMA_DIR)


@pytest.fixture(scope="module")
def format_checking_checkers() -> Checkers:
    return load_checkers(SCHEMA_DIR, [V201, V21], check_formats=True)


def check(checker: SchemaChecker, kind: str, action: str, payload: object):
    method = {"request": checker.check_request, "response": checker.check_response, "send": checker.check_send}
    return method[kind](action, payload)


def package_schema_dir(version: str) -> Path:
    import ocpp
    return Path(ocpp.__file__).parent / PACKAGE_DIRS[version] / "schemas"


# --- the shipped copies are the OCA's, unmodified ----------------------------------------------

@pytest.mark.parametrize("version", V2)
def test_shipped_schemas_are_byte_identical_to_the_ocpp_package_copies(version):
    source, shipped = package_schema_dir(version), SCHEMA_DIR / version
    assert sorted(p.name for p in shipped.iterdir()) == sorted(p.name for p in source.glob("*.json"))
    changed = [p.name for p in sorted(source.glob("*.json")) if (shipped / p.name).read_bytes() != p.read_bytes()]
    assert changed == [], f"schemas/{version} must stay verbatim copies of {source} (schemas/README.md)"


def test_readme_names_the_package_version_the_copies_come_from():
    readme = (SCHEMA_DIR / "README.md").read_text(encoding="utf-8")
    assert f"`ocpp` {importlib.metadata.version('ocpp')}" in readme


def test_each_version_has_its_whole_set_of_actions(checkers):
    assert (len(checkers.for_version("ocpp1.6").actions), len(checkers.for_version("ocpp2.0.1").actions),
            len(checkers.for_version("ocpp2.1").actions)) == (39, 64, 90)
    assert checkers.for_version("ocpp2.1").send_actions == {"NotifyPeriodicEventStream"}
    assert checkers.for_version("ocpp2.0.1").send_actions == frozenset()


# --- the table of cases: every error code of each version ----------------------------------------

def cases(version: str):
    for path in sorted((CASE_DIR / version).glob("*.json")):
        for case in json.loads(path.read_text(encoding="utf-8"))["cases"]:
            yield pytest.param(version, case, id=f"{version}: {case['name']}")


ALL_CASES = [param for version in V2 for param in cases(version)]


@pytest.mark.parametrize("version, case", ALL_CASES)
def test_schema_case(version, case, checkers, format_checking_checkers):
    used = (format_checking_checkers if case.get("check_formats") else checkers).for_version(version)
    payload = copy.deepcopy(case["payload"])
    violation = check(used, case["kind"], case["action"], payload)
    assert payload == case["payload"]  # checking never changes a payload
    if "code" not in case:
        assert violation is None
        return
    assert violation is not None
    assert violation.code == case["code"]
    assert violation.code in by_subprotocol(version).codes.known
    if "description" in case:
        assert violation.description == case["description"]
    else:
        assert violation.description.startswith(case["path"] + ": ")


@pytest.mark.parametrize("version", V2)
def test_case_table_produces_every_error_code_of_the_version(version):
    codes = by_subprotocol(version).codes
    wanted = {codes.occurrence_violation, codes.type_violation, codes.property_violation,
              codes.format_violation, codes.not_implemented}
    assert wanted == {"OccurrenceConstraintViolation", "TypeConstraintViolation", "PropertyConstraintViolation",
                      "FormatViolation", "NotImplemented"}
    produced = {case.get("code") for _, case in (p.values for p in cases(version))}
    assert wanted <= produced


@pytest.mark.parametrize("version", V2)
def test_no_1_6_spelling_on_a_2x_connection(version, checkers):
    checker = checkers.for_version(version)
    answers = [checker.check_request("BootNotification", {}), checker.check_request("Heartbeat", {"x": 1}),
               checker.check_request("Heartbeat", [])]
    assert [v.code for v in answers] == ["OccurrenceConstraintViolation", "FormatViolation", "FormatViolation"]


def test_1_6_keeps_its_own_spellings_and_knows_no_signed_actions(checkers):
    checker = checkers.for_version(V16)
    assert checker.check_request("BootNotification", {}).code == "OccurenceConstraintViolation"
    assert checker.check_request("Heartbeat", {"x": 1}).code == "FormationViolation"
    assert checker.check_request("BootNotification-Signed", SIGNED_JWS).code == "NotImplemented"
    assert not checker.is_signed("BootNotification-Signed")


@pytest.mark.parametrize("version", V2)
def test_signed_actions_pass_unchecked_both_ways(version, checkers):
    checker = checkers.for_version(version)
    assert checker.is_signed("TransactionEvent-Signed") and not checker.is_signed("-Signed")
    assert checker.check_request("TransactionEvent-Signed", SIGNED_JWS) is None
    assert checker.check_response("GetVariables-Signed", SIGNED_JWS) is None
    assert checker.check_request("-Signed", {}).code == "NotImplemented"


@pytest.mark.parametrize("version", V2)
def test_long_value_gives_a_bounded_single_line(version, checkers):
    violation = checkers.for_version(version).check_request(
        "BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "m\n" * 5000, "vendorName": "v"}})
    assert violation.code == "PropertyConstraintViolation"
    assert "(10000 characters, at most 20)" in violation.description
    assert len(violation.description) <= MAX_DESCRIPTION and "\n" not in violation.description


# --- valid traffic from real peers passes untouched ----------------------------------------------

def traffic():
    for version in V2:
        for n, message in enumerate(ocpp2_traffic.session(version)):
            yield pytest.param(version, message, id=f"{version}: {message.direction} {message.name} #{n}")


TRAFFIC = list(traffic())
CHECK_OF_DIRECTION = {"cp_call": "request", "csms_call": "request", "cp_result": "response",
                      "csms_result": "response", "cp_send": "send"}


def library_accepts(version: str, message) -> None:
    """The ocpp package's own check, the one its ChargePoint applies before it sends."""
    if message.direction == "cp_send":  # no SEND in the library: the package's schema, its dialect
        schema = json.loads((package_schema_dir(version) / f"{message.action}.json").read_text())
        validator_for(schema)(schema, format_checker=jsonschema.FormatChecker()).validate(message.payload)
        return
    if message.direction.endswith("_call"):
        wrapped = Call("1", message.action, copy.deepcopy(message.payload))
    else:
        wrapped = CallResult("1", copy.deepcopy(message.payload), message.action)
    asyncio.run(validate_payload(wrapped, version.removeprefix("ocpp")))


@pytest.mark.parametrize("version, message", TRAFFIC)
def test_valid_traffic_passes_untouched(version, message, checkers):
    library_accepts(version, message)
    sent = copy.deepcopy(message.payload)
    checker = checkers.for_version(version)
    assert check(checker, CHECK_OF_DIRECTION[message.direction], message.action, sent) is None
    if message.direction == "cp_send":  # a pipe may check every message with an action as a request
        assert checker.check_request(message.action, sent) is None
    assert sent == message.payload


@pytest.mark.parametrize("version, message", TRAFFIC)
def test_valid_traffic_passes_with_date_time_formats_checked_too(version, message, format_checking_checkers):
    checker = format_checking_checkers.for_version(version)
    assert check(checker, CHECK_OF_DIRECTION[message.direction], message.action, message.payload) is None


def test_the_session_covers_what_real_chargers_exchange():
    wanted = {"BootNotification", "StatusNotification", "Heartbeat", "Authorize", "TransactionEvent Started",
              "TransactionEvent Updated", "TransactionEvent Ended", "MeterValues", "NotifyReport", "GetVariables",
              "SetVariables", "RequestStartTransaction", "Reset", "TriggerMessage", "GetBaseReport"}
    for version in V2:
        messages = ocpp2_traffic.session(version)
        for direction in ("cp_call", "csms_result"):
            assert {m.name for m in messages if m.direction == direction} >= wanted - {
                "GetVariables", "SetVariables", "RequestStartTransaction", "Reset", "TriggerMessage", "GetBaseReport"}
        for direction in ("csms_call", "cp_result"):
            assert {m.name for m in messages if m.direction == direction} >= {
                "GetVariables", "SetVariables", "RequestStartTransaction", "Reset", "TriggerMessage", "GetBaseReport"}
        events = [m.payload for m in messages if m.direction == "cp_call" and m.action == "TransactionEvent"]
        assert all(e["meterValue"] and e["customData"]["vendorId"] for e in events)
    assert any(m.direction == "cp_send" for m in ocpp2_traffic.session("ocpp2.1"))


# --- the compiled fast path agrees with jsonschema on every 2.x schema ---------------------------
# As in test_schemas.py for 1.6: each schema's example payload mutated at every node, the checker
# must accept exactly what a plain jsonschema validator of the declared dialect accepts. All the
# 114 000 mutations of the 309 files take two minutes: a stride sample of MUTATIONS per file
# (OCPP_GW_SCHEMA_MUTATIONS=1000000 tries them all).

MUTATIONS = int(os.environ.get("OCPP_GW_SCHEMA_MUTATIONS", "60"))


def example(schema: dict, root: dict):
    """A valid payload using every property the schema defines, numbers within their bounds."""
    if "$ref" in schema:
        return example(resolve(schema["$ref"], root), root)
    if "enum" in schema:
        return schema["enum"][-1]
    kind = schema.get("type")
    if kind == "object":
        return {name: example(sub, root) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [example(schema["items"], root) for _ in range(max(1, schema.get("minItems", 0)))]
    if kind in ("integer", "number"):
        value = 3 if kind == "integer" else 3.5
        return min(max(value, schema.get("minimum", value)), schema.get("maximum", value))
    if kind == "boolean":
        return True
    if schema.get("format") == "date-time":
        return "2026-12-04T18:00:00Z"
    return "s" * schema.get("maxLength", 1)


def sample(payloads: list, most: int) -> list:
    stride = -(-len(payloads) // most)
    return payloads[::stride]

def v2_schemas():
    for version in V2:
        for path in sorted((SCHEMA_DIR / version).glob("*.json")):
            stem = path.stem
            if stem.endswith("Request"):
                kind, action = "request", stem[:-len("Request")]
            elif stem.endswith("Response"):
                kind, action = "response", stem[:-len("Response")]
            else:
                kind, action = "send", stem
            yield pytest.param(version, path, kind, action, id=f"{version}/{stem}")


@pytest.mark.parametrize("version, path, kind, action", list(v2_schemas()))
def test_checker_accepts_exactly_what_jsonschema_accepts(version, path, kind, action, checkers):
    schema = json.loads(path.read_text())
    reference = validator_for(schema)(schema)
    checker = checkers.for_version(version)
    valid = example(schema, schema)
    assert check(checker, kind, action, valid) is None
    tried = sample(list(mutations(copy.deepcopy(valid))), MUTATIONS)
    for payload in tried:
        violation = check(checker, kind, action, payload)
        assert (violation is None) == reference.is_valid(payload), payload
        if violation is not None:
            assert violation.code in by_subprotocol(version).codes.known
    assert len(tried) > len(REPLACEMENTS)


# --- where each version's schemas come from, and broken directories ------------------------------

def test_checkers_are_found_by_version_or_subprotocol(checkers):
    assert checkers.for_version(V201) is checkers.for_version("ocpp2.0.1")
    assert checkers.for_version(V21).version is V21
    assert checkers.for_version("ocpp3.0") is None and checkers.for_version(None) is None
    assert {c.version.subprotocol for c in checkers} == {"ocpp1.6", "ocpp2.0.1", "ocpp2.1"}


def test_a_connection_gets_the_checker_of_its_version(checkers, tmp_path):
    conf = tmp_path / "ocpp.conf"
    conf.write_text("")
    config = Config.from_settings(load_settings(conf))
    runtime = build_runtime(config, None, checkers)
    assert runtime.checker_for(V21) is checkers.for_version(V21)
    assert runtime.checker_for("ocpp1.6").check_request("Heartbeat", {"x": 1}).code == "FormationViolation"
    assert build_runtime(config, None, None).checker_for(V21) is None  # format checking disabled


def test_only_the_versions_asked_for_are_compiled():
    only = load_checkers(SCHEMA_DIR, [V201])
    assert only.for_version(V201) is not None and only.for_version(V16) is None
    assert not Checkers()


def test_version_schemas_sit_in_their_subdirectory_of_the_schema_directory():
    assert version_schema_dir(SCHEMA_DIR, V16) == SCHEMA_DIR
    assert version_schema_dir(SCHEMA_DIR, V201) == SCHEMA_DIR / "ocpp2.0.1"
    assert version_schema_dir(SCHEMA_DIR, V21) == SCHEMA_DIR / "ocpp2.1"


def test_an_own_1_6_directory_without_2x_subdirectories_gets_the_shipped_2x_schemas(tmp_path):
    own = tmp_path / "mine"
    shutil.copytree(SCHEMA_DIR, own, ignore=shutil.ignore_patterns("ocpp2*", "*.md"))
    built = load_checkers(own, shipped=SCHEMA_DIR)
    assert built.for_version(V16).directory == own
    assert built.for_version(V201).directory == SCHEMA_DIR / "ocpp2.0.1"
    assert built.for_version(V21).check_request("Heartbeat", {}) is None


def test_an_own_2x_subdirectory_is_used_in_full(tmp_path):
    own = tmp_path / "mine"
    shutil.copytree(SCHEMA_DIR, own, ignore=shutil.ignore_patterns("*.md"))
    vendor = {"$schema": "http://json-schema.org/draft-06/schema#", "type": "object",
              "properties": {"level": {"type": "integer"}}, "additionalProperties": False}
    (own / "ocpp2.0.1" / "VendorPingRequest.json").write_text(json.dumps(vendor))
    (own / "ocpp2.0.1" / "VendorPingResponse.json").write_text(json.dumps(vendor))
    checker = load_checkers(own, [V201]).for_version(V201)
    assert checker.check_request("VendorPing", {"level": 3}) is None
    assert checker.check_request("VendorPing", {"level": "3"}).code == "TypeConstraintViolation"


def copy_version(tmp_path: Path, version: str) -> Path:
    target = tmp_path / version
    shutil.copytree(SCHEMA_DIR / version, target)
    return target


def rewrite(path: Path, change) -> None:
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema))


def test_2x_schemas_are_found_by_file_name_whatever_their_ids(tmp_path):
    directory = copy_version(tmp_path, "ocpp2.1")
    rewrite(directory / "ResetRequest.json", lambda s: s.pop("$id"))
    rewrite(directory / "HeartbeatRequest.json", lambda s: s.update({"$id": "urn:OCPP:Cp:2:2025:1:ResetRequest"}))
    rewrite(directory / "AuthorizeRequest.json", lambda s: s.update({"$id": "urn:OCPP:Cp:2:2020:3:Whatever"}))
    checker = SchemaChecker(directory, version=V21)
    assert checker.check_request("Reset", {"type": "Warm"}).code == "PropertyConstraintViolation"
    assert checker.check_request("Heartbeat", {}) is None
    assert checker.check_request("Authorize", {"idToken": {"idToken": "T", "type": "Local"}}) is None


def test_schema_files_starting_with_a_byte_order_mark_are_read(tmp_path):
    directory = copy_version(tmp_path, "ocpp2.0.1")
    path = directory / "ResetRequest.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert SchemaChecker(directory, version=V201).check_request("Reset", {"type": "Warm"}).code == \
        "PropertyConstraintViolation"


def test_a_2x_request_without_its_response_is_refused(tmp_path):
    directory = copy_version(tmp_path, "ocpp2.0.1")
    (directory / "ResetResponse.json").unlink()
    with pytest.raises(SchemaError, match="Reset"):
        SchemaChecker(directory, version=V201)


def test_a_2_0_1_file_that_is_neither_request_nor_response_is_named(tmp_path):
    directory = copy_version(tmp_path, "ocpp2.0.1")
    shutil.copy(SCHEMA_DIR / "ocpp2.1" / "NotifyPeriodicEventStream.json", directory)
    with pytest.raises(SchemaError, match="NotifyPeriodicEventStream.json.*<Action>Request.json"):
        SchemaChecker(directory, version=V201)


def test_a_broken_2x_schema_is_named(tmp_path):
    directory = copy_version(tmp_path, "ocpp2.1")
    rewrite(directory / "ResetRequest.json",
            lambda s: s["definitions"]["CustomDataType"]["properties"]["vendorId"].update({"maxLength": "x"}))
    with pytest.raises(SchemaError, match="ResetRequest.json"):
        SchemaChecker(directory, version=V21)


def test_an_unresolvable_2x_reference_is_named(tmp_path):
    directory = copy_version(tmp_path, "ocpp2.0.1")
    rewrite(directory / "ResetRequest.json", lambda s: s["properties"]["type"].update({"$ref": "#/definitions/No"}))
    with pytest.raises(SchemaError, match="ResetRequest.json"):
        SchemaChecker(directory, version=V201)


# --- through the pipe: a 2.x connection's checker answers in 2.x codes ---------------------------

def test_the_pipe_answers_a_2_0_1_charge_point_in_2_0_1_codes(checkers):
    from tests.unit.test_pipe import checking
    h = checking("all")
    h.pipe.checker = checkers.for_version(V201)
    h.cp_sends([2, "b1", "BootNotification", {"reason": "PowerUp"}])
    h.cp_sends([2, "h1", "Heartbeat", {"vendor": "x"}])
    assert [(m.unique_id, m.code) for m in h.to_cp()] == [
        ("b1", "OccurrenceConstraintViolation"), ("h1", "FormatViolation")]
    assert h.to_csms() == []


def test_the_pipe_passes_a_2_1_charge_points_valid_session_untouched(checkers):
    from tests.unit.test_pipe import checking
    h = checking("all")
    h.pipe.checker = checkers.for_version(V21)
    boot = next(m for m in ocpp2_traffic.session("ocpp2.1") if m.direction == "cp_call")
    h.cp_sends([2, "b1", boot.action, copy.deepcopy(boot.payload)])
    assert h.to_cp() == []
    assert h.to_csms()[0].message.payload == boot.payload
