"""The pollable doorbell: a ring from any thread wakes the owner's poll() exactly until it clears."""

import select
import threading

import pytest

from ocpp_gw.netio.doorbell import Doorbell
from ocpp_gw.protocol.pipe import Channel, drain


def readable(bell: Doorbell) -> bool:
    poller = select.poll()
    poller.register(bell, select.POLLIN)
    return bool(poller.poll(0))


@pytest.fixture
def bell():
    bell = Doorbell()
    yield bell
    bell.close()


def test_a_new_doorbell_is_silent(bell):
    assert not bell.is_set()
    assert not readable(bell)


def test_ringing_makes_the_doorbell_readable_until_cleared(bell):
    bell.set()
    assert bell.is_set() and readable(bell)
    bell.clear()
    assert not bell.is_set() and not readable(bell)


def test_ringing_twice_needs_one_clear(bell):
    bell.set()
    bell.set()
    bell.clear()
    assert not readable(bell)


def test_clearing_a_silent_doorbell_does_nothing(bell):
    bell.clear()
    assert not readable(bell)
    bell.set()
    assert readable(bell)


def test_a_ring_after_close_is_ignored():
    bell = Doorbell()
    bell.close()
    bell.set()  # must not write to a closed (or reused) descriptor
    bell.clear()
    bell.close()


def test_every_put_from_other_threads_wakes_the_owner():
    """Producers put while the owner clears and drains: no item may sit unseen while the owner sleeps."""
    bell = Doorbell()
    channel = Channel(bell)
    producers, per_producer = 4, 5000
    poller = select.poll()
    poller.register(bell, select.POLLIN)

    def produce(n):
        for i in range(per_producer):
            channel.put((n, i))

    threads = [threading.Thread(target=produce, args=(n,)) for n in range(producers)]
    for thread in threads:
        thread.start()
    received = []
    try:
        while len(received) < producers * per_producer:
            bell.clear()
            received += drain(channel)
            if len(received) == producers * per_producer:
                break
            # A missed wake-up leaves the owner asleep with items queued: poll would time out.
            assert poller.poll(5000), f"owner not woken with {channel.qsize()} item(s) queued"
    finally:
        for thread in threads:
            thread.join()
        bell.close()
    for n in range(producers):
        assert [i for p, i in received if p == n] == list(range(per_producer))
