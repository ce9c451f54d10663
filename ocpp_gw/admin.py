"""The admin API: JSON over HTTP on ``admin.listener`` (SPEC §8).

GET /api/v1/clients, GET /api/v1/clients/<cid>, DELETE /api/v1/clients/<cid> (kick),
GET /api/v1/stats, GET /metrics (Prometheus text), GET /healthz (503 while the broker is away).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from . import __version__

log = logging.getLogger("ocpp_gw.admin")

CLOSE_NORMAL = 1000


class AdminApi:
    """What the HTTP handler asks; no HTTP in here."""

    def __init__(self, service):
        self.service = service
        self.runtime = service.runtime

    def clients(self) -> list[dict]:
        return [session.describe() for session in self.runtime.registry]

    def client(self, cid: str) -> dict | None:
        session = self.runtime.registry.get(cid)
        if session is None:
            return None
        return {**session.describe(), "history": session.pipe.history.entries()}

    def kick(self, cid: str) -> bool:
        session = self.runtime.registry.get(cid)
        if session is None:
            return False
        log.info("[%s] kicked through the admin API", cid, extra={"cid": cid})
        session.pipe.request_close(CLOSE_NORMAL, "kicked")
        return True

    def stats(self) -> dict:
        sessions = list(self.runtime.registry)
        return {
            "version": __version__,
            "uptime": round(time.time() - self.service.started_at, 3),
            "connections": len(sessions),
            "mqtt_connected": self.runtime.bridge.connected.is_set(),
            "queue_depth": sum(s.pipe.queue_depth for s in sessions),
            "counters": self.runtime.stats.snapshot(),
        }

    def healthy(self) -> tuple[bool, dict]:
        mqtt_ok = self.runtime.bridge.connected.is_set()
        listeners_ok = all(listener.is_alive() for listener in self.service.listeners)
        return mqtt_ok and listeners_ok, {"mqtt": "up" if mqtt_ok else "down",
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
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_CLIENT = re.compile(r"^/api/v1/clients/([^/]+)$")


class _Handler(BaseHTTPRequestHandler):
    api: AdminApi  # set on the subclass made per server
    server_version = f"ocpp-gw/{__version__}"
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("?", 1)[0]
        if path == "/api/v1/clients":
            self._json(200, self.api.clients())
        elif path == "/api/v1/stats":
            self._json(200, self.api.stats())
        elif path == "/metrics":
            self._send(200, self.api.metrics().encode(), "text/plain; version=0.0.4")
        elif path == "/healthz":
            ok, detail = self.api.healthy()
            self._json(200 if ok else 503, {"status": "ok" if ok else "unavailable", **detail})
        elif (match := _CLIENT.match(path)) is not None:
            client = self.api.client(unquote(match.group(1)))
            if client is None:
                self._json(404, {"error": "not connected"})
            else:
                self._json(200, client)
        else:
            self._json(404, {"error": "no such resource"})

    def do_DELETE(self) -> None:  # noqa: N802
        match = _CLIENT.match(self.path.split("?", 1)[0])
        if match is None:
            self._json(404, {"error": "no such resource"})
        elif self.api.kick(unquote(match.group(1))):
            self._json(200, {"kicked": unquote(match.group(1))})
        else:
            self._json(404, {"error": "not connected"})

    def _json(self, status: int, body) -> None:
        self._send(status, json.dumps(body, indent=1).encode() + b"\n", "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args) -> None:
        log.debug("admin %s %s", self.address_string(), fmt % args)


class AdminServer:
    def __init__(self, service, address: tuple[str, int]):
        handler = type("Handler", (_Handler,), {"api": AdminApi(service)})
        self.httpd = ThreadingHTTPServer(address, handler)
        self.httpd.daemon_threads = True
        self.address = self.httpd.server_address[:2]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="ocpp-admin",
                                       daemon=True)

    def start(self) -> None:
        self.thread.start()
        log.info("admin API on http://%s:%s/", *self.address)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
