"""systemd/ocpp-gw.service: the settings SPEC §8 asks for, and what systemd-analyze says of the file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.packaging.debian_tools import ROOT, run

UNIT = ROOT / "systemd" / "ocpp-gw.service"
EXEC_START = "/usr/bin/ocpp-gw -c /etc/ocpp_gw/ocpp.conf"

REQUIRED = [
    ("Unit", "After", "network-online.target mosquitto.service"),
    ("Unit", "Wants", "network-online.target"),
    ("Service", "Type", "notify"),
    ("Service", "NotifyAccess", "main"),
    ("Service", "WatchdogSec", "30"),
    ("Service", "ExecStart", EXEC_START),
    ("Service", "ExecReload", "/bin/kill -HUP $MAINPID"),
    ("Service", "Restart", "on-failure"),
    ("Service", "RestartPreventExitStatus", "2"),
    ("Service", "User", "ocpp-gw"),
    ("Service", "TimeoutStopSec", "15"),
    ("Service", "LimitNOFILE", "65536"),
    ("Service", "NoNewPrivileges", "yes"),
    ("Service", "ProtectSystem", "strict"),
    ("Service", "ProtectHome", "yes"),
    ("Service", "PrivateTmp", "yes"),
    ("Service", "PrivateDevices", "yes"),
    ("Service", "ProtectKernelTunables", "yes"),
    ("Service", "ProtectKernelModules", "yes"),
    ("Service", "ProtectKernelLogs", "yes"),
    ("Service", "ProtectControlGroups", "yes"),
    ("Service", "RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
    ("Service", "CapabilityBoundingSet", ""),
    ("Service", "LockPersonality", "yes"),
    ("Service", "MemoryDenyWriteExecute", "yes"),
    ("Service", "SystemCallFilter", "@system-service"),
    ("Install", "WantedBy", "multi-user.target"),
]


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Sections of key → every value given (systemd allows repeating a key)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"setting outside a section: {raw!r}"
        assert not line.endswith("\\"), f"continued lines are not used here: {raw!r}"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, dict[str, list[str]]]:
    return parse_unit(UNIT.read_text())


@pytest.mark.parametrize(("section", "key", "value"), REQUIRED, ids=[f"{s}.{k}" for s, k, _ in REQUIRED])
def test_unit_sets(unit, section, key, value):
    assert unit.get(section, {}).get(key) == [value]


def test_unit_is_what_the_package_installs():
    assert (ROOT / "debian" / "ocpp-gw.service").resolve() == UNIT.resolve()


def runnable_copy(tmp_path: Path) -> Path:
    """The unit, with ExecStart's binary swapped for one that exists on this machine when the package is not
    installed: verify checks that the binary is executable, and that is all it asks of it."""
    text = UNIT.read_text()
    if not Path("/usr/bin/ocpp-gw").exists():
        text = text.replace(f"ExecStart={EXEC_START}", f"ExecStart=/bin/true -c /etc/ocpp_gw/ocpp.conf")
    copy = tmp_path / UNIT.name
    copy.write_text(text)
    return copy


def test_unit_passes_systemd_analyze_verify_without_warnings(tmp_path):
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing: `make test` installs the systemd package"
    result = run(["systemd-analyze", "verify", str(runnable_copy(tmp_path))], check=False)
    # Unknown or misspelt keys are only warnings (exit 0), so stderr must be empty too.
    assert (result.returncode, result.stderr) == (0, "")


def test_unit_exposure_is_rated_ok_by_systemd_analyze_security(tmp_path):
    # Exposure 0.0 (locked down) to 10.0 (wide open), threshold in tenths; this unit scores 1.6 with systemd 252.
    result = run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", "--no-pager",
                  str(runnable_copy(tmp_path))], check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
