#!/usr/bin/env python3
"""Derive ``schemas/*.json`` from the OCPP 1.6 schemas shipped in the PyPI ``ocpp`` package.

The package carries the OCA's published schemas without the ids we look validators up by (and
gives the 2020 security-extension messages ids of their own naming scheme). This script copies
them, sets the id to ``<prefix><Action>Request|Response`` and writes them pretty-printed with
sorted keys, so that a regeneration after a package upgrade shows only real changes in a diff.

    .venv/bin/python tools/derive_schemas.py            # (re)write schemas/
    .venv/bin/python tools/derive_schemas.py --check    # exit 1 if schemas/ is not up to date
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import sys
from pathlib import Path

DEFAULT_PREFIX = "urn:OCPP:1.6:2019:12:"
REPO_SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"

CORE_ACTIONS = frozenset({
    "Authorize", "BootNotification", "CancelReservation", "ChangeAvailability",
    "ChangeConfiguration", "ClearCache", "ClearChargingProfile", "DataTransfer",
    "DiagnosticsStatusNotification", "FirmwareStatusNotification", "GetCompositeSchedule",
    "GetConfiguration", "GetDiagnostics", "GetLocalListVersion", "Heartbeat", "MeterValues",
    "RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow", "Reset", "SendLocalList",
    "SetChargingProfile", "StartTransaction", "StatusNotification", "StopTransaction",
    "TriggerMessage", "UnlockConnector", "UpdateFirmware",
})
SECURITY_ACTIONS = frozenset({
    "CertificateSigned", "DeleteCertificate", "ExtendedTriggerMessage",
    "GetInstalledCertificateIds", "GetLog", "InstallCertificate", "LogStatusNotification",
    "SecurityEventNotification", "SignCertificate", "SignedFirmwareStatusNotification",
    "SignedUpdateFirmware",
})

# Draft 4 names the identifier "id"; draft 6 renamed it "$id".
DRAFT4_URIS = frozenset({"http://json-schema.org/draft-04/schema#", "http://json-schema.org/draft-04/schema"})


def package_schema_dir() -> Path:
    spec = importlib.util.find_spec("ocpp")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the 'ocpp' package is not installed in this interpreter")
    return Path(list(spec.submodule_search_locations)[0]) / "v16" / "schemas"


def id_keyword(schema: dict) -> str:
    return "id" if schema.get("$schema", next(iter(DRAFT4_URIS))) in DRAFT4_URIS else "$id"


def schema_id(prefix: str, file_stem: str) -> str:
    if file_stem.endswith("Response"):
        return f"{prefix}{file_stem}"
    return f"{prefix}{file_stem}Request"


def derive(schema: dict, new_id: str) -> dict:
    derived = {k: v for k, v in schema.items() if k not in ("id", "$id")}
    derived[id_keyword(schema)] = new_id
    return derived


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def derived_files(source: Path, prefix: str) -> dict[str, str]:
    files = {}
    for path in sorted(source.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        files[path.name] = render(derive(schema, schema_id(prefix, path.stem)))
    return files


def missing_files(names: set[str]) -> list[str]:
    expected = {f"{a}{suffix}.json" for a in CORE_ACTIONS | SECURITY_ACTIONS for suffix in ("", "Response")}
    return sorted(expected - names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO_SCHEMA_DIR, help="target directory [%(default)s]")
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="schema id prefix [%(default)s]")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 when the target differs")
    args = parser.parse_args(argv)

    source = package_schema_dir()
    files = derived_files(source, args.prefix)
    missing = missing_files(set(files))
    if missing:
        print(f"{source} lacks: {', '.join(missing)}", file=sys.stderr)
        return 1

    version = importlib.metadata.version("ocpp")
    if args.check:
        stale = [name for name, text in files.items()
                 if not (args.output / name).is_file() or (args.output / name).read_text(encoding="utf-8") != text]
        extra = sorted(p.name for p in args.output.glob("*.json") if p.name not in files)
        for name in stale:
            print(f"differs from ocpp {version}: {name}", file=sys.stderr)
        for name in extra:
            print(f"not in ocpp {version}: {name}", file=sys.stderr)
        return 1 if stale or extra else 0

    args.output.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.output / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} schemas from ocpp {version} ({source}) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
