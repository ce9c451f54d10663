"""SPEC §5 through the real gateway: ordering, deadlines, late answers, the queue bound, takeover, keepalive.
(The post-handshake idle timeout is in test_handshake_live.py, with the handshake deadline.)"""

from __future__ import annotations

import contextlib
import time

import pytest
from websockets.exceptions import ConnectionClosed

from tools.harness import MqttProbe, json_matches
from tests.integration._support import (
    answered_marker,
    connect_cp,
    connected_event,
    csms_marker,
    logged_marker,
    recv_frame,
    topics,
    wait_closed,
)

BOOT = {"chargePointVendor": "V", "chargePointModel": "M"}
BOOT_ACCEPTED = {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 60}


def csms_call(unique_id: str, action: str, payload: dict | None = None) -> dict:
    return {"MessageTypeId": 2, "UniqueId": unique_id, "Action": action, "Payload": payload or {}}


def csms_result(unique_id: str, payload: dict) -> dict:
    return {"MessageTypeId": 3, "UniqueId": unique_id, "Payload": payload}


def gateway_error(unique_id: str, action: str, reason: str, description: str) -> dict:
    return {"MessageTypeId": 4, "Protocol": "ocpp1.6", "UniqueId": unique_id, "Action": action, "ErrorCode": "InternalError",
            "ErrorDescription": description,
            "ErrorDetails": {"origin": "ocpp_gw", "reason": reason, "action": action}}


def boot(cp, probe, gateway, cid: str, unique_id: str = "boot-1") -> None:
    """The CP sends a BootNotification and the test sees it upstream: the pipe is now in CS_CALL."""
    cp.send(f'[2,"{unique_id}","BootNotification",{{"chargePointVendor":"V","chargePointModel":"M"}}]')
    assert probe.expect_json(topics(gateway, cid).call, {"UniqueId": unique_id}) == {
        "MessageTypeId": 2, "Protocol": "ocpp1.6", "UniqueId": unique_id, "Action": "BootNotification", "Payload": BOOT}


@pytest.fixture(scope="module")
def pipe_gw(module_start):
    """Deadlines far away: what these tests look at must not depend on how fast the machine is."""
    return module_start({"ocpp.awaiting_timeout": "30s", "ocpp.dnstream.max_mqueue_len": 2,
                         "ocpp.dnstream.offline_hold": "0s"})


@pytest.fixture(scope="module")
def timeout_gw(module_start):
    return module_start({"ocpp.awaiting_timeout": "1s"})


@pytest.fixture(scope="module")
def retry_gw(module_start):
    return module_start({"ocpp.awaiting_timeout": "1500ms", "ocpp.retry_interval": "600ms"})


@pytest.fixture(scope="module")
def keepalive_gw(module_start):
    return module_start({"ocpp.default_heartbeat_interval": "1s"})


# -- ordering -----------------------------------------------------------------------------------

def test_csms_calls_wait_while_a_cp_call_is_out_and_keep_their_order(pipe_gw, watch):
    probe, cid = watch(pipe_gw), "CP041"
    tp = topics(pipe_gw, cid)
    with connect_cp(pipe_gw, cid) as cp:
        boot(cp, probe, pipe_gw, cid)
        probe.publish(tp.dnstream, csms_call("r1", "Reset", {"type": "Soft"}))
        probe.publish(tp.dnstream, csms_call("r2", "GetConfiguration"))
        probe.publish(tp.dnstream, csms_result("boot-1", BOOT_ACCEPTED))

        assert recv_frame(cp) == [3, "boot-1", BOOT_ACCEPTED]
        assert recv_frame(cp) == [2, "r1", "Reset", {"type": "Soft"}]
        assert answered_marker(cp) == []  # one call out at a time: r2 waits for r1's answer
        cp.send('[3,"r1",{"status":"Accepted"}]')
        assert probe.expect_json(tp.reply, {"UniqueId": "r1"}) == {
            "MessageTypeId": 3, "Protocol": "ocpp1.6", "UniqueId": "r1", "Action": "Reset", "Payload": {"status": "Accepted"}}
        assert recv_frame(cp) == [2, "r2", "GetConfiguration", {}]


def test_cp_call_while_a_csms_call_is_out_is_forwarded_and_the_answer_still_counts(pipe_gw, watch):
    probe, cid = watch(pipe_gw), "CP042"
    tp = topics(pipe_gw, cid)
    with connect_cp(pipe_gw, cid) as cp:
        connected_event(probe, pipe_gw, cid)
        probe.publish(tp.dnstream, csms_call("c1", "ChangeAvailability", {"connectorId": 0, "type": "Operative"}))
        assert recv_frame(cp)[:2] == [2, "c1"]
        cp.send('[2,"hb-1","Heartbeat",{}]')
        assert probe.expect_json(tp.call, {"UniqueId": "hb-1"})["Action"] == "Heartbeat"
        cp.send('[3,"c1",{"status":"Accepted"}]')
        assert probe.expect_json(tp.reply, {"UniqueId": "c1"}) == {
            "MessageTypeId": 3, "Protocol": "ocpp1.6", "UniqueId": "c1", "Action": "ChangeAvailability", "Payload": {"status": "Accepted"}}
        probe.publish(tp.dnstream, csms_result("hb-1", {"currentTime": "2024-01-01T00:00:00Z"}))
        assert recv_frame(cp) == [3, "hb-1", {"currentTime": "2024-01-01T00:00:00Z"}]


def test_cp_call_error_is_published_on_the_error_topic_with_the_action(pipe_gw, watch):
    probe, cid = watch(pipe_gw), "CP043"
    tp = topics(pipe_gw, cid)
    with connect_cp(pipe_gw, cid) as cp:
        connected_event(probe, pipe_gw, cid)
        probe.publish(tp.dnstream, csms_call("e1", "UnlockConnector", {"connectorId": 1}))
        assert recv_frame(cp)[:2] == [2, "e1"]
        cp.send('[4,"e1","NotSupported","no lock",{"why":"none"}]')
        assert probe.expect_json(tp.error, {"UniqueId": "e1"}) == {
            "MessageTypeId": 4, "Protocol": "ocpp1.6", "UniqueId": "e1", "Action": "UnlockConnector", "ErrorCode": "NotSupported",
            "ErrorDescription": "no lock", "ErrorDetails": {"why": "none"}}


# -- deadlines and late answers -----------------------------------------------------------------

def test_csms_call_timeout_is_reported_with_its_action_and_a_late_answer_still_goes_up(timeout_gw, watch):
    probe, cid = watch(timeout_gw), "CP044"
    tp = topics(timeout_gw, cid)
    with connect_cp(timeout_gw, cid) as cp:
        connected_event(probe, timeout_gw, cid)
        probe.publish(tp.dnstream, csms_call("t1", "Reset", {"type": "Hard"}))
        probe.publish(tp.dnstream, csms_call("t2", "GetConfiguration"))
        assert recv_frame(cp) == [2, "t1", "Reset", {"type": "Hard"}]
        sent = time.monotonic()

        error = probe.expect_json(tp.error, {"UniqueId": "t1"}, timeout=3)
        assert time.monotonic() - sent >= 0.9
        assert error == gateway_error("t1", "Reset", "timeout", f"{cid} did not answer within 1s")
        assert recv_frame(cp) == [2, "t2", "GetConfiguration", {}]  # the queue moves on

        cp.send('[3,"t1",{"status":"Accepted"}]')  # late, and after another call went out
        assert probe.expect_json(tp.reply, {"UniqueId": "t1"}) == {
            "MessageTypeId": 3, "Protocol": "ocpp1.6", "UniqueId": "t1", "Action": "Reset", "Payload": {"status": "Accepted"}}
        cp.send('[3,"t2",{"configurationKey":[]}]')
        assert probe.expect_json(tp.reply, {"UniqueId": "t2"})["Action"] == "GetConfiguration"


def test_late_csms_answer_to_the_cps_last_call_is_still_delivered(timeout_gw, watch):
    probe, cid = watch(timeout_gw), "CP045"
    tp = topics(timeout_gw, cid)
    since = timeout_gw.mark()
    with connect_cp(timeout_gw, cid) as cp:
        boot(cp, probe, timeout_gw, cid)
        timeout_gw.wait_for_log(rf"\[{cid}\] boot-1 CSMS did not answer BootNotification within 1s", 3, since)
        probe.publish(tp.dnstream, csms_result("boot-1", BOOT_ACCEPTED))
        assert recv_frame(cp) == [3, "boot-1", BOOT_ACCEPTED]


def test_unanswered_csms_call_is_resent_with_the_same_id_until_it_times_out(retry_gw, watch):
    probe, cid = watch(retry_gw), "CP046"
    tp = topics(retry_gw, cid)
    with connect_cp(retry_gw, cid) as cp:
        connected_event(probe, retry_gw, cid)
        probe.publish(tp.dnstream, csms_call("rs1", "Reset", {"type": "Soft"}))
        copies = [recv_frame(cp) for _ in range(3)]  # at 0, 600 and 1200 ms; then the deadline at 1500 ms
        assert copies == [[2, "rs1", "Reset", {"type": "Soft"}]] * 3
        assert probe.expect_json(tp.error, {"UniqueId": "rs1"}, timeout=3)["ErrorDetails"]["reason"] == "timeout"
        assert answered_marker(cp) == []  # no fourth copy after the deadline


# -- queue bound --------------------------------------------------------------------------------

def test_csms_call_over_max_mqueue_len_is_refused_with_queue_full(pipe_gw, watch):
    probe, cid = watch(pipe_gw), "CP047"
    tp = topics(pipe_gw, cid)
    with connect_cp(pipe_gw, cid) as cp:
        boot(cp, probe, pipe_gw, cid)
        for unique_id in ("q1", "q2", "q3"):
            probe.publish(tp.dnstream, csms_call(unique_id, "Reset", {"type": "Soft"}))
        assert probe.expect_json(tp.error, {"UniqueId": "q3"}) == gateway_error(
            "q3", "Reset", "queue_full", f"2 calls already queued for {cid}")

        probe.publish(tp.dnstream, csms_result("boot-1", BOOT_ACCEPTED))
        assert recv_frame(cp) == [3, "boot-1", BOOT_ACCEPTED]
        assert recv_frame(cp)[:2] == [2, "q1"]
        cp.send('[3,"q1",{"status":"Accepted"}]')
        assert recv_frame(cp)[:2] == [2, "q2"]
        cp.send('[3,"q2",{"status":"Accepted"}]')
        assert answered_marker(cp) == []  # q3 was refused, never delivered
    assert [m.json for m in probe.drain() if m.topic == tp.error and m.json["MessageTypeId"] == 4] == []


# -- takeover -----------------------------------------------------------------------------------

def test_takeover_closes_the_old_connection_and_moves_its_csms_calls_to_the_new_one(pipe_gw, watch, broker):
    probe, cid = watch(pipe_gw), "CP048"
    tp = topics(pipe_gw, cid)
    with connect_cp(pipe_gw, cid) as old:
        connected_event(probe, pipe_gw, cid)
        probe.publish(tp.dnstream, csms_call("o1", "Reset", {"type": "Soft"}))
        assert recv_frame(old)[:2] == [2, "o1"]  # out, unanswered
        probe.publish(tp.dnstream, csms_call("o2", "GetConfiguration"))  # queued behind it
        csms_marker(probe, pipe_gw, cid)
        old_port = old.local_address[1]

        with connect_cp(pipe_gw, cid) as new:
            closed = wait_closed(old)
            assert (closed.code, closed.reason) == (1000, "taken over")
            assert recv_frame(new) == [2, "o1", "Reset", {"type": "Soft"}]  # same id, on the new line
            new.send('[3,"o1",{"status":"Accepted"}]')
            assert probe.expect_json(tp.reply, {"UniqueId": "o1"})["Action"] == "Reset"
            assert recv_frame(new) == [2, "o2", "GetConfiguration", {}]
            new.send('[3,"o2",{"configurationKey":[]}]')
            assert probe.expect_json(tp.reply, {"UniqueId": "o2"})["Action"] == "GetConfiguration"
            new_port = new.local_address[1]

            left = probe.expect_json(tp.event, {"event": "disconnected"})
            assert (left["reason"], left["peer"]) == ("taken over", f"127.0.0.1:{old_port}")
            probe.expect_json(tp.event, {"event": "connected", "peer": f"127.0.0.1:{new_port}"})
            # The retained event ends on the new connection.
            with MqttProbe(broker.host, broker.port) as late:
                retained = late.subscribe(tp.event).expect(tp.event, json_matches({"event": "connected"}))
            assert retained.retain and retained.json["peer"] == f"127.0.0.1:{new_port}"
    assert [m.json for m in probe.drain() if m.topic == tp.error and m.json["MessageTypeId"] == 4] == []


def test_cp_disconnect_answers_its_held_csms_calls_with_disconnected(pipe_gw, watch):
    probe, cid = watch(pipe_gw), "CP049"
    tp = topics(pipe_gw, cid)
    with connect_cp(pipe_gw, cid) as cp:
        connected_event(probe, pipe_gw, cid)
        probe.publish(tp.dnstream, csms_call("d1", "Reset", {"type": "Soft"}))
        assert recv_frame(cp)[:2] == [2, "d1"]
        probe.publish(tp.dnstream, csms_call("d2", "ClearCache"))
        csms_marker(probe, pipe_gw, cid)
    description = f"{cid} disconnected: closed by charge point (code 1000)"
    assert probe.expect_json(tp.error, {"UniqueId": "d1"}) == gateway_error("d1", "Reset", "disconnected", description)
    assert probe.expect_json(tp.error, {"UniqueId": "d2"}) == \
        gateway_error("d2", "ClearCache", "disconnected", description)


# -- keepalive ----------------------------------------------------------------------------------

def wait_closed_while_pinging(closing, pinging, timeout: float = 5.0):
    """Wait for `closing` to be closed by the gateway while `pinging` sends a ping every 0.3 s."""
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    while time.monotonic() < deadline:
        assert pinging.ping().wait(2), "no pong"
        try:
            frame = closing.recv(0.3)
        except TimeoutError:
            continue
        except ConnectionClosed as ended:
            return ended.rcvd.code, ended.rcvd.reason, time.monotonic() - started
        raise AssertionError(f"expected a close, got {frame!r}")
    raise AssertionError(f"not closed within {timeout}s")


def test_silent_cp_is_closed_with_1001_and_pings_count_as_signs_of_life(keepalive_gw, watch):
    probe, silent_cid = watch(keepalive_gw), "CP011"
    with connect_cp(keepalive_gw, silent_cid) as silent, connect_cp(keepalive_gw, "CP012") as pinging:
        for cp in (silent, pinging):
            logged_marker(cp, keepalive_gw)  # an OCPP frame each: the idle deadline no longer applies
        code, reason, elapsed = wait_closed_while_pinging(silent, pinging)
        assert (code, reason) == (1001, "heartbeat timeout")
        assert elapsed < 3.5  # checked once per 1 s interval
        assert answered_marker(pinging) == []  # the same checks passed it by: only pings came from it
    assert probe.expect_json(topics(keepalive_gw, silent_cid).event, {"event": "disconnected"})["reason"] == \
        "heartbeat timeout"


def test_only_an_accepted_boot_answer_with_interval_0_turns_keepalive_off(keepalive_gw, watch):
    probe = watch(keepalive_gw)
    cases = {  # cid: the CP's call and the CSMS's answer to it
        "CP013": ("BootNotification", {**BOOT_ACCEPTED, "interval": 0}),
        "CP014": ("BootNotification", {"status": "Pending", "currentTime": "2024-01-01T00:00:00Z", "interval": 0}),
        "CP015": ("DataTransfer", {"status": "Accepted", "interval": 0}),  # the right shape, the wrong call
    }
    with contextlib.ExitStack() as stack:
        cps = {cid: stack.enter_context(connect_cp(keepalive_gw, cid)) for cid in cases}
        for cid, (action, answer) in cases.items():
            cps[cid].send(f'[2,"k1","{action}",{{"vendorId":"V","chargePointVendor":"V","chargePointModel":"M"}}]')
            probe.expect_json(topics(keepalive_gw, cid).call, {"UniqueId": "k1"})
            probe.publish(topics(keepalive_gw, cid).dnstream, csms_result("k1", answer))
            assert recv_frame(cps[cid]) == [3, "k1", answer]
        for cid in ("CP014", "CP015"):
            closed = wait_closed(cps[cid], timeout=5)
            assert (closed.code, closed.reason) == (1001, "heartbeat timeout"), cid
        assert answered_marker(cps["CP013"]) == []  # still open after the checks that closed the others
    keepalive_gw.wait_for_log(r"\[CP013\] heartbeat interval 0s")


def test_boot_accepted_interval_replaces_the_default(pipe_gw, watch):
    probe, cid = watch(pipe_gw), "CP016"  # default interval 60 s
    with connect_cp(pipe_gw, cid) as cp:
        boot(cp, probe, pipe_gw, cid)
        probe.publish(topics(pipe_gw, cid).dnstream, csms_result("boot-1", {**BOOT_ACCEPTED, "interval": 1}))
        assert recv_frame(cp)[:2] == [3, "boot-1"]
        closed = wait_closed(cp, timeout=4)
    assert (closed.code, closed.reason) == (1001, "heartbeat timeout")
    assert closed.elapsed < 3.5  # not the default 60 s
