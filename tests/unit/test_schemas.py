"""The OCPP 1.6 schema checker (SPEC §7), the shipped schemas and the script deriving them."""

from __future__ import annotations

import copy
import decimal
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import referencing
from jsonschema import Draft4Validator
from jsonschema.validators import validator_for
from referencing.jsonschema import DRAFT4

from ocpp_gw.protocol.schemas import MAX_DESCRIPTION, SchemaChecker, SchemaError, default_schema_dir

REPO = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO / "schemas"
CASE_FILES = sorted((REPO / "tests" / "data" / "schema_cases").glob("*.json"))
PREFIX = "urn:OCPP:1.6:2019:12:"
CODES = {"OccurenceConstraintViolation", "TypeConstraintViolation", "PropertyConstraintViolation",
         "FormationViolation", "NotImplemented"}
CORE_ACTIONS = [
    "Authorize", "BootNotification", "CancelReservation", "ChangeAvailability", "ChangeConfiguration",
    "ClearCache", "ClearChargingProfile", "DataTransfer", "DiagnosticsStatusNotification",
    "FirmwareStatusNotification", "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics",
    "GetLocalListVersion", "Heartbeat", "MeterValues", "RemoteStartTransaction", "RemoteStopTransaction",
    "ReserveNow", "Reset", "SendLocalList", "SetChargingProfile", "StartTransaction", "StatusNotification",
    "StopTransaction", "TriggerMessage", "UnlockConnector", "UpdateFirmware",
]
SECURITY_ACTIONS = [
    "CertificateSigned", "DeleteCertificate", "ExtendedTriggerMessage", "GetInstalledCertificateIds", "GetLog",
    "InstallCertificate", "LogStatusNotification", "SecurityEventNotification", "SignCertificate",
    "SignedFirmwareStatusNotification", "SignedUpdateFirmware",
]


@pytest.fixture(scope="module")
def checker() -> SchemaChecker:
    return SchemaChecker(SCHEMA_DIR)


@pytest.fixture(scope="module")
def format_checking_checker() -> SchemaChecker:
    return SchemaChecker(SCHEMA_DIR, check_formats=True)


def schema_cases():
    for path in CASE_FILES:
        for case in json.loads(path.read_text(encoding="utf-8"))["cases"]:
            yield pytest.param(case, id=f"{path.stem}: {case['name']}")


def check(checker: SchemaChecker, kind: str, action: str, payload: object):
    return (checker.check_request if kind == "request" else checker.check_response)(action, payload)


# --- the cases in tests/data/schema_cases -------------------------------------------------------

@pytest.mark.parametrize("case", list(schema_cases()))
def test_schema_case(case, checker, format_checking_checker):
    used = format_checking_checker if case.get("check_formats") else checker
    violation = check(used, case["kind"], case["action"], case["payload"])
    if "code" not in case:
        assert violation is None
        return
    assert violation is not None
    assert violation.code == case["code"]
    if "description" in case:
        assert violation.description == case["description"]
    else:
        assert violation.description.startswith(case["path"] + ": ")


def test_case_files_cover_every_error_code():
    codes = {case.values[0].get("code") for case in schema_cases()}
    assert CODES <= codes


# --- descriptions ---------------------------------------------------------------------------------

def test_long_value_is_truncated_in_a_bounded_single_line(checker):
    violation = checker.check_request("BootNotification", {"chargePointVendor": "v\n" * 5000, "chargePointModel": "m"})
    assert violation.code == "PropertyConstraintViolation"
    assert "(10000 characters, at most 20)" in violation.description
    assert len(violation.description) <= MAX_DESCRIPTION
    assert "\n" not in violation.description


def test_huge_unexpected_property_name_gives_a_bounded_single_line(checker):
    violation = checker.check_request("Heartbeat", {"k\r\n" * 10000: 1})
    assert violation.code == "FormationViolation"
    assert violation.description.startswith("$['k\\r\\nk")
    assert len(violation.description) <= MAX_DESCRIPTION
    assert "\n" not in violation.description and "\r" not in violation.description


def test_long_unknown_action_gives_a_bounded_description(checker):
    violation = checker.check_request("X" * 100000, {})
    assert violation.code == "NotImplemented"
    assert len(violation.description) <= MAX_DESCRIPTION


def test_numbers_parsed_as_decimal_are_checked_like_floats(checker):
    payload = json.loads('{"connectorId": 1, "csChargingProfiles": {"chargingProfileId": 1, "stackLevel": 0, '
                         '"chargingProfilePurpose": "TxProfile", "chargingProfileKind": "Absolute", '
                         '"chargingSchedule": {"chargingRateUnit": "A", '
                         '"chargingSchedulePeriod": [{"startPeriod": 0, "limit": 7.3}, '
                         '{"startPeriod": 60, "limit": 7.35}]}}}',
                         parse_float=decimal.Decimal)
    violation = checker.check_request("SetChargingProfile", payload)
    assert violation.code == "PropertyConstraintViolation"
    assert violation.description.startswith("$.csChargingProfiles.chargingSchedule.chargingSchedulePeriod[1].limit: ")


def test_enum_description_lists_the_allowed_values(checker):
    violation = checker.check_request("ChangeAvailability", {"connectorId": 0, "type": "Off"})
    assert violation.description == "$.type: 'Off' is not one of ['Inoperative', 'Operative']"


def test_several_unexpected_properties_name_the_first_and_count_the_rest(checker):
    violation = checker.check_request("Heartbeat", {"a": 1, "b": 2, "c": 3})
    assert violation.description == "$.a: unexpected property (and 2 more)"


def test_the_same_payload_always_gives_the_same_violation(checker):
    payload = {"connectorId": "x", "errorCode": "Nope", "status": 5, "info": 1, "extra": True}
    assert len({checker.check_request("StatusNotification", payload) for _ in range(20)}) == 1


# --- the shipped schemas --------------------------------------------------------------------------

@pytest.mark.parametrize("action", CORE_ACTIONS + SECURITY_ACTIONS)
def test_action_has_request_and_response_schema_with_ids(action):
    for file_name, expected_id in ((f"{action}.json", f"{PREFIX}{action}Request"),
                                   (f"{action}Response.json", f"{PREFIX}{action}Response")):
        schema = json.loads((SCHEMA_DIR / file_name).read_text(encoding="utf-8"))
        draft4 = schema["$schema"] == "http://json-schema.org/draft-04/schema#"
        assert schema["id" if draft4 else "$id"] == expected_id


def test_core_action_schemas_declare_draft_4():
    for action in CORE_ACTIONS:
        for name in (f"{action}.json", f"{action}Response.json"):
            assert json.loads((SCHEMA_DIR / name).read_text())["$schema"] == "http://json-schema.org/draft-04/schema#"


def test_checker_knows_the_core_and_security_actions(checker):
    assert checker.actions == frozenset(CORE_ACTIONS + SECURITY_ACTIONS)


def test_schema_files_are_only_the_core_and_security_pairs():
    expected = {f"{a}{s}.json" for a in CORE_ACTIONS + SECURITY_ACTIONS for s in ("", "Response")}
    assert {p.name for p in SCHEMA_DIR.glob("*.json")} == expected


def test_default_schema_dir_is_the_repository_schemas_when_not_installed(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert default_schema_dir() == SCHEMA_DIR


def test_default_schema_dir_prefers_the_installed_data_path(monkeypatch, tmp_path):
    installed = tmp_path / "share" / "ocpp-gw" / "schemas"
    installed.mkdir(parents=True)
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert default_schema_dir() == installed


# --- a broken schema directory is a configuration error -------------------------------------------

def copy_schemas(target: Path) -> Path:
    shutil.copytree(SCHEMA_DIR, target, ignore=shutil.ignore_patterns("*.md"))
    return target


def test_missing_directory_is_named(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(SchemaError, match=str(missing)):
        SchemaChecker(missing)


def test_a_file_instead_of_a_directory_is_refused(tmp_path):
    a_file = tmp_path / "schemas"
    a_file.write_text("{}")
    with pytest.raises(SchemaError, match=str(a_file)):
        SchemaChecker(a_file)


def test_empty_directory_is_named(tmp_path):
    (tmp_path / "README.md").write_text("no schemas here")
    with pytest.raises(SchemaError, match=f"{tmp_path}.*no \\*\\.json"):
        SchemaChecker(tmp_path)


def test_unparseable_file_is_named(tmp_path):
    directory = copy_schemas(tmp_path / "s")
    (directory / "Heartbeat.json").write_text('{"type": "object",')
    with pytest.raises(SchemaError, match="Heartbeat.json"):
        SchemaChecker(directory)


def test_file_that_is_not_a_json_object_is_named(tmp_path):
    directory = copy_schemas(tmp_path / "s")
    (directory / "Reset.json").write_text("[]")
    with pytest.raises(SchemaError, match="Reset.json"):
        SchemaChecker(directory)


def test_schema_without_id_is_named(tmp_path):
    directory = copy_schemas(tmp_path / "s")
    schema = json.loads((directory / "Reset.json").read_text())
    del schema["id"]
    (directory / "Reset.json").write_text(json.dumps(schema))
    with pytest.raises(SchemaError, match="Reset.json.*no id"):
        SchemaChecker(directory)


def test_ids_not_matching_the_configured_prefix_are_refused(tmp_path):
    with pytest.raises(SchemaError, match="urn:OCPP:2.0.1:"):
        SchemaChecker(SCHEMA_DIR, id_prefix="urn:OCPP:2.0.1:")


def test_one_schema_with_a_foreign_id_is_named(tmp_path):
    directory = copy_schemas(tmp_path / "s")
    schema = json.loads((directory / "Reset.json").read_text())
    schema["id"] = "urn:OCPP:Cp:1.6:2020:3:Reset.req"
    (directory / "Reset.json").write_text(json.dumps(schema))
    with pytest.raises(SchemaError, match="Reset.json.*urn:OCPP:Cp:1.6:2020:3:Reset.req"):
        SchemaChecker(directory)


def test_a_configured_prefix_finds_schemas_with_that_prefix(tmp_path):
    directory = tmp_path / "s"
    directory.mkdir()
    for path in SCHEMA_DIR.glob("*.json"):
        schema = json.loads(path.read_text())
        key = "id" if "id" in schema else "$id"
        schema[key] = schema[key].replace(PREFIX, "urn:example:ocpp16:")
        (directory / path.name).write_text(json.dumps(schema))
    custom = SchemaChecker(directory, id_prefix="urn:example:ocpp16:")
    assert custom.check_request("Heartbeat", {}) is None
    assert custom.check_request("Reset", {"type": "Warm"}).code == "PropertyConstraintViolation"


def test_duplicate_ids_name_both_files(tmp_path):
    directory = copy_schemas(tmp_path / "s")
    shutil.copy(directory / "Reset.json", directory / "ResetAgain.json")
    with pytest.raises(SchemaError, match="Reset.*json.*Reset.*json"):
        SchemaChecker(directory)


def test_a_request_without_its_response_schema_is_refused(tmp_path):
    directory = copy_schemas(tmp_path / "s")
    (directory / "ResetResponse.json").unlink()
    with pytest.raises(SchemaError, match="Reset"):
        SchemaChecker(directory)


def test_a_schema_that_breaks_the_metaschema_is_named(tmp_path):
    directory = copy_schemas(tmp_path / "s")
    schema = json.loads((directory / "Reset.json").read_text())
    schema["properties"]["type"]["maxLength"] = "twenty"
    (directory / "Reset.json").write_text(json.dumps(schema))
    with pytest.raises(SchemaError, match="Reset.json"):
        SchemaChecker(directory)


def test_an_unresolvable_reference_is_named(tmp_path):
    directory = copy_schemas(tmp_path / "s")
    schema = json.loads((directory / "SignCertificateResponse.json").read_text())
    schema["properties"]["status"]["$ref"] = "#/definitions/Nothing"
    (directory / "SignCertificateResponse.json").write_text(json.dumps(schema))
    with pytest.raises(SchemaError, match="SignCertificateResponse.json"):
        SchemaChecker(directory)


def test_an_unknown_dialect_is_named(tmp_path):
    directory = copy_schemas(tmp_path / "s")
    schema = json.loads((directory / "Reset.json").read_text())
    schema["$schema"] = "http://example.com/my-own-dialect#"
    (directory / "Reset.json").write_text(json.dumps(schema))
    with pytest.raises(SchemaError, match="Reset.json"):
        SchemaChecker(directory)


# --- the compiled fast path agrees with jsonschema ------------------------------------------------
# Every schema's example payload is mutated at every node; the checker must accept exactly what a
# plain jsonschema validator of the declared dialect accepts (values are chosen so that binary
# floats and the checker's decimal multipleOf agree).

REPLACEMENTS = [None, True, False, 0, 2, -1, 2.5, 1.0, "", "x" * 600, "NotAnEnumValue", "Accepted", [], [{}], {},
                {"a": 1}]


def resolve(ref: str, root: dict) -> dict:
    node = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def example(schema: dict, root: dict):
    """A valid payload using every property the schema defines."""
    if "$ref" in schema:
        return example(resolve(schema["$ref"], root), root)
    if "enum" in schema:
        return schema["enum"][-1]
    kind = schema.get("type")
    if kind == "object":
        return {name: example(sub, root) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [example(schema["items"], root) for _ in range(max(1, schema.get("minItems", 0)))]
    if kind == "integer":
        return 3
    if kind == "number":
        return 3.5
    if kind == "boolean":
        return True
    if schema.get("format") == "date-time":
        return "2024-05-01T10:00:00Z"
    return "s" * schema.get("maxLength", 1)


def mutations(payload):
    """The payload with one change each: a value replaced, a key removed or added, an array emptied."""
    yield payload
    if isinstance(payload, str):
        yield payload + "s"
    if isinstance(payload, dict):
        yield {**payload, "unexpected": 1}
        for key, value in payload.items():
            yield {k: v for k, v in payload.items() if k != key}
            for changed in mutations(value):
                yield {**payload, key: changed}
    elif isinstance(payload, list):
        yield []
        if payload:
            yield payload + payload
            for changed in mutations(payload[0]):
                yield [changed, *payload[1:]]
    for replacement in REPLACEMENTS:
        if replacement != payload or type(replacement) is not type(payload):
            yield replacement


def shipped_schemas():
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        kind = "response" if path.stem.endswith("Response") else "request"
        action = path.stem[:-len("Response")] if kind == "response" else path.stem
        yield pytest.param(path, kind, action, id=path.stem)


@pytest.fixture(scope="module")
def registry() -> referencing.Registry:
    resources = []
    for path in SCHEMA_DIR.glob("*.json"):
        schema = json.loads(path.read_text())
        resources.append((schema.get("$id", schema.get("id")),
                          referencing.Resource.from_contents(schema, default_specification=DRAFT4)))
    return referencing.Registry().with_resources(resources)


@pytest.mark.parametrize("path, kind, action", list(shipped_schemas()))
def test_checker_accepts_exactly_what_jsonschema_accepts(path, kind, action, checker, registry):
    schema = json.loads(path.read_text())
    reference = validator_for(schema, default=Draft4Validator)(schema, registry=registry)
    valid = example(schema, schema)
    assert check(checker, kind, action, valid) is None
    tried = 0
    for payload in mutations(copy.deepcopy(valid)):
        tried += 1
        violation = check(checker, kind, action, payload)
        assert (violation is None) == reference.is_valid(payload), payload
        if violation is not None:
            assert violation.code in CODES
            assert violation.description.startswith("$")
            assert "\n" not in violation.description and len(violation.description) <= MAX_DESCRIPTION
    assert tried > len(REPLACEMENTS)


KITCHEN_SINK = {
    "type": "object",
    "definitions": {"level": {"type": "integer", "minimum": 0, "maximum": 10}},
    "properties": {
        "nullable": {"type": ["string", "null"], "minLength": 2, "maxLength": 4},
        "coded": {"type": "string", "pattern": "^[A-Z]{2}[0-9]$"},
        "untyped": {"maxLength": 3, "minimum": 1, "maxItems": 1, "required": ["a"]},
        "level": {"$ref": "#/definitions/level"},
        "ratio": {"type": "number", "exclusiveMaximum": True, "maximum": 1, "exclusiveMinimum": True, "minimum": 0},
        "step": {"type": "number", "multipleOf": 0.5},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
        "open": {"type": "object", "additionalProperties": {"type": "integer"}},
        "free": {"type": "object"},
        "flag": {"type": "boolean"},
        "nothing": {"type": "null"},
    },
    "additionalProperties": False,
    "required": ["level"],
}
KITCHEN_SINK_VALUES = [None, True, 0, 1, 2, 10, 11, -1, 0.5, 1.0, 1.5, 0.25, "", "a", "ab", "abcd", "abcde", "AB1",
                       "ab1", "xAB1", [], ["a"], ["a", "b"], ["a", "b", "c"], [1], {}, {"a": 1}, {"a": "x"},
                       {"b": 2}, {"a": 1, "b": 2.5}]


@pytest.mark.parametrize("dialect", ["http://json-schema.org/draft-04/schema#",
                                     "http://json-schema.org/draft-06/schema#"])
def test_checker_accepts_exactly_what_jsonschema_accepts_for_other_keywords(dialect, tmp_path):
    request = copy.deepcopy(KITCHEN_SINK)
    request["$schema"] = dialect
    if "06" in dialect:
        ratio = request["properties"]["ratio"]
        ratio.update(exclusiveMaximum=1, exclusiveMinimum=0)
        del ratio["maximum"], ratio["minimum"]
    id_key = "id" if "04" in dialect else "$id"
    for name, schema in (("Sink", {**request, id_key: f"{PREFIX}SinkRequest"}),
                         ("SinkResponse", {"$schema": dialect, id_key: f"{PREFIX}SinkResponse"})):
        (tmp_path / f"{name}.json").write_text(json.dumps(schema))
    sink = SchemaChecker(tmp_path)
    reference = validator_for(request)(request)
    for name in request["properties"]:
        for value in KITCHEN_SINK_VALUES:
            payload = {"level": 1, name: value}
            assert (sink.check_request("Sink", payload) is None) == reference.is_valid(payload), payload


# --- tools/derive_schemas.py ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def derive_script():
    spec = importlib.util.spec_from_file_location("derive_schemas", REPO / "tools" / "derive_schemas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_derive_sets_id_for_draft_4_and_changes_nothing_else(derive_script):
    source = {"$schema": "http://json-schema.org/draft-04/schema#", "title": "ResetRequest", "type": "object"}
    derived = derive_script.derive(source, "urn:OCPP:1.6:2019:12:ResetRequest")
    assert derived == {**source, "id": "urn:OCPP:1.6:2019:12:ResetRequest"}


def test_derive_replaces_the_dollar_id_of_draft_6(derive_script):
    source = {"$schema": "http://json-schema.org/draft-06/schema#", "$id": "urn:OCPP:Cp:1.6:2020:3:GetLog.req",
              "type": "object"}
    derived = derive_script.derive(source, "urn:OCPP:1.6:2019:12:GetLogRequest")
    assert derived == {**source, "$id": "urn:OCPP:1.6:2019:12:GetLogRequest"}


def test_derive_names_requests_and_responses(derive_script):
    assert derive_script.schema_id(PREFIX, "GetLog") == f"{PREFIX}GetLogRequest"
    assert derive_script.schema_id(PREFIX, "GetLogResponse") == f"{PREFIX}GetLogResponse"


def test_derive_check_reports_a_stale_directory(derive_script, tmp_path, capsys):
    assert derive_script.main(["--output", str(tmp_path)]) == 0
    assert derive_script.main(["--check", "--output", str(tmp_path)]) == 0
    (tmp_path / "Reset.json").write_text("{}\n")
    assert derive_script.main(["--check", "--output", str(tmp_path)]) == 1
    assert "Reset.json" in capsys.readouterr().err
