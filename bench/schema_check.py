#!/usr/bin/env python3
"""Cost of one schema check per message, in µs (not a test).

    .venv/bin/python bench/schema_check.py [--number 20000]

Compares SchemaChecker (compiled fast path; jsonschema only to explain a failure) with a plain
jsonschema validator of the same schema, for valid and invalid payloads.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jsonschema import Draft4Validator  # noqa: E402

from ocpp_gw.protocol.schemas import SchemaChecker, default_schema_dir  # noqa: E402

METER_VALUES = {
    "connectorId": 1, "transactionId": 42,
    "meterValue": [{"timestamp": "2024-05-01T10:15:00Z", "sampledValue": [
        {"value": "1234.5", "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register",
         "location": "Outlet", "unit": "Wh"},
        {"value": "7.3", "measurand": "Power.Active.Import", "unit": "kW"},
        {"value": "16.0", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
        {"value": "16.0", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
        {"value": "16.0", "measurand": "Current.Import", "phase": "L3", "unit": "A"},
        {"value": "230", "measurand": "Voltage", "phase": "L1-N", "unit": "V"},
    ]}],
}
BOOT_NOTIFICATION = {"chargePointVendor": "VendorX", "chargePointModel": "ModelY",
                     "chargePointSerialNumber": "CP-0001", "firmwareVersion": "1.2.3"}


def invalid(payload: dict) -> dict:
    broken = json.loads(json.dumps(payload))
    if "meterValue" in broken:
        broken["meterValue"][0]["sampledValue"][-1]["unit"] = "Volt"
    else:
        broken["chargePointVendor"] = "V" * 30
    return broken


def microseconds(function, number: int) -> float:
    return min(timeit.repeat(function, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="checks per timing [%(default)s]")
    args = parser.parse_args()

    directory = default_schema_dir()
    checker = SchemaChecker(directory)
    print(f"schemas: {directory}; µs per check, best of 5 x {args.number}")
    print(f"{'action':<18} {'payload':<8} {'SchemaChecker':>14} {'jsonschema':>11}")
    for action, payload in (("MeterValues", METER_VALUES), ("BootNotification", BOOT_NOTIFICATION)):
        schema = json.loads((directory / f"{action}.json").read_text(encoding="utf-8"))
        plain = Draft4Validator(schema)
        for label, sample in (("valid", payload), ("invalid", invalid(payload))):
            ours = microseconds(lambda: checker.check_request(action, sample), args.number)
            theirs = microseconds(lambda: list(plain.iter_errors(sample)), max(1, args.number // 10))
            print(f"{action:<18} {label:<8} {ours:>14.2f} {theirs:>11.2f}")


if __name__ == "__main__":
    main()
