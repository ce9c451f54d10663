"""Pending slots (connections before authentication): bounded in total and per address, given back once, the
shedding counted and logged at most once per interval."""

from __future__ import annotations

import logging

from ocpp_gw.chargers.admission import WARNING_EVERY, PendingLimits, PendingSlots
from ocpp_gw.stats import Stats


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def slots(total: int = 3, per_address: int = 2, clock=None, stats=None) -> PendingSlots:
    return PendingSlots(PendingLimits(total, per_address), stats or Stats(), clock=clock or Clock())


def test_one_address_gets_its_share_and_leaves_the_rest_to_others():
    stats = Stats()
    pending = slots(total=3, per_address=2, stats=stats)
    held = [pending.admit() for _ in range(2)]
    assert all(slot.claim_address("192.0.2.1") for slot in held)
    third = pending.admit()
    assert not third.claim_address("192.0.2.1")  # its address is full
    third.release()
    other = pending.admit()
    assert other.claim_address("192.0.2.2")
    assert pending.admit() is None  # the total is full
    assert stats.snapshot() == {"shed.pending_per_address": 1, "shed.pending_total": 1}


def test_a_slot_is_given_back_once_however_often_released():
    pending = slots(total=1, per_address=1)
    slot = pending.admit()
    slot.claim_address("192.0.2.1")
    slot.release()
    slot.release()
    assert pending.pending() == 0
    again = pending.admit()
    assert again is not None and again.claim_address("192.0.2.1")


def test_shedding_is_logged_once_per_interval_with_the_count(caplog):
    clock = Clock()
    pending = slots(total=1, per_address=1, clock=clock)
    pending.admit()
    with caplog.at_level(logging.WARNING, logger="ocpp_gw.listener"):
        for _ in range(5):
            assert pending.admit() is None
        clock.now += WARNING_EVERY
        assert pending.admit() is None
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert messages[0].startswith("closed 1 connection(s) that had not authenticated")
    assert messages[1].startswith("closed 5 connection(s) that had not authenticated")
