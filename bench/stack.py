"""The servers under test, each in its own process: Mosquitto + responder + gateway, or the baseline.

A target is started fresh for each figure (no state carried between figures) and stopped after it.
Logs go to bench/.cache/logs/.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tools.harness import Mosquitto, free_port, wait_for_port

from .credentials import CACHE
from .ocppj import DEFAULT_VERSION
from .report import side_key

ROOT = Path(__file__).resolve().parent.parent
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


class _Versioned:
    """A target measured with CPs of one OCPP version: ``key`` names its results ("gateway",
    "baseline 2.0.1"), ``tag`` its log files."""

    name: str
    ocpp: str = DEFAULT_VERSION

    @property
    def key(self) -> str:
        return side_key(self.name, self.ocpp)

    @property
    def tag(self) -> str:
        return self.key.replace(" ", "-")


class GatewayTarget(_Versioned):
    """Mosquitto, a backend and `python -m ocpp_gw -c <generated conf>`. The backend is the fast MQTT
    responder (target "gateway") or, with ``adapter=True`` (target "adapter"), the baseline's `ocpp`
    library central system served by ocpp_gw.backend."""

    def __init__(self, passwd: Path | None, switch_interval: float | None = None, adapter: bool = False,
                 ocpp: str = DEFAULT_VERSION):
        self.passwd = passwd
        self.ocpp = ocpp
        self.switch_interval = switch_interval
        self.adapter = adapter
        self.name = "adapter" if adapter else "gateway"
        self.process_name = "gateway"  # the key of the gateway process's CPU in the results
        self.services: list[Service] = []
        self.broker: Mosquitto | None = None

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
        cp_port, admin_port = free_port(), free_port()
        # The harness's broker (Nagle off, no persistence) with the bench's queues: no limit on messages in flight,
        # and a backlog large enough for every CP of a storm (later lines override the template's).
        self.broker = Mosquitto(run_dir / "mosquitto",
                                extra_config="max_queued_messages 1000000\nmax_inflight_messages 0").start()
        broker_port = self.broker.port
        if self.adapter:
            backend = self._add(Service("csms", [
                sys.executable, "-m", "bench.adapter_csms", "--broker", f"127.0.0.1:{broker_port}",
                "--interval", str(interval)], pipe_stdout=True))
        else:
            backend = self._add(Service("responder", [
                sys.executable, "-m", "bench.responder", "--port", str(broker_port),
                "--interval", str(interval)], pipe_stdout=True))
        wait_for_line(backend.process, "ready")
        auth = [f"auth.file = {self.passwd}"] if self.passwd else ["auth.backend = none"]
        conf = run_dir / "ocpp.conf"
        conf.write_text("\n".join([
            f"ocpp.listener.ws = 127.0.0.1:{cp_port}", "ocpp.listener.max_connections = 15000",
            # Every simulated CP comes from 127.0.0.1: a storm of thousands is one address's worth.
            "ocpp.listener.max_pending = 15000", "ocpp.listener.max_pending_per_address = 15000",
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
        self.helper_pids = {"mosquitto": self.broker.process.pid, backend.name: backend.pid}

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
        if self.broker is not None:
            self.broker.stop()
            LOGS.mkdir(parents=True, exist_ok=True)
            (LOGS / "mosquitto.log").write_text("\n".join(self.broker.logs) + "\n")
            self.broker = None


class BaselineTarget(_Versioned):
    """`python -m bench.baseline`: the mobilityhouse `ocpp` central system."""

    name = "baseline"
    helper_pids: dict = {}

    def __init__(self, passwd: Path | None, ocpp: str = DEFAULT_VERSION):
        self.passwd = passwd
        self.ocpp = ocpp
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
