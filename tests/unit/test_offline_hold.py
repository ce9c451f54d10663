"""Held downstream messages for absent charge points, on a fake clock."""

from ocpp_gw.mqtt.offline import OfflineHold


class Clock:
    now = 0.0

    def __call__(self):
        return self.now


def make(hold=10.0, max_per_cid=3):
    clock, expired = Clock(), []
    held = OfflineHold(hold, max_per_cid, lambda cid, items, emptied: expired.append(
        (cid, items, emptied)), clock)
    return held, clock, expired


def test_released_messages_come_back_in_arrival_order():
    held, _, _ = make()
    for i in range(3):
        assert held.hold("CP1", i)
    assert held.release("CP1") == [0, 1, 2]
    assert held.release("CP1") == []


def test_messages_beyond_the_bound_are_refused():
    held, _, _ = make(max_per_cid=2)
    assert held.hold("CP1", "a") and held.hold("CP1", "b")
    assert not held.hold("CP1", "c")
    assert held.hold("CP2", "c")


def test_each_message_expires_hold_seconds_after_it_arrived():
    held, clock, expired = make(hold=10)
    held.hold("CP1", "a")
    clock.now = 5
    held.hold("CP1", "b")
    assert held.expire() == 10
    clock.now = 10
    assert held.expire() == 15
    assert expired == [("CP1", ["a"], False)]
    clock.now = 15
    assert held.expire() is None
    assert expired[-1] == ("CP1", ["b"], True)
    assert held.count() == 0


def test_the_expiry_thread_hands_over_without_polling():
    import threading
    done = threading.Event()
    held = OfflineHold(0.05, 5, lambda cid, items, emptied: done.set())
    held.start()
    try:
        held.hold("CP1", "a")
        assert done.wait(2)
    finally:
        held.stop()


def test_a_cid_that_left_lingers_one_hold_period_then_is_reported_emptied():
    held, clock, expired = make(hold=10)
    held.linger("CP1")
    assert held.expire() == 10
    clock.now = 10
    held.expire()
    assert expired == [("CP1", [], True)]


def test_messages_expiring_during_linger_do_not_end_it():
    held, clock, expired = make(hold=10)
    held.linger("CP1")
    clock.now = 1
    held.hold("CP1", "a")
    clock.now = 10
    held.expire()
    assert expired == []
    clock.now = 11
    held.expire()
    assert expired[-1] == ("CP1", ["a"], True)


def test_release_ends_the_linger_period():
    held, clock, expired = make(hold=10)
    held.linger("CP1")
    assert held.release("CP1") == []
    clock.now = 20
    assert held.expire() is None
    assert expired == []


def test_a_message_held_for_less_than_the_hold_expires_first_and_the_others_keep_their_order():
    held, clock, expired = make(hold=10)
    held.hold("CP1", "reply-a")
    held.hold("CP1", "call-b", seconds=2)
    held.hold("CP1", "reply-c")
    assert held.expire() == 2
    clock.now = 2
    assert held.expire() == 10
    assert expired == [("CP1", ["call-b"], False)]
    assert held.release("CP1") == ["reply-a", "reply-c"]
