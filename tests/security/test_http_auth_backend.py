"""auth.backend = http against a real HTTP server: allow, deny, down, cache, and through the running gateway."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from ocpp_gw.auth import HttpBackend, make_backend
from ocpp_gw.protocol.handshake import AuthUnavailable
from ocpp_gw.settings import loads
from ocpp_gw.auth.throttle import ThrottledBackend
from tools.harness import free_port
from tests.security.wire import RawClient, basic


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def backend_for(service, *, cache_ttl: float = 60.0, timeout: float = 2.0, clock=None) -> HttpBackend:
    return HttpBackend(service.url, timeout, cache_ttl, **({"clock": clock} if clock else {}))


# -- the contract -----------------------------------------------------------------------------------

def test_200_allows_and_the_post_carries_cid_username_password_peer(auth_service):
    auth_service.allowed.add(("CP001", "pw"))
    assert backend_for(auth_service).authenticate("CP001", "pw", cid="CP001", peer="10.0.0.7:4711")
    assert auth_service.requests == [{"cid": "CP001", "username": "CP001", "password": "pw", "peer": "10.0.0.7:4711"}]
    assert auth_service.headers[0]["Content-Type"] == "application/json"


@pytest.mark.parametrize("status", [401, 403, 404, 400, 204])
def test_any_other_answer_than_200_denies(auth_service, status):
    auth_service.deny_status = status
    assert backend_for(auth_service).authenticate("CP001", "wrong", cid="CP001") is False


@pytest.mark.parametrize("status", [500, 502, 503, 429, 302])
def test_server_errors_overload_and_redirects_mean_unavailable(auth_service, status):
    auth_service.status = status
    with pytest.raises(AuthUnavailable, match=f"answered HTTP {status}"):
        backend_for(auth_service).authenticate("CP001", "pw", cid="CP001")


def test_redirect_is_not_followed(auth_service):
    auth_service.status = 307
    with pytest.raises(AuthUnavailable):
        backend_for(auth_service).authenticate("CP001", "pw", cid="CP001")
    assert auth_service.count() == 1


def test_backend_that_is_down_means_unavailable():
    backend = HttpBackend(f"http://127.0.0.1:{free_port()}/auth", 2.0, 60.0)
    with pytest.raises(AuthUnavailable, match="Connection refused"):
        backend.authenticate("CP001", "pw", cid="CP001")


def test_backend_that_does_not_answer_in_time_means_unavailable():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog) but never answers
        backend = HttpBackend(f"http://127.0.0.1:{silent.getsockname()[1]}/auth", 0.3, 60.0)
        with pytest.raises(AuthUnavailable, match="timed out"):
            backend.authenticate("CP001", "pw", cid="CP001")


def test_proxy_variables_of_the_environment_are_ignored(auth_service, monkeypatch):
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    auth_service.allowed.add(("CP001", "pw"))
    assert backend_for(auth_service).authenticate("CP001", "pw", cid="CP001")


def test_error_messages_never_carry_the_password_or_url_user_info():
    backend = HttpBackend(f"http://user:urlsecret@127.0.0.1:{free_port()}/auth", 1.0, 60.0)
    with pytest.raises(AuthUnavailable) as error:
        backend.authenticate("CP001", "pw-123456", cid="CP001")
    assert "pw-123456" not in str(error.value) and "urlsecret" not in str(error.value)


# -- the cache --------------------------------------------------------------------------------------

def test_a_yes_is_remembered_for_the_ttl(auth_service):
    clock = FakeClock()
    auth_service.allowed.add(("CP001", "pw"))
    backend = backend_for(auth_service, cache_ttl=60, clock=clock)
    for _ in range(5):
        assert backend.authenticate("CP001", "pw", cid="CP001")
    assert auth_service.count() == 1
    clock.now += 61
    assert backend.authenticate("CP001", "pw", cid="CP001")
    assert auth_service.count() == 2


def test_the_cache_key_is_cid_username_and_password(auth_service):
    auth_service.allowed |= {("CP001", "pw"), ("CP001", "pw2")}
    backend = backend_for(auth_service)
    backend.authenticate("CP001", "pw", cid="CP001")
    backend.authenticate("CP001", "pw2", cid="CP001")
    backend.authenticate("CP001", "pw", cid="CP002")
    assert auth_service.count() == 3


def test_a_no_is_never_remembered(auth_service):
    backend = backend_for(auth_service)
    for _ in range(3):
        assert not backend.authenticate("CP001", "wrong", cid="CP001")
    assert auth_service.count() == 3


def test_a_revoked_cp_is_asked_again_after_reload(auth_service):
    auth_service.allowed.add(("CP001", "pw"))
    backend = backend_for(auth_service)
    assert backend.authenticate("CP001", "pw", cid="CP001")
    auth_service.allowed.clear()
    backend.reload()
    assert not backend.authenticate("CP001", "pw", cid="CP001")


def test_ttl_0_asks_every_time(auth_service):
    auth_service.allowed.add(("CP001", "pw"))
    backend = backend_for(auth_service, cache_ttl=0)
    backend.authenticate("CP001", "pw", cid="CP001")
    backend.authenticate("CP001", "pw", cid="CP001")
    assert auth_service.count() == 2


def test_the_cache_holds_no_password_in_clear(auth_service):
    auth_service.allowed.add(("CP001", "clear-pw-98765"))
    backend = backend_for(auth_service)
    backend.authenticate("CP001", "clear-pw-98765", cid="CP001")
    assert all(b"clear-pw-98765" not in key for key in backend._cache)


def test_the_cache_is_bounded(auth_service, monkeypatch):
    monkeypatch.setattr(HttpBackend, "MAX_CACHED", 3)
    auth_service.status = 200
    backend = backend_for(auth_service)
    for n in range(10):
        backend.authenticate(f"CP{n}", "pw", cid=f"CP{n}")
    assert len(backend._cache) == 3


def test_a_reconnect_storm_asks_the_service_once_per_cp(auth_service):
    auth_service.allowed.add(("CP001", "pw"))
    backend = backend_for(auth_service)
    backend.authenticate("CP001", "pw", cid="CP001")
    threads = [threading.Thread(target=backend.authenticate, args=("CP001", "pw"), kwargs={"cid": "CP001"})
               for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert auth_service.count() == 1


# -- wiring -----------------------------------------------------------------------------------------

def test_make_backend_builds_the_http_backend_behind_the_throttle(auth_service):
    settings = loads(f"auth.backend = http\nauth.http.url = {auth_service.url}\nauth.http.timeout = 3s\n"
                     "auth.http.cache_ttl = 10s\n")
    backend = make_backend(settings)
    assert isinstance(backend, ThrottledBackend) and isinstance(backend.backend, HttpBackend)
    assert (backend.backend.url, backend.backend.timeout, backend.backend.cache_ttl) == (auth_service.url, 3.0, 10.0)


def test_make_backend_without_throttle(auth_service):
    settings = loads(f"auth.backend = http\nauth.http.url = {auth_service.url}\nauth.throttle.max_failures = 0\n")
    assert isinstance(make_backend(settings), HttpBackend)


# -- through the gateway ----------------------------------------------------------------------------

@pytest.fixture
def http_gw(module_gateways, auth_service):
    return module_gateways({"auth.backend": "http", "auth.http.url": auth_service.url, "auth.http.timeout": "1s"})


def upgrade(gw, cid: str, password: str):
    with RawClient(("127.0.0.1", gw.port)) as client:
        return client.upgrade(f"/ocpp/{cid}", {"Authorization": basic(cid, password)})


def test_gateway_lets_in_whom_the_service_allows_and_refuses_the_rest(http_gw, auth_service):
    auth_service.allowed.add(("CP001", "right"))
    assert upgrade(http_gw, "CP001", "right").status == 101
    assert upgrade(http_gw, "CP001", "wrong").status == 401
    assert auth_service.requests[0]["peer"].startswith("127.0.0.1:")


def test_gateway_answers_503_and_warns_when_the_service_is_down(module_gateways):
    gw = module_gateways({"auth.backend": "http", "auth.http.url": f"http://127.0.0.1:{free_port()}/auth"})
    since = gw.mark()
    answer = upgrade(gw, "CP001", "whatever-pw-5150")
    assert (answer.status, answer.body) == (503, b"authentication backend unavailable\n")
    line = gw.wait_for_log(r"WARNING .*auth backend unavailable, cid 'CP001' refused: http://127\.0\.0\.1:\d+/auth:",
                           since=since)
    assert "whatever-pw-5150" not in "\n".join(gw.logs)
    assert "Traceback" not in line


def test_a_slow_authorization_service_holds_at_most_32_set_ups_and_the_next_cp_waits_its_turn(
        module_gateways, auth_service):
    from ocpp_gw.chargers.admission import SETUPS_AT_ONCE
    gw = module_gateways({"auth.backend": "http", "auth.http.url": auth_service.url, "auth.http.timeout": "5s",
                          "ocpp.listener.handshake_timeout": "1s"})
    cids = [f"CPSETUP{i:03d}" for i in range(SETUPS_AT_ONCE + 1)]
    auth_service.allowed.update((cid, "pw") for cid in cids)
    auth_service.gate = threading.Event()
    statuses: dict[str, int] = {}
    clients = [threading.Thread(target=lambda cid=cid: statuses.__setitem__(cid, upgrade(gw, cid, "pw").status))
               for cid in cids]
    try:
        for client in clients[:-1]:
            client.start()
        deadline = time.monotonic() + 5
        while auth_service.count() < SETUPS_AT_ONCE and time.monotonic() < deadline:
            time.sleep(0.02)
        clients[-1].start()
        time.sleep(1.5)  # past the handshake deadline: waiting for a turn is not a slow handshake
        assert auth_service.count() == SETUPS_AT_ONCE  # the last one has not reached the service
    finally:
        auth_service.gate.set()
        for client in clients:
            client.join(10)
    assert statuses == {cid: 101 for cid in cids}  # every turn was given back, and the last one got in
