"""The reference backend (examples/csms_responder.py): its answers, its topics, and its MQTT behaviour against a real
broker, with the test playing the gateway's part."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime
from pathlib import Path

import jsonschema
import ocpp.v16
import pytest
from csms_responder import ActionNotImplemented, ChargingBackend, Responder, TopicTemplate, is_gateway_error

from tools.harness import ROOT, json_matches

# The answers are checked against the schemas of a library nobody here wrote.
OCPP16_SCHEMAS = Path(ocpp.v16.__file__).parent / "schemas"

CHARGE_POINT_CALLS = [
    ("BootNotification", {"chargePointVendor": "v", "chargePointModel": "m"}),
    ("Heartbeat", {}),
    ("Authorize", {"idTag": "TAG"}),
    ("StartTransaction", {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": "2024-01-01T00:00:00Z"}),
    ("StopTransaction", {"transactionId": 1, "meterStop": 10, "timestamp": "2024-01-01T01:00:00Z", "idTag": "TAG"}),
    ("StopTransaction", {"transactionId": 1, "meterStop": 10, "timestamp": "2024-01-01T01:00:00Z"}),
    ("StatusNotification", {"connectorId": 0, "errorCode": "NoError", "status": "Available"}),
    ("MeterValues", {"connectorId": 1, "meterValue": []}),
    ("DataTransfer", {"vendorId": "acme"}),
    ("DiagnosticsStatusNotification", {"status": "Idle"}),
    ("FirmwareStatusNotification", {"status": "Idle"}),
    ("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": "2024-01-01T00:00:00Z"}),
    ("SignedFirmwareStatusNotification", {"status": "Idle"}),
    ("LogStatusNotification", {"status": "Idle"}),
    ("SignCertificate", {"csr": "-----BEGIN CERTIFICATE REQUEST-----"}),
]


def response_schema(action: str) -> dict:
    return json.loads((OCPP16_SCHEMAS / f"{action}Response.json").read_text())


@pytest.mark.parametrize(("action", "payload"), CHARGE_POINT_CALLS, ids=[f"{a}-{i}" for i, (a, _) in
                                                                         enumerate(CHARGE_POINT_CALLS)])
def test_every_charge_point_call_gets_a_schema_valid_answer(action, payload):
    answer = ChargingBackend().answer(action, payload)

    jsonschema.validate(answer, response_schema(action))
    if "currentTime" in answer:
        assert datetime.fromisoformat(answer["currentTime"]).tzinfo is not None


def test_boot_notification_is_accepted_with_the_configured_interval():
    answer = ChargingBackend(heartbeat_interval=42).answer("BootNotification", {})
    assert answer["status"] == "Accepted" and answer["interval"] == 42


def test_each_start_transaction_gets_the_next_transaction_id():
    backend = ChargingBackend()
    ids = [backend.answer("StartTransaction", {})["transactionId"] for _ in range(3)]
    assert ids == [1, 2, 3]


def test_an_unknown_action_is_not_implemented():
    with pytest.raises(ActionNotImplemented):
        ChargingBackend().answer("FlyToTheMoon", {})


@pytest.mark.parametrize(("template", "mountpoint", "topic_filter", "topic", "cid"), [
    ("cp/${cid}", "ocpp/", "ocpp/cp/+", "ocpp/cp/CP001", "CP001"),
    ("cp/${cid}/Reply", "ocpp/", "ocpp/cp/+/Reply", "ocpp/cp/CP001/Reply", "CP001"),
    ("cp/${cid}/Notify/${action}", "", "cp/+/Notify/+", "cp/CP7/Notify/BootNotification", "CP7"),
    ("cp/${cid}", "ocpp/", "ocpp/cp/+", "ocpp/cp/CP001/Reply", None),
    ("cp/${cid}", "ocpp/", "ocpp/cp/+", "other/cp/CP001", None),
])
def test_topic_template_gives_filter_and_reads_the_cid(template, mountpoint, topic_filter, topic, cid):
    parsed = TopicTemplate(template, mountpoint)
    assert parsed.filter == topic_filter
    assert parsed.cid_of(topic) == cid


def test_topic_template_renders_the_downstream_topic():
    assert TopicTemplate("cs/${cid}", "ocpp/").render("CP001") == "ocpp/cs/CP001"


def test_topic_template_without_a_cid_level_is_refused():
    with pytest.raises(ValueError):
        TopicTemplate("cp/x${cid}")


def test_gateway_errors_are_told_apart_from_charge_point_errors():
    assert is_gateway_error({"MessageTypeId": 4, "ErrorDetails": {"origin": "ocpp_gw", "reason": "timeout"}})
    assert not is_gateway_error({"MessageTypeId": 4, "ErrorDetails": {}})
    assert not is_gateway_error({"MessageTypeId": 4, "ErrorDetails": "text"})


# Against a real broker; the test publishes what the gateway would.

def test_a_charge_point_call_is_answered_on_the_downstream_topic(responder, mqtt_probe):
    mqtt_probe.subscribe("ocpp/cs/CP101")
    mqtt_probe.publish("ocpp/cp/CP101", {
        "MessageTypeId": 2, "UniqueId": "u-1", "Action": "Authorize", "Payload": {"idTag": "TAG"},
    })

    reply = mqtt_probe.expect_json("ocpp/cs/CP101")
    assert reply == {
        "MessageTypeId": 3, "UniqueId": "u-1", "Action": "Authorize", "Payload": {"idTagInfo": {"status": "Accepted"}},
    }
    assert responder.actions("CP101") == ["Authorize"]


def test_an_unknown_action_is_answered_with_a_not_implemented_call_error(responder, mqtt_probe):
    mqtt_probe.subscribe("ocpp/cs/CP102")
    mqtt_probe.publish("ocpp/cp/CP102", {"MessageTypeId": 2, "UniqueId": "u-2", "Action": "Teleport", "Payload": {}})

    reply = mqtt_probe.expect_json("ocpp/cs/CP102")
    assert reply["MessageTypeId"] == 4 and reply["UniqueId"] == "u-2"
    assert reply["ErrorCode"] == "NotImplemented" and reply["ErrorDetails"] == {}


def test_a_message_that_is_not_an_envelope_is_ignored(responder, mqtt_probe):
    mqtt_probe.subscribe("ocpp/cs/CP103")
    mqtt_probe.publish("ocpp/cp/CP103", "not json")
    mqtt_probe.publish("ocpp/cp/CP103", {"MessageTypeId": 2, "UniqueId": "u-3", "Action": "Heartbeat", "Payload": {}})

    assert mqtt_probe.expect_json("ocpp/cs/CP103")["UniqueId"] == "u-3"
    assert responder.actions("CP103") == ["Heartbeat"]


def play_charge_point(mqtt_probe, cid: str, answer_payload: dict | None = None, error: dict | None = None) -> None:
    """Wait for the CSMS call on the downstream topic and answer it on the reply topic, as the gateway would."""
    call = mqtt_probe.expect_json(f"ocpp/cs/{cid}", {"MessageTypeId": 2})
    reply = {"UniqueId": call["UniqueId"], "Action": call["Action"]}
    if error is None:
        reply.update(MessageTypeId=3, Payload=answer_payload or {})
    else:
        reply.update(MessageTypeId=4, **error)
    mqtt_probe.publish(f"ocpp/cp/{cid}/Reply", reply)


def call_in_background(responder, *args, **kwargs) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def run():
        try:
            outcome["reply"] = responder.call(*args, **kwargs)
        except Exception as error:  # handed to the test thread
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_call_returns_the_reply_with_the_same_unique_id(responder, mqtt_probe):
    mqtt_probe.subscribe("ocpp/cs/CP104")
    thread, outcome = call_in_background(responder, "CP104", "Reset", {"type": "Soft"}, timeout=5)
    play_charge_point(mqtt_probe, "CP104", {"status": "Accepted"})
    thread.join(10)

    assert outcome["reply"]["Payload"] == {"status": "Accepted"}
    assert outcome["reply"]["Action"] == "Reset"


def test_call_returns_a_gateway_error(responder, mqtt_probe):
    mqtt_probe.subscribe("ocpp/cs/CP105")
    gateway_error = {"ErrorCode": "GenericError", "ErrorDescription": "charge point offline",
                     "ErrorDetails": {"origin": "ocpp_gw", "reason": "offline"}}
    thread, outcome = call_in_background(responder, "CP105", "Reset", {"type": "Soft"}, timeout=5)
    play_charge_point(mqtt_probe, "CP105", error=gateway_error)
    thread.join(10)

    assert outcome["reply"]["MessageTypeId"] == 4
    assert is_gateway_error(outcome["reply"])


def test_call_times_out_when_nobody_answers(responder):
    with pytest.raises(TimeoutError):
        responder.call("CP106", "Reset", {"type": "Soft"}, timeout=0.3)


def test_a_stopped_responder_leaves_no_threads_behind(broker, no_thread_leaks):
    with Responder(broker.host, broker.port) as backend:
        assert backend.client.is_connected()


def test_custom_mountpoint_and_topics_are_used(broker, mqtt_probe):
    mqtt_probe.subscribe("site1/down/CP107")
    with Responder(broker.host, broker.port, mountpoint="site1/", upstream_topics=("up/${cid}/${action}",),
                   dnstream_topic="down/${cid}"):
        mqtt_probe.publish("site1/up/CP107/Heartbeat",
                           {"MessageTypeId": 2, "UniqueId": "u-7", "Action": "Heartbeat", "Payload": {}})
        reply = mqtt_probe.expect_json("site1/down/CP107")
    assert reply["UniqueId"] == "u-7" and "currentTime" in reply["Payload"]


def run_send_command(broker, *arguments: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "csms_responder.py"),
         "--host", broker.host, "--port", str(broker.port), "send", *arguments],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def test_send_command_prints_the_call_result_and_exits_0(broker, mqtt_probe):
    mqtt_probe.subscribe("ocpp/cs/CP108")
    command = run_send_command(broker, "CP108", "GetConfiguration", '{"key": ["HeartbeatInterval"]}', "--timeout", "10")
    call = mqtt_probe.expect("ocpp/cs/CP108", json_matches({"Action": "GetConfiguration"}), timeout=10).json
    assert call["Payload"] == {"key": ["HeartbeatInterval"]}
    mqtt_probe.publish("ocpp/cp/CP108/Reply", {"MessageTypeId": 3, "UniqueId": call["UniqueId"],
                                               "Action": "GetConfiguration", "Payload": {"configurationKey": []}})
    stdout, stderr = command.communicate(timeout=15)

    assert command.returncode == 0, stderr
    assert json.loads(stdout)["Payload"] == {"configurationKey": []}


def test_send_command_exits_1_on_a_call_error(broker, mqtt_probe):
    mqtt_probe.subscribe("ocpp/cs/CP109")
    command = run_send_command(broker, "CP109", "Reset", '{"type": "Hard"}', "--timeout", "10")
    call = mqtt_probe.expect("ocpp/cs/CP109", json_matches({"Action": "Reset"}), timeout=10).json
    mqtt_probe.publish("ocpp/cp/CP109/Reply", {"MessageTypeId": 4, "UniqueId": call["UniqueId"], "Action": "Reset",
                                               "ErrorCode": "NotSupported", "ErrorDescription": "", "ErrorDetails": {}})
    stdout, _ = command.communicate(timeout=15)

    assert command.returncode == 1
    assert json.loads(stdout)["ErrorCode"] == "NotSupported"


def test_send_command_refuses_a_payload_that_is_not_json(broker):
    command = run_send_command(broker, "CP110", "Reset", "{not json")
    _, stderr = command.communicate(timeout=15)
    assert command.returncode == 2 and "not JSON" in stderr


# OCPP 2.0.1 and 2.1 (SPEC §9): answers valid against the schemas of the PyPI `ocpp` package's v201 and v21

import ocpp.v21  # noqa: E402
import ocpp.v201  # noqa: E402

V2_SCHEMAS = {"ocpp2.0.1": Path(ocpp.v201.__file__).parent / "schemas",
              "ocpp2.1": Path(ocpp.v21.__file__).parent / "schemas"}
ID_TOKEN = {"idToken": "04A2B3C4", "type": "ISO14443"}
CHARGE_POINT_CALLS_2X = [
    ("BootNotification", {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}),
    ("Heartbeat", {}),
    ("StatusNotification", {"timestamp": "2025-01-01T00:00:00Z", "connectorStatus": "Available", "evseId": 1,
                            "connectorId": 1}),
    ("Authorize", {"idToken": ID_TOKEN}),
    ("TransactionEvent", {"eventType": "Started", "timestamp": "2025-01-01T00:00:00Z", "triggerReason": "Authorized",
                          "seqNo": 0, "transactionInfo": {"transactionId": "t1"}, "idToken": ID_TOKEN}),
    ("TransactionEvent", {"eventType": "Updated", "timestamp": "2025-01-01T00:01:00Z", "triggerReason": "MeterValuePeriodic",
                          "seqNo": 1, "transactionInfo": {"transactionId": "t1"}}),
    ("MeterValues", {"evseId": 1, "meterValue": [{"timestamp": "2025-01-01T00:00:00Z",
                                                  "sampledValue": [{"value": 1.5}]}]}),
    ("NotifyReport", {"requestId": 1, "generatedAt": "2025-01-01T00:00:00Z", "seqNo": 0}),
    ("NotifyEvent", {"generatedAt": "2025-01-01T00:00:00Z", "seqNo": 0, "eventData": []}),
    ("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": "2025-01-01T00:00:00Z"}),
    ("FirmwareStatusNotification", {"status": "Idle"}),
    ("LogStatusNotification", {"status": "Idle"}),
    ("SignCertificate", {"csr": "-----BEGIN CERTIFICATE REQUEST-----"}),
    ("DataTransfer", {"vendorId": "acme"}),
    ("NotifyChargingLimit", {"chargingLimit": {"chargingLimitSource": "EMS"}}),
    ("ClearedChargingLimit", {"chargingLimitSource": "EMS"}),
    ("ReportChargingProfiles", {"requestId": 1, "chargingLimitSource": "CSO", "evseId": 1, "chargingProfile": []}),
    ("ReservationStatusUpdate", {"reservationId": 1, "reservationUpdateStatus": "Expired"}),
    ("NotifyMonitoringReport", {"requestId": 1, "seqNo": 0, "generatedAt": "2025-01-01T00:00:00Z"}),
    ("NotifyCustomerInformation", {"data": "x", "seqNo": 0, "generatedAt": "2025-01-01T00:00:00Z", "requestId": 1}),
    ("NotifyDisplayMessages", {"requestId": 1}),
    ("PublishFirmwareStatusNotification", {"status": "Idle"}),
]


@pytest.mark.parametrize("protocol", ["ocpp2.0.1", "ocpp2.1"])
@pytest.mark.parametrize(("action", "payload"), CHARGE_POINT_CALLS_2X,
                         ids=[f"{a}-{i}" for i, (a, _) in enumerate(CHARGE_POINT_CALLS_2X)])
def test_every_2x_charge_point_call_gets_an_answer_valid_in_its_version(protocol, action, payload):
    answer = ChargingBackend().answer(action, payload, protocol)
    schema = json.loads((V2_SCHEMAS[protocol] / f"{action}Response.json").read_text())
    jsonschema.validate(answer, schema)


def test_a_2x_authorize_gets_an_id_token_answer_not_the_16_one():
    assert ChargingBackend().answer("Authorize", {"idToken": ID_TOKEN}, "ocpp2.0.1") == {
        "idTokenInfo": {"status": "Accepted"}}
    with pytest.raises(ActionNotImplemented):
        ChargingBackend().answer("StartTransaction", {}, "ocpp2.0.1")
