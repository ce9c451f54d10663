"""Access rules of the admin listener (admin_access.py): tokens, logins, cross-site refusals."""

from __future__ import annotations

import os

import pytest

from ocpp_gw.admin import access as admin_access
from ocpp_gw.admin.access import (
    AccessPolicy,
    Logins,
    TokenError,
    cookie_value,
    cross_site_problem,
    is_loopback_host,
    load_token,
    session_cookie,
)

TOKEN = "0123456789abcdef0123456789abcdef"
COOKIE = "ocpp_gw_session_33080"
LOCAL = {"host": "127.0.0.1:33080"}
SAME_ORIGIN = {"host": "127.0.0.1:33080", "origin": "http://127.0.0.1:33080", "sec-fetch-site": "same-origin"}


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def open_policy() -> AccessPolicy:
    return AccessPolicy(None, Logins(), COOKIE)


def token_policy(clock=None) -> AccessPolicy:
    return AccessPolicy(TOKEN, Logins(clock or FakeClock()), COOKIE)


# -- no token: loopback only, browsers need the CSRF token -----------------------------------------

OPEN_CASES = [
    # (name, method, path, headers, expected status or None for allowed)
    ("ctl_lists_clients", "GET", "/api/v1/clients", LOCAL, None),
    ("ctl_kicks_without_browser_headers", "DELETE", "/api/v1/clients/CP1", LOCAL, None),
    ("localhost_name_is_loopback", "GET", "/api/v1/clients", {"host": "localhost:33080"}, None),
    ("ipv6_loopback_host", "GET", "/api/v1/clients", {"host": "[::1]:33080"}, None),
    ("no_host_header_http10", "GET", "/api/v1/clients", {}, None),
    ("rebound_dns_name_refused", "GET", "/api/v1/clients", {"host": "evil.example:33080"}, 403),
    ("lan_address_as_host_refused", "GET", "/", {"host": "192.0.2.7:33080"}, 403),
    ("cross_site_form_post_refused", "POST", "/api/v1/credentials",
     {**LOCAL, "origin": "http://evil.example", "sec-fetch-site": "cross-site"}, 403),
    ("same_site_other_port_refused", "POST", "/api/v1/credentials",
     {**LOCAL, "origin": "http://127.0.0.1:8080", "sec-fetch-site": "same-site"}, 403),
    ("origin_null_refused", "DELETE", "/api/v1/clients/CP1", {**LOCAL, "origin": "null"}, 403),
    ("other_origin_without_fetch_metadata_refused", "DELETE", "/api/v1/clients/CP1",
     {**LOCAL, "origin": "http://evil.example"}, 403),
    ("same_origin_browser_without_csrf_refused", "DELETE", "/api/v1/clients/CP1", SAME_ORIGIN, 403),
    ("same_origin_browser_with_wrong_csrf_refused", "DELETE", "/api/v1/clients/CP1",
     {**SAME_ORIGIN, "x-csrf-token": "guess"}, 403),
    ("cross_site_get_of_the_page_is_fine", "GET", "/", {**LOCAL, "sec-fetch-site": "cross-site"}, None),
]


@pytest.mark.parametrize("method, path, headers, expected", [case[1:] for case in OPEN_CASES],
                         ids=[case[0] for case in OPEN_CASES])
def test_open_listener_rules(method, path, headers, expected):
    assert open_policy().judge(method, path, headers).status == expected


def test_open_listener_lets_a_same_origin_page_act_with_the_csrf_token_it_read():
    policy = open_policy()
    csrf = policy.csrf_for(None)
    assert csrf
    verdict = policy.judge("DELETE", "/api/v1/clients/CP1", {**SAME_ORIGIN, "x-csrf-token": csrf})
    assert verdict.allowed


def test_each_open_listener_has_its_own_csrf_token():
    assert open_policy().csrf_for(None) != open_policy().csrf_for(None)


# -- with a token -----------------------------------------------------------------------------------

def bearer(token: str = TOKEN) -> dict:
    return {"authorization": f"Bearer {token}"}


TOKEN_CASES = [
    ("no_credentials_refused", "GET", "/api/v1/clients", {}, 401),
    ("metrics_need_the_token", "GET", "/metrics", {}, 401),
    ("wrong_bearer_refused", "GET", "/api/v1/clients", bearer("x" * 32), 401),
    ("basic_scheme_refused", "GET", "/api/v1/clients", {"authorization": f"Basic {TOKEN}"}, 401),
    ("bearer_allowed", "GET", "/api/v1/clients", bearer(), None),
    ("bearer_scheme_case_insensitive", "GET", "/api/v1/clients", {"authorization": f"bearer {TOKEN}"}, None),
    ("bearer_kick_needs_no_csrf", "DELETE", "/api/v1/clients/CP1", bearer(), None),
    ("any_host_name_with_token", "GET", "/api/v1/clients", {**bearer(), "host": "gw.depot.example"}, None),
    ("console_page_is_open", "GET", "/", {}, None),
    ("console_script_is_open", "GET", "/console.js", {}, None),
    ("healthz_is_open", "GET", "/healthz", {}, None),
    ("session_is_open", "GET", "/api/v1/session", {}, None),
    ("login_is_open", "POST", "/api/v1/login", {}, None),
    ("cross_site_login_refused", "POST", "/api/v1/login", {"origin": "http://evil.example"}, 403),
    ("cross_site_refused_even_with_bearer", "POST", "/api/v1/credentials",
     {**bearer(), "sec-fetch-site": "cross-site"}, 403),
    ("unknown_cookie_is_no_login", "GET", "/api/v1/clients", {"cookie": f"{COOKIE}=forged"}, 401),
]


@pytest.mark.parametrize("method, path, headers, expected", [case[1:] for case in TOKEN_CASES],
                         ids=[case[0] for case in TOKEN_CASES])
def test_token_listener_rules(method, path, headers, expected):
    assert token_policy().judge(method, path, headers).status == expected


def test_a_login_cookie_reads_and_acts_with_its_csrf_token():
    policy = token_policy()
    login = policy.logins.create()
    cookie = {"cookie": f"other=1; {COOKIE}={login.sid}"}
    assert policy.judge("GET", "/api/v1/clients", cookie).login == login
    assert policy.judge("DELETE", "/api/v1/clients/CP1", {**cookie, **SAME_ORIGIN}).status == 403
    assert policy.judge("DELETE", "/api/v1/clients/CP1",
                        {**cookie, **SAME_ORIGIN, "x-csrf-token": login.csrf}).allowed
    assert policy.csrf_for(login) == login.csrf
    assert policy.csrf_for(None) is None


def test_a_login_expires_after_its_lifetime():
    clock = FakeClock()
    policy = token_policy(clock)
    login = policy.logins.create()
    cookie = {"cookie": f"{COOKIE}={login.sid}"}
    clock.now += admin_access.SESSION_LIFETIME - 1
    assert policy.judge("GET", "/api/v1/clients", cookie).allowed
    clock.now += 1
    assert policy.judge("GET", "/api/v1/clients", cookie).status == 401


def test_logging_out_ends_the_login():
    logins = Logins(FakeClock())
    login = logins.create()
    logins.end(login.sid)
    assert logins.get(login.sid) is None


def test_logins_are_bounded_and_the_oldest_goes_first():
    logins = Logins(FakeClock())
    first = logins.create()
    made = [logins.create() for _ in range(admin_access.MAX_SESSIONS)]
    assert logins.get(first.sid) is None
    assert all(logins.get(login.sid) == login for login in made)


# -- pieces -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.0.0.1:33080", True), ("127.1.2.3:80", True), ("localhost", True),
    ("LOCALHOST:1", True), ("localhost.:1", True), ("[::1]:33080", True), ("[::1]", True),
    ("evil.example", False), ("localhost.evil.example", False), ("0.0.0.0:33080", False),
    ("192.0.2.1", False), ("[::]:1", False), ("", False), ("127.0.0.1.evil.example", False),
])
def test_loopback_host_headers(host, loopback):
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize("headers, refused", [
    ({}, False),
    ({"sec-fetch-site": "same-origin"}, False),
    ({"sec-fetch-site": "none"}, False),
    ({"sec-fetch-site": "same-site"}, True),
    ({"sec-fetch-site": "cross-site"}, True),
    ({"host": "a:1", "origin": "http://a:1"}, False),
    ({"host": "a:1", "origin": "https://a:1"}, False),
    ({"host": "a:1", "origin": "http://a:2"}, True),
    ({"host": "a:1", "origin": "http://b:1"}, True),
    ({"host": "a:1", "origin": "null"}, True),
    ({"host": "a:1", "origin": "file://a:1"}, True),
    ({"origin": "http://a:1"}, True),
])
def test_cross_site_detection(headers, refused):
    assert bool(cross_site_problem(headers)) is refused


def test_cookie_value_picks_the_named_cookie():
    assert cookie_value("a=1; ocpp=xyz; b=2", "ocpp") == "xyz"
    assert cookie_value("a=1", "ocpp") is None
    assert cookie_value("", "ocpp") is None


def test_session_cookie_is_httponly_and_strict():
    login = Logins(FakeClock()).create()
    cookie = session_cookie(COOKIE, login)
    assert cookie.startswith(f"{COOKIE}={login.sid};")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert session_cookie(COOKIE, None).endswith("Max-Age=0")


# -- the token file ---------------------------------------------------------------------------------

def write_token(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "admin.token"
    path.write_text(text)
    os.chmod(path, mode)
    return str(path)


def test_token_is_the_first_line_stripped(tmp_path):
    assert load_token(write_token(tmp_path, f"  {TOKEN}  \nignored\n")) == TOKEN


@pytest.mark.parametrize("text, mode, problem", [
    ("short\n", 0o600, "at least 16 characters"),
    ("\n" + TOKEN, 0o600, "at least 16 characters"),
    (TOKEN, 0o644, "readable by every user"),
])
def test_unusable_token_files(tmp_path, text, mode, problem):
    path = write_token(tmp_path, text, mode)
    with pytest.raises(TokenError, match=problem) as caught:
        load_token(path)
    assert str(caught.value).startswith(path)


def test_missing_token_file(tmp_path):
    with pytest.raises(TokenError, match="cannot read the admin token"):
        load_token(str(tmp_path / "nope"))
