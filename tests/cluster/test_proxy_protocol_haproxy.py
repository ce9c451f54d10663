"""Real HAProxy (deploy/haproxy.cfg, send-proxy-v2) in front of gateway instances: each instance sees the charge
point's own address, not HAProxy's, in its events, its http auth backend and its admin API, over ws and over wss
(where the header precedes the TLS handshake and TLS stays end to end) (SPEC §10).

The charge points bind their sockets to 127.0.0.2 and 127.0.0.3, so their addresses differ from HAProxy's
(127.0.0.1)."""

from __future__ import annotations

import json
import socket
import urllib.request
import uuid
from contextlib import ExitStack

from websockets.sync.client import connect

from tests.cluster._support import Backend, HaProxy
from tools.harness import basic_auth
from tests.security.conftest import AuthService, pki, tls_settings, wss_address  # noqa: F401 - pki is a fixture

CHARGERS = {"CP001": "127.0.0.2", "CP002": "127.0.0.3"}


def connect_from(host: str, proxy, cid: str):
    """A charge point whose socket is bound to `host`, through HAProxy; (connection, its own host:port)."""
    sock = socket.create_connection((proxy.host, proxy.port), timeout=5, source_address=(host, 0))
    own = "%s:%d" % sock.getsockname()[:2]
    charge_point = connect(f"ws://{proxy.host}:{proxy.port}/ocpp/{cid}", sock=sock, subprotocols=["ocpp1.6"],
                           additional_headers={"Authorization": basic_auth(cid, f"pw-{cid}")}, open_timeout=5, compression=None,
                           ping_interval=None, close_timeout=1)
    return charge_point, own


def admin_client(gateway, cid: str) -> dict:
    with urllib.request.urlopen(gateway.admin_url(f"/api/v1/clients/{cid}"), timeout=5) as answer:
        return json.load(answer)


def test_behind_haproxy_events_auth_and_admin_see_the_chargers_own_address(gateway_factory, haproxy_in_front,
                                                                           mqtt_probe):
    auth = AuthService()
    auth.allowed = {(cid, f"pw-{cid}") for cid in CHARGERS}
    try:
        mountpoint = f"pp-{uuid.uuid4().hex[:8]}/"
        settings = {"ocpp.mountpoint": mountpoint, "ocpp.listener.proxy_protocol": "v2",
                    "ocpp.listener.proxy_protocol.trusted": "127.0.0.1",
                    "auth.backend": "http", "auth.http.url": auth.url, "auth.http.cache_ttl": "0s"}
        instances = [gateway_factory(settings), gateway_factory(settings)]
        by_client_id = {gateway.client_id: gateway for gateway in instances}
        proxy = haproxy_in_front(instances)
        mqtt_probe.subscribe(f"{mountpoint}events/#")
        served_by = set()
        with ExitStack() as open_lines:
            for cid, host in CHARGERS.items():
                charge_point, own = connect_from(host, proxy, cid)
                open_lines.enter_context(charge_point)
                event = mqtt_probe.expect_json(f"{mountpoint}events/{cid}", {"event": "connected"})
                assert event["peer"] == own
                assert [r["peer"] for r in auth.requests if r["cid"] == cid] == [own]
                assert admin_client(by_client_id[event["gateway"]], cid)["peer"] == own
                served_by.add(event["gateway"])
        assert served_by == set(by_client_id)  # leastconn spread them: both instances read the header
    finally:
        auth.stop()


def test_over_wss_haproxy_sends_the_header_before_tls_and_tls_stays_end_to_end(gateway_factory, pki, mqtt_probe,
                                                                                tmp_path):
    mountpoint = f"pp-{uuid.uuid4().hex[:8]}/"
    gateway = gateway_factory({"ocpp.mountpoint": mountpoint, "ocpp.listener.proxy_protocol": "v2",
                               **tls_settings(pki, **{"ocpp.listener.ssl.verify": "verify_none"})})
    _, wss_port = wss_address(gateway)
    proxy = HaProxy(tmp_path / "haproxy-wss", {"ocpp_gw_wss": [Backend(gateway.client_id, wss_port,
                                                                       gateway.admin_port)]},
                    frontend="ocpp_wss").start()
    try:
        proxy.wait_for_states({gateway.client_id: "UP"}, backend="ocpp_gw_wss")
        mqtt_probe.subscribe(f"{mountpoint}events/#")
        sock = socket.create_connection((proxy.host, proxy.port), timeout=5, source_address=("127.0.0.2", 0))
        own = "%s:%d" % sock.getsockname()[:2]
        with connect(f"wss://localhost:{proxy.port}/ocpp/CP003", sock=sock, ssl=pki.client_context(),
                     subprotocols=["ocpp1.6"], additional_headers={"Authorization": gateway.auth_header("CP003")},
                     open_timeout=5, compression=None, ping_interval=None, close_timeout=1):
            event = mqtt_probe.expect_json(f"{mountpoint}events/CP003", {"event": "connected"})
        assert event["peer"] == own
    finally:
        proxy.stop()
