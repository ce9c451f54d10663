"""The .deb installed with apt on this machine: the user, the enabled unit, the installed command serving a charge
point as the unit would run it, then purge. The tests run in file order; the last one purges."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tools.harness import OutputLines, basic_auth, free_port, json_matches, matcher, stop_process
from tests.packaging.debian_tools import BARE_ENV, as_root, package_installed, purge, run

pytestmark = pytest.mark.timeout(600)  # the first test pays for building and installing the package

USER = "ocpp-gw"
VENV = Path("/opt/venvs/ocpp-gw")
CONFIG = Path("/etc/ocpp_gw/ocpp.conf")
PASSWD = Path("/etc/ocpp_gw/passwd")
UNIT = Path("/lib/systemd/system/ocpp-gw.service")
ENABLED = Path("/etc/systemd/system/multi-user.target.wants/ocpp-gw.service")
CID = "CP001"
PASSWORD = "installed-package-test"
MOUNTPOINT = "debtest/"  # its own topics: the session broker is shared, and connect events are retained


@pytest.fixture(scope="module")
def credential(installed_deb) -> str:
    """CP001 added to the installed credentials file with the installed `ocpp-gw passwd`; its password."""
    run(as_root(["/usr/bin/ocpp-gw", "passwd", "add", CID, "--password-stdin"]), input=PASSWORD + "\n")
    return PASSWORD


def ownership(path: Path) -> tuple[str, str, str]:
    status = path.stat()
    return oct(status.st_mode & 0o7777), pwd.getpwuid(status.st_uid).pw_name, grp.getgrgid(status.st_gid).gr_name


def test_install_creates_a_system_user_that_cannot_log_in(installed_deb):
    entry = pwd.getpwnam(USER)
    assert entry.pw_uid < 1000 and entry.pw_shell == "/usr/sbin/nologin"
    assert grp.getgrgid(entry.pw_gid).gr_name == USER


def test_install_enables_the_unit(installed_deb):
    assert ENABLED.is_symlink() and os.readlink(ENABLED) == str(UNIT)


@pytest.mark.parametrize("path", [CONFIG, PASSWD], ids=["ocpp.conf", "passwd"])
def test_config_files_are_readable_by_the_service_group_only(installed_deb, path):
    assert ownership(path) == ("0o640", "root", USER)


def test_passwd_add_keeps_the_credentials_file_readable_by_the_service(credential):
    assert ownership(PASSWD) == ("0o640", "root", USER)
    assert PASSWD.read_text().startswith(f"{CID}:scrypt$")


def test_installed_command_accepts_the_shipped_config(installed_deb):
    result = run(["/usr/bin/ocpp-gw", "--check-config", str(CONFIG)])
    assert result.stdout.strip() == f"{CONFIG}: OK"


def test_installed_gateway_runs_from_the_venv_with_its_bundled_schemas(installed_deb):
    result = run([str(VENV / "bin" / "python"), "-c",
                  "import ocpp_gw, ocpp_gw.protocol.schemas as s; print(ocpp_gw.__file__); print(s.default_schema_dir())"])
    module, schemas = result.stdout.split()
    assert module.startswith(f"{VENV}/lib/python3")
    assert schemas == f"{VENV}/share/ocpp-gw/schemas"


def test_installed_unit_passes_systemd_analyze_verify(installed_deb):
    result = run(["systemd-analyze", "verify", str(UNIT)], check=False)
    assert (result.returncode, result.stderr) == (0, "")


@dataclass
class InstalledGateway:
    url: str
    process: subprocess.Popen
    notifications: socket.socket  # what the gateway tells systemd (sd_notify)

    def notified(self, wanted: str, timeout: float = 10) -> list[str]:
        """sd_notify lines up to and including `wanted`; fails when it does not come in time."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            self.notifications.settimeout(remaining)
            try:
                seen += self.notifications.recv(4096).decode().splitlines()
            except TimeoutError:
                break
            if wanted in seen:
                return seen
        raise AssertionError(f"no {wanted} sent to NOTIFY_SOCKET within {timeout}s; got {seen}")


@pytest.fixture
def service(credential, broker):
    """`/usr/bin/ocpp-gw -c <copy of the shipped config>` as the user ocpp-gw, as the unit starts it, with a
    NOTIFY_SOCKET and a 2 s watchdog of our own in place of systemd's.

    The copy sets only what a test needs (free ports, the test broker, its own mountpoint, schema checking on) and
    keeps auth.file at the installed /etc/ocpp_gw/passwd, so the service user's access to it is tested too."""
    workdir = Path(tempfile.mkdtemp(prefix="ocpp-gw-installed-"))
    workdir.chmod(0o755)  # the service user must reach the config copy and the notify socket
    port = free_port()
    overrides = {
        "ocpp.listener.ws": f"127.0.0.1:{port}",
        "admin.listener": f"127.0.0.1:{free_port()}",
        "mqtt.server": f"{broker.host}:{broker.port}",
        "mqtt.client_id": f"ocpp-gw-installed-{port}",
        "ocpp.mountpoint": MOUNTPOINT,
        "ocpp.message_format_checking": "upstream_only",
    }
    config = workdir / "ocpp.conf"
    config.write_text(CONFIG.read_text() + "\n" + "".join(f"{k} = {v}\n" for k, v in overrides.items()))
    config.chmod(0o644)
    notifications = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notifications.bind(str(workdir / "notify"))
    (workdir / "notify").chmod(0o666)
    env = {**BARE_ENV, "NOTIFY_SOCKET": str(workdir / "notify"), "WATCHDOG_USEC": "2000000"}
    command = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--init-groups", "--no-new-privs",
               "/usr/bin/ocpp-gw", "-c", str(config)]
    process = subprocess.Popen(as_root(command), env=env, cwd="/", stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = OutputLines(process.stdout, "installed-gateway")
    try:
        ready = output.wait_for_line(matcher("ocpp_gw ready"), timeout=20)
        assert ready, f"installed gateway not ready (exit status {process.poll()}):\n{output.tail()}"
        yield InstalledGateway(f"ws://127.0.0.1:{port}/ocpp/{CID}", process, notifications)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0, f"installed gateway did not stop cleanly on SIGTERM:\n{output.tail()}"
    finally:
        stop_process(process, timeout=5)
        notifications.close()
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"--- installed gateway log (last lines) ---\n{output.tail(100)}")  # shown when a test fails


def charge_point(service: InstalledGateway):
    return connect(service.url, subprotocols=["ocpp1.6"],
                   additional_headers={"Authorization": basic_auth(CID, PASSWORD)}, open_timeout=10)


def test_installed_service_publishes_a_charge_points_boot_notification(service, mqtt_probe):
    mqtt_probe.subscribe(f"{MOUNTPOINT}cp/{CID}")
    boot = {"chargePointVendor": "Debian", "chargePointModel": "Installed"}
    with charge_point(service) as connection:
        connection.send(json.dumps([2, "boot-1", "BootNotification", boot]))
        message = mqtt_probe.expect(f"{MOUNTPOINT}cp/{CID}", json_matches({"UniqueId": "boot-1"}), timeout=10)
    assert message.json == {"MessageTypeId": 2, "UniqueId": "boot-1", "Action": "BootNotification", "Payload": boot,
                            "Protocol": "ocpp1.6"}


def test_installed_service_checks_calls_against_the_bundled_schemas(service):
    with charge_point(service) as connection:
        connection.send(json.dumps([2, "bad-1", "BootNotification", {"chargePointVendor": "Debian"}]))
        answer = json.loads(connection.recv(timeout=10))
    assert answer[:2] == [4, "bad-1"] and "chargePointModel" in answer[3], answer


def test_installed_service_tells_systemd_it_is_ready_alive_reloading_and_stopping(service):
    service.notified("READY=1")
    service.notified("WATCHDOG=1", timeout=5)  # WatchdogSec: 2 s here, so a ping every second

    service.process.send_signal(signal.SIGHUP)  # what ExecReload does
    service.notified("RELOADING=1")
    service.notified("READY=1")

    service.process.send_signal(signal.SIGTERM)
    service.notified("STOPPING=1")
    assert service.process.wait(15) == 0


def test_purge_removes_the_user_the_files_and_the_enablement(installed_deb):
    purge()
    assert not package_installed()
    left = [str(p) for p in (Path("/etc/ocpp_gw"), VENV, Path("/usr/bin/ocpp-gw"), UNIT, ENABLED,
                             Path("/usr/lib/sysusers.d/ocpp-gw.conf")) if p.exists() or p.is_symlink()]
    assert left == []
    assert run(["getent", "passwd", USER], check=False).returncode == 2
    assert run(["getent", "group", USER], check=False).returncode == 2
