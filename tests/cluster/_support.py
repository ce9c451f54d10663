"""Helpers for the cluster tests: a private RabbitMQ node with its MQTT plugin, HAProxy rendered from
deploy/haproxy.cfg, and a raw charge point whose socket can be frozen (half-open)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tools.harness import OutputLines, free_port, mqtt_connack, wait_until

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_TEMPLATE = ROOT / "deploy" / "haproxy.cfg"
RABBITMQ_SCRIPTS = Path("/usr/lib/rabbitmq/bin")


# -- RabbitMQ -----------------------------------------------------------------------------------

def _erlang_epmd() -> str:
    found = shutil.which("epmd")
    if found is None:
        raise RuntimeError("epmd (erlang-base) is missing: apt-get install rabbitmq-server")
    return found


class RabbitMq:
    """A private RabbitMQ node (MQTT plugin on) on free loopback ports, all state under `workdir`.

    Same face as tools.harness.Mosquitto where the tests need it: `.host`, `.port`, `.start()`,
    `.stop()`, `.logs`. Its own epmd runs as our child on a private port, so nothing outlives the
    fixture and nothing clashes with a system RabbitMQ."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.epmd: subprocess.Popen | None = None
        self.output: OutputLines | None = None

    @property
    def logs(self) -> list[str]:
        return self.output.lines if self.output else []

    def start(self, timeout: float = 60.0) -> RabbitMq:
        script = RABBITMQ_SCRIPTS / "rabbitmq-server"
        if not script.exists():
            raise RuntimeError("rabbitmq-server is not installed: run `make test` (it installs it)")
        self.port = free_port(self.host)
        amqp_port, dist_port, epmd_port = free_port(self.host), free_port(self.host), free_port(self.host)
        node = f"ocppgw{uuid.uuid4().hex[:8]}@localhost"
        config = self.workdir / "rabbitmq.conf"
        config.write_text("\n".join([
            f"listeners.tcp.default = {self.host}:{amqp_port}",
            f"mqtt.listeners.tcp.default = {self.host}:{self.port}",
            "mqtt.allow_anonymous = true",
            "mqtt.vhost = /",
            "mqtt.exchange = amq.topic",
            # The gateway turns Nagle off on its side; the broker's side must too (SPEC §6).
            "mqtt.tcp_listen_options.nodelay = true",
            "tcp_listen_options.nodelay = true",
            "",
        ]))
        # What `rabbitmq-plugins enable rabbitmq_mqtt` writes, without booting a VM to write it.
        plugins = self.workdir / "enabled_plugins"
        plugins.write_text("[rabbitmq_mqtt].\n")
        env = dict(
            os.environ,
            HOME=str(self.workdir),  # the Erlang cookie goes here
            RABBITMQ_NODENAME=node,
            RABBITMQ_NODE_IP_ADDRESS=self.host,
            RABBITMQ_NODE_PORT=str(amqp_port),
            RABBITMQ_DIST_PORT=str(dist_port),
            ERL_EPMD_PORT=str(epmd_port),
            ERL_EPMD_ADDRESS=self.host,
            RABBITMQ_CONFIG_FILE=str(config),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(plugins),
            RABBITMQ_MNESIA_BASE=str(self.workdir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.workdir / "log"),
            RABBITMQ_LOGS="-",
            RABBITMQ_PLUGINS_EXPAND_DIR=str(self.workdir / "plugins-expand"),
            RABBITMQ_FEATURE_FLAGS_FILE=str(self.workdir / "feature_flags"),
            RABBITMQ_QUORUM_DIR=str(self.workdir / "quorum"),
            RABBITMQ_STREAM_DIR=str(self.workdir / "stream"),
            RABBITMQ_PID_FILE=str(self.workdir / "rabbitmq.pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        self.epmd = subprocess.Popen([_erlang_epmd(), "-port", str(epmd_port), "-address", self.host],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # A session of its own: the script runs `erl` as a child, and teardown signals the group.
        self.process = subprocess.Popen([str(script)], env=env, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)
        self.output = OutputLines(self.process.stdout, f"rabbitmq-{self.port}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if self.output.wait_for_line(lambda line: "started MQTT TCP listener" in line, 0.5) is not None \
                    and mqtt_connack(self.host, self.port, timeout=2.0):
                return self
        tail = self.output.tail()
        self.stop()
        raise RuntimeError(f"RabbitMQ did not start within {timeout}s:\n{tail}")

    def stop(self, timeout: float = 30.0) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            # The script turns SIGTERM into an orderly `erl` shutdown.
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process is not None:
            try:  # the VM may outlive the script when the script was killed first
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        epmd, self.epmd = self.epmd, None
        if epmd is not None:
            epmd.terminate()
            epmd.wait(10)


# -- HAProxy ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Backend:
    """One gateway instance as HAProxy sees it."""

    name: str
    port: int
    check_port: int


# Test timings: a dead instance is marked down after one failed check 100 ms apart.
TEST_CHECK_TIMINGS = {"inter": "100ms", "fastinter": "100ms", "downinter": "100ms", "fall": "1", "rise": "1"}
_GLOBAL_DROPPED = ("log", "chroot", "stats socket", "user", "group", "daemon", "pidfile", "maxconn")


def render_haproxy_config(template: str, frontends: dict[str, int], backends: dict[str, list[Backend]],
                          stats_socket: Path) -> str:
    """deploy/haproxy.cfg made to run unprivileged on loopback: the global settings that need root,
    syslog or a raised file limit go, each frontend binds its given port, each backend's `server` lines become one line per
    given instance (modelled on the template's first), and check timings become TEST_CHECK_TIMINGS."""
    out: list[str] = []
    section, name = "", ""
    servers_written: set[str] = set()
    for line in template.splitlines():
        stripped = line.strip()
        words = stripped.split()
        if line and not line[0].isspace() and words:
            section, name = words[0], (words[1] if len(words) > 1 else "")
            out.append(line)
            if section == "global":
                out += [f"    stats socket {stats_socket} mode 600 level admin", "    log stderr format raw local0 info",
                        "    maxconn 1000"]  # the production figure needs a file limit raised as root
            continue
        if section == "global" and stripped.startswith(_GLOBAL_DROPPED):
            continue
        if section == "frontend" and words[:1] == ["bind"]:
            if name not in frontends:
                raise ValueError(f"no port given for frontend {name}")
            out.append(f"    bind 127.0.0.1:{frontends[name]}")
            continue
        if section == "backend" and words[:1] == ["default-server"]:
            out.append("    " + _with_timings(stripped))
            continue
        if section == "backend" and words[:1] == ["server"]:
            if name in servers_written:
                continue
            servers_written.add(name)
            options = words[3:]
            for backend in backends.get(name, []):
                out.append("    " + " ".join(["server", backend.name, f"127.0.0.1:{backend.port}",
                                              *_with_check_port(options, backend.check_port)]))
            continue
        out.append(line)
    missing = set(backends) - servers_written
    if missing:
        raise ValueError(f"the template has no server line in backend(s) {sorted(missing)}")
    return "\n".join(out) + "\n"


def _with_timings(default_server: str) -> str:
    words = default_server.split()
    result = []
    index = 0
    while index < len(words):
        word = words[index]
        if word in TEST_CHECK_TIMINGS and index + 1 < len(words):
            result += [word, TEST_CHECK_TIMINGS[word]]
            index += 2
            continue
        if word == "port" and index + 1 < len(words):
            index += 2  # each server line names its own check port
            continue
        result.append(word)
        index += 1
    return " ".join(result)


def _with_check_port(options: list[str], check_port: int) -> list[str]:
    kept = []
    skip = False
    for word in options:
        if skip:
            skip = False
            continue
        if word == "port":
            skip = True
            continue
        kept.append(word)
    return kept + ["port", str(check_port)]


class HaProxy:
    """Debian's haproxy in the foreground with a config rendered from deploy/haproxy.cfg."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path, backends: dict[str, list[Backend]], frontend: str = "ocpp_ws"):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        template = HAPROXY_TEMPLATE.read_text()
        frontends = {name: free_port() for name in re.findall(r"^frontend\s+(\S+)", template, re.MULTILINE)}
        self.port = frontends[frontend]
        self.stats_socket = self.workdir / "haproxy.sock"
        self.config_path = self.workdir / "haproxy.cfg"
        self.config_path.write_text(render_haproxy_config(template, frontends, backends, self.stats_socket))
        self.process: subprocess.Popen | None = None
        self.output: OutputLines | None = None

    def start(self, timeout: float = 10.0) -> HaProxy:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not Path(binary).exists():
            raise RuntimeError("haproxy is not installed: run `make test` (it installs it)")
        self.process = subprocess.Popen([binary, "-db", "-f", str(self.config_path)], stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output = OutputLines(self.process.stdout, f"haproxy-{self.port}")
        if not wait_until(lambda: self.process.poll() is not None or self._listening(), timeout) \
                or self.process.poll() is not None:
            raise RuntimeError(f"haproxy did not start:\n{self.output.tail()}")
        return self

    def _listening(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=0.2):
                pass
        except OSError:
            return False
        try:
            self.server_states()
        except OSError:
            return False
        return True

    def server_states(self, backend: str = "ocpp_gw_ws") -> dict[str, str]:
        """{server name: status} from the stats socket, e.g. {"gw1": "UP", "gw2": "DOWN"}."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
        return {row["svname"]: row["status"] for row in rows
                if row["pxname"] == backend and row["svname"] not in ("FRONTEND", "BACKEND")}

    def wait_for_states(self, expected: dict[str, str], timeout: float = 10.0, backend: str = "ocpp_gw_ws") -> None:
        if not wait_until(lambda: all(self.server_states(backend).get(name, "").startswith(status)
                                      for name, status in expected.items()), timeout, interval=0.05):
            raise AssertionError(f"haproxy servers are {self.server_states(backend)}, expected {expected}; "
                                 f"log:\n{self.output.tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- a raw charge point -------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    opcode: int
    payload: bytes

    @property
    def text(self) -> str:
        return self.payload.decode()

    @property
    def close_code(self) -> int | None:
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode()


OP_TEXT, OP_CLOSE = 0x1, 0x8


class RawChargePoint:
    """A WebSocket client on a plain socket: nothing reads or answers unless the test says so, so
    leaving it alone is a charge point whose line went dead without a close (half-open)."""

    def __init__(self, host: str, port: int, path: str, authorization: str, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                   f"Sec-WebSocket-Protocol: ocpp1.6\r\nAuthorization: {authorization}\r\n\r\n")
        self.sock.sendall(request.encode())
        self._buf = b""
        head = self._read_until(b"\r\n\r\n", timeout)
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status + b" ":
            raise AssertionError(f"upgrade refused: {head!r}")

    def _read_until(self, marker: bytes, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self._buf:
            self._fill(deadline)
        head, _, self._buf = self._buf.partition(marker)
        return head

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"nothing more from the gateway in time (have {self._buf[:200]!r})")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            raise AssertionError(f"nothing more from the gateway in time (have {self._buf[:200]!r})") from None
        if not chunk:
            raise ConnectionError("the gateway closed the TCP connection")
        self._buf += chunk

    def _take(self, count: int, deadline: float) -> bytes:
        while len(self._buf) < count:
            self._fill(deadline)
        data, self._buf = self._buf[:count], self._buf[count:]
        return data

    def send_text(self, text: str | list) -> None:
        payload = (text if isinstance(text, str) else json.dumps(text)).encode()
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | OP_TEXT, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", 0x80 | OP_TEXT, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | OP_TEXT, 0x80 | 127, length)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv_frame(self, timeout: float = 5.0) -> Frame:
        deadline = time.monotonic() + timeout
        first, second = self._take(2, deadline)
        length = second & 0x7F
        if length == 126:
            length = struct.unpack("!H", self._take(2, deadline))[0]
        elif length == 127:
            length = struct.unpack("!Q", self._take(8, deadline))[0]
        return Frame(first & 0x0F, self._take(length, deadline))

    def recv_call(self, timeout: float = 5.0) -> list:
        frame = self.recv_frame(timeout)
        assert frame.opcode == OP_TEXT, f"expected a text frame, got {frame}"
        return json.loads(frame.text)

    def frames_until_close(self, timeout: float = 5.0) -> tuple[list[list], Frame]:
        """The text frames waiting in the socket, then the close frame that follows them."""
        texts = []
        while True:
            frame = self.recv_frame(timeout)
            if frame.opcode == OP_CLOSE:
                return texts, frame
            if frame.opcode == OP_TEXT:
                texts.append(json.loads(frame.text))

    def close(self) -> None:
        self.sock.close()


# -- MQTT envelopes -----------------------------------------------------------------------------

def csms_call(unique_id: str, action: str = "GetConfiguration", payload: dict | None = None) -> dict:
    return {"MessageTypeId": 2, "UniqueId": unique_id, "Action": action, "Payload": payload or {}}
