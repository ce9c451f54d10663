"""The pipe's rules (SPEC §5) as named scenarios, on a fake clock, without sockets or threads."""

import json

import pytest

from ocpp_gw.protocol.frames import Call, CallError, CallResult
from ocpp_gw.protocol.pipe import (CS_CALL, CSMS_CALL, WAITING, MAX_HEARTBEAT_INTERVAL, Adopted, Close, Disconnected, Pipe,
                          PipeConfig, Upstream, drain)
from ocpp_gw.stats import Stats


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class Harness:
    """Drives one pipe: CP frames in, CSMS envelopes in, and what came out."""

    def __init__(self, **config):
        self.clock = Clock()
        self.stats = Stats()
        self.pipe = Pipe("CP001", PipeConfig(**config), clock=self.clock, stats=self.stats)

    def cp_sends(self, *items):
        for item in items:
            self.pipe.ChargeStationRx.put(item if isinstance(item, (str, bytes, Disconnected))
                                          else json.dumps(item))
        return self.step()

    def csms_sends(self, *messages):
        for message in messages:
            item = message if isinstance(message, Adopted) else (message, getattr(message, "action", None))
            self.pipe.CSMSRx.put(item)
        return self.step()

    def step(self):
        return self.pipe.step()

    def advance(self, seconds):
        self.clock.advance(seconds)
        return self.step()

    def to_cp(self):
        return list(drain(self.pipe.ChargeStationTx))

    def to_csms(self):
        return list(drain(self.pipe.CSMSTx))


BOOT = [2, "b1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
STATUS = [2, "s1", "StatusNotification",
          {"connectorId": 0, "errorCode": "NoError", "status": "Available"}]
RESET = Call("r1", "Reset", {"type": "Soft"})
GETCONF = Call("g1", "GetConfiguration", {})


def boot_accepted(interval):
    return CallResult("b1", {"status": "Accepted", "interval": interval,
                             "currentTime": "2026-11-22T00:00:00Z"})


@pytest.fixture
def h():
    """A pipe with SPEC defaults, minus the post-handshake idle timeout (tested on its own)."""
    return Harness(idle_timeout=0)


def test_cp_call_is_published_upstream_and_the_pipe_awaits_the_csms(h):
    h.cp_sends(BOOT)
    assert h.to_csms() == [Upstream(Call("b1", "BootNotification", BOOT[3]), "BootNotification")]
    assert h.pipe.state == CS_CALL


def test_matching_csms_reply_reaches_the_cp_and_the_pipe_waits_again(h):
    h.cp_sends(BOOT)
    h.csms_sends(boot_accepted(300))
    assert h.to_cp() == [boot_accepted(300)]
    assert h.pipe.state == WAITING


def test_csms_call_is_sent_to_the_cp_when_waiting(h):
    h.csms_sends(RESET)
    assert h.to_cp() == [RESET]
    assert h.pipe.state == CSMS_CALL


def test_csms_call_is_queued_while_cp_call_is_out(h):
    h.cp_sends(BOOT)
    h.csms_sends(RESET)
    assert h.to_cp() == []
    assert h.pipe.queue_depth == 1
    h.csms_sends(boot_accepted(60))
    assert h.to_cp() == [boot_accepted(60), RESET]


def test_queued_csms_calls_keep_their_arrival_order(h):
    h.cp_sends(BOOT)
    calls = [Call(f"c{i}", "GetConfiguration", {}) for i in range(5)]
    h.csms_sends(*calls)
    h.csms_sends(boot_accepted(60))
    sent = [h.to_cp()[-1]]
    for previous in calls[:-1]:
        h.cp_sends([3, previous.unique_id, {}])
        sent.extend(h.to_cp())
    assert sent == calls


def test_cp_messages_have_priority_when_both_arrive_while_waiting(h):
    h.pipe.ChargeStationRx.put(json.dumps(BOOT))
    h.pipe.CSMSRx.put((RESET, "Reset"))
    h.step()
    assert h.pipe.state == CS_CALL
    assert h.to_cp() == []
    assert [u.message.unique_id for u in h.to_csms()] == ["b1"]


def test_only_one_csms_call_is_out_at_a_time(h):
    h.csms_sends(RESET, GETCONF)
    assert h.to_cp() == [RESET]
    h.cp_sends([3, "r1", {"status": "Accepted"}])
    assert h.to_cp() == [GETCONF]


def test_cp_reply_is_published_with_the_action_merged_in(h):
    h.csms_sends(RESET)
    h.cp_sends([3, "r1", {"status": "Accepted"}])
    assert h.to_csms() == [Upstream(CallResult("r1", {"status": "Accepted"}), "Reset")]
    assert h.pipe.state == WAITING


def test_cp_call_error_reply_is_published_with_the_action(h):
    h.csms_sends(RESET)
    h.cp_sends([4, "r1", "NotSupported", "no", {}])
    assert h.to_csms() == [Upstream(CallError("r1", "NotSupported", "no", {}), "Reset")]


def test_non_matching_csms_reply_is_dropped_and_counted(h):
    h.cp_sends(BOOT)
    h.csms_sends(CallResult("other", {}))
    assert h.to_cp() == []
    assert h.pipe.state == CS_CALL
    assert h.stats.get("dropped.csms_reply_unmatched") == 1


def test_cp_reply_matching_nothing_is_dropped_and_counted(h):
    h.cp_sends([3, "nobody", {}])
    assert h.to_csms() == []
    assert h.stats.get("dropped.cp_reply_unmatched") == 1


def test_cp_call_during_csms_call_is_handled_and_its_answer_still_forwarded(h):
    h.csms_sends(RESET)
    h.cp_sends(STATUS)
    assert h.pipe.state == CS_CALL
    assert [u.message.unique_id for u in h.to_csms()] == ["s1"]
    h.cp_sends([3, "r1", {"status": "Accepted"}])
    assert h.to_csms() == [Upstream(CallResult("r1", {"status": "Accepted"}), "Reset")]
    h.csms_sends(CallResult("s1", {}))
    assert h.to_cp()[-1] == CallResult("s1", {})
    assert h.pipe.state == WAITING


def test_cp_call_deadline_returns_the_pipe_to_waiting_and_sends_queued_calls(h):
    h.cp_sends(BOOT)
    h.csms_sends(RESET)
    h.advance(29.9)
    assert h.pipe.state == CS_CALL
    h.advance(0.1)
    assert h.pipe.state == CSMS_CALL
    assert h.to_cp() == [RESET]
    assert h.stats.get("timeouts.csms") == 1


def test_late_csms_answer_to_the_last_cp_call_is_forwarded(h):
    h.cp_sends(BOOT)
    h.advance(31)
    h.csms_sends(boot_accepted(60))
    assert h.to_cp() == [boot_accepted(60)]
    assert h.stats.get("dnstream.late_replies") == 1


def test_late_csms_answer_is_dropped_once_the_cp_made_another_call(h):
    h.cp_sends(BOOT)
    h.advance(31)
    h.cp_sends(STATUS)
    h.csms_sends(boot_accepted(60))
    assert h.to_cp() == []
    assert h.stats.get("dropped.csms_reply_unmatched") == 1


def test_unanswered_csms_call_is_reported_to_the_csms_as_timeout(h):
    h.csms_sends(RESET)
    h.to_cp()
    h.advance(30)
    [up] = h.to_csms()
    assert up.action == "Reset"
    assert up.message.unique_id == "r1"
    assert up.message.details["reason"] == "timeout"
    assert up.message.details["origin"] == "ocpp_gw"
    assert h.pipe.state == WAITING


def test_late_cp_answer_to_a_timed_out_csms_call_is_forwarded_with_its_action(h):
    h.csms_sends(RESET)
    h.advance(30)
    h.to_csms()
    h.cp_sends([3, "r1", {"status": "Accepted"}])
    assert h.to_csms() == [Upstream(CallResult("r1", {"status": "Accepted"}), "Reset")]


def test_late_cp_answer_after_an_interleaved_cp_call_is_forwarded(h):
    h.csms_sends(RESET)
    h.advance(30)
    h.cp_sends(STATUS)
    h.to_csms()
    h.cp_sends([3, "r1", {"status": "Accepted"}])
    assert h.to_csms() == [Upstream(CallResult("r1", {"status": "Accepted"}), "Reset")]


def test_a_cp_answer_is_forwarded_only_once(h):
    h.csms_sends(RESET)
    h.cp_sends([3, "r1", {"status": "Accepted"}], [3, "r1", {"status": "Accepted"}])
    assert len(h.to_csms()) == 1
    assert h.stats.get("dropped.cp_reply_unmatched") == 1


def test_the_pipe_remembers_only_the_last_few_csms_calls():
    h = Harness(recent_csms_calls=2, awaiting_timeout=1, retry_interval=1)
    for i in range(3):
        h.csms_sends(Call(f"c{i}", "Reset", {"type": "Soft"}))
        h.advance(1)
    h.to_csms()
    h.cp_sends([3, "c0", {}], [3, "c2", {}])
    assert [u.message.unique_id for u in h.to_csms()] == ["c2"]


def test_unanswered_csms_call_is_resent_with_the_same_id_every_retry_interval():
    h = Harness(awaiting_timeout=10, retry_interval=3)
    h.csms_sends(RESET)
    for _ in range(4):
        h.advance(3)
    assert h.to_cp() == [RESET, RESET, RESET, RESET]
    assert h.stats.get("dnstream.retries") == 3
    assert h.to_csms()[0].message.details["reason"] == "timeout"


def test_default_timeouts_make_no_resend(h):
    h.csms_sends(RESET)
    h.advance(30)
    assert h.to_cp() == [RESET]


def test_extra_csms_call_beyond_the_queue_bound_is_refused_with_queue_full():
    h = Harness(max_mqueue_len=2)
    h.cp_sends(BOOT)
    h.to_csms()
    h.csms_sends(Call("q1", "Reset", {}), Call("q2", "Reset", {}), Call("q3", "Reset", {}))
    [up] = h.to_csms()
    assert (up.message.unique_id, up.message.details["reason"]) == ("q3", "queue_full")
    assert h.pipe.queue_depth == 2


def test_accepted_boot_notification_sets_the_heartbeat_interval(h):
    h.cp_sends(BOOT)
    h.csms_sends(boot_accepted(300))
    assert h.pipe.heartbeat_interval == 300


def test_pending_boot_notification_keeps_the_default_interval(h):
    h.cp_sends(BOOT)
    h.csms_sends(CallResult("b1", {"status": "Pending", "interval": 5,
                                   "currentTime": "2026-11-22T00:00:00Z"}))
    assert h.pipe.heartbeat_interval == 60


def test_interval_is_taken_by_the_calls_action_not_by_the_payload_shape(h):
    h.cp_sends(STATUS)
    h.csms_sends(CallResult("s1", {"status": "Accepted", "interval": 5}))
    assert h.pipe.heartbeat_interval == 60


def test_silent_cp_is_disconnected_after_interval_times_backoff_plus_half_an_interval():
    h = Harness(heartbeat_interval=10, heartbeat_backoff=2, idle_timeout=0)
    h.advance(10)
    assert h.pipe.closed is None
    h.advance(10)
    assert h.pipe.closed is None  # 20 s of silence: within the 25 s allowance
    h.advance(10)
    assert h.pipe.closed == Close(1001, "heartbeat timeout")
    assert h.to_cp() == [Close(1001, "heartbeat timeout")]


def test_any_received_bytes_keep_the_cp_alive():
    h = Harness(heartbeat_interval=10, idle_timeout=0)
    for _ in range(10):
        h.clock.advance(9)
        h.pipe.last_rx = h.clock.now  # e.g. a WebSocket ping
        h.step()
    assert h.pipe.closed is None


def test_keepalive_uses_the_interval_from_boot_notification():
    h = Harness(heartbeat_interval=10, idle_timeout=0)
    h.cp_sends(BOOT)
    h.csms_sends(boot_accepted(100))
    h.advance(140)  # beyond the default 10 s x 1.5, within 100 s x 1.5
    assert h.pipe.closed is None
    h.advance(10)  # 150 s of silence: the allowance is used up
    assert h.pipe.closed.reason == "heartbeat timeout"


def test_keepalive_deadline_follows_the_last_bytes_received():
    """The owner sleeps until the CP would be too silent, not until a periodic check: a CP that
    heartbeats on time never wakes its thread for keepalive."""
    h = Harness(heartbeat_interval=10, idle_timeout=0)
    assert h.step() == h.clock.now + 15
    for _ in range(5):
        h.clock.advance(9)
        h.pipe.last_rx = h.clock.now
        assert h.step() == h.clock.now + 15
    h.clock.advance(14.999)
    assert h.step() == h.clock.now + 0.001 and h.pipe.closed is None
    h.advance(0.001)
    assert h.pipe.closed == Close(1001, "heartbeat timeout")


@pytest.mark.parametrize("interval", [2**31, 10**20, 10**400], ids=["2**31", "10**20", "10**400"])
def test_an_interval_too_long_to_matter_is_capped_and_the_cp_stays_served(h, interval, caplog):
    h.cp_sends(BOOT)
    h.csms_sends(boot_accepted(interval))
    assert h.pipe.heartbeat_interval == MAX_HEARTBEAT_INTERVAL == 2**31 - 1
    assert "heartbeat interval from the CSMS is more than 2147483647 s" in caplog.text
    assert h.advance(86_400 * 365) > h.clock.now and h.pipe.closed is None


def test_interval_zero_disables_keepalive():
    h = Harness(heartbeat_interval=10, idle_timeout=0)
    h.cp_sends(BOOT)
    h.csms_sends(boot_accepted(0))
    assert h.advance(10_000) is None
    assert h.pipe.closed is None


def test_cp_silent_after_the_handshake_is_closed_at_idle_timeout():
    h = Harness(idle_timeout=5, heartbeat_interval=0)
    h.advance(4.9)
    assert h.pipe.closed is None
    h.advance(0.1)
    assert h.pipe.closed == Close(1001, "idle timeout")


def test_first_frame_cancels_the_idle_timeout():
    h = Harness(idle_timeout=5, heartbeat_interval=0)
    h.cp_sends(BOOT)
    h.csms_sends(boot_accepted(0))
    h.advance(100)
    assert h.pipe.closed is None


def test_malformed_frame_with_a_readable_id_gets_formation_violation(h):
    h.cp_sends('[2, "x1", "BootNotification", []]')
    [answer] = h.to_cp()
    assert isinstance(answer, CallError)
    assert (answer.unique_id, answer.code) == ("x1", "FormationViolation")
    assert h.to_csms() == []


def test_ten_bad_frames_in_a_row_close_the_connection_with_1002(h):
    for _ in range(9):
        h.cp_sends("not json")
    assert h.pipe.closed is None
    h.cp_sends("not json")
    assert h.pipe.closed.code == 1002


def test_a_good_frame_resets_the_bad_frame_count(h):
    for _ in range(9):
        h.cp_sends("not json")
    h.cp_sends(BOOT)
    for _ in range(9):
        h.cp_sends("not json")
    assert h.pipe.closed is None


def test_binary_frame_closes_with_1003(h):
    h.cp_sends(b"\x00\x01")
    assert h.pipe.closed.code == 1003


def test_unknown_message_type_is_ignored_without_answer(h):
    h.cp_sends('[7, "u1", {}]')
    assert h.to_cp() == [] and h.to_csms() == []
    assert h.stats.get("dropped.unknown_message_type") == 1


def test_disconnect_answers_queued_csms_calls_with_disconnected(h):
    h.cp_sends(BOOT)
    h.csms_sends(RESET, GETCONF)
    h.to_csms()
    h.cp_sends(Disconnected(1006, "gone"))
    assert h.pipe.answer_unfinished("disconnected", "gone") == 2
    reasons = [(u.message.unique_id, u.message.details["reason"]) for u in h.to_csms()]
    assert reasons == [("r1", "disconnected"), ("g1", "disconnected")]


def test_takeover_hands_over_the_call_out_first_then_the_queue(h):
    h.csms_sends(RESET, GETCONF)
    assert h.pipe.unfinished_calls() == [RESET, GETCONF]
    successor = Harness()
    successor.csms_sends(Adopted((RESET, GETCONF)))
    assert successor.to_cp() == [RESET]


def test_adopted_calls_go_before_calls_that_arrived_on_the_new_connection():
    h = Harness()
    newer = Call("n1", "Reset", {"type": "Hard"})
    h.pipe.CSMSRx.put((newer, "Reset"))
    h.pipe.CSMSRx.put(Adopted((RESET,)))
    h.step()
    assert h.to_cp() == [RESET]


def test_requested_close_is_sent_to_the_cp(h):
    h.pipe.request_close(1000, "kicked")
    h.step()
    assert h.to_cp() == [Close(1000, "kicked")]


def test_csms_reply_for_a_closed_cp_is_counted(h):
    h.cp_sends(BOOT)
    h.cp_sends(Disconnected(1000, "bye"))
    h.pipe.CSMSRx.put((boot_accepted(60), "BootNotification"))
    h.pipe.step_inputs_only()
    assert h.stats.get("dropped.csms_reply_cp_gone") == 1


def test_next_deadline_is_the_earliest_timer(h):
    h.cp_sends(BOOT)
    assert h.step() == pytest.approx(1030.0)


# -- message format checking (SPEC §7) --------------------------------------------------------

from ocpp_gw.protocol.schemas import SchemaChecker, default_schema_dir  # noqa: E402

CHECKER = SchemaChecker(default_schema_dir())


def checking(mode):
    h = Harness(idle_timeout=0, check_upstream=mode in ("all", "upstream_only"),
                check_dnstream=mode in ("all", "dnstream_only"))
    h.pipe.checker = CHECKER
    return h


def test_invalid_cp_call_is_answered_with_the_violation_and_not_published():
    h = checking("upstream_only")
    h.cp_sends([2, "b1", "BootNotification", {"chargePointVendor": "V"}])
    [answer] = h.to_cp()
    assert answer.code == "OccurenceConstraintViolation"
    assert "chargePointModel" in answer.description
    assert h.to_csms() == []


def test_cp_call_of_unknown_action_is_answered_not_implemented():
    h = checking("all")
    h.cp_sends([2, "x1", "FlyToTheMoon", {}])
    assert h.to_cp()[0].code == "NotImplemented"


def test_valid_cp_call_passes_the_check_unchanged():
    h = checking("all")
    h.cp_sends(BOOT)
    assert h.to_csms()[0].message.payload == BOOT[3]


def test_invalid_cp_reply_is_replaced_upstream_by_a_schema_gateway_error():
    h = checking("upstream_only")
    h.csms_sends(RESET)
    h.cp_sends([3, "r1", {"status": "Maybe"}])
    [up] = h.to_csms()
    assert up.action == "Reset"
    assert up.message.details["reason"] == "schema"
    assert up.message.details["payload"] == {"status": "Maybe"}
    assert up.message.code == "PropertyConstraintViolation"


def test_invalid_csms_call_is_not_sent_and_the_csms_gets_a_schema_error():
    h = checking("dnstream_only")
    h.csms_sends(Call("r9", "Reset", {"type": "Gentle"}))
    assert h.to_cp() == []
    [up] = h.to_csms()
    assert (up.message.unique_id, up.message.details["reason"]) == ("r9", "schema")
    assert up.message.details["payload"] == {"type": "Gentle"}


def test_invalid_csms_reply_is_not_sent_and_the_csms_gets_a_schema_error():
    h = checking("all")
    h.cp_sends(BOOT)
    h.to_csms()
    h.csms_sends(CallResult("b1", {"status": "Accepted"}))
    assert h.to_cp() == []
    assert h.to_csms()[0].message.code == "OccurenceConstraintViolation"


def test_upstream_only_does_not_check_the_csms_side():
    h = checking("upstream_only")
    h.csms_sends(Call("r9", "Reset", {"type": "Gentle"}))
    assert h.to_cp() == [Call("r9", "Reset", {"type": "Gentle"})]


def test_disabled_checking_forwards_invalid_and_unknown_messages_untouched():
    h = Harness(idle_timeout=0)
    h.cp_sends([2, "x1", "FlyToTheMoon", {"wings": 2}])
    assert h.to_csms()[0].message == Call("x1", "FlyToTheMoon", {"wings": 2})


def test_call_that_mqtt_refuses_is_answered_internal_error_so_the_cp_retries(h):
    h.cp_sends(BOOT)
    [up] = h.to_csms()
    h.pipe.upstream_refused(up)
    [answer] = h.to_cp()
    assert (answer.unique_id, answer.code, answer.description) == \
        ("b1", "InternalError", "central system unreachable")
    assert h.pipe.state == WAITING


def test_reply_that_mqtt_refuses_is_counted_as_lost(h):
    h.csms_sends(RESET)
    h.cp_sends([3, "r1", {"status": "Accepted"}])
    [up] = h.to_csms()
    h.pipe.upstream_refused(up)
    assert h.to_cp() == [RESET]
    assert h.stats.get("dropped.upstream_refused") == 1


def test_csms_call_with_the_id_of_a_queued_or_sent_call_is_dropped_as_duplicate(h):
    h.csms_sends(RESET, GETCONF)
    h.csms_sends(RESET, GETCONF)
    assert h.to_cp() == [RESET]
    assert h.pipe.queue_depth == 1
    assert h.stats.get("dropped.duplicate_csms_call") == 2


def test_csms_call_delivered_again_after_the_cp_answered_it_is_dropped_as_duplicate(h):
    h.csms_sends(RESET)
    assert h.to_cp() == [RESET]
    h.cp_sends([3, RESET.unique_id, {"status": "Accepted"}])
    assert len(h.to_csms()) == 1
    h.csms_sends(RESET)  # a QoS 1 redelivery, e.g. after a broker restart
    assert h.to_cp() == []
    assert h.stats.get("dropped.duplicate_csms_call") == 1


def test_only_the_latest_answered_csms_calls_are_remembered():
    h = Harness(recent_csms_calls=2)
    calls = [Call(f"r{n}", "Reset", {"type": "Soft"}) for n in range(3)]
    for call in calls:
        h.csms_sends(call)
        assert h.to_cp() == [call]
        h.cp_sends([3, call.unique_id, {"status": "Accepted"}])
    h.csms_sends(calls[0], calls[2])  # r0 is forgotten, r2 is not
    assert h.to_cp() == [calls[0]]
    assert h.stats.get("dropped.duplicate_csms_call") == 1


def test_cp_heartbeating_exactly_on_time_with_network_delay_stays_connected():
    h = Harness(heartbeat_interval=30, idle_timeout=0)
    h.cp_sends(BOOT)
    h.clock.advance(0.005)  # the CSMS answers 5 ms later; the first check counts from here
    h.csms_sends(boot_accepted(30))
    for n in range(20):
        h.clock.advance(29.995 if n == 0 else 30.0)
        h.clock.advance(0.004)  # the heartbeat arrives a little late
        h.pipe.last_rx = h.clock.now
        h.step()
    assert h.pipe.closed is None


def test_a_pipe_queue_is_built_as_a_queue_queue_is_and_blocks_like_one():
    import queue
    import threading

    from ocpp_gw.protocol.pipe import PipeQueue

    # PipeQueue rebuilds queue.Queue's constructor: a Python that adds an attribute there fails here.
    assert set(vars(PipeQueue(1))) == set(vars(queue.Queue(1)))
    bounded = PipeQueue(1)
    bounded.put("first")
    with pytest.raises(queue.Full):
        bounded.put("second", timeout=0.01)
    assert bounded.get(timeout=0.01) == "first"
    with pytest.raises(queue.Empty):
        bounded.get(timeout=0.01)
    got = []
    waiter = threading.Thread(target=lambda: got.append(bounded.get(timeout=5)))
    waiter.start()
    bounded.put("woken")  # a thread blocked in get() wakes on a put from another
    waiter.join(5)
    assert got == ["woken"]
    bounded.task_done()
    bounded.task_done()
    bounded.join()  # both items taken are done: returns at once


def test_a_pipe_queue_leaves_nine_objects_for_the_cycle_collector_where_a_queue_queue_leaves_15():
    import gc
    import queue

    from ocpp_gw.protocol.pipe import PipeQueue

    def tracked_by(make) -> float:
        gc.collect()
        gc.disable()
        try:
            before = len(gc.get_objects())
            made = [make() for _ in range(50)]
            return (len(gc.get_objects()) - before - 1) / len(made)  # the list itself is one
        finally:
            gc.enable()

    assert tracked_by(lambda: queue.Queue(1)) == 15  # its conditions on a plain lock store two bound methods
    assert tracked_by(lambda: PipeQueue(1)) == 9  # with Condition's own __init__ on an RLock: 24


def test_threading_condition_still_reaches_its_lock_only_through_what_lean_condition_provides():
    import inspect
    import threading

    from ocpp_gw.protocol.pipe import LeanCondition

    # LeanCondition replaces the bound methods Condition.__init__ stores with methods of its own: a Python
    # whose Condition reaches its lock another way fails here, naming the method.
    provided = {"self._release_save()", "self._acquire_restore(", "self._is_owned()", "self._lock.__enter__(",
                "self._lock.__exit__(", "self._waiters"}
    for name in ("__enter__", "__exit__", "wait", "notify", "notify_all"):
        source = inspect.getsource(getattr(threading.Condition, name))
        reaches = {fragment for fragment in ("self._lock", "self._release_save", "self._acquire_restore",
                                             "self._is_owned", "self.acquire", "self.release")
                   if fragment + "." in source or fragment + "(" in source}
        assert all(any(p.startswith(r) for p in provided) for r in reaches), (name, reaches)
    condition = LeanCondition(threading.RLock())
    with condition:
        assert condition._is_owned()
        assert not condition.wait(0.001)
        condition.notify_all()
    assert not condition._is_owned()


def test_every_channel_of_a_pipe_is_a_pipe_queue():
    from ocpp_gw.protocol.pipe import PipeQueue

    pipe = Pipe("CP1")
    assert all(isinstance(channel, PipeQueue) for channel in
               (pipe.ChargeStationRx, pipe.ChargeStationTx, pipe.CSMSRx, pipe.CSMSTx))
