"""The failed-login throttle through the running gateway: 429 with Retry-After for the charge point that failed
only, logged once per burst; a stale charger never locks out its neighbours at the same address, a guesser spraying
ids is stopped by the per-address ceiling; missing credentials never counted (the decision table and the throttle on their own: tests/unit/test_authorize_and_throttle.py)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tools.harness import password_for, wait_until
from tests.security.wire import RawClient, basic


@pytest.fixture(scope="module")
def throttled_gw(module_gateways):
    return module_gateways({"auth.throttle.max_failures": 3, "auth.throttle.window": "1m",
                            "auth.throttle.block": "2m"})


def upgrade(gw, cid: str, authorization: str | None):
    with RawClient(("127.0.0.1", gw.port)) as client:
        return client.upgrade(f"/ocpp/{cid}", {"Authorization": authorization})


def test_a_charge_points_failed_logins_block_it_alone_with_429_logged_once(throttled_gw):
    gw = throttled_gw
    since = gw.mark()
    answers = [upgrade(gw, "CP001", basic("CP001", f"guess-{n}")) for n in range(1, 4)]
    assert {(a.status, a.body) for a in answers} == {(401, b"invalid username or password\n")}
    blocked = [upgrade(gw, "CP001", basic("CP001", "guess-4")),
               upgrade(gw, "CP001", basic("CP001", password_for("CP001"))),  # right, and refused all the same
               upgrade(gw, "CP001", basic("CP001", "guess-5"))]
    for answer in blocked:
        assert (answer.status, answer.body) == (429, b"too many failed logins; try again later\n")
        assert 110 <= int(answer.headers["retry-after"]) <= 120
    # Its neighbour at the same address is not affected.
    assert upgrade(gw, "CP002", basic("CP002", password_for("CP002"))).status == 101
    gw.wait_for_log(r"WARNING .*3 failed logins for CP001 from 127\.0\.0\.1 within 60s; its logins from there "
                    r"are refused with 429 for 120s", since=since)
    # Once per burst: no warning per refused attempt.
    later = gw.logs[since:]
    assert sum("failed logins for" in line for line in later) == 1
    assert not any("WARNING" in line and "refused: 429" in line for line in later)
    assert not any(f"guess-{n}" in line for line in gw.logs for n in range(1, 6))


GOOD = [f"DEPOT{n:03}" for n in range(100)]


@pytest.fixture
def depot_gw(module_gateways, auth_service):
    """The default throttle settings, an http auth service that knows GOOD (password: the cid reversed)."""
    auth_service.allowed = {(cid, cid[::-1]) for cid in GOOD}
    return module_gateways({"auth.backend": "http", "auth.http.url": auth_service.url,
                            "auth.throttle.max_failures": None, "ocpp.listener.max_connections": 1000})


def test_a_stale_charger_hammering_does_not_lock_out_100_good_ones_at_its_address(depot_gw):
    gw = depot_gw
    stop = threading.Event()
    stale_answers: list[int] = []

    def hammer():
        while not stop.is_set():
            stale_answers.append(upgrade(gw, "STALE1", basic("STALE1", "rotated-away")).status)

    hammering = threading.Thread(target=hammer, name="harness-stale-charger")
    hammering.start()
    try:
        assert wait_until(lambda: stale_answers.count(429) >= 3, timeout=10)
        with ThreadPoolExecutor(max_workers=100) as pool:
            statuses = list(pool.map(lambda cid: upgrade(gw, cid, basic(cid, cid[::-1])).status, GOOD))
    finally:
        stop.set()
        hammering.join(10)
    assert statuses == [101] * len(GOOD)
    assert stale_answers[:5] == [401] * 5 and set(stale_answers[5:]) == {429}


def test_a_guesser_spraying_200_ids_from_one_address_is_throttled(depot_gw):
    gw = depot_gw
    since = gw.mark()
    statuses = [upgrade(gw, f"GUESS{n:03}", basic(f"GUESS{n:03}", "guess")).status for n in range(200)]
    assert statuses == [401] * 100 + [429] * 100
    assert upgrade(gw, GOOD[0], basic(GOOD[0], GOOD[0][::-1])).status == 429  # the whole address, for a while
    gw.wait_for_log(r"WARNING .*100 failed logins from 127\.0\.0\.1 within 60s across charge point ids; every "
                    r"login from there is refused with 429 for 300s", since=since)


def test_missing_credentials_do_not_count_as_failures(module_gateways):
    gw = module_gateways({"auth.throttle.max_failures": 2})
    for _ in range(4):
        assert upgrade(gw, "CP001", None).status == 401
        assert upgrade(gw, "CP001", "Bearer x").status == 401
    assert upgrade(gw, "CP001", basic("CP001", password_for("CP001"))).status == 101
