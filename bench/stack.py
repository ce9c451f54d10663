"""The servers under test, each in its own process: Mosquitto + responder + gateway, or the baseline.

A target is started fresh for each figure (no state carried between figures) and stopped after it.
Logs go to bench/.cache/logs/.
"""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from .credentials import CACHE

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO = "/usr/sbin/mosquitto"
LOGS = CACHE / "logs"
PATH = "/ocpp/"


# What the packaged unit gives the gateway (LimitNOFILE): 10,000 CPs need 20,000 descriptors.
WANTED_FD_LIMIT = 65536


def raise_fd_limit() -> int:
    """RLIMIT_NOFILE up to the packaged unit's (root may raise the hard limit), else soft up to hard;
    inherited by every child. Returns the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < WANTED_FD_LIMIT:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (WANTED_FD_LIMIT, WANTED_FD_LIMIT))
            return WANTED_FD_LIMIT
        except (ValueError, OSError):
            pass
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# Listening ports come from below the kernel's ephemeral range (ip_local_port_range, 32768-60999
# by default): a port the kernel hands out as "free" is also what the next of the thousands of
# outgoing connections a figure makes may take as its local port before the server binds it
# (a storm's gateway once failed with "Address already in use").
LISTEN_PORTS = range(20000, 32000)


def free_port() -> int:
    for _ in range(100):
        port = random.choice(LISTEN_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {LISTEN_PORTS}")


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def wait_for_line(process: subprocess.Popen, expected: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.strip() == expected:
            return
        if not line and process.poll() is not None:
            break
    raise RuntimeError(f"{' '.join(map(str, process.args))} did not say {expected!r}")


class Service:
    """One child process; its stderr (and stdout unless piped) goes to a log file."""

    def __init__(self, name: str, args: list[str], pipe_stdout: bool = False):
        LOGS.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOGS / f"{name}.log"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            args, cwd=ROOT, stdout=subprocess.PIPE if pipe_stdout else self._log, stderr=self._log,
            text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace: float = 3.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


class GatewayTarget:
    """Mosquitto, the fast responder and `python -m ocpp_gw -c <generated conf>`."""

    name = "gateway"

    def __init__(self, passwd: Path | None, switch_interval: float | None = None):
        self.passwd = passwd
        self.switch_interval = switch_interval
        self.services: list[Service] = []

    def start_with(self, interval: int) -> None:
        """Start fresh; the responder answers BootNotification with `interval` (s)."""
        try:
            self._start(interval)
        except BaseException:
            self.stop()
            raise

    def _start(self, interval: int) -> None:
        run_dir = CACHE / "gateway"
        run_dir.mkdir(parents=True, exist_ok=True)
        broker_port, cp_port, admin_port = free_port(), free_port(), free_port()
        (run_dir / "mosquitto.conf").write_text("\n".join([
            f"listener {broker_port} 127.0.0.1", "allow_anonymous true", "set_tcp_nodelay true",
            "persistence false", "max_queued_messages 1000000", "max_inflight_messages 0",
            "log_type error", "log_type warning", "log_dest stderr", ""]))
        broker = self._add(Service("mosquitto", [MOSQUITTO, "-c", str(run_dir / "mosquitto.conf")]))
        wait_for_port(broker_port, broker.process)
        responder = self._add(Service("responder", [
            sys.executable, "-m", "bench.responder", "--port", str(broker_port),
            "--interval", str(interval)], pipe_stdout=True))
        wait_for_line(responder.process, "ready")
        auth = [f"auth.file = {self.passwd}"] if self.passwd else ["auth.backend = none"]
        conf = run_dir / "ocpp.conf"
        conf.write_text("\n".join([
            f"ocpp.listener.ws = 127.0.0.1:{cp_port}", "ocpp.listener.max_connections = 15000",
            f"mqtt.server = 127.0.0.1:{broker_port}", "mqtt.client_id = bench-gateway",
            "mqtt.max_queued_messages = 100000", f"admin.listener = 127.0.0.1:{admin_port}",
            "log.level = warning", *auth, ""]))
        if self.switch_interval is None:
            launch = ["-m", "ocpp_gw"]
        else:  # an experiment for the lead: the same gateway with another GIL switch interval
            launch = ["-c", f"import runpy, sys; sys.setswitchinterval({self.switch_interval}); "
                            "sys.argv[0] = 'ocpp_gw'; runpy.run_module('ocpp_gw', run_name='__main__')"]
        gateway = self._add(Service("gateway", [sys.executable, *launch, "-c", str(conf)]))
        self.admin = f"http://127.0.0.1:{admin_port}"
        wait_for_port(cp_port, gateway.process)
        self._wait_healthy(gateway)
        self.pid = gateway.pid
        self.url = f"ws://127.0.0.1:{cp_port}{PATH}"
        self.helper_pids = {"mosquitto": broker.pid, "responder": responder.pid}

    def _wait_healthy(self, gateway: Service, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.admin + "/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                if gateway.process.poll() is not None:
                    break
            time.sleep(0.1)
        raise RuntimeError(f"gateway not healthy; see {gateway.log_path}")

    def stats(self) -> dict:
        try:
            with urllib.request.urlopen(self.admin + "/api/v1/stats", timeout=5) as answer:
                return json.load(answer)
        except OSError as error:
            return {"error": str(error)}

    def _add(self, service: Service) -> Service:
        self.services.append(service)
        return service

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()


class BaselineTarget:
    """`python -m bench.baseline`: the mobilityhouse `ocpp` central system."""

    name = "baseline"
    helper_pids: dict = {}

    def __init__(self, passwd: Path | None):
        self.passwd = passwd
        self.service: Service | None = None

    def start_with(self, interval: int) -> None:
        port = free_port()
        args = [sys.executable, "-m", "bench.baseline", "--port", str(port), "--interval", str(interval)]
        if self.passwd:
            args += ["--passwd", str(self.passwd)]
        self.service = Service("baseline", args, pipe_stdout=True)
        wait_for_line(self.service.process, "ready")
        self.pid = self.service.pid
        self.url = f"ws://127.0.0.1:{port}{PATH}"

    def stats(self) -> dict:
        return {}

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.service = None
