"""Certificate lifecycle on a running gateway: SIGHUP swaps the server certificate and the CRL for new connections
while connected charge points stay; a revoked client certificate is refused in the TLS handshake; files that do
not load keep the running context. A CA of this module's own, made with the openssl CLI, issues and revokes."""

from __future__ import annotations

import json
import shutil
import signal
import ssl
import time
import urllib.request
from pathlib import Path

import pytest

from ocpp_gw.chargers import x509
from tools.harness import free_port
from tests.security.conftest import ORGANIZATION, Pair, _issue, _make_ca, _openssl, security_defaults, wss_address
from tests.security.wire import RawClient

DAY = 86400


class RevokingCa:
    """A CA that issues, revokes and publishes its CRL."""

    def __init__(self, root: Path):
        self.ca = _make_ca(root / "ca", "Lifecycle CA")
        self.leaves = root / "leaves"
        self.leaves.mkdir()

    def issue(self, name: str, subject: str, days: int = 90) -> Pair:
        start, end = (time.strftime("%Y%m%d%H%M%SZ", time.gmtime(time.time() + offset)) for offset in
                      (-60, days * DAY))
        return _issue(self.ca, self.leaves, name, subject, start=start, end=end)

    def revoke(self, pair: Pair) -> None:
        _openssl("ca", "-config", str(self._config), "-cert", str(self.ca.cert), "-keyfile", str(self.ca.key),
                 "-revoke", str(pair.cert), cwd=self.leaves)

    def write_crl(self, path: Path) -> Path:
        _openssl("ca", "-gencrl", "-config", str(self._config), "-cert", str(self.ca.cert), "-keyfile",
                 str(self.ca.key), "-crldays", "30", "-out", str(path), cwd=self.leaves)
        return path

    @property
    def _config(self) -> Path:
        return self.ca.cert.parent / "ca.cnf"

    def client_context(self, pair: Pair | None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(self.ca.cert)
        if pair is not None:
            context.load_cert_chain(pair.cert, pair.key)
        return context


@pytest.fixture(scope="module")
def lifecycle_ca(tmp_path_factory) -> RevokingCa:
    return RevokingCa(tmp_path_factory.mktemp("lifecycle-pki"))


@pytest.fixture(scope="module")
def servers(lifecycle_ca):
    """Two server certificates for localhost: one in its last 20 days, one with a year left."""
    return {"expiring": lifecycle_ca.issue("server-expiring", "/CN=localhost", days=20),
            "renewed": lifecycle_ca.issue("server-renewed", "/CN=localhost", days=365)}


@pytest.fixture(scope="module")
def chargers(lifecycle_ca):
    return {cid: lifecycle_ca.issue(f"client-{cid}", f"/O={ORGANIZATION}/CN={cid}") for cid in
            ("CP001", "CP002", "CP003", "CP004")}


@pytest.fixture
def tls_files(tmp_path, lifecycle_ca, servers):
    """The gateway's certificate files, in a directory of this test's own so that the test can replace them."""
    files = tmp_path / "tls"
    files.mkdir()
    shutil.copy(servers["expiring"].cert, files / "server.pem")
    shutil.copy(servers["expiring"].key, files / "server.key")
    shutil.copy(lifecycle_ca.ca.cert, files / "ca.pem")
    lifecycle_ca.write_crl(files / "crl.pem")
    return files


def start_gateway(gateway_factory, files: Path, *, crl: bool):
    """Profile 3 only: wss with a client certificate required."""
    settings = {**security_defaults(), "ocpp.listener.ws": "off",
                "ocpp.listener.wss": f"127.0.0.1:{free_port()}",
                "ocpp.listener.ssl.certfile": files / "server.pem", "ocpp.listener.ssl.keyfile": files / "server.key",
                "ocpp.listener.ssl.cacertfile": files / "ca.pem", "ocpp.listener.ssl.verify": "verify_peer",
                "ocpp.listener.ssl.fail_if_no_peer_cert": "true"}
    if crl:
        settings["ocpp.listener.ssl.crlfile"] = files / "crl.pem"
    return gateway_factory(settings)


def connect(gateway, ca: RevokingCa, pair: Pair, cid: str) -> RawClient:
    client = RawClient(wss_address(gateway), tls=ca.client_context(pair))
    answer = client.upgrade(f"/ocpp/{cid}")
    assert answer.status == 101, answer
    return client


def still_talks(client: RawClient, unique_id: str) -> bool:
    """The connection carries frames: a broken call gets the gateway's own FormationViolation answer."""
    client.send_text(f'[2,"{unique_id}","Heartbeat",')
    answer = json.loads(client.recv_text())
    return answer[:2] == [4, unique_id]


def refused_in_tls(gateway, ca: RevokingCa, pair: Pair, cid: str) -> bool:
    """True when no HTTP answer comes: the TLS handshake was refused (TLS 1.3 reports it on the first read)."""
    try:
        with RawClient(wss_address(gateway), tls=ca.client_context(pair)) as client:
            client.upgrade(f"/ocpp/{cid}")
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    return False


def served_certificate(gateway, ca: RevokingCa) -> bytes:
    with RawClient(wss_address(gateway), tls=ca.client_context(None)) as client:
        return client.sock.getpeercert(binary_form=True)


def der(pair: Pair) -> bytes:
    return x509.first_certificate_der(pair.cert.read_bytes())


def metric_expiry(gateway) -> float:
    with urllib.request.urlopen(gateway.admin_url("/metrics"), timeout=5) as answer:
        for line in answer.read().decode().splitlines():
            if line.startswith("ocpp_gw_tls_certificate_expiry_seconds{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no ocpp_gw_tls_certificate_expiry_seconds in /metrics")


def reload(gateway, expect: str) -> None:
    since = gateway.mark()
    gateway.signal(signal.SIGHUP)
    gateway.wait_for_log(expect, since=since)


def test_swapped_certificate_reaches_new_connections_while_a_connected_charger_stays(
        gateway_factory, lifecycle_ca, servers, chargers, tls_files):
    gateway = start_gateway(gateway_factory, tls_files, crl=False)
    gateway.wait_for_log(r"WARNING .*server certificate .*server\.pem expires on .*, in (19|20)\.\d days")
    assert served_certificate(gateway, lifecycle_ca) == der(servers["expiring"])
    assert metric_expiry(gateway) == x509.not_after(servers["expiring"].cert.read_bytes())
    with connect(gateway, lifecycle_ca, chargers["CP001"], "CP001") as connected:
        shutil.copy(servers["renewed"].cert, tls_files / "server.pem")
        shutil.copy(servers["renewed"].key, tls_files / "server.key")
        reload(gateway, r"reloaded the wss certificate .*server\.pem")
        assert served_certificate(gateway, lifecycle_ca) == der(servers["renewed"])
        assert still_talks(connected, "after-swap")
    assert metric_expiry(gateway) == x509.not_after(servers["renewed"].cert.read_bytes())


def test_crl_refuses_exactly_the_revoked_charger(gateway_factory, lifecycle_ca, chargers, tls_files):
    lifecycle_ca.revoke(chargers["CP002"])
    lifecycle_ca.write_crl(tls_files / "crl.pem")
    gateway = start_gateway(gateway_factory, tls_files, crl=True)
    since = gateway.mark()
    assert refused_in_tls(gateway, lifecycle_ca, chargers["CP002"], "CP002")
    gateway.wait_for_log(r"refused: client certificate refused: certificate revoked", since=since)
    with connect(gateway, lifecycle_ca, chargers["CP001"], "CP001") as client:
        assert still_talks(client, "not-revoked")


def test_crl_updated_and_reloaded_refuses_the_charger_on_reconnect_only(
        gateway_factory, lifecycle_ca, chargers, tls_files):
    gateway = start_gateway(gateway_factory, tls_files, crl=True)
    with connect(gateway, lifecycle_ca, chargers["CP003"], "CP003") as connected:
        lifecycle_ca.revoke(chargers["CP003"])
        lifecycle_ca.write_crl(tls_files / "crl.pem")
        reload(gateway, r"reloaded the wss certificate")
        assert still_talks(connected, "revoked-but-connected")
    since = gateway.mark()
    assert refused_in_tls(gateway, lifecycle_ca, chargers["CP003"], "CP003")
    gateway.wait_for_log(r"refused: client certificate refused: certificate revoked", since=since)
    with connect(gateway, lifecycle_ca, chargers["CP004"], "CP004") as other:
        assert still_talks(other, "others-unaffected")


@pytest.mark.parametrize("broken", ["server.pem", "server.key", "ca.pem", "crl.pem"])
def test_a_file_that_does_not_load_on_reload_keeps_the_running_context_and_names_the_file(
        gateway_factory, lifecycle_ca, servers, chargers, tls_files, broken):
    gateway = start_gateway(gateway_factory, tls_files, crl=True)
    with connect(gateway, lifecycle_ca, chargers["CP001"], "CP001") as connected:
        (tls_files / broken).write_text("not PEM at all\n")
        reload(gateway, rf"ERROR .*TLS files not reloaded, the wss listener keeps its running certificate: "
                        rf"ocpp\.listener\.ssl\.\w+ \S*{broken}")
        assert still_talks(connected, "after-broken-reload")
    assert served_certificate(gateway, lifecycle_ca) == der(servers["expiring"])
    with connect(gateway, lifecycle_ca, chargers["CP004"], "CP004") as fresh:
        assert still_talks(fresh, "new-connection-old-context")
