"""The admin listener: the JSON API of SPEC §8 and the operator console (docs/console.md).

API (JSON; access rules in access.py):

    GET    /api/v1/clients                 connected charge points
    GET    /api/v1/clients/<cid>           one of them, with its message history
    DELETE /api/v1/clients/<cid>           kick (close 1000 "kicked")
    GET    /api/v1/disconnects[/<cid>]     recently disconnected charge points, with the reason
    GET    /api/v1/stats                   counters and gauges
    GET    /api/v1/status                  MQTT, listeners, uptime, version, effective configuration
    GET    /api/v1/credentials             cids of the credentials file with their profile (no hashes)
    POST   /api/v1/credentials             {cid, password?, profile?}: add; a generated password is returned once
    PATCH  /api/v1/credentials/<cid>       {profile?, password?, generate_password?}
    DELETE /api/v1/credentials/<cid>
    GET    /api/v1/session                 what the console needs to know before it shows anything
    POST   /api/v1/login {token}, POST /api/v1/logout
    GET    /metrics (Prometheus text), GET /healthz (503 while the broker is away)

The console is three static files (``ocpp_gw/console/``) served at ``/``.
"""

from __future__ import annotations

import json
import os
import logging
import re
import selectors
import socket
import sys
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Callable
from urllib.parse import unquote

from .. import __version__
from . import access as admin_access
from .. import auth
from ..protocol.close_codes import CLOSE_NORMAL
from ..protocol.identity import cid_problem
from ..protocol.versions import VERSIONS
from ..auth.throttle import FailureThrottle, address_key

log = logging.getLogger("ocpp_gw.admin")

MAX_BODY = 64 * 1024
RECENT_DISCONNECTS = 200

CONSOLE_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/console.js": ("console.js", "text/javascript; charset=utf-8"),
    "/console.css": ("console.css", "text/css; charset=utf-8"),
}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
}


@dataclass(frozen=True)
class AdminConfig:
    """What the admin listener needs from the configuration (built by ``ocpp_gw.config``)."""

    token_file: str | None = None
    auth_backend: str = "file"
    credentials_file: str = "/etc/ocpp_gw/passwd"
    # shown by /api/v1/status
    ocpp_path: str = "/ocpp"
    mqtt_server: tuple[tuple[str, int], ...] = (("127.0.0.1", 1883),)  # every broker address, in order
    mqtt_client_id: str = ""
    mqtt_protocol: str = "3.1.1"
    config_file: str | None = None
    effective: dict = field(default_factory=dict)  # every setting, secrets masked


@dataclass(frozen=True)
class ListenerState:
    name: str
    address: tuple
    path: str
    alive: bool
    admin: bool = False  # the admin listener itself (not a reason to be unhealthy)


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# -- recently disconnected charge points ------------------------------------------------------

class RecentDisconnects:
    """The last disconnect of each of the last RECENT_DISCONNECTS charge points, newest last.

    Fed by ``Registry.on_disconnect`` on the session's own thread; never raises there. Payloads
    are not kept: they may carry personal data and would outlive the connection.
    """

    def __init__(self, limit: int = RECENT_DISCONNECTS):
        self._limit = limit
        self._lock = threading.Lock()
        self._records: OrderedDict[str, dict] = OrderedDict()

    def record(self, session) -> None:
        try:
            closed = session.closed
            entry = {**session.describe(), "disconnected_at": time.time(),
                     "reason": closed.reason if closed is not None else "ended",
                     "close_code": closed.code if closed is not None else None,
                     "history": [{**item, "payload": None} for item in session.history.entries()]}
        except Exception:  # noqa: BLE001 - a console nicety must never break a disconnect
            log.exception("could not record the disconnect of %s", getattr(session, "cid", "?"))
            return
        with self._lock:
            self._records.pop(entry["cid"], None)
            self._records[entry["cid"]] = entry
            while len(self._records) > self._limit:
                self._records.popitem(last=False)

    def listing(self) -> list[dict]:
        with self._lock:
            records = list(self._records.values())
        return [{k: v for k, v in record.items() if k != "history"} for record in reversed(records)]

    def get(self, cid: str) -> dict | None:
        with self._lock:
            return self._records.get(cid)


# -- the credentials file ---------------------------------------------------------------------

class Credentials:
    """The file backend's credentials, edited in place; the backend re-reads after each change."""

    def __init__(self, config: AdminConfig, backend, registry):
        self.backend_name = config.auth_backend
        self.path = config.credentials_file
        self.backend = backend
        self.registry = registry
        self._lock = threading.Lock()

    @property
    def editable(self) -> bool:
        return self.backend_name == "file" and hasattr(self.backend, "reload")

    def listing(self) -> dict:
        if not self.editable:
            return {"backend": self.backend_name, "editable": False, "credentials": []}
        try:
            table = auth.load_credentials(self.path)
        except auth.CredentialsError as err:
            raise ApiError(500, str(err)) from None
        return {"backend": "file", "editable": True, "file": self.path,
                # e.g. the packaged unit: /etc is read-only to the service (ProtectSystem=strict)
                "writable": os.access(self.path, os.W_OK)
                and os.access(os.path.dirname(os.path.abspath(self.path)), os.W_OK),
                "credentials": [{"cid": cid, "profile": entry.profile,
                                 "connected": self.registry.get(cid) is not None}
                                for cid, entry in sorted(table.items())]}

    def add(self, body: dict) -> dict:
        cid = _cid_field(body)
        profile = _profile_field(body)
        password, generated = _password_field(body, generate_when_missing=True)
        with self._lock:
            self._require_editable()
            if cid in self._table():
                raise ApiError(409, f"{cid} is already in the credentials file")
            _writing(auth.add_user, self.path, cid, password, profile)
            self._reload()
        log.info("credentials of %s added through the admin API", cid, extra={"cid": cid})
        return {"cid": cid, "profile": profile or 1, **({"password": password} if generated else {})}

    def update(self, cid: str, body: dict) -> dict:
        _check_cid(cid)
        profile = _profile_field(body)
        password, generated = _password_field(body, generate_when_missing=False)
        if password is None and profile is None:
            raise ApiError(400, "nothing to change: give profile, password or generate_password")
        with self._lock:
            self._require_editable()
            table = self._table()
            if cid not in table:
                raise ApiError(404, f"{cid} is not in the credentials file")
            if password is not None:
                _writing(auth.add_user, self.path, cid, password, profile)
            else:
                _writing(auth.set_profile, self.path, cid, profile)
            self._reload()
        log.info("credentials of %s changed through the admin API (%s)", cid,
                 ", ".join(what for what, changed in (("password", password is not None),
                                                      ("profile", profile is not None)) if changed),
                 extra={"cid": cid})
        return {"cid": cid, "profile": profile or table[cid].profile,
                **({"password": password} if generated else {})}

    def remove(self, cid: str) -> dict:
        _check_cid(cid)
        with self._lock:
            self._require_editable()
            if not _writing(auth.remove_user, self.path, cid):
                raise ApiError(404, f"{cid} is not in the credentials file")
            self._reload()
        log.info("credentials of %s removed through the admin API", cid, extra={"cid": cid})
        return {"removed": cid}

    def _require_editable(self) -> None:
        if not self.editable:
            raise ApiError(409, f"auth.backend is {self.backend_name}: there is no credentials file to edit")

    def _table(self) -> dict:
        try:
            return auth.load_credentials(self.path)
        except auth.CredentialsError as err:
            if "not found" in str(err):
                return {}
            raise ApiError(500, str(err)) from None

    def _reload(self) -> None:
        try:
            self.backend.reload()
        except auth.CredentialsError as err:
            raise ApiError(500, f"written, but the gateway could not re-read it: {err}") from None


def _writing(change, *args):
    """Run a change of the credentials file; a file the gateway may not write is the operator's to fix."""
    try:
        return change(*args)
    except (auth.CredentialsError, OSError) as err:
        log.error("credentials file not changed: %s", err)
        raise ApiError(500, f"the credentials file was not changed: {err}") from None


def _check_cid(cid: str) -> None:
    problem = cid_problem(cid)
    if problem:
        raise ApiError(400, problem)


def _cid_field(body: dict) -> str:
    cid = body.get("cid")
    if not isinstance(cid, str):
        raise ApiError(400, "cid: a string is required")
    _check_cid(cid)
    return cid


def _profile_field(body: dict) -> int | None:
    profile = body.get("profile")
    if profile is None:
        return None
    if isinstance(profile, str) and profile.isdigit():
        profile = int(profile)
    if profile not in (1, 2, 3) or isinstance(profile, bool):
        raise ApiError(400, "profile: the security profile must be 1, 2 or 3")
    return profile


def _password_field(body: dict, *, generate_when_missing: bool) -> tuple[str | None, bool]:
    """(password, generated): the typed one, a generated one, or (None, False) for no change."""
    password = body.get("password")
    if password not in (None, "") and not isinstance(password, str):
        raise ApiError(400, "password: must be a string")
    if password:
        if len(password) < 8:
            raise ApiError(400, "password: at least 8 characters")
        return password, False
    if body.get("generate_password") or generate_when_missing:
        return auth.generate_password(), True
    return None, False


# -- what the handler asks --------------------------------------------------------------------

class AdminApi:
    """The answers, without HTTP."""

    def __init__(self, registry, mqtt_connected: threading.Event, stats, auth_backend, config: AdminConfig, *,
                 started_at: float, listeners: Callable[[], list[ListenerState]],
                 certificate: Callable[[], tuple[str, float] | None] = lambda: None,
                 mqtt_server_in_use: Callable[[], str] | None = None):
        self.registry = registry
        self.mqtt_connected = mqtt_connected
        self.counters = stats
        self.config = config
        self.started_at = started_at
        self.listeners = listeners
        self.certificate = certificate  # the wss server certificate's (file, notAfter), or None without wss
        # host:port of the broker connected to (or being tried); by default the first one configured
        self.mqtt_server_in_use = mqtt_server_in_use or (lambda: _address(config.mqtt_server[0]))
        self.disconnects = RecentDisconnects()
        self.credentials = Credentials(config, auth_backend, registry)

    def clients(self) -> list[dict]:
        return [session.describe() for session in self.registry]

    def client(self, cid: str) -> dict | None:
        session = self.registry.get(cid)
        if session is None:
            return None
        return {**session.describe(), "history": session.history.entries(),
                "history_payloads": session.history.keep_payloads}

    def kick(self, cid: str) -> bool:
        session = self.registry.get(cid)
        if session is None:
            return False
        log.info("[%s] kicked through the admin API", cid, extra={"cid": cid})
        session.close(CLOSE_NORMAL, "kicked")
        return True

    def stats(self) -> dict:
        sessions = list(self.registry)
        return {
            "version": __version__,
            "uptime": round(time.time() - self.started_at, 3),
            "connections": len(sessions),
            "mqtt_connected": self.mqtt_connected.is_set(),
            "queue_depth": sum(s.queue_depth for s in sessions),
            "counters": self.counters.snapshot(),
        }

    def status(self) -> dict:
        config = self.config
        return {
            "version": __version__,
            "started_at": self.started_at,
            "uptime": round(time.time() - self.started_at, 3),
            "connections": len(self.registry),
            "mqtt": {"connected": self.mqtt_connected.is_set(),
                     "server": self.mqtt_server_in_use(),
                     "servers": [_address(server) for server in config.mqtt_server],
                     "client_id": config.mqtt_client_id,
                     "protocol": config.mqtt_protocol},
            "listeners": [{"name": state.name, "address": _address(state.address), "path": state.path,
                           "alive": state.alive} for state in self.listeners()],
            "auth_backend": config.auth_backend,
            "config_file": config.config_file,
            "config": {name: _config_text(value) for name, value in sorted(config.effective.items())},
        }

    def healthy(self) -> tuple[bool, dict]:
        mqtt_ok = self.mqtt_connected.is_set()
        listeners_ok = all(state.alive for state in self.listeners() if not state.admin)
        # The broker connected to, or, while down, the one being tried: a cluster node lost shows here.
        return mqtt_ok and listeners_ok, {"mqtt": "up" if mqtt_ok else "down",
                                          "mqtt_server": self.mqtt_server_in_use(),
                                          "listeners": "up" if listeners_ok else "down"}

    def metrics(self) -> str:
        stats = self.stats()
        lines = [
            "# HELP ocpp_gw_connections Charge points connected now.",
            "# TYPE ocpp_gw_connections gauge",
            f"ocpp_gw_connections {stats['connections']}",
            "# HELP ocpp_gw_mqtt_connected 1 while the MQTT broker connection is up.",
            "# TYPE ocpp_gw_mqtt_connected gauge",
            f"ocpp_gw_mqtt_connected {int(stats['mqtt_connected'])}",
            "# HELP ocpp_gw_queue_depth CSMS calls queued for charge points, all together.",
            "# TYPE ocpp_gw_queue_depth gauge",
            f"ocpp_gw_queue_depth {stats['queue_depth']}",
            "# HELP ocpp_gw_events_total Messages, refusals, drops, timeouts by name.",
            "# TYPE ocpp_gw_events_total counter",
        ]
        for name, value in stats["counters"].items():
            lines.append(f'ocpp_gw_events_total{{name="{_label(name)}"}} {value}')
        lines += self._version_metrics(stats["counters"])
        certificate = self.certificate()
        if certificate is not None:
            certfile, not_after = certificate
            lines += [
                "# HELP ocpp_gw_tls_certificate_expiry_seconds When the wss server certificate expires (Unix time).",
                "# TYPE ocpp_gw_tls_certificate_expiry_seconds gauge",
                f'ocpp_gw_tls_certificate_expiry_seconds{{file="{_label(certfile)}"}} {not_after:.0f}',
            ]
        return "\n".join(lines) + "\n"

    def _version_metrics(self, counters: dict[str, int]) -> list[str]:
        """Connections now and messages so far per OCPP version (SPEC §9). Messages of closed
        connections are in the counters (added once at disconnect, not per message); those of open
        ones are read from their sessions."""
        connected = {name: 0 for name in VERSIONS}
        messages = {(name, way): counters.get(f"messages.{way}.{name}", 0)
                    for name in VERSIONS for way in ("in", "out")}
        for session in self.registry:
            described = session.describe()
            name = described["version"]
            connected[name] += 1
            messages[name, "in"] += described["messages_in"]
            messages[name, "out"] += described["messages_out"]
        lines = ["# HELP ocpp_gw_connections_by_version Charge points connected now, by OCPP version.",
                 "# TYPE ocpp_gw_connections_by_version gauge"]
        lines += [f'ocpp_gw_connections_by_version{{version="{name}"}} {count}'
                  for name, count in connected.items()]
        lines += ["# HELP ocpp_gw_connections_opened_total Charge point connections accepted, by OCPP version.",
                  "# TYPE ocpp_gw_connections_opened_total counter"]
        lines += [f'ocpp_gw_connections_opened_total{{version="{name}"}} '
                  f'{counters.get(f"connections.opened.{name}", 0)}' for name in VERSIONS]
        lines += ["# HELP ocpp_gw_messages_total OCPP messages from (in) and to (out) charge points, by OCPP version.",
                  "# TYPE ocpp_gw_messages_total counter"]
        lines += [f'ocpp_gw_messages_total{{version="{name}",direction="{way}"}} {count}'
                  for (name, way), count in messages.items()]
        return lines


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _address(address) -> str:
    host, port = address[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _config_text(value) -> str:
    """A setting as an operator would write it in ocpp.conf."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple) and value and all(isinstance(item, tuple) for item in value):
        return ", ".join(_address(item) for item in value)  # several addresses (mqtt.server)
    if isinstance(value, tuple) and len(value) == 2:
        return _address(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# -- HTTP -------------------------------------------------------------------------------------

@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict = field(default_factory=dict)


def _json(status: int, body, **headers) -> Response:
    return Response(status, json.dumps(body, indent=1).encode() + b"\n", "application/json", headers)


def _error(status: int, message: str) -> Response:
    headers = {"WWW-Authenticate": 'Bearer realm="ocpp-gw"'} if status == 401 else {}
    return _json(status, {"error": message}, **headers)


_CLIENT = re.compile(r"^/api/v1/clients/([^/]+)$")
_DISCONNECT = re.compile(r"^/api/v1/disconnects/([^/]+)$")
_CREDENTIAL = re.compile(r"^/api/v1/credentials/([^/]+)$")


class AdminRouter:
    """Routes one request (already read) to the API, under the access rules."""

    def __init__(self, api: AdminApi, policy: admin_access.AccessPolicy, files: dict[str, bytes]):
        self.api = api
        self.policy = policy
        self.files = files
        self.throttle = FailureThrottle(admin_access.LOGIN_FAILURES_ALLOWED, admin_access.LOGIN_FAILURE_WINDOW,
                                        admin_access.LOGIN_FAILURE_WINDOW)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes, peer: str) -> Response:
        verdict = self.policy.judge(method, path, headers)
        if not verdict.allowed:
            if method in admin_access.UNSAFE_METHODS:
                log.warning("admin %s %s from %s refused: %s", method, path, peer, verdict.error)
            return _error(verdict.status, verdict.error)
        try:
            return self._route(method, path, headers, body, peer, verdict)
        except ApiError as err:
            return _error(err.status, err.message)

    def _route(self, method, path, headers, body, peer, verdict) -> Response:  # noqa: C901 - a route table
        api = self.api
        if method == "GET":
            if path in CONSOLE_FILES:
                name, content_type = CONSOLE_FILES[path]
                return Response(200, self.files[name], content_type)
            if path == "/api/v1/clients":
                return _json(200, api.clients())
            if (match := _CLIENT.match(path)) is not None:
                client = api.client(unquote(match.group(1)))
                return _json(200, client) if client is not None else _error(404, "not connected")
            if path == "/api/v1/disconnects":
                return _json(200, api.disconnects.listing())
            if (match := _DISCONNECT.match(path)) is not None:
                record = api.disconnects.get(unquote(match.group(1)))
                return _json(200, record) if record is not None else _error(404, "not seen disconnecting")
            if path == "/api/v1/stats":
                return _json(200, api.stats())
            if path == "/api/v1/status":
                return _json(200, api.status())
            if path == "/api/v1/credentials":
                return _json(200, api.credentials.listing())
            if path == "/api/v1/session":
                return _json(200, self._session(verdict))
            if path == "/metrics":
                return Response(200, api.metrics().encode(), "text/plain; version=0.0.4")
            if path == "/healthz":
                ok, detail = api.healthy()
                return _json(200 if ok else 503, {"status": "ok" if ok else "unavailable", **detail})
        elif method == "DELETE":
            if (match := _CLIENT.match(path)) is not None:
                cid = unquote(match.group(1))
                return _json(200, {"kicked": cid}) if api.kick(cid) else _error(404, "not connected")
            if (match := _CREDENTIAL.match(path)) is not None:
                return _json(200, api.credentials.remove(unquote(match.group(1))))
        elif method == "POST":
            if path == "/api/v1/login":
                return self._login(_json_body(headers, body), peer)
            if path == "/api/v1/logout":
                self.policy.logins.end(verdict.login.sid if verdict.login else None)
                return _json(200, {"logged_out": True},
                             **{"Set-Cookie": admin_access.session_cookie(self.policy.cookie_name, None)})
            if path == "/api/v1/credentials":
                return _json(201, api.credentials.add(_json_body(headers, body)))
        elif method == "PATCH":
            if (match := _CREDENTIAL.match(path)) is not None:
                return _json(200, api.credentials.update(unquote(match.group(1)), _json_body(headers, body)))
        if method not in ("GET", "DELETE", "POST", "PATCH"):
            return _error(405, f"{method} is not supported")
        return _error(404, "no such resource")

    def _session(self, verdict: admin_access.Verdict) -> dict:
        csrf = self.policy.csrf_for(verdict.login)
        return {"version": __version__, "token_required": self.policy.token_required,
                "logged_in": csrf is not None, "csrf": csrf}

    def _login(self, body: dict, peer: str) -> Response:
        if not self.policy.token_required:
            return _json(200, self._session(admin_access.Verdict()))
        address = address_key(peer)
        if self.throttle.retry_after(address) is not None:
            return _error(429, "too many wrong tokens; try again in a minute")
        token = body.get("token")
        if not isinstance(token, str) or not self.policy.token_matches(token.strip()):
            if self.throttle.record_failure(address):
                log.warning("%d wrong admin tokens from %s; its logins are refused for %gs",
                            admin_access.LOGIN_FAILURES_ALLOWED, address, admin_access.LOGIN_FAILURE_WINDOW)
            else:
                log.warning("admin login from %s refused: wrong token", peer)
            return _error(401, "wrong token")
        login = self.policy.logins.create()
        log.info("admin console login from %s", peer)
        return _json(200, self._session(admin_access.Verdict(login=login)),
                     **{"Set-Cookie": admin_access.session_cookie(self.policy.cookie_name, login)})


def _json_body(headers: dict[str, str], body: bytes) -> dict:
    content_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type != "application/json":
        # Also a guard: an HTML form cannot send this type across sites without a preflight.
        raise ApiError(415, "send a JSON object with Content-Type: application/json")
    try:
        value = json.loads(body or b"{}")
    except ValueError:
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "the body must be a JSON object")
    return value


# Seconds an HTTP/1.1 keep-alive connection may sit idle between requests. Without a limit every
# idle connection (a console left open in a browser, a client gone without a FIN) holds a thread
# and a socket for good; browsers and curl simply open a new connection (Apache's default is 5 s too).
IDLE_KEEPALIVE = 5.0


class _Handler(BaseHTTPRequestHandler):
    router: AdminRouter  # set on the subclass made per server
    server_version = f"ocpp-gw/{__version__}"
    protocol_version = "HTTP/1.1"
    timeout = IDLE_KEEPALIVE  # socket timeout: an idle keep-alive connection is closed after it

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._serve("PUT")

    def do_PATCH(self) -> None:  # noqa: N802
        self._serve("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")

    def do_OPTIONS(self) -> None:  # noqa: N802 - no CORS: a preflight gets no permission
        self._serve("OPTIONS")

    def _serve(self, method: str) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self.close_connection = True
            self._send(_error(413, f"a request body must be at most {MAX_BODY} bytes"))
            return
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        try:
            response = self.router.handle(method, path, headers, body, self.client_address[0])
        except Exception:  # noqa: BLE001 - one bad request must not take the listener down
            log.exception("admin %s %s failed", method, path)
            response = _error(500, "internal error; see the gateway's log")
        self._send(response)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in {**SECURITY_HEADERS, **response.headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, fmt: str, *args) -> None:
        log.debug("admin %s %s", self.address_string(), fmt % args)


def console_files() -> dict[str, bytes]:
    package = resources.files("ocpp_gw.admin.console")
    return {name: (package / name).read_bytes() for name, _ in set(CONSOLE_FILES.values())}


class _QuietServer(ThreadingHTTPServer):
    """Serves until :meth:`stop_serving`, sleeping until a request or the stop comes.

    ``serve_forever`` would wake every ``poll_interval`` (0.5 s) to look for a stop request, and
    its ``shutdown`` waits for that wake-up: half a second of every gateway stop. Here the serving
    thread also waits on a socket that :meth:`stop_serving` writes to, so a stop wakes it at once.
    """

    daemon_threads = True

    def __init__(self, address, handler):
        super().__init__(address, handler)
        # Non-blocking: a connection gone between poll() and accept() must not block the loop.
        self.socket.setblocking(False)
        self._stop_reader, self._stop_writer = socket.socketpair()
        # Made here, not on the serving thread: every descriptor of an idle gateway exists once it is
        # ready (the leak checks compare against that idle state).
        self._selector = selectors.DefaultSelector()
        self._selector.register(self, selectors.EVENT_READ)
        self._selector.register(self._stop_reader, selectors.EVENT_READ)

    def serve_until_stopped(self) -> None:
        while True:
            ready = {key.fileobj for key, _ in self._selector.select()}
            if self._stop_reader in ready:
                return
            self.handle_request()  # accepts (it is ready) and hands the request to its thread

    def stop_serving(self, serving: threading.Thread, timeout: float = 2.0) -> None:
        """Wake the loop, wait for its thread to end, close the listening socket."""
        self._stop_writer.send(b"\0")
        serving.join(timeout)
        self._selector.close()
        self.server_close()
        self._stop_reader.close()
        self._stop_writer.close()

    def handle_error(self, request, client_address) -> None:
        # Health checkers (HAProxy) reset the connection once they have the status line.
        if isinstance(sys.exc_info()[1], ConnectionError):
            log.debug("admin client %s went away mid-response", client_address)
            return
        log.exception("admin request from %s failed", client_address)


class AdminServer:
    def __init__(self, api: AdminApi, config: AdminConfig, address: tuple[str, int]):
        token = None
        if config.token_file:
            # raises admin_access.TokenError: the service turns it into a startup error
            token = admin_access.load_token(config.token_file)
        api.registry.on_disconnect.append(api.disconnects.record)
        self.httpd = _QuietServer(address, _Handler)
        self.address = self.httpd.server_address[:2]
        policy = admin_access.AccessPolicy(token, admin_access.Logins(),
                                           cookie_name=f"ocpp_gw_session_{self.address[1]}")
        self.httpd.RequestHandlerClass = type("Handler", (_Handler,),
                                              {"router": AdminRouter(api, policy, console_files())})
        self.token_required = token is not None
        self.thread = threading.Thread(target=self.httpd.serve_until_stopped, name="ocpp-admin",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()
        log.info("admin API and console on http://%s/ (%s)", _address(self.address),
                 "admin token required" if self.token_required else "no login: loopback only")

    def stop(self) -> None:
        self.httpd.stop_serving(self.thread)
