"""Who gets in: `handshake.authorize` as a decision table and the failed-login throttle, on their own (both through
the gateway: tests/security/test_login_throttle_through_gateway.py)."""

from __future__ import annotations

import base64

import pytest

from ocpp_gw.protocol.handshake import PLAIN, AuthUnavailable, Refusal, Throttled, Transport, authorize, parse_request
from ocpp_gw.auth.throttle import FailureThrottle, ThrottledBackend, address_key
from tests.security.wire import basic, request_bytes

WSS = Transport(tls=True)
CERTIFIED = Transport(tls=True, client_certificate=True)


class Backend:
    """Knows `users` (name → (password, profile)); counts the questions it is asked."""

    requires_credentials = True

    def __init__(self, users: dict[str, tuple[str, int]] | None = None, error: Exception | None = None):
        self.users = users or {}
        self.error = error
        self.asked = 0

    def authenticate(self, username, password, *, cid="", peer=""):
        self.asked += 1
        if self.error is not None:
            raise self.error
        return self.users.get(username, (None,))[0] == password

    def profile(self, username):
        return self.users[username][1] if username in self.users else None

    def knows(self, cid):
        return cid in self.users


class Unregistered(Backend):
    """Like the http backend: answers logins, keeps no register of charge points."""

    knows = None


USERS = {"CP1": ("pw1", 1), "CP2": ("pw2", 2), "CP3": ("pw3", 3)}


def request(cid: str, authorization: str | None = None):
    headers = {"Authorization": authorization} if authorization else {}
    parsed = parse_request(request_bytes(f"/ocpp/{cid}", headers), path_prefix="/ocpp")
    assert not isinstance(parsed, Refusal)
    return parsed


def outcome(refusal: Refusal | None) -> tuple:
    return (None,) if refusal is None else (refusal.status, refusal.reason)


# -- the decision table of authorize ------------------------------------------------------------

@pytest.mark.parametrize("cid, user, password, transport, expected", [
    ("CP1", "CP1", "pw1", PLAIN, (None,)),
    ("CP1", "CP1", "pw1", WSS, (None,)),
    ("CP1", "CP1", "bad", PLAIN, (401, "invalid username or password")),
    ("CP1", "NOBODY", "pw1", PLAIN, (401, "invalid username or password")),
    ("CP1", "CP2", "pw2", WSS, (403, "username does not match the charge point id")),
    ("CP2", "CP2", "pw2", PLAIN, (403, "security profile 2: connect over wss")),
    ("CP2", "CP2", "pw2", WSS, (None,)),
    ("CP2", "CP2", "bad", PLAIN, (401, "invalid username or password")),
    ("CP3", "CP3", "pw3", PLAIN, (403, "security profile 3: a TLS client certificate is required")),
    ("CP3", "CP3", "pw3", WSS, (403, "security profile 3: a TLS client certificate is required")),
    ("CP3", None, None, CERTIFIED, (None,)),
    ("CP3", "CP3", "stale", CERTIFIED, (None,)),
    ("CP9", None, None, CERTIFIED, (403, "charge point is not registered")),
    ("CP1", None, None, WSS, (401, "HTTP Basic credentials required")),
])
def test_authorize_decides(cid, user, password, transport, expected):
    authorization = basic(user, password) if user else None
    refusal = authorize(request(cid, authorization), Backend(USERS), must_match_cid=True, transport=transport)
    assert outcome(refusal) == expected


def test_a_certificate_is_enough_with_a_backend_that_keeps_no_register():
    backend = Unregistered(USERS)
    assert authorize(request("CP9"), backend, must_match_cid=True, transport=CERTIFIED) is None


def test_a_verified_certificate_does_not_ask_the_backend():
    backend = Backend(USERS)
    assert authorize(request("CP3", basic("CP3", "x")), backend, must_match_cid=True, transport=CERTIFIED) is None
    assert backend.asked == 0


def test_throttled_backend_gives_429_with_retry_after_in_whole_seconds():
    refusal = authorize(request("CP1", basic("CP1", "pw1")), Backend(error=Throttled(41.2)), must_match_cid=True)
    assert (refusal.status, refusal.reason, refusal.headers) == (
        429, "too many failed logins; try again later", {"Retry-After": "42"})


def test_unavailable_backend_gives_503_and_one_warning_without_traceback(caplog):
    refusal = authorize(request("CP1", basic("CP1", "pw1")), Backend(error=AuthUnavailable("down")),
                        must_match_cid=True)
    assert (refusal.status, refusal.reason) == (503, "authentication backend unavailable")
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("WARNING", "auth backend unavailable, cid 'CP1' refused: down", None)]


def test_backend_that_crashes_gives_503():
    refusal = authorize(request("CP1", basic("CP1", "pw1")), Backend(error=KeyError("x")), must_match_cid=True)
    assert refusal.status == 503


# -- FailureThrottle ----------------------------------------------------------------------------

class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def test_the_failure_that_reaches_the_limit_blocks_and_says_so_once(clock):
    throttle = FailureThrottle(3, window=60, block=300, clock=clock)
    assert [throttle.record_failure("a") for _ in range(3)] == [False, False, True]
    assert throttle.retry_after("a") == 300
    assert throttle.record_failure("a") is False  # a late attempt does not announce a second block


def test_failures_older_than_the_window_do_not_count(clock):
    throttle = FailureThrottle(3, window=60, block=300, clock=clock)
    throttle.record_failure("a")
    throttle.record_failure("a")
    clock.now += 60
    assert throttle.record_failure("a") is False
    assert throttle.retry_after("a") is None


def test_the_block_ends_after_its_time_and_counting_starts_afresh(clock):
    throttle = FailureThrottle(2, window=60, block=30, clock=clock)
    throttle.record_failure("a")
    throttle.record_failure("a")
    clock.now += 29.5
    assert throttle.retry_after("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert throttle.retry_after("a") is None
    assert throttle.record_failure("a") is False


def test_addresses_are_counted_apart(clock):
    throttle = FailureThrottle(2, window=60, block=30, clock=clock)
    throttle.record_failure("a")
    throttle.record_failure("b")
    assert throttle.retry_after("a") is None and throttle.retry_after("b") is None


def test_the_table_is_bounded_and_forgets_the_oldest(clock):
    throttle = FailureThrottle(5, window=60, block=30, clock=clock, max_tracked=100)
    for n in range(1000):
        throttle.record_failure(f"10.0.{n // 256}.{n % 256}")
    assert throttle.tracked() <= 100


def test_expired_entries_are_forgotten(clock):
    throttle = FailureThrottle(5, window=60, block=30, clock=clock)
    throttle.record_failure("a")
    clock.now += 61
    throttle.record_failure("b")
    assert throttle.tracked() == 1


@pytest.mark.parametrize("peer, key", [
    ("192.0.2.7:4711", "192.0.2.7"),
    ("[2001:db8:1:2:3:4:5:6]:443", "2001:db8:1:2::/64"),
    ("[2001:db8:1:2:ffff::1]:1", "2001:db8:1:2::/64"),
    ("[::ffff:192.0.2.7]:80", "192.0.2.7"),
    ("[::1]:80", "::/64"),
    ("", ""),
])
def test_address_key_is_the_ipv4_address_or_the_ipv6_64(peer, key):
    assert address_key(peer) == key


def test_throttled_backend_refuses_a_blocked_charge_point_before_asking(clock):
    inner = Backend(USERS)
    backend = ThrottledBackend(inner, FailureThrottle(2, window=60, block=30, clock=clock))
    assert not backend.authenticate("CP1", "bad", cid="CP1", peer="192.0.2.1:1")
    assert not backend.authenticate("CP1", "bad", cid="CP1", peer="192.0.2.1:2")
    with pytest.raises(Throttled) as throttled:
        backend.authenticate("CP1", "pw1", cid="CP1", peer="192.0.2.1:3")  # right, and still refused
    assert throttled.value.retry_after == 30
    assert inner.asked == 2
    assert backend.authenticate("CP1", "pw1", cid="CP1", peer="192.0.2.2:1")  # from another address


def test_one_charge_points_failures_never_refuse_another_at_the_same_address(clock):
    backend = ThrottledBackend(Backend(USERS), FailureThrottle(2, window=60, block=30, clock=clock),
                               FailureThrottle(50, window=60, block=30, clock=clock))
    for port in range(10):
        try:
            backend.authenticate("CP1", "stale", cid="CP1", peer=f"192.0.2.1:{port}")
        except Throttled:
            pass
    assert backend.authenticate("CP2", "pw2", cid="CP2", peer="192.0.2.1:99")
    assert backend.per_address.retry_after("192.0.2.1") is None  # the blocked attempts did not count


def test_a_guesser_spraying_ids_from_one_address_reaches_the_ceiling(clock):
    inner = Backend(USERS)
    backend = ThrottledBackend(inner, FailureThrottle(5, window=60, block=300, clock=clock),
                               FailureThrottle(20, window=60, block=300, clock=clock))
    outcomes = []
    for n in range(30):
        try:
            outcomes.append(backend.authenticate(f"CP{n:03}", "guess", cid=f"CP{n:03}", peer="198.51.100.9:1"))
        except Throttled:
            outcomes.append("throttled")
    assert outcomes == [False] * 20 + ["throttled"] * 10
    with pytest.raises(Throttled):  # every id from that address, right or wrong
        backend.authenticate("CP1", "pw1", cid="CP1", peer="198.51.100.9:2")
    assert inner.asked == 20
    assert backend.authenticate("CP1", "pw1", cid="CP1", peer="198.51.100.10:1")


def test_throttled_backend_passes_profile_and_reload_through():
    inner = Backend(USERS)
    inner.reloaded = False
    inner.reload = lambda: setattr(inner, "reloaded", True)
    backend = ThrottledBackend(inner, FailureThrottle(2, 60, 30))
    backend.reload()
    assert backend.profile("CP2") == 2 and backend.profile("CPX") is None and inner.reloaded


def test_credentials_are_never_echoed_in_a_refusal():
    raw = base64.b64encode(b"CP1:very-secret").decode()
    refusal = authorize(request("CP1", f"Basic {raw}"), Backend(USERS), must_match_cid=True)
    assert b"very-secret" not in refusal.to_bytes() and raw.encode() not in refusal.to_bytes()
