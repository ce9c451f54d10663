"""Fixtures for the security tests: a test PKI made with the openssl CLI, gateways kept per module, an auth service.

Certificates (all ECDSA P-256, made once per session):

    ca / other_ca       two unrelated CAs
    server              CN=localhost, SAN DNS:localhost and IP:127.0.0.1, by ca
    cp["valid"]         CN=CP001, O=Test CPO, by ca
    cp["expired"]       the same subject, valid only in January 2020
    cp["other_ca"]      CN=CP001, O=Test CPO, by other_ca
    cp["wrong_cn"]      CN=CP999, O=Test CPO, by ca
    cp["longer_cn"]     CN=CP0012, O=Test CPO, by ca (contains "CP001" but names another charge point)
    cp["wrong_org"]     CN=CP001, O=Evil CPO, by ca
    cp["profile3"]      CN=SN-4711 CP003, O=Test CPO, by ca
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tools.harness import GatewayProcess, free_port, stop_process

ORGANIZATION = "Test CPO"

_CA_CONFIG = """
[ ca ]
default_ca = test_ca
[ test_ca ]
database = {dir}/index.txt
new_certs_dir = {dir}
serial = {dir}/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
preserve = yes
[ policy_any ]
commonName = supplied
organizationName = optional
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
subjectAltName = DNS:localhost,IP:127.0.0.1
"""


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


@dataclass
class Pki:
    ca: Pair
    other_ca: Pair
    server: Pair
    cp: dict[str, Pair] = field(default_factory=dict)

    def client_context(self, pair: Pair | None = None, *, trust: Path | None = None) -> ssl.SSLContext:
        """What a charge point uses: trusts our CA (the server's), presents `pair` when given."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(trust or self.ca.cert)
        if pair is not None:
            context.load_cert_chain(pair.cert, pair.key)
        return context


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"openssl {' '.join(args)} failed:\n{result.stderr}"


def _make_ca(directory: Path, name: str) -> Pair:
    directory.mkdir()
    (directory / "index.txt").touch()
    (directory / "serial").write_text("1000\n")
    (directory / "ca.cnf").write_text(_CA_CONFIG.format(dir=directory))
    pair = Pair(directory / "ca.pem", directory / "ca.key")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(pair.key), "-out", str(pair.cert), "-days", "30", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=directory)
    return pair


def _issue(ca: Pair, directory: Path, name: str, subject: str, *,
           start: str | None = None, end: str | None = None) -> Pair:
    pair = Pair(directory / f"{name}.pem", directory / f"{name}.key")
    csr = directory / f"{name}.csr"
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(pair.key), "-out", str(csr), "-subj", subject, cwd=directory)
    dates = ["-startdate", start, "-enddate", end] if start else ["-days", "30"]
    _openssl("ca", "-batch", "-config", str(ca.cert.parent / "ca.cnf"), "-cert", str(ca.cert),
             "-keyfile", str(ca.key), "-in", str(csr), "-out", str(pair.cert), "-notext", "-extensions", "leaf",
             *dates, cwd=directory)
    return pair


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Pki:
    if shutil.which("openssl") is None:
        raise RuntimeError("the security tests need the openssl command line tool")
    root = tmp_path_factory.mktemp("pki")
    ca = _make_ca(root / "ca", "Test CA")
    other = _make_ca(root / "other", "Other CA")
    leaves = root / "leaves"
    leaves.mkdir()
    pki = Pki(ca, other, _issue(ca, leaves, "server", "/CN=localhost"))
    subjects = {
        "valid": (ca, f"/O={ORGANIZATION}/CN=CP001", {}),
        "expired": (ca, f"/O={ORGANIZATION}/CN=CP001", {"start": "20200101000000Z", "end": "20200201000000Z"}),
        "other_ca": (other, f"/O={ORGANIZATION}/CN=CP001", {}),
        "wrong_cn": (ca, f"/O={ORGANIZATION}/CN=CP999", {}),
        "longer_cn": (ca, f"/O={ORGANIZATION}/CN=CP0012", {}),
        "wrong_org": (ca, "/O=Evil CPO/CN=CP001", {}),
        "profile3": (ca, f"/O={ORGANIZATION}/CN=SN-4711 CP003", {}),
    }
    for name, (issuer, subject, dates) in subjects.items():
        pki.cp[name] = _issue(issuer, leaves, name, subject, **dates)
    return pki


# -- gateways ---------------------------------------------------------------------------------------

def security_defaults() -> dict:
    """Every security gateway: a mountpoint of its own, fast deadlines, throttling off unless a test wants it."""
    return {
        "ocpp.mountpoint": f"sec-{uuid.uuid4().hex[:10]}/",
        "ocpp.idle_timeout": "5s",
        "ocpp.listener.handshake_timeout": "5s",
        "ocpp.awaiting_timeout": "2s",
        "auth.throttle.max_failures": 0,
    }


def tls_settings(pki: Pki, **extra) -> dict:
    """A wss listener with our server certificate, asking for client certificates (profile 3)."""
    return {
        "ocpp.listener.wss": f"127.0.0.1:{free_port()}",
        "ocpp.listener.ssl.certfile": pki.server.cert,
        "ocpp.listener.ssl.keyfile": pki.server.key,
        "ocpp.listener.ssl.cacertfile": pki.ca.cert,
        "ocpp.listener.ssl.verify": "verify_peer",
        "ocpp.listener.ssl.fail_if_no_peer_cert": "false",
        **extra,
    }


def wss_address(gateway: GatewayProcess) -> tuple[str, int]:
    host, _, port = str(gateway.settings["ocpp.listener.wss"]).rpartition(":")
    return host, int(port)


@pytest.fixture(scope="module")
def module_gateways(tmp_path_factory, broker, passwd_file):
    """make(overrides, passwd=None) → a running gateway shared by the tests of one module."""
    made: list[GatewayProcess] = []

    def make(overrides: dict | None = None, *, passwd: Path | None = None) -> GatewayProcess:
        settings = {**security_defaults(), **(overrides or {})}
        gateway = GatewayProcess(tmp_path_factory.mktemp("gateway"), broker, passwd or passwd_file, settings)
        made.append(gateway)
        return gateway.start()

    yield make
    for gateway in made:
        if gateway.output is not None:
            stop_process(gateway.process, timeout=10)
            print(f"--- gateway {gateway.client_id} log (last lines) ---\n{gateway.output.tail(120)}")


# -- a tiny auth service ----------------------------------------------------------------------------

class _RoomyHTTPServer(ThreadingHTTPServer):
    # http.server's listen backlog of 5 resets connections when a hundred charge points log in at once.
    request_queue_size = 256


class AuthService:
    """A real HTTP server answering the gateway's auth POSTs: `allowed` maps (username, password) to yes; any
    other pair gets `deny_status`. `status` overrides every answer (e.g. 500). Records every request body."""

    def __init__(self):
        self.allowed: set[tuple[str, str]] = set()
        self.deny_status = 401
        self.status: int | None = None
        self.gate: threading.Event | None = None  # when set to an Event, every answer waits for it (10 s at most)
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self._lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with service._lock:
                    service.requests.append(json.loads(body))
                    service.headers.append(dict(self.headers))
                    status = service.status or (
                        200 if (service.requests[-1]["username"], service.requests[-1]["password"])
                        in service.allowed else service.deny_status)
                if service.gate is not None:
                    service.gate.wait(10)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = _RoomyHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ocpp/auth"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), name="harness-auth-service",
                                        daemon=True)
        self._thread.start()

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def auth_service():
    service = AuthService()
    yield service
    service.stop()
