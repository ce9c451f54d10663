"""A realistic OCPP 2.0.1 / 2.1 session, both directions, built with the PyPI ``ocpp`` package's own
dataclasses and serialised the way its ChargePoint serialises them (what a real peer sends).

``session(version)`` lists ``Message(direction, action, payload, name)``; directions are ``cp_call``,
``csms_result`` (the CSMS's answer to it), ``csms_call``, ``cp_result`` and ``cp_send`` (2.1 SEND).
Shared with bench/ like the rest of the harness: realistic 2.x payloads for a 2.x population. Needs
the ``ocpp`` package (the test extra).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from types import SimpleNamespace
from typing import NamedTuple

from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.messages import Call, CallResult

T0 = "2026-12-04T18:00:00.000Z"
T1 = "2026-12-04T18:15:00.000Z"
T2 = "2026-12-04T18:47:12.345Z"
VENDOR = "com.example.depot"


class Message(NamedTuple):
    direction: str
    action: str
    payload: dict
    name: str  # the action, and the event type of a TransactionEvent


def package(version: str) -> SimpleNamespace:
    """The ``ocpp`` package's modules of ``version`` (``ocpp2.0.1`` or ``ocpp2.1``)."""
    name = {"ocpp2.0.1": "v201", "ocpp2.1": "v21"}[version]
    modules = {part: importlib.import_module(f"ocpp.{name}.{part}")
               for part in ("call", "call_result", "datatypes", "enums")}
    return SimpleNamespace(**modules, library_version=version.removeprefix("ocpp"))


def on_the_wire(dataclass, *, result: bool = False, unique_id: str = "1") -> dict:
    """The payload as the library's ChargePoint puts it in a frame, read back from the JSON text."""
    payload = remove_nones(snake_to_camel_case(serialize_as_dict(dataclass)))
    action = type(dataclass).__name__
    message = CallResult(unique_id, payload, action) if result else Call(unique_id, action, payload)
    return json.loads(message.to_json())[-1]


def custom(**fields) -> dict:
    """customData with vendor properties besides vendorId (the schemas allow any there)."""
    return {"vendor_id": VENDOR, **fields}


def build(cls, **fields):
    """``cls(**fields)``, dropping custom_data where the version's dataclass has no such field
    (2.0.1's nested types)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in fields.items() if k in names or k != "custom_data"})


def token_type(p, value: str):
    """2.0.1 has an enum of idToken types; 2.1 made it a string."""
    enum = getattr(p.enums, "IdTokenEnumType", None)
    return value if enum is None else enum(value)


def session(version: str) -> list[Message]:
    p = package(version)
    messages = [*_cp_calls(p), *_csms_calls(p)]
    if version == "ocpp2.1":
        messages.append(Message("cp_send", "NotifyPeriodicEventStream", notify_periodic_event_stream(),
                                "NotifyPeriodicEventStream"))
    return messages


def notify_periodic_event_stream() -> dict:
    """2.1's only SEND; the library has no dataclass for it, so it is written as the wire shows it."""
    return {"id": 3, "pending": 0, "basetime": T1,
            "data": [{"t": 0, "v": "7.2"}, {"t": 1.5, "v": "7.4"},
                     {"t": 3, "v": "7.3", "customData": {"vendorId": VENDOR, "phase": "L1"}}]}


def _pairs(p, pairs, call_direction: str, result_direction: str):
    for n, (call, result) in enumerate(pairs):
        action = type(call).__name__
        label = getattr(call, "event_type", None)
        name = f"{action} {label}" if label else action
        yield Message(call_direction, action, on_the_wire(call, unique_id=str(n)), name)
        yield Message(result_direction, action, on_the_wire(result, result=True, unique_id=str(n)), name)


def _cp_calls(p):
    c, r, d, e = p.call, p.call_result, p.datatypes, p.enums
    evse = build(d.EVSEType, id=1, connector_id=1)
    token = build(d.IdTokenType, id_token="04A2B3C4D5E6F7", type=token_type(p, "ISO14443"))
    accepted = build(d.IdTokenInfoType, status=e.AuthorizationStatusEnumType("Accepted"))
    station = build(d.ChargingStationType, vendor_name="VendorX", model="Wallbox 22",
                    serial_number="SN-0001", firmware_version="4.2.1",
                    modem=build(d.ModemType, iccid="8931440400000000001", imsi="262011234567890"))
    pairs = [
        (c.BootNotification(charging_station=station, reason=e.BootReasonEnumType("PowerUp"),
                            custom_data=custom(site="depot-7")),
         r.BootNotification(current_time=T0, interval=300, status=e.RegistrationStatusEnumType("Accepted"))),
        (c.StatusNotification(timestamp=T0, connector_status=e.ConnectorStatusEnumType("Available"),
                              evse_id=1, connector_id=1),
         r.StatusNotification()),
        (c.Heartbeat(), r.Heartbeat(current_time=T0)),
        (c.Authorize(id_token=token), r.Authorize(id_token_info=accepted)),
        *_transaction(p, evse, token, accepted),
        (c.MeterValues(evse_id=1, meter_value=[_meter_value(p, T1, "Sample.Periodic")]), r.MeterValues()),
        (c.NotifyReport(request_id=2, generated_at=T0, seq_no=0, tbc=False, report_data=_report(p)),
         r.NotifyReport()),
    ]
    return _pairs(p, pairs, "cp_call", "csms_result")


def _transaction(p, evse, token, accepted):
    c, r, d, e = p.call, p.call_result, p.datatypes, p.enums

    def event(kind, seq, when, trigger, context, **info):
        transaction = build(d.TransactionType, transaction_id="tx-7f3a", **info)
        return c.TransactionEvent(
            event_type=e.TransactionEventEnumType(kind), timestamp=when, seq_no=seq,
            trigger_reason=e.TriggerReasonEnumType(trigger), transaction_info=transaction,
            meter_value=[_meter_value(p, when, context)], custom_data=custom(session_ref=f"s-{seq}"),
            **({"evse": evse, "id_token": token} if kind == "Started" else {}),
            **({"number_of_phases_used": 3} if kind == "Updated" else {}))

    started = event("Started", 0, T0, "Authorized", "Transaction.Begin",
                    charging_state=e.ChargingStateEnumType("Charging"))
    updated = event("Updated", 1, T1, "MeterValuePeriodic", "Sample.Periodic",
                    charging_state=e.ChargingStateEnumType("Charging"), time_spent_charging=900)
    ended = event("Ended", 2, T2, "StopAuthorized", "Transaction.End",
                  stopped_reason=e.ReasonEnumType("Local"))
    return [(started, r.TransactionEvent(id_token_info=accepted)),
            (updated, r.TransactionEvent(total_cost=4.25, charging_priority=0)),
            (ended, r.TransactionEvent())]


def _meter_value(p, when: str, context: str):
    d, e = p.datatypes, p.enums

    def sample(value, measurand, unit, phase=None, **extra):
        return build(d.SampledValueType, value=value, context=e.ReadingContextEnumType(context),
                     measurand=e.MeasurandEnumType(measurand), location=e.LocationEnumType("Outlet"),
                     phase=e.PhaseEnumType(phase) if phase else None,
                     unit_of_measure=build(d.UnitOfMeasureType, unit=unit, multiplier=0), **extra)

    return build(d.MeterValueType, timestamp=when, sampled_value=[
        sample(12345.6, "Energy.Active.Import.Register", "Wh", custom_data=custom(meter="MID-1")),
        sample(7.3, "Power.Active.Import", "kW"),
        *(sample(16.0, "Current.Import", "A", phase) for phase in ("L1", "L2", "L3")),
        sample(230.1, "Voltage", "V", "L1-N"),
        sample(81, "SoC", "Percent"),
    ])


def _report(p):
    d, e = p.datatypes, p.enums
    return [build(d.ReportDataType, component=build(d.ComponentType, name="OCPPCommCtrlr"),
                  variable=build(d.VariableType, name="HeartbeatInterval"),
                  variable_attribute=[build(d.VariableAttributeType, type=e.AttributeEnumType("Actual"),
                                            value="300", mutability=e.MutabilityEnumType("ReadWrite"),
                                            persistent=True, constant=False)],
                  variable_characteristics=build(d.VariableCharacteristicsType, unit="s",
                                                 data_type=e.DataEnumType("integer"),
                                                 supports_monitoring=False)),
            build(d.ReportDataType, component=build(d.ComponentType, name="EVSE", evse=build(d.EVSEType, id=1)),
                  variable=build(d.VariableType, name="AvailabilityState"),
                  variable_attribute=[build(d.VariableAttributeType, value="Available",
                                            mutability=e.MutabilityEnumType("ReadOnly"))],
                  variable_characteristics=build(d.VariableCharacteristicsType,
                                                 data_type=e.DataEnumType("OptionList"),
                                                 values_list="Available,Occupied,Reserved,Unavailable,Faulted",
                                                 supports_monitoring=True))]


def _csms_calls(p):
    c, r, d, e = p.call, p.call_result, p.datatypes, p.enums
    component = build(d.ComponentType, name="OCPPCommCtrlr")
    variable = build(d.VariableType, name="HeartbeatInterval")
    token = build(d.IdTokenType, id_token="REMOTE-42", type=token_type(p, "Central"))
    pairs = [
        (c.GetVariables(get_variable_data=[build(d.GetVariableDataType, component=component, variable=variable)]),
         r.GetVariables(get_variable_result=[build(
             d.GetVariableResultType, attribute_status=e.GetVariableStatusEnumType("Accepted"),
             component=component, variable=variable, attribute_value="300")])),
        (c.SetVariables(set_variable_data=[build(d.SetVariableDataType, attribute_value="120",
                                                 component=component, variable=variable)]),
         r.SetVariables(set_variable_result=[build(
             d.SetVariableResultType, attribute_status=e.SetVariableStatusEnumType("Accepted"),
             component=component, variable=variable)])),
        (c.RequestStartTransaction(id_token=token, remote_start_id=42, evse_id=1, custom_data=custom()),
         r.RequestStartTransaction(status=e.RequestStartStopStatusEnumType("Accepted"), transaction_id="tx-7f3a")),
        (c.Reset(type=e.ResetEnumType("OnIdle")), r.Reset(status=e.ResetStatusEnumType("Scheduled"))),
        (c.TriggerMessage(requested_message=e.MessageTriggerEnumType("StatusNotification"),
                          evse=build(d.EVSEType, id=1, connector_id=1)),
         r.TriggerMessage(status=e.TriggerMessageStatusEnumType("Accepted"))),
        (c.GetBaseReport(request_id=2, report_base=e.ReportBaseEnumType("FullInventory")),
         r.GetBaseReport(status=e.GenericDeviceModelStatusEnumType("Accepted"))),
    ]
    return _pairs(p, pairs, "csms_call", "cp_result")
