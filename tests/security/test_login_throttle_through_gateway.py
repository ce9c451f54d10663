"""The failed-login throttle through the running gateway: 429 with Retry-After, logged once per burst, and missing
credentials never counted (the decision table and the throttle on their own: tests/unit/test_authorize_and_throttle.py)."""

from __future__ import annotations

import pytest

from tools.harness import password_for
from tests.security.wire import RawClient, basic


@pytest.fixture(scope="module")
def throttled_gw(module_gateways):
    return module_gateways({"auth.throttle.max_failures": 3, "auth.throttle.window": "1m",
                            "auth.throttle.block": "2m"})


def upgrade(gw, cid: str, authorization: str | None):
    with RawClient(("127.0.0.1", gw.port)) as client:
        return client.upgrade(f"/ocpp/{cid}", {"Authorization": authorization})


def test_failed_logins_from_one_address_are_throttled_with_429_logged_once(throttled_gw):
    gw = throttled_gw
    since = gw.mark()
    # A wrong password and an unknown user look the same to the guesser.
    answers = [upgrade(gw, "CP001", basic("CP001", "guess-1")), upgrade(gw, "CP777", basic("CP777", "guess-2")),
               upgrade(gw, "CP001", basic("CP001", "guess-3"))]
    assert {(a.status, a.body) for a in answers} == {(401, b"invalid username or password\n")}
    blocked = [upgrade(gw, "CP001", basic("CP001", "guess-4")),
               upgrade(gw, "CP002", basic("CP002", password_for("CP002"))),  # right, and refused all the same
               upgrade(gw, "CP001", basic("CP001", "guess-5"))]
    for answer in blocked:
        assert (answer.status, answer.body) == (429, b"too many failed logins; try again later\n")
        assert 110 <= int(answer.headers["retry-after"]) <= 120
    gw.wait_for_log(r"WARNING .*3 failed logins from 127\.0\.0\.1 within 60s; its logins are refused with 429 "
                    r"for 120s", since=since)
    # Once per burst: no warning per refused attempt.
    later = gw.logs[since:]
    assert sum("failed logins from" in line for line in later) == 1
    assert not any("WARNING" in line and "refused: 429" in line for line in later)
    assert not any(f"guess-{n}" in line for line in gw.logs for n in range(1, 6))


def test_missing_credentials_do_not_count_as_failures(module_gateways):
    gw = module_gateways({"auth.throttle.max_failures": 2})
    for _ in range(4):
        assert upgrade(gw, "CP001", None).status == 401
        assert upgrade(gw, "CP001", "Bearer x").status == 401
    assert upgrade(gw, "CP001", basic("CP001", password_for("CP001"))).status == 101
