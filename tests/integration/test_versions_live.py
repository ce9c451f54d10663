"""OCPP 1.6, 2.0.1 and 2.1 on one gateway (SPEC §9), with raw clients and the real Mosquitto: each
answered in its own dialect, SEND and CALLRESULTERROR both ways, version-aware MQTT side."""

from __future__ import annotations

import json
import zlib

import pytest
from websockets.sync.client import connect

from tools.harness.gateway import password_for
from tests.integration._support import (
    connect_cp,
    connected_event,
    published_before_marker,
    recv_frame,
    topics,
    wait_closed,
)

STREAM = {"id": 1, "pending": 0, "basetime": "2025-01-01T00:00:00Z", "data": [{"t": 0, "v": "1"}]}
BOOT_201 = {"reason": "PowerUp", "chargingStation": {"model": "M", "vendorName": "V"}}
BOOT_OK = {"status": "Accepted", "interval": 60, "currentTime": "2025-01-01T00:00:00Z"}


@pytest.fixture(scope="module")
def gw(module_start):
    """Calls wait 30 s for their answers here: the tests that keep one out must not see it expire."""
    return module_start({"ocpp.awaiting_timeout": "30s", "ocpp.retry_interval": "30s"})


MARKER_CODE = {"ocpp1.6": "FormationViolation", "ocpp2.0.1": "FormatViolation", "ocpp2.1": "FormatViolation"}
_markers = iter(range(1, 1_000_000))


def answered_marker(cp, timeout: float = 5.0) -> list:
    """Send broken JSON with a readable id, which the gateway answers itself in the CP's dialect;
    return the frames that came before that answer. `[]` proves nothing else was sent."""
    marker = f"mark-{next(_markers)}"
    cp.send(f'[2,"{marker}","Heartbeat",')
    before = []
    while True:
        frame = recv_frame(cp, timeout)
        if frame[:3] == [4, marker, MARKER_CODE[cp.subprotocol]]:
            return before
        before.append(frame)


def cp_of(gw, cid, version):
    return connect_cp(gw, cid, subprotocols=[version])


# -- a mixed fleet --------------------------------------------------------------------------------

FLEET = [("CP030", "ocpp1.6", "FormationViolation", None),
         ("CP031", "ocpp2.0.1", "FormatViolation", [4, "-1", "RpcFrameworkError"]),
         ("CP032", "ocpp2.1", "FormatViolation", [4, "-1", "RpcFrameworkError"])]


def test_a_mixed_fleet_is_answered_each_in_its_own_dialect(gw, watch):
    probe = watch(gw)
    clients = {cid: cp_of(gw, cid, version).__enter__() for cid, version, _, _ in FLEET}
    try:
        for cid, version, bad_json_code, unreadable in FLEET:
            cp = clients[cid]
            assert cp.subprotocol == version
            assert connected_event(probe, gw, cid)["version"] == version
            cp.send(f'[2,"{cid}-bad","Heartbeat",{{')
            assert recv_frame(cp)[:3] == [4, f"{cid}-bad", bad_json_code]
            cp.send('{"not":"a frame"}')
            if unreadable is None:
                assert answered_marker(cp) == []
            else:
                assert recv_frame(cp)[:3] == unreadable
            cp.send(f'[2,"{cid}-hb","Heartbeat",{{}}]')
            up = probe.expect_json(topics(gw, cid).call, {"UniqueId": f"{cid}-hb"})
            assert up == {"MessageTypeId": 2, "UniqueId": f"{cid}-hb", "Action": "Heartbeat",
                          "Payload": {}, "Protocol": version}
            probe.publish(topics(gw, cid).dnstream,
                          {"MessageTypeId": 3, "UniqueId": f"{cid}-hb", "Payload": {"currentTime": "t"}})
            assert recv_frame(cp) == [3, f"{cid}-hb", {"currentTime": "t"}]
    finally:
        for cp in clients.values():
            cp.__exit__(None, None, None)


@pytest.mark.parametrize("cid, version, answer", [
    ("CP033", "ocpp1.6", None), ("CP034", "ocpp2.0.1", [4, "u1", "MessageTypeNotSupported"]),
    ("CP035", "ocpp2.1", None)])
def test_an_unknown_message_type_is_handled_as_each_version_says(gw, watch, cid, version, answer):
    probe = watch(gw)
    with cp_of(gw, cid, version) as cp:
        cp.send('[7,"u1",{}]')
        if answer is None:
            assert answered_marker(cp) == []
        else:
            assert recv_frame(cp)[:3] == answer
        assert published_before_marker(cp, probe, gw, cid) == []


@pytest.mark.parametrize("cid, version", [("CP036", "ocpp1.6"), ("CP037", "ocpp2.0.1")])
def test_send_and_callresulterror_are_unknown_types_before_21(gw, watch, cid, version):
    probe = watch(gw)
    with cp_of(gw, cid, version) as cp:
        cp.send(json.dumps([6, "s1", "NotifyPeriodicEventStream", STREAM]))
        cp.send('[5,"s2","GenericError","",{}]')
        frames = answered_marker(cp)
        expected = [] if version == "ocpp1.6" else [[4, "s1", "MessageTypeNotSupported"],
                                                      [4, "s2", "MessageTypeNotSupported"]]
        assert [frame[:3] for frame in frames] == expected
        assert published_before_marker(cp, probe, gw, cid) == []


def test_signed_actions_pass_through_both_ways_on_201(gw, watch):
    probe = watch(gw)
    tp = topics(gw, "CP038")
    signed = {"payload": "eyJhIjoxfQ", "signatures": [{"protected": "x", "signature": "y"}]}
    with cp_of(gw, "CP038", "ocpp2.0.1") as cp:
        connected_event(probe, gw, "CP038")
        cp.send(json.dumps([2, "g1", "BootNotification-Signed", signed]))
        assert probe.expect_json(tp.call, {"UniqueId": "g1"})["Action"] == "BootNotification-Signed"
        probe.publish(tp.dnstream, {"MessageTypeId": 3, "UniqueId": "g1", "Payload": signed})
        assert recv_frame(cp) == [3, "g1", signed]
        probe.publish(tp.dnstream, {"MessageTypeId": 2, "UniqueId": "g2", "Action": "Reset-Signed",
                                    "Payload": signed})
        assert recv_frame(cp) == [2, "g2", "Reset-Signed", signed]


# -- 2.1: SEND and CALLRESULTERROR ----------------------------------------------------------------

def test_cp_send_while_its_call_is_out_goes_up_at_once_on_the_call_topic(gw, watch):
    probe = watch(gw)
    tp = topics(gw, "CP039")
    with cp_of(gw, "CP039", "ocpp2.1") as cp:
        connected_event(probe, gw, "CP039")
        cp.send(json.dumps([2, "b1", "BootNotification", BOOT_201]))
        probe.expect_json(tp.call, {"UniqueId": "b1"})
        cp.send(json.dumps([6, "s1", "NotifyPeriodicEventStream", STREAM]))
        assert probe.expect_json(tp.call, {"UniqueId": "s1"}) == {
            "MessageTypeId": 6, "UniqueId": "s1", "Action": "NotifyPeriodicEventStream",
            "Payload": STREAM, "Protocol": "ocpp2.1"}
        probe.publish(tp.dnstream, {"MessageTypeId": 3, "UniqueId": "b1", "Payload": BOOT_OK})
        assert recv_frame(cp) == [3, "b1", BOOT_OK]


def test_csms_send_reaches_the_cp_while_a_csms_call_is_out_and_another_is_queued(gw, watch):
    probe = watch(gw)
    tp = topics(gw, "CP040")
    with cp_of(gw, "CP040", "ocpp2.1") as cp:
        connected_event(probe, gw, "CP040")
        probe.publish(tp.dnstream, {"MessageTypeId": 2, "UniqueId": "r1", "Action": "Reset",
                                    "Payload": {"type": "Immediate"}})
        assert recv_frame(cp)[:2] == [2, "r1"]
        probe.publish(tp.dnstream, {"MessageTypeId": 2, "UniqueId": "r2", "Action": "GetVariables",
                                    "Payload": {"getVariableData": []}})
        probe.publish(tp.dnstream, {"MessageTypeId": 6, "UniqueId": "s9",
                                    "Action": "NotifyPeriodicEventStream", "Payload": STREAM})
        assert recv_frame(cp) == [6, "s9", "NotifyPeriodicEventStream", STREAM]
        cp.send('[3,"r1",{"status":"Accepted"}]')
        assert recv_frame(cp)[:2] == [2, "r2"]


def test_cp_callresulterror_about_the_csms_answer_goes_to_the_error_topic(gw, watch):
    probe = watch(gw)
    tp = topics(gw, "CP041")
    with cp_of(gw, "CP041", "ocpp2.1") as cp:
        connected_event(probe, gw, "CP041")
        cp.send(json.dumps([2, "b1", "BootNotification", BOOT_201]))
        probe.expect_json(tp.call, {"UniqueId": "b1"})
        probe.publish(tp.dnstream, {"MessageTypeId": 3, "UniqueId": "b1", "Payload": BOOT_OK})
        assert recv_frame(cp) == [3, "b1", BOOT_OK]
        cp.send('[5,"b1","PropertyConstraintViolation","interval too short",{}]')
        assert probe.expect_json(tp.error, {"MessageTypeId": 5}) == {
            "MessageTypeId": 5, "UniqueId": "b1", "Action": "BootNotification",
            "ErrorCode": "PropertyConstraintViolation", "ErrorDescription": "interval too short",
            "ErrorDetails": {}, "Protocol": "ocpp2.1"}


def test_csms_callresulterror_about_the_cps_answer_goes_to_the_cp(gw, watch):
    probe = watch(gw)
    tp = topics(gw, "CP042")
    with cp_of(gw, "CP042", "ocpp2.1") as cp:
        connected_event(probe, gw, "CP042")
        probe.publish(tp.dnstream, {"MessageTypeId": 2, "UniqueId": "r1", "Action": "Reset",
                                    "Payload": {"type": "Immediate"}})
        recv_frame(cp)
        cp.send('[3,"r1",{"status":"Accepted"}]')
        probe.expect_json(tp.reply, {"UniqueId": "r1"})
        probe.publish(tp.dnstream, {"MessageTypeId": 5, "UniqueId": "r1", "ErrorCode": "GenericError",
                                    "ErrorDescription": "cannot use it", "ErrorDetails": {}})
        assert recv_frame(cp) == [5, "r1", "GenericError", "cannot use it", {}]


# -- the MQTT side per version ---------------------------------------------------------------------

def test_a_downstream_envelope_for_another_version_gets_a_version_mismatch_error(gw, watch):
    probe = watch(gw)
    tp = topics(gw, "CP043")
    with cp_of(gw, "CP043", "ocpp2.0.1") as cp:
        connected_event(probe, gw, "CP043")
        probe.publish(tp.dnstream, {"MessageTypeId": 2, "UniqueId": "v1", "Action": "Reset",
                                    "Payload": {"type": "Hard"}, "Protocol": "ocpp1.6"})
        error = probe.expect_json(tp.error, {"UniqueId": "v1"})
        assert (error["ErrorCode"], error["ErrorDetails"]["reason"], error["Protocol"]) == (
            "FormatViolation", "version_mismatch", "ocpp2.0.1")
        assert answered_marker(cp) == []


@pytest.fixture(scope="module")
def versioned_gw(module_start):
    return module_start({"ocpp.upstream.topic": "cp/${version}/${cid}",
                         "ocpp.upstream.error_topic.ocpp2.1": "v21/${cid}/err",
                         "ocpp.dnstream.topic": "cs/${version}/${cid}"})


def test_version_placeholder_and_per_version_topics(versioned_gw, watch):
    gw = versioned_gw
    probe = watch(gw)
    mount = gw.mountpoint
    with cp_of(gw, "CP044", "ocpp2.1") as cp21, cp_of(gw, "CP045", "ocpp1.6") as cp16:
        connected_event(probe, gw, "CP044")
        connected_event(probe, gw, "CP045")
        cp21.send('[2,"h1","Heartbeat",{}]')
        cp16.send('[2,"h2","Heartbeat",{}]')
        assert probe.expect_json(f"{mount}cp/ocpp2.1/CP044")["UniqueId"] == "h1"
        assert probe.expect_json(f"{mount}cp/ocpp1.6/CP045")["UniqueId"] == "h2"
        probe.publish(f"{mount}cs/ocpp2.1/CP044", {"MessageTypeId": 3, "UniqueId": "h1", "Payload": {"currentTime": "t"}})
        assert recv_frame(cp21) == [3, "h1", {"currentTime": "t"}]
        probe.publish(f"{mount}cs/ocpp1.6/CP044", {"MessageTypeId": 2, "UniqueId": "x1", "Action": "Reset",
                                                   "Payload": {"type": "Immediate"}})
        error = probe.expect_json(f"{mount}v21/CP044/err", {"UniqueId": "x1"})
        assert error["ErrorDetails"]["reason"] == "version_mismatch"


# -- negotiation with a restriction, compression -------------------------------------------------

@pytest.fixture(scope="module")
def restricted_gw(module_start, tmp_path_factory):
    from ocpp_gw.auth import add_user
    path = tmp_path_factory.mktemp("restricted") / "passwd"
    for cid in ("CP046", "CP047"):
        add_user(str(path), cid, password_for(cid))
    text = path.read_text().replace("CP046:", "CP046:", 1).splitlines()
    path.write_text("\n".join(line + "::ocpp1.6" if line.startswith("CP046:") else line for line in text) + "\n")
    return module_start({"auth.file": str(path)})


def test_a_cp_restricted_to_16_in_the_credentials_gets_16_or_is_closed(restricted_gw):
    with connect_cp(restricted_gw, "CP046", subprotocols=["ocpp2.0.1", "ocpp1.6"]) as cp:
        assert cp.subprotocol == "ocpp1.6"
    with connect_cp(restricted_gw, "CP046", subprotocols=["ocpp2.0.1"]) as cp:
        assert cp.subprotocol is None
        closed = wait_closed(cp)
        assert (closed.code, closed.reason) == (1002, "this charge point may use only ocpp1.6")
    with connect_cp(restricted_gw, "CP047", subprotocols=["ocpp2.0.1", "ocpp1.6"]) as cp:
        assert cp.subprotocol == "ocpp2.0.1"


def test_a_201_cp_asking_for_permessage_deflate_gets_it(gw, watch):
    probe = watch(gw)
    with connect(gw.ws_url("CP048"), subprotocols=["ocpp2.0.1"], compression="deflate",
                 additional_headers={"Authorization": gw.auth_header("CP048")}, proxy=None,
                 open_timeout=5, ping_interval=None, close_timeout=2) as cp:
        assert cp.subprotocol == "ocpp2.0.1"
        assert "permessage-deflate" in cp.response.headers["Sec-WebSocket-Extensions"]
        big = {"reason": "PowerUp", "chargingStation": {"model": "M" * 2000, "vendorName": "V"}}
        cp.send(json.dumps([2, "z1", "BootNotification", big]))
        assert probe.expect_json(topics(gw, "CP048").call, {"UniqueId": "z1"})["Payload"] == big
        probe.publish(topics(gw, "CP048").dnstream, {"MessageTypeId": 3, "UniqueId": "z1", "Payload": BOOT_OK})
        assert json.loads(cp.recv(5)) == [3, "z1", BOOT_OK]


def test_a_compressed_frame_inflating_past_the_limit_closes_1009(gw):
    """The bounded-inflation guard holds for 2.x too: 64 KB of limit, a few KB on the wire."""
    with connect(gw.ws_url("CP049"), subprotocols=["ocpp2.0.1"], compression="deflate",
                 additional_headers={"Authorization": gw.auth_header("CP049")}, proxy=None,
                 open_timeout=5, ping_interval=None, close_timeout=2, max_size=None) as cp:
        bomb = '[2,"z2","DataTransfer",{"vendorId":"' + "A" * 10_000_000 + '"}]'
        assert len(zlib.compress(bomb.encode())) < 20_000
        cp.send(bomb)
        closed = wait_closed(cp, timeout=10)
        assert closed.code == 1009


def test_after_a_restart_a_call_naming_a_2x_version_waits_for_its_cp(start, watch):
    """Right after a restart the gateway does not know the CP's version: the envelope's Protocol is taken for it,
    so a 2.0.1 call that the persistent session delivers is held (not refused) until the CP is back."""
    restarted = start({"ocpp.awaiting_timeout": "30s"})
    probe, tp = watch(restarted), topics(restarted, "CP050")
    with cp_of(restarted, "CP050", "ocpp2.0.1"):
        connected_event(probe, restarted, "CP050")
        restarted.kill()
    report = {"requestId": 1, "reportBase": "FullInventory"}
    probe.publish(tp.dnstream, {"MessageTypeId": 2, "UniqueId": "held-1", "Action": "GetBaseReport",
                                "Payload": report, "Protocol": "ocpp2.0.1"})
    restarted.start()
    restarted.wait_for_log(r"\[CP050\] held-1 held until the charge point connects")
    with cp_of(restarted, "CP050", "ocpp2.0.1") as cp:
        assert recv_frame(cp) == [2, "held-1", "GetBaseReport", report]


# -- format checking with `all`: real 2.x traffic passes untouched both ways ----------------------

@pytest.fixture(scope="module")
def checking_gw(module_start):
    return module_start({"ocpp.message_format_checking": "all", "ocpp.awaiting_timeout": "30s"})


@pytest.mark.parametrize("version, cid", [("ocpp2.0.1", "CP026"), ("ocpp2.1", "CP027")])
def test_a_real_peers_2x_session_passes_format_checking_untouched(checking_gw, watch, version, cid):
    from tools.harness.ocpp2_traffic import session
    gw, probe, tp = checking_gw, watch(checking_gw), topics(checking_gw, cid)
    with cp_of(gw, cid, version) as cp:
        connected_event(probe, gw, cid)
        call_uid = None   # the call the next result answers
        for index, message in enumerate(session(version)):
            uid = f"m{index}"
            if message.direction == "cp_call":
                call_uid = uid
                cp.send(json.dumps([2, uid, message.action, message.payload]))
                assert probe.expect_json(tp.call, {"UniqueId": uid})["Payload"] == message.payload, message.name
            elif message.direction == "csms_result":
                probe.publish(tp.dnstream, {"MessageTypeId": 3, "UniqueId": call_uid, "Payload": message.payload})
                assert recv_frame(cp) == [3, call_uid, message.payload], message.name
            elif message.direction == "csms_call":
                call_uid = uid
                probe.publish(tp.dnstream, {"MessageTypeId": 2, "UniqueId": uid, "Action": message.action,
                                            "Payload": message.payload})
                assert recv_frame(cp) == [2, uid, message.action, message.payload], message.name
            elif message.direction == "cp_result":
                cp.send(json.dumps([3, call_uid, message.payload]))
                reply = probe.expect_json(tp.reply, {"UniqueId": call_uid})
                assert (reply["MessageTypeId"], reply["Payload"]) == (3, message.payload), message.name
            else:
                assert message.direction == "cp_send"
                cp.send(json.dumps([6, uid, message.action, message.payload]))
                assert probe.expect_json(tp.call, {"UniqueId": uid})["Payload"] == message.payload


def test_with_checking_a_bad_201_call_is_answered_in_201_codes(checking_gw, watch):
    gw, probe = checking_gw, watch(checking_gw)
    with cp_of(gw, "CP028", "ocpp2.0.1") as cp:
        connected_event(probe, gw, "CP028")
        cp.send('[2,"b1","BootNotification",{"reason":"PowerUp"}]')
        answer = recv_frame(cp)
        assert answer[:3] == [4, "b1", "OccurrenceConstraintViolation"] and "chargingStation" in answer[3]
        assert answered_marker(cp) == []


def test_with_checking_a_bad_21_callresult_is_answered_with_a_callresulterror_too(checking_gw, watch):
    gw, probe, tp = checking_gw, watch(checking_gw), topics(checking_gw, "CP029")
    with cp_of(gw, "CP029", "ocpp2.1") as cp:
        connected_event(probe, gw, "CP029")
        probe.publish(tp.dnstream, {"MessageTypeId": 2, "UniqueId": "r1", "Action": "Reset",
                                    "Payload": {"type": "Immediate"}})
        assert recv_frame(cp)[:2] == [2, "r1"]
        cp.send('[3,"r1",{"status":"Perhaps"}]')
        answer = recv_frame(cp)
        assert answer[:3] == [5, "r1", "PropertyConstraintViolation"]
        error = probe.expect_json(tp.error, {"UniqueId": "r1"})
        assert (error["MessageTypeId"], error["ErrorCode"], error["ErrorDetails"]["reason"]) == (
            4, "PropertyConstraintViolation", "schema")
