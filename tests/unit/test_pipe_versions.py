"""The pipe per OCPP version (SPEC §9): SEND outside the call discipline both ways, CALLRESULTERROR
routed to whoever sent the CallResult it answers, each version's codes in what the gateway says."""

from __future__ import annotations

import json
from typing import NamedTuple

import pytest

from ocpp_gw.protocol.frames import Call, CallError, CallResult, CallResultError, Send
from ocpp_gw.protocol.pipe import CS_CALL, CSMS_CALL, WAITING, Pipe, PipeConfig, Upstream, drain
from ocpp_gw.protocol.versions import V16, V201, V21
from ocpp_gw.stats import Stats


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


class Violation(NamedTuple):
    code: str
    description: str


class PayloadRule:
    """A checker for the routing rules only: any payload holding "bad" fails with the given code."""

    def __init__(self, code: str):
        self.code = code

    def check_request(self, action, payload):
        return Violation(self.code, "$.bad: not allowed") if "bad" in payload else None

    check_response = check_request


class Harness:
    def __init__(self, version, checker=None, **config):
        self.clock = Clock()
        self.stats = Stats()
        self.pipe = Pipe("CP001", PipeConfig(idle_timeout=0, **config), clock=self.clock,
                         stats=self.stats, checker=checker, version=version)

    def cp_sends(self, *frames):
        for frame in frames:
            self.pipe.ChargeStationRx.put(frame if isinstance(frame, str) else json.dumps(frame))
        self.pipe.step()

    def csms_sends(self, *messages):
        for message in messages:
            self.pipe.CSMSRx.put((message, getattr(message, "action", None)))
        self.pipe.step()

    def to_cp(self):
        return list(drain(self.pipe.ChargeStationTx))

    def to_csms(self):
        return list(drain(self.pipe.CSMSTx))


STREAM = {"id": 1, "pending": 0, "basetime": "2025-01-01T00:00:00Z", "data": []}
BOOT = [2, "b1", "BootNotification", {"reason": "PowerUp",
                                       "chargingStation": {"model": "M", "vendorName": "V"}}]
BOOT_OK = CallResult("b1", {"status": "Accepted", "interval": 60, "currentTime": "2025-01-01T00:00:00Z"})
RESET = Call("r1", "Reset", {"type": "Immediate"})


@pytest.fixture
def h21():
    return Harness(V21)


# -- SEND ----------------------------------------------------------------------------------------

def test_cp_send_is_published_at_once_while_the_cps_own_call_is_out(h21):
    h21.cp_sends(BOOT)
    h21.cp_sends([6, "s1", "NotifyPeriodicEventStream", STREAM])
    assert [u.message for u in h21.to_csms()] == [
        Call("b1", "BootNotification", BOOT[3]), Send("s1", "NotifyPeriodicEventStream", STREAM)]
    assert h21.pipe.state == CS_CALL   # the call is still the one awaited
    h21.csms_sends(BOOT_OK)
    assert h21.to_cp() == [BOOT_OK]


def test_cp_send_is_published_while_a_csms_call_is_out_and_does_not_answer_it(h21):
    h21.csms_sends(RESET)
    assert h21.to_cp() == [RESET]
    h21.cp_sends([6, "s1", "NotifyPeriodicEventStream", STREAM])
    assert [u.message for u in h21.to_csms()] == [Send("s1", "NotifyPeriodicEventStream", STREAM)]
    assert h21.pipe.state == CSMS_CALL
    h21.cp_sends([3, "r1", {"status": "Accepted"}])
    assert h21.to_csms() == [Upstream(CallResult("r1", {"status": "Accepted"}), "Reset")]


def test_csms_send_goes_to_the_cp_at_once_past_a_call_out_and_queued_calls(h21):
    h21.cp_sends(BOOT)
    h21.csms_sends(RESET)                       # queued behind the CP's call
    send = Send("s9", "NotifyPeriodicEventStream", STREAM)
    h21.csms_sends(send)
    assert h21.to_cp() == [send]
    assert h21.pipe.queue_depth == 1 and h21.pipe.state == CS_CALL


def test_csms_send_has_no_deadline_and_expects_no_answer(h21):
    h21.csms_sends(Send("s9", "NotifyPeriodicEventStream", STREAM))
    assert h21.pipe.state == WAITING and h21.pipe.next_deadline() is not None
    h21.clock.now += 3600
    h21.pipe.step()
    assert [m for m in h21.to_csms() if isinstance(m.message, CallError)] == []


def test_cp_send_that_fails_checking_goes_up_as_a_schema_error_with_its_payload_and_the_cp_gets_nothing():
    h = Harness(V21, PayloadRule("FormatViolation"), check_upstream=True)
    h.cp_sends([6, "s1", "NotifyPeriodicEventStream", {"bad": 1}])
    assert h.to_cp() == []
    [up] = h.to_csms()
    assert (up.message.unique_id, up.message.code) == ("s1", "FormatViolation")
    assert up.message.details["reason"] == "schema" and up.message.details["payload"] == {"bad": 1}
    assert up.action == "NotifyPeriodicEventStream"
    assert h.stats.get("schema.failed.FormatViolation") == 1 and h.stats.get("upstream.sends") == 0


# -- CALLRESULTERROR -----------------------------------------------------------------------------

def test_cp_callresulterror_about_the_csms_answer_to_its_last_call_goes_upstream(h21):
    h21.cp_sends(BOOT)
    h21.csms_sends(BOOT_OK)
    h21.to_csms()
    h21.cp_sends([5, "b1", "FormatViolation", "interval is wrong", {}])
    assert h21.to_csms() == [Upstream(CallResultError("b1", "FormatViolation", "interval is wrong", {}),
                                      "BootNotification")]


def test_cp_callresulterror_matching_no_answer_is_dropped_and_counted(h21):
    h21.cp_sends([5, "zz", "FormatViolation", "", {}])
    assert h21.to_csms() == []
    assert h21.stats.get("dropped.cp_callresulterror_unmatched") == 1


def test_csms_callresulterror_about_the_cps_answer_goes_to_the_cp(h21):
    h21.csms_sends(RESET)
    h21.cp_sends([3, "r1", {"status": "Accepted"}])
    h21.to_cp()
    error = CallResultError("r1", "PropertyConstraintViolation", "status", {})
    h21.csms_sends(error)
    assert h21.to_cp() == [error]


def test_csms_callresulterror_matching_no_answer_is_dropped_and_counted(h21):
    h21.csms_sends(CallResultError("r404", "GenericError", "", {}))
    assert h21.to_cp() == []
    assert h21.stats.get("dropped.csms_callresulterror_unmatched") == 1


def test_on_21_a_cp_callresult_failing_checking_is_also_answered_with_a_callresulterror():
    h = Harness(V21, PayloadRule("OccurrenceConstraintViolation"), check_upstream=True)
    h.csms_sends(RESET)
    h.to_cp()
    h.cp_sends([3, "r1", {"bad": 1}])
    assert h.to_cp() == [CallResultError("r1", "OccurrenceConstraintViolation", "$.bad: not allowed", {})]
    [up] = h.to_csms()
    assert (up.message.code, up.message.details["reason"]) == ("OccurrenceConstraintViolation", "schema")


def test_on_201_a_cp_callresult_failing_checking_is_only_reported_upstream():
    h = Harness(V201, PayloadRule("OccurrenceConstraintViolation"), check_upstream=True)
    h.csms_sends(RESET)
    h.to_cp()
    h.cp_sends([3, "r1", {"bad": 1}])
    assert h.to_cp() == []
    assert h.to_csms()[0].message.details["reason"] == "schema"


# -- each version's words ------------------------------------------------------------------------

@pytest.mark.parametrize("version, code", [(V16, "FormationViolation"), (V201, "FormatViolation"),
                                           (V21, "FormatViolation")])
def test_gateway_errors_to_the_csms_use_the_cps_versions_codes(version, code):
    h = Harness(version, PayloadRule("x"), check_dnstream=True, max_mqueue_len=1)
    h.pipe.checker = None   # no checking: the queue limit below is the refusal
    h.cp_sends([2, "h1", "Heartbeat", {}])
    h.csms_sends(Call("q1", "Reset", {}), Call("q2", "Reset", {}))
    [refused] = h.to_csms()[1:]
    assert refused.message.code == version.codes.internal_error
    assert version.codes.format_violation == code


@pytest.mark.parametrize("version, answer", [
    (V16, []), (V201, [CallError("a", "MessageTypeNotSupported", "unknown MessageTypeId 9", {})]),
    (V21, [])])
def test_unknown_message_types_per_version(version, answer):
    h = Harness(version)
    h.cp_sends([9, "a", {}])
    assert h.to_cp() == answer
    assert h.stats.get("dropped.unknown_message_type") == 1


def test_a_16_pipe_still_says_formation_violation_and_ignores_type_6():
    h = Harness(V16)
    h.cp_sends('[2,"a","Heartbeat",{', [6, "s1", "NotifyPeriodicEventStream", STREAM])
    assert h.to_cp() == [CallError("a", "FormationViolation",
                                   "not valid JSON: Expecting property name enclosed in double quotes at char 20", {})]
    assert h.to_csms() == []


def test_a_csms_message_of_a_type_the_cps_version_lacks_is_dropped_and_counted():
    """E.g. a SEND held while the CP was offline, which then came back speaking 2.0.1."""
    h = Harness(V201)
    h.csms_sends(Send("s1", "NotifyPeriodicEventStream", STREAM), CallResultError("x", "GenericError", "", {}))
    assert h.to_cp() == [] and h.to_csms() == []
    assert h.stats.get("dropped.csms_version_mismatch") == 2
