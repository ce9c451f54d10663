"""The gateway as a real subprocess (`python -m ocpp_gw -c FILE`) on free loopback ports."""

from __future__ import annotations

import base64
import itertools
import os
import signal
import subprocess
import sys
import uuid
import weakref
from pathlib import Path
from typing import Mapping

from .leaks import FINDINGS, Resources, excess_after, resources
from .ports import free_port
from .process import OutputLines, matcher

ROOT = Path(__file__).resolve().parents[2]
READY_LINE = "ocpp_gw ready"
# How long a gateway gets, once a test's charge points are gone, to end their threads and close their sockets.
LEAK_DEADLINE = 10.0
TEST_CIDS = [f"CP{n:03d}" for n in range(1, 51)]
_instances = itertools.count(1)
RUNNING: "weakref.WeakSet[GatewayProcess]" = weakref.WeakSet()  # started and not yet seen to exit


def password_for(cid: str) -> str:
    """The known password of every test credential."""
    return f"secret-{cid}"


def basic_auth(username: str, password: str) -> str:
    """The value of an `Authorization` header for HTTP Basic."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def write_credentials(path: Path, cids: list[str] = TEST_CIDS) -> Path:
    """A passwd file holding `password_for(cid)` for each cid, made with the gateway's own API."""
    from ocpp_gw.auth import add_user  # imported late: unit tests need not import the gateway

    path.touch()
    for cid in cids:
        add_user(str(path), cid, password_for(cid))
    return path


def render_config(settings: Mapping[str, object]) -> str:
    """Flat `key = value` lines; a value of None leaves the key out (the gateway's default applies)."""
    lines = ["# written by tools/harness/gateway.py"]
    lines += [f"{key} = {value}" for key, value in settings.items() if value is not None]
    return "\n".join(lines) + "\n"


class GatewayProcess:
    """One gateway subprocess; `start()` returns once it logged `ocpp_gw ready`, and may be called again after stop."""

    def __init__(self, workdir: Path, broker, passwd_file: Path, overrides: Mapping[str, object] | None = None):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.admin_port = free_port()
        self.settings: dict[str, object] = {
            "ocpp.listener.ws": f"127.0.0.1:{self.port}",
            "admin.listener": f"127.0.0.1:{self.admin_port}",
            "mqtt.server": f"{broker.host}:{broker.port}",
            # Unique per gateway: the MQTT session is persistent, and tests share one broker.
            "mqtt.client_id": f"ocpp-gw-test-{next(_instances)}-{uuid.uuid4().hex[:8]}",
            "auth.backend": "file",
            "auth.file": passwd_file,
            "ocpp.json_schema_dir": ROOT / "schemas",
            "ocpp.awaiting_timeout": "2s",
            "log.level": "debug",
        }
        self.settings.update(overrides or {})
        self.config_path = self.workdir / "ocpp.conf"
        self.config_path.write_text(render_config(self.settings))
        self.process: subprocess.Popen | None = None
        self.output: OutputLines | None = None
        self.open_files_limit: int | None = None  # RLIMIT_NOFILE (soft and hard) for the process
        self.python_path: list[Path] = []  # searched before the tree, e.g. for a fault-injecting sitecustomize
        self.env: dict[str, str] = {}
        self.idle: Resources | None = None  # threads and descriptors once ready, before any charge point

    # addresses
    @property
    def mountpoint(self) -> str:
        return str(self.settings.get("ocpp.mountpoint", "ocpp/"))

    @property
    def client_id(self) -> str:
        return str(self.settings["mqtt.client_id"])

    @property
    def path(self) -> str:
        return str(self.settings.get("ocpp.listener.path", "/ocpp"))

    def ws_url(self, cid: str) -> str:
        return f"ws://127.0.0.1:{self.port}{self.path}/{cid}"

    def admin_url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.admin_port}{path}"

    @staticmethod
    def password(cid: str) -> str:
        return password_for(cid)

    @staticmethod
    def auth_header(cid: str, password: str | None = None) -> str:
        return basic_auth(cid, password_for(cid) if password is None else password)

    # process
    @property
    def logs(self) -> list[str]:
        return self.output.lines if self.output else []

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    def start(self, ready_timeout: float = 20.0) -> "GatewayProcess":
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [*map(str, self.python_path), str(ROOT),
                                                          env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ocpp_gw", "-c", str(self.config_path)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=self._limit_open_files if self.open_files_limit else None,
        )
        self.output = OutputLines(self.process.stdout, f"gateway-{self.port}")
        if self.output.wait_for_line(matcher(READY_LINE), ready_timeout) is None:
            status = self.process.poll()
            self.kill()
            raise RuntimeError(
                f"gateway not ready within {ready_timeout}s (exit status {status}); config:\n"
                f"{self.config_path.read_text()}\nlog:\n{self.output.tail()}"
            )
        self.idle = resources(self.process.pid)
        RUNNING.add(self)
        return self

    def leaks(self, timeout: float = LEAK_DEADLINE) -> str | None:
        """Threads or descriptors held beyond the idle state, once they had `timeout` seconds to go; None when
        the process is not running (it was stopped or killed: nothing to compare)."""
        if self.process is None or self.process.poll() is not None or self.idle is None:
            return None
        try:
            over = excess_after(lambda: resources(self.process.pid), self.idle, timeout)
        except FileNotFoundError:  # it exited meanwhile
            return None
        return None if over is None else f"gateway {self.client_id} (pid {self.process.pid}): {over}"

    def record_leaks(self, timeout: float = LEAK_DEADLINE) -> None:
        """For a fixture about to stop this gateway: note its leaks for the autouse check to fail the test."""
        finding = self.leaks(timeout)
        if finding is not None:
            FINDINGS.add(finding)

    def _limit_open_files(self) -> None:
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files_limit, self.open_files_limit))

    def mark(self) -> int:
        """Position in the log; pass as `since` to `wait_for_log` to look only at later lines."""
        return self.output.mark()

    def wait_for_log(self, pattern: str, timeout: float = 5.0, since: int = 0) -> str:
        """The first log line (from `since` on) that the regex `pattern` matches; fails after `timeout`."""
        line = self.output.wait_for_line(matcher(pattern), timeout, since)
        if line is None:
            raise AssertionError(f"no log line matching {pattern!r} within {timeout}s; log:\n{self.output.tail()}")
        return line

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM; the gateway must exit 0 within `timeout` seconds (SPEC §8)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"gateway still running {timeout}s after SIGTERM; log:\n{self.output.tail()}")
        self.output.wait_closed(timeout)
        assert status == 0, f"gateway exited {status} after SIGTERM; log:\n{self.output.tail()}"

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)
