#!/usr/bin/env python3
"""Cost of one schema check per message, in µs (not a test).

    .venv/bin/python -m bench.schema_check [--number 20000]

Compares SchemaChecker (compiled fast path; jsonschema only to explain a failure) with a plain
jsonschema validator of the same schema, for valid and invalid payloads, for OCPP 1.6 and 2.0.1.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jsonschema.validators import validator_for  # noqa: E402

from ocpp_gw.protocol.schemas import SchemaChecker, default_schema_dir, version_schema_dir  # noqa: E402
from ocpp_gw.protocol.versions import V16, V201  # noqa: E402

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


def _sample_201(value, measurand, unit, phase=None):
    sample = {"value": value, "context": "Sample.Periodic", "measurand": measurand, "location": "Outlet",
              "unitOfMeasure": {"unit": unit}}
    return {**sample, "phase": phase} if phase else sample


TRANSACTION_EVENT_201 = {
    "eventType": "Updated", "timestamp": "2024-05-01T10:15:00Z", "triggerReason": "MeterValuePeriodic",
    "seqNo": 3, "transactionInfo": {"transactionId": "tx-42", "chargingState": "Charging"},
    "meterValue": [{"timestamp": "2024-05-01T10:15:00Z", "sampledValue": [
        _sample_201(1234.5, "Energy.Active.Import.Register", "Wh"), _sample_201(7.3, "Power.Active.Import", "kW"),
        *(_sample_201(16.0, "Current.Import", "A", phase) for phase in ("L1", "L2", "L3")),
        _sample_201(230, "Voltage", "V", "L1-N")]}],
    "customData": {"vendorId": "com.example", "sessionRef": "s-3"},
}
BOOT_NOTIFICATION_201 = {"reason": "PowerUp", "chargingStation": {
    "vendorName": "VendorX", "model": "ModelY", "serialNumber": "CP-0001", "firmwareVersion": "1.2.3"}}

# (version, action, schema file, valid payload, the same made invalid)
ROWS = [
    (V16, "MeterValues", "MeterValues.json", METER_VALUES,
     lambda p: p["meterValue"][0]["sampledValue"][-1].update(unit="Volt")),
    (V16, "BootNotification", "BootNotification.json", BOOT_NOTIFICATION,
     lambda p: p.update(chargePointVendor="V" * 30)),
    (V201, "TransactionEvent", "TransactionEventRequest.json", TRANSACTION_EVENT_201,
     lambda p: p["meterValue"][0]["sampledValue"][-1].update(location="Socket")),
    (V201, "BootNotification", "BootNotificationRequest.json", BOOT_NOTIFICATION_201,
     lambda p: p["chargingStation"].update(vendorName="V" * 60)),
]


def invalid(payload: dict, breaking) -> dict:
    broken = json.loads(json.dumps(payload))
    breaking(broken)
    return broken


def microseconds(function, number: int) -> float:
    return min(timeit.repeat(function, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000, help="checks per timing [%(default)s]")
    args = parser.parse_args()

    directory = default_schema_dir()
    print(f"schemas: {directory}; µs per check, best of 5 x {args.number}")
    print(f"{'version':<10} {'action':<18} {'payload':<8} {'SchemaChecker':>14} {'jsonschema':>11}")
    for version, action, file_name, payload, breaking in ROWS:
        version_dir = version_schema_dir(directory, version)
        checker = SchemaChecker(version_dir, version=version)
        schema = json.loads((version_dir / file_name).read_text(encoding="utf-8"))
        plain = validator_for(schema)(schema)
        for label, sample in (("valid", payload), ("invalid", invalid(payload, breaking))):
            assert (checker.check_request(action, sample) is None) == (label == "valid"), (action, label)
            ours = microseconds(lambda: checker.check_request(action, sample), args.number)
            theirs = microseconds(lambda: list(plain.iter_errors(sample)), max(1, args.number // 10))
            print(f"{version.subprotocol:<10} {action:<18} {label:<8} {ours:>14.2f} {theirs:>11.2f}")


if __name__ == "__main__":
    main()
