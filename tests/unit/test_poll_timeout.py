import math
import select
import socket

import pytest

from ocpp_gw.chargers.websocket import poll_timeout_ms


@pytest.mark.parametrize("seconds, expected", [
    (-5.0, 0), (0.0, 0), (0.0001, 1), (0.001, 1), (0.0015, 2), (1.0, 1000), (86_400.0, 86_400_000),
])
def test_a_wait_is_rounded_up_to_whole_milliseconds_and_never_negative(seconds, expected):
    assert poll_timeout_ms(seconds) == expected


@pytest.mark.parametrize("seconds", [2**31 / 1000.0, 1e12, 2.5 * (2**31 - 1), math.inf])
def test_a_wait_longer_than_poll_takes_is_cut_to_the_longest_poll_accepts(seconds):
    timeout = poll_timeout_ms(seconds)
    assert timeout == 2**31 - 1
    reader, writer = socket.socketpair()
    with reader, writer:
        writer.send(b"x")  # readable at once: the call returns without waiting 24 days
        poller = select.poll()
        poller.register(reader, select.POLLIN)
        assert poller.poll(timeout)
