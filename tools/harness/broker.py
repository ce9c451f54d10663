"""A real Mosquitto broker on a free loopback port, for tests."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

from .ports import free_port
from .process import OutputLines, stop_process

TEMPLATE = Path(__file__).resolve().parent / "mosquitto.conf.in"
START_ATTEMPTS = 3


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(found).exists():
        raise RuntimeError("mosquitto is not installed: run `make test` (it installs it) or apt-get install mosquitto")
    return found


def mqtt_connack(host: str, port: int, timeout: float) -> bool:
    """True when an MQTT 3.1.1 CONNECT to host:port gets a successful CONNACK."""
    client_id = b"ocpp-gw-test-probe"
    variable_header = b"\x00\x04MQTT\x04\x02\x00\x3c"
    payload = len(client_id).to_bytes(2, "big") + client_id
    body = variable_header + payload
    connect = b"\x10" + bytes([len(body)]) + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(connect)
            connack = b""
            while len(connack) < 4:
                chunk = sock.recv(4 - len(connack))
                if not chunk:
                    return False
                connack += chunk
            sock.sendall(b"\xe0\x00")  # DISCONNECT
            return connack == b"\x20\x02\x00\x00"
    except OSError:
        return False


class Mosquitto:
    """One mosquitto process. The port is fixed at the first start and kept across restarts."""

    host = "127.0.0.1"

    def __init__(self, workdir: Path, *, persistence: bool = False, extra_config: str = "", port: int | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.persistence = persistence
        self.extra_config = extra_config
        self.port = port
        self.process: subprocess.Popen | None = None
        self.output: OutputLines | None = None
        self._earlier_runs: list[str] = []

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def logs(self) -> list[str]:
        """What mosquitto logged, across restarts."""
        return self._earlier_runs + (self.output.lines if self.output else [])

    def start(self, timeout: float = 10.0) -> "Mosquitto":
        if self.running:
            return self
        attempts = 1 if self.port is not None else START_ATTEMPTS
        for _ in range(attempts):
            port = self.port or free_port(self.host)
            if self._launch(port, timeout):
                self.port = port
                return self
        log = self.output.tail() if self.output else ""
        raise RuntimeError(f"mosquitto did not start on {self.host}:{port}:\n{log}")

    def _launch(self, port: int, timeout: float) -> bool:
        config = self.workdir / "mosquitto.conf"
        config.write_text(
            TEMPLATE.read_text().format(
                host=self.host,
                port=port,
                persistence="true" if self.persistence else "false",
                data_dir=self.workdir,
                extra=self.extra_config,
                user=pwd.getpwuid(os.geteuid()).pw_name,
            )
        )
        if self.output is not None:
            self._earlier_runs += self.output.lines
        self.process = subprocess.Popen(
            [mosquitto_binary(), "-c", str(config)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = OutputLines(self.process.stdout, f"mosquitto-{port}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # most likely the port was taken between free_port() and bind
            if mqtt_connack(self.host, port, timeout=max(0.1, deadline - time.monotonic())):
                return True
            # Not listening yet: wait for mosquitto to log something or exit, whichever comes first.
            self.output.wait_for_line(lambda line: True, timeout=0.05, since=self.output.mark())
        stop_process(self.process, 5)
        return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (mosquitto saves its persistence file on the way out)."""
        if self.process is not None:
            stop_process(self.process, timeout)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self, timeout: float = 10.0) -> "Mosquitto":
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
