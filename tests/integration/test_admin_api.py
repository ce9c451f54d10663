"""The admin JSON API of a real gateway (SPEC §8, docs/console.md): clients, kick, stats, metrics, healthz,
recent disconnects, status, credentials, and who may use it (token, login, cross-site refusals)."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

from ocpp_gw import auth
from tools.harness import ROOT, render_config, wait_until
from tests.integration._support import connect_cp, start_gateway, topics, wait_closed

TOKEN = "t0ken-for-the-admin-api-0123456789"
BOOT = [2, "boot-1", "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "Depot-22"}]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def json(self):
        return json.loads(self.body)


def call(gateway, method: str, path: str, body=None, headers: dict | None = None) -> Reply:
    """One request to the admin listener; `body` (a dict) goes as JSON."""
    address = urlsplit(gateway.admin_url("/"))
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        connection.close()


def bearer(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


def browser_headers(gateway, **extra) -> dict:
    """What Chromium sends with a same-origin fetch from the console."""
    origin = gateway.admin_url("/").rstrip("/")
    return {"Origin": origin, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors", **extra}


def with_admin_listener(gateway):
    """The admin listener on, at the gateway's admin port (_support turns it off for other tests)."""
    gateway.settings["admin.listener"] = f"127.0.0.1:{gateway.admin_port}"
    gateway.config_path.write_text(render_config(gateway.settings))
    return gateway


@pytest.fixture
def start(gateway_factory):
    """A gateway of this test's own with the admin listener on: for tests that count or list everything the
    gateway has seen, or need settings, a broker or a credentials file of their own."""
    def make(overrides: dict | None = None, **options):
        return with_admin_listener(start_gateway(gateway_factory, overrides, start=False, **options)).start()
    return make


# Gateways shared by the tests of this module that look only at their own charge points (each its own cids)
# or at answers that do not depend on what came before: a gateway start per test would cost more than all of them.

@pytest.fixture(scope="module")
def gw(module_start):
    """The admin API with the defaults, shared."""
    return with_admin_listener(module_start(start=False)).start()


@pytest.fixture(scope="module")
def module_passwd(tmp_path_factory, passwd_file):
    """A credentials file for the module's shared `editing_gw` (the session's one is shared too widely)."""
    path = tmp_path_factory.mktemp("module-passwd") / "passwd"
    shutil.copy(passwd_file, path)
    os.chmod(path, 0o640)
    return path


@pytest.fixture(scope="module")
def editing_gw(module_start, module_passwd):
    """Shared by the credential-editing tests; each adds, changes or removes cids no other test touches."""
    return with_admin_listener(module_start({"auth.file": module_passwd}, start=False)).start()


@pytest.fixture(scope="module")
def module_token_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("module-token") / "admin.token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o600)
    return path


@pytest.fixture(scope="module")
def token_gw(module_start, module_token_file):
    """Shared by the tests with an admin token that make fewer wrong guesses than the login throttle allows
    (the throttling test has a gateway of its own)."""
    return with_admin_listener(module_start({"admin.token_file": module_token_file}, start=False)).start()


@pytest.fixture
def passwd_copy(tmp_path, passwd_file):
    """A credentials file of this test's own (the session's one is shared)."""
    path = tmp_path / "passwd"
    shutil.copy(passwd_file, path)
    os.chmod(path, 0o640)
    return path


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "admin.token"
    path.write_text(TOKEN + "\n")
    os.chmod(path, 0o600)
    return path


def wait_for_client(gateway, cid: str, headers: dict | None = None) -> dict:
    found = {}

    def listed() -> bool:
        for client in call(gateway, "GET", "/api/v1/clients", headers=headers).json:
            if client["cid"] == cid:
                found.update(client)
                return True
        return False

    assert wait_until(listed, 5.0), f"{cid} never listed"
    return found


# -- clients, show, kick ---------------------------------------------------------------------------

def test_clients_lists_a_connected_charge_point_with_what_the_console_shows(start):
    gateway = start()
    with connect_cp(gateway, "CP001") as cp:
        cp.send(json.dumps(BOOT))
        assert wait_until(lambda: [c["messages_in"] for c in call(gateway, "GET", "/api/v1/clients").json] == [1],
                          5.0)
        (client,) = call(gateway, "GET", "/api/v1/clients").json
    assert client["cid"] == "CP001" and client["username"] == "CP001" and client["subprotocol"] == "ocpp1.6"
    assert client["peer"].startswith("127.0.0.1:")
    assert client["last_action"] == "BootNotification" and client["last_message_at"] > client["connected_at"] - 1
    assert client["heartbeat_interval"] == 60.0 and client["queue_depth"] == 0
    assert {"state", "messages_out"} <= set(client)


def test_show_returns_the_history_with_the_boot_notification(gw):
    gateway = gw
    with connect_cp(gateway, "CP002") as cp:
        cp.send(json.dumps(BOOT))
        assert wait_until(lambda: call(gateway, "GET", "/api/v1/clients/CP002").json.get("history"), 5.0)
        shown = call(gateway, "GET", "/api/v1/clients/CP002").json
    first = shown["history"][0]
    assert (first["direction"], first["type"], first["action"], first["unique_id"]) == \
        ("from_cp", "Call", "BootNotification", "boot-1")
    assert first["size"] == len(json.dumps(BOOT)) and first["payload"] is None  # payloads are off by default
    assert shown["history_payloads"] is False


def test_show_keeps_payloads_when_the_operator_switches_them_on(start):
    gateway = start({"admin.history_payloads": "true"})
    with connect_cp(gateway, "CP003") as cp:
        cp.send(json.dumps(BOOT))
        assert wait_until(lambda: call(gateway, "GET", "/api/v1/clients/CP003").json.get("history"), 5.0)
        first = call(gateway, "GET", "/api/v1/clients/CP003").json["history"][0]
    assert first["payload"] == BOOT[3]


def test_show_and_kick_of_a_charge_point_not_connected_are_404(gw):
    assert call(gw, "GET", "/api/v1/clients/CP404").status == 404
    assert call(gw, "DELETE", "/api/v1/clients/CP404").json == {"error": "not connected"}


def test_kick_closes_with_1000_and_publishes_disconnected_kicked(start, watch):
    gateway = start()
    probe = watch(gateway)
    event_topic = topics(gateway, "CP004").event
    with connect_cp(gateway, "CP004") as cp:
        probe.expect_json(event_topic, {"event": "connected"})
        reply = call(gateway, "DELETE", "/api/v1/clients/CP004")
        closed = wait_closed(cp)
    assert reply.status == 200 and reply.json == {"kicked": "CP004"}
    assert (closed.code, closed.reason) == (1000, "kicked")
    event = probe.expect_json(event_topic, {"event": "disconnected"})
    assert event["reason"] == "kicked"
    assert wait_until(lambda: call(gateway, "GET", "/api/v1/clients").json == [], 5.0)


def test_a_kicked_charge_point_is_listed_among_the_recent_disconnects(start):
    gateway = start()
    with connect_cp(gateway, "CP005") as cp:
        cp.send(json.dumps(BOOT))
        wait_for_client(gateway, "CP005")
        call(gateway, "DELETE", "/api/v1/clients/CP005")
        wait_closed(cp)
    assert wait_until(lambda: call(gateway, "GET", "/api/v1/disconnects").json, 5.0)
    (gone,) = call(gateway, "GET", "/api/v1/disconnects").json
    assert (gone["cid"], gone["reason"], gone["close_code"]) == ("CP005", "kicked", 1000)
    assert gone["disconnected_at"] >= gone["connected_at"] and "history" not in gone
    detail = call(gateway, "GET", "/api/v1/disconnects/CP005").json
    assert detail["history"][0]["action"] == "BootNotification"
    assert call(gateway, "GET", "/api/v1/disconnects/CP006").status == 404


def test_a_charge_point_that_closes_is_recorded_with_its_close_reason(start):
    gateway = start()
    with connect_cp(gateway, "CP007"):
        wait_for_client(gateway, "CP007")
    assert wait_until(lambda: call(gateway, "GET", "/api/v1/disconnects").json, 5.0)
    (gone,) = call(gateway, "GET", "/api/v1/disconnects").json
    assert gone["cid"] == "CP007" and "closed by charge point" in gone["reason"]


# -- stats, metrics, health, status ------------------------------------------------------------------

def test_stats_count_the_connection_and_its_messages(start):
    gateway = start()
    with connect_cp(gateway, "CP008") as cp:
        cp.send(json.dumps(BOOT))
        wait_for_client(gateway, "CP008")
        assert wait_until(lambda: call(gateway, "GET", "/api/v1/stats").json["counters"], 5.0)
        stats = call(gateway, "GET", "/api/v1/stats").json
    assert stats["connections"] == 1 and stats["mqtt_connected"] is True and stats["queue_depth"] == 0
    assert stats["counters"]["connections.opened"] == 1
    assert stats["uptime"] >= 0 and stats["version"]


_LABEL = r'[a-z_]+="[^"\\\n]*"'
METRIC_LINE = re.compile(rf'^[a-z_]+(\{{{_LABEL}(,{_LABEL})*\}})? \d+(\.\d+)?$')


def test_metrics_are_prometheus_text(start):
    gateway = start()
    with connect_cp(gateway, "CP009"):
        wait_for_client(gateway, "CP009")
        reply = call(gateway, "GET", "/metrics")
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = reply.body.decode().splitlines()
    samples = [line for line in lines if not line.startswith("#")]
    assert all(METRIC_LINE.match(line) for line in samples), samples
    assert "ocpp_gw_connections 1" in samples and "ocpp_gw_mqtt_connected 1" in samples
    assert "# TYPE ocpp_gw_connections gauge" in lines and "# TYPE ocpp_gw_events_total counter" in lines
    assert 'ocpp_gw_events_total{name="connections.opened"} 1' in samples


def test_clients_and_metrics_show_each_charge_points_version(start):
    gateway = start()
    with connect_cp(gateway, "CP010", subprotocols=["ocpp2.0.1"]) as cp201, \
            connect_cp(gateway, "CP011", subprotocols=["ocpp2.1"]), connect_cp(gateway, "CP012"):
        for cid in ("CP010", "CP011", "CP012"):
            wait_for_client(gateway, cid)
        cp201.send('[2,"h1","Heartbeat",{}]')
        assert wait_until(lambda: {c["cid"]: c["messages_in"] for c in call(gateway, "GET", "/api/v1/clients").json}
                          .get("CP010") == 1, 5.0)
        versions = {c["cid"]: (c["version"], c["subprotocol"]) for c in call(gateway, "GET", "/api/v1/clients").json}
        samples = call(gateway, "GET", "/metrics").body.decode().splitlines()
    assert versions == {"CP010": ("ocpp2.0.1", "ocpp2.0.1"), "CP011": ("ocpp2.1", "ocpp2.1"),
                        "CP012": ("ocpp1.6", "ocpp1.6")}
    assert all(METRIC_LINE.match(line) for line in samples if not line.startswith("#"))
    for version in ("ocpp1.6", "ocpp2.0.1", "ocpp2.1"):
        assert f'ocpp_gw_connections_by_version{{version="{version}"}} 1' in samples
        assert f'ocpp_gw_connections_opened_total{{version="{version}"}} 1' in samples
    assert 'ocpp_gw_messages_total{version="ocpp2.0.1",direction="in"} 1' in samples
    assert 'ocpp_gw_messages_total{version="ocpp2.1",direction="in"} 0' in samples
    assert wait_until(lambda: 'ocpp_gw_messages_total{version="ocpp2.0.1",direction="in"} 1'
                      in call(gateway, "GET", "/metrics").body.decode().splitlines(), 5.0), \
        "messages of closed connections must stay counted"


def test_healthz_is_503_while_the_broker_is_down_and_200_again_after(start, private_broker):
    gateway = start(broker=private_broker)
    broker = f"{private_broker.host}:{private_broker.port}"
    assert call(gateway, "GET", "/healthz").json == {"status": "ok", "mqtt": "up", "mqtt_server": broker,
                                                     "listeners": "up"}
    private_broker.stop()
    assert wait_until(lambda: call(gateway, "GET", "/healthz").status == 503, 10.0)
    assert call(gateway, "GET", "/healthz").json == {"status": "unavailable", "mqtt": "down", "mqtt_server": broker,
                                                     "listeners": "up"}
    private_broker.start()
    assert wait_until(lambda: call(gateway, "GET", "/healthz").status == 200, 40.0)


def test_status_shows_mqtt_listeners_uptime_version_and_the_configuration(gw):
    gateway = gw
    status = call(gateway, "GET", "/api/v1/status").json
    assert status["mqtt"]["connected"] is True and status["mqtt"]["client_id"] == gateway.client_id
    assert {(l["name"], l["address"], l["alive"]) for l in status["listeners"]} == {
        ("ws", f"127.0.0.1:{gateway.port}", True), ("admin", f"127.0.0.1:{gateway.admin_port}", True)}
    assert status["config_file"] == str(gateway.config_path) and status["version"]
    assert status["config"]["ocpp.mountpoint"] == gateway.mountpoint
    assert status["config"]["admin.listener"] == f"127.0.0.1:{gateway.admin_port}"
    assert status["config"]["mqtt.password"] == ""  # unset; a set one shows as ******


# -- credentials -----------------------------------------------------------------------------------

def test_credentials_lists_cids_and_profiles_never_hashes(start, passwd_copy):
    gateway = start({"auth.file": passwd_copy})
    reply = call(gateway, "GET", "/api/v1/credentials")
    assert reply.status == 200 and b"scrypt" not in reply.body
    listing = reply.json
    assert listing["editable"] is True and listing["file"] == str(passwd_copy)
    assert listing["credentials"][0] == {"cid": "CP001", "profile": 1, "connected": False}
    assert len(listing["credentials"]) == 50


def test_a_credential_added_with_a_generated_password_lets_the_charge_point_in_at_once(editing_gw, module_passwd):
    gateway = editing_gw
    made = call(gateway, "POST", "/api/v1/credentials", {"cid": "NEW-1"})
    assert made.status == 201 and made.json["cid"] == "NEW-1" and made.json["profile"] == 1
    password = made.json["password"]
    assert len(password) >= 20
    with connect_cp(gateway, "NEW-1", password=password):
        wait_for_client(gateway, "NEW-1")
    assert "NEW-1" in auth.load_credentials(str(module_passwd))
    assert password not in "\n".join(gateway.logs)


def test_a_credential_added_with_a_typed_password_and_profile(editing_gw, module_passwd):
    gateway = editing_gw
    made = call(gateway, "POST", "/api/v1/credentials", {"cid": "NEW-2", "password": "typed-password", "profile": 2})
    assert made.status == 201 and made.json == {"cid": "NEW-2", "profile": 2}
    assert auth.load_credentials(str(module_passwd))["NEW-2"].profile == 2
    assert auth.verify(auth.load_credentials(str(module_passwd))["NEW-2"].password_hash, "typed-password")


@pytest.mark.parametrize("body, status, error", [
    ({"cid": "CP001"}, 409, "already in the credentials file"),
    ({"cid": "a/b"}, 400, ""),
    ({"cid": ""}, 400, ""),
    ({}, 400, "cid"),
    ({"cid": "NEW-3", "profile": 4}, 400, "profile"),
    ({"cid": "NEW-3", "password": "short"}, 400, "at least 8"),
])
def test_bad_credential_additions_are_refused_and_change_nothing(editing_gw, module_passwd, body, status, error):
    gateway = editing_gw
    before = module_passwd.read_bytes()
    reply = call(gateway, "POST", "/api/v1/credentials", body)
    assert reply.status == status and error in reply.json["error"]
    assert module_passwd.read_bytes() == before


def test_a_credential_must_be_sent_as_json(editing_gw):
    gateway = editing_gw
    reply = call(gateway, "POST", "/api/v1/credentials", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 415


def test_setting_the_security_profile_keeps_the_password(editing_gw, module_passwd):
    gateway = editing_gw
    reply = call(gateway, "PATCH", "/api/v1/credentials/CP010", {"profile": 3})
    assert reply.status == 200 and reply.json == {"cid": "CP010", "profile": 3}
    entry = auth.load_credentials(str(module_passwd))["CP010"]
    assert entry.profile == 3 and auth.verify(entry.password_hash, gateway.password("CP010"))
    assert call(gateway, "PATCH", "/api/v1/credentials/NOPE", {"profile": 2}).status == 404
    assert call(gateway, "PATCH", "/api/v1/credentials/CP010", {}).status == 400


def test_a_new_generated_password_replaces_the_old_one_at_once(editing_gw):
    gateway = editing_gw
    reply = call(gateway, "PATCH", "/api/v1/credentials/CP011", {"generate_password": True})
    new_password = reply.json["password"]
    with pytest.raises(Exception, match="401"):
        connect_cp(gateway, "CP011").close()
    with connect_cp(gateway, "CP011", password=new_password):
        wait_for_client(gateway, "CP011")


def test_a_removed_credential_is_refused_at_once(editing_gw):
    gateway = editing_gw
    reply = call(gateway, "DELETE", "/api/v1/credentials/CP012")
    assert reply.status == 200 and reply.json == {"removed": "CP012"}
    with pytest.raises(Exception, match="401"):
        connect_cp(gateway, "CP012").close()
    assert call(gateway, "DELETE", "/api/v1/credentials/CP012").status == 404


def test_a_credentials_file_the_gateway_cannot_write_is_reported_not_hidden(start, tmp_path, passwd_file):
    directory = tmp_path / "creds"
    directory.mkdir()
    shutil.copy(passwd_file, directory / "passwd")
    gateway = start({"auth.file": directory / "passwd"})
    shutil.rmtree(directory)
    reply = call(gateway, "POST", "/api/v1/credentials", {"cid": "NEW-4"})
    assert reply.status == 500 and "the credentials file was not changed" in reply.json["error"]
    gateway.wait_for_log(r"ERROR ocpp_gw\.admin: credentials file not changed")


def test_credentials_are_read_only_without_the_file_backend(start):
    gateway = start({"auth.backend": "none"})
    assert call(gateway, "GET", "/api/v1/credentials").json == {"backend": "none", "editable": False,
                                                                  "credentials": []}
    assert call(gateway, "POST", "/api/v1/credentials", {"cid": "X1"}).status == 409


# -- access: loopback without a token ---------------------------------------------------------------

def test_a_cross_site_post_is_refused_and_adds_nothing(editing_gw, module_passwd):
    gateway = editing_gw
    before = module_passwd.read_bytes()
    for headers in ({"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
                    {"Origin": "http://evil.example"},
                    {"Sec-Fetch-Site": "cross-site"}):
        reply = call(gateway, "POST", "/api/v1/credentials", {"cid": "EVIL1"}, headers)
        assert reply.status == 403 and "cross-site" in reply.json["error"]
    assert module_passwd.read_bytes() == before


def test_a_dns_rebinding_host_is_refused(gw):
    reply = call(gw, "GET", "/api/v1/clients", headers={"Host": f"rebound.example:{gw.admin_port}"})
    assert reply.status == 403


def test_a_same_origin_page_needs_the_csrf_token_from_its_session(editing_gw):
    gateway = editing_gw
    refused = call(gateway, "POST", "/api/v1/credentials", {"cid": "PAGE1"}, browser_headers(gateway))
    assert refused.status == 403 and "X-CSRF-Token" in refused.json["error"]
    session = call(gateway, "GET", "/api/v1/session").json
    assert session["token_required"] is False and session["logged_in"] is True
    made = call(gateway, "POST", "/api/v1/credentials", {"cid": "PAGE1"},
                browser_headers(gateway, **{"X-CSRF-Token": session["csrf"]}))
    assert made.status == 201


def test_answers_carry_no_cors_permission_and_forbid_framing(gw):
    reply = call(gw, "OPTIONS", "/api/v1/clients", headers={"Origin": "http://evil.example",
                                                             "Access-Control-Request-Method": "DELETE"})
    assert reply.status == 405 and "access-control-allow-origin" not in reply.headers
    page = call(gw, "GET", "/")
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


# -- access: with a token ----------------------------------------------------------------------------

def test_with_a_token_the_api_needs_it_but_healthz_and_the_page_do_not(token_gw):
    gateway = token_gw
    refused = call(gateway, "GET", "/api/v1/clients")
    assert refused.status == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert call(gateway, "GET", "/metrics").status == 401
    assert call(gateway, "DELETE", "/api/v1/clients/CP001").status == 401
    assert call(gateway, "GET", "/api/v1/clients", headers=bearer("wrong-token-0123456789")).status == 401
    assert call(gateway, "GET", "/api/v1/clients", headers=bearer()).status == 200
    assert call(gateway, "GET", "/healthz").status == 200
    assert call(gateway, "GET", "/").status == 200
    assert call(gateway, "GET", "/api/v1/session").json["logged_in"] is False


def test_a_login_sets_an_httponly_strict_cookie_whose_csrf_token_guards_changes(token_gw):
    gateway = token_gw
    login = call(gateway, "POST", "/api/v1/login", {"token": TOKEN}, browser_headers(gateway))
    assert login.status == 200 and login.json["logged_in"] is True
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    pair = cookie.split(";", 1)[0]
    assert pair.startswith(f"ocpp_gw_session_{gateway.admin_port}=")
    as_browser = browser_headers(gateway, Cookie=pair)
    assert call(gateway, "GET", "/api/v1/clients", headers=as_browser).status == 200
    assert call(gateway, "GET", "/api/v1/session", headers=as_browser).json["csrf"] == login.json["csrf"]
    assert call(gateway, "DELETE", "/api/v1/clients/CP001", headers=as_browser).status == 403
    with_csrf = {**as_browser, "X-CSRF-Token": login.json["csrf"]}
    assert call(gateway, "DELETE", "/api/v1/clients/CP001", headers=with_csrf).status == 404  # allowed; not here
    logout = call(gateway, "POST", "/api/v1/logout", headers=as_browser)
    assert "Max-Age=0" in logout.headers["set-cookie"]
    assert call(gateway, "GET", "/api/v1/clients", headers=as_browser).status == 401


def test_wrong_tokens_are_throttled(start, token_file):
    gateway = start({"admin.token_file": token_file})
    statuses = [call(gateway, "POST", "/api/v1/login", {"token": f"guess-{n}"}).status for n in range(6)]
    assert statuses == [401] * 5 + [429]
    assert call(gateway, "POST", "/api/v1/login", {"token": TOKEN}).status == 429


def test_ctl_sends_the_token_from_the_config(token_gw):
    gateway = token_gw
    with connect_cp(gateway, "CP013"):
        wait_for_client(gateway, "CP013", bearer())
        result = subprocess.run([sys.executable, "-m", "ocpp_gw", "ctl", "-c", str(gateway.config_path),
                                 "clients"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "CP013" in result.stdout
    without = subprocess.run([sys.executable, "-m", "ocpp_gw", "ctl", "--url", gateway.admin_url(""),
                              "-c", "/nonexistent.conf", "stats"], cwd=ROOT, capture_output=True, text=True,
                             timeout=30)
    assert without.returncode == 1 and "log in, or send the admin token" in without.stderr


# -- refusing to start -------------------------------------------------------------------------------

def run_gateway_until_exit(gateway_factory, overrides: dict) -> subprocess.CompletedProcess:
    gateway = gateway_factory(overrides, start=False)
    return subprocess.run([sys.executable, "-m", "ocpp_gw", "-c", str(gateway.config_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)


def test_an_exposed_admin_listener_without_a_token_is_a_config_error(gateway_factory):
    result = run_gateway_until_exit(gateway_factory, {"admin.listener": "0.0.0.0:0"})
    assert result.returncode == 2
    assert "admin.token_file: required when admin.listener is not a loopback address" in result.stderr


@pytest.mark.parametrize("content, mode, problem", [
    ("short\n", 0o600, "at least 16 characters"),
    (TOKEN, 0o644, "readable by every user"),
])
def test_an_unusable_token_file_stops_the_start_with_exit_2(gateway_factory, tmp_path, content, mode, problem):
    path = tmp_path / "bad.token"
    path.write_text(content)
    os.chmod(path, mode)
    result = run_gateway_until_exit(gateway_factory, {"admin.token_file": path})
    assert result.returncode == 2 and problem in result.stderr
    assert TOKEN not in result.stderr


def test_an_idle_keep_alive_connection_is_closed_so_that_it_holds_no_thread(gw):
    import socket
    import time

    from ocpp_gw.admin.api import IDLE_KEEPALIVE

    with socket.create_connection(("127.0.0.1", gw.admin_port), timeout=IDLE_KEEPALIVE + 5) as client:
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += client.recv(4096)
        assert answer.startswith(b"HTTP/1.1 200")
        idle_since = time.monotonic()
        while client.recv(4096):  # the rest of the body, then the server's close
            pass
        assert IDLE_KEEPALIVE - 0.5 <= time.monotonic() - idle_since <= IDLE_KEEPALIVE + 3
