"""The daily certificate expiry warning, driven through weeks by an injected clock."""

from __future__ import annotations

import logging

import pytest

from ocpp_gw.chargers.expiry import LONGEST_SLEEP, WARN_BEFORE, WARN_EVERY, ExpiryWarning

DAY = 86400.0
NOT_AFTER = 2_000_000_000.0


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def warning_for(now: float, not_after: float = NOT_AFTER) -> tuple[ExpiryWarning, Clock]:
    clock = Clock(now)
    return ExpiryWarning(lambda: ("/etc/ocpp_gw/server.pem", not_after), clock), clock


def test_no_warning_before_the_last_30_days():
    warning, _ = warning_for(NOT_AFTER - WARN_BEFORE - 1)
    assert not warning.check()


def test_warns_on_start_inside_the_window_then_once_a_day(caplog):
    warning, clock = warning_for(NOT_AFTER - 10 * DAY)
    caplog.set_level(logging.WARNING)
    assert warning.check()
    clock.now += WARN_EVERY - 1
    assert not warning.check()
    clock.now += 1
    assert warning.check()
    messages = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(messages) == 2
    assert "server.pem expires on 2033-05-18 03:33:20 UTC, in 10.0 days" in messages[0]
    assert "in 9.0 days" in messages[1]


def test_a_month_of_hourly_checks_gives_one_warning_a_day():
    warning, clock = warning_for(NOT_AFTER - WARN_BEFORE)
    warned = 0
    for _ in range(30 * 24):
        warned += warning.check()
        clock.now += 3600
    assert warned == 30


def test_an_expired_certificate_is_said_to_have_expired(caplog):
    warning, _ = warning_for(NOT_AFTER + DAY)
    assert warning.check()
    assert "EXPIRED on 2033-05-18" in caplog.records[-1].getMessage()


def test_a_renewed_certificate_stops_the_warnings_and_the_next_window_warns_at_once():
    not_after = [NOT_AFTER]
    clock = Clock(NOT_AFTER - 5 * DAY)
    warning = ExpiryWarning(lambda: ("server.pem", not_after[0]), clock)
    assert warning.check()
    not_after[0] = NOT_AFTER + 365 * DAY
    clock.now += DAY
    assert not warning.check()
    clock.now = not_after[0] - 29 * DAY
    assert warning.check()


@pytest.mark.parametrize("now, last_warned, sleep", [
    (NOT_AFTER - 40 * DAY, None, LONGEST_SLEEP),            # far off: look again within the hour
    (NOT_AFTER - WARN_BEFORE - 60, None, 60),               # the window opens in a minute
    (NOT_AFTER - 10 * DAY, NOT_AFTER - 10 * DAY - DAY + 30, 30),  # the next daily warning in 30 s
])
def test_the_thread_sleeps_until_the_next_check_is_due(now, last_warned, sleep):
    warning, _ = warning_for(now)
    warning.last_warned = last_warned
    assert warning.seconds_to_next_check() == sleep
