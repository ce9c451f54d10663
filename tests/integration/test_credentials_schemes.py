"""The running gateway lets in charge points whose lines were written before the machine-made scheme
existed, and ones onboarded with `ocpp-gw passwd import` (stdin and file) — through the real CLI and a
real WebSocket handshake."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tools.harness.gateway import ROOT, basic_auth

OLD_FILE = ROOT / "tests" / "data" / "credentials" / "passwd-written-before-machine-made-hashes"
OLD_PASSWORDS = {"CP-OLD-1": "operator chosen pw 1", "CP-OLD-2": "Tr0ub4dor&3:with:colons",
                 "CP-OLD-3": "aUhTDgfuXHVzvsK-agOl5VfS"}
IMPORTED_KEYS = {f"DEPOT-{n:03d}": f"{n:03d}-csms-made-key-0123456789abcdef" for n in range(1, 41)}
IMPORTED_CHOSEN = {"DEPOT-PERSON": "a person's own password"}


def ocpp_gw(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ocpp_gw", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=60)


def handshake_status(gateway, cid: str, password: str) -> int:
    try:
        with connect(gateway.ws_url(cid), subprotocols=["ocpp1.6"], open_timeout=10,
                     additional_headers={"Authorization": basic_auth(cid, password)}):
            return 101
    except InvalidStatus as refused:
        return refused.response.status_code


@pytest.fixture
def imported_file(tmp_path: Path) -> Path:
    """The old file, then a depot imported from stdin (machine-made) and one line from a file (scrypt)."""
    path = tmp_path / "passwd"
    shutil.copy(OLD_FILE, path)
    lines = "".join(f"{cid}:{key}\n" for cid, key in IMPORTED_KEYS.items())
    result = ocpp_gw("passwd", "import", "--machine-made", "--file", str(path), stdin=lines)
    assert result.returncode == 0, result.stderr
    assert "40 added, 0 updated" in result.stderr and "reload" in result.stderr
    source = tmp_path / "people.txt"
    source.write_text("".join(f"{cid}:{password}\n" for cid, password in IMPORTED_CHOSEN.items()))
    result = ocpp_gw("passwd", "import", str(source), "--file", str(path))
    assert result.returncode == 0, result.stderr
    return path


def test_gateway_lets_in_old_and_imported_charge_points_and_refuses_wrong_passwords(start, imported_file):
    gateway = start({"auth.file": imported_file})
    every = {**OLD_PASSWORDS, **IMPORTED_KEYS, **IMPORTED_CHOSEN}
    # CP-OLD-2 is registered for profile 2: on plain ws its right password gets 403, a wrong one 401.
    for cid, password in every.items():
        assert handshake_status(gateway, cid, password) == (403 if cid == "CP-OLD-2" else 101), cid
    assert handshake_status(gateway, "CP-OLD-2", "Tr0ub4dor&3") == 401
    assert handshake_status(gateway, "CP-OLD-1", "operator chosen pw 2") == 401
    assert handshake_status(gateway, "DEPOT-001", IMPORTED_KEYS["DEPOT-002"]) == 401


def test_import_with_a_bad_line_exits_2_naming_it_and_leaves_the_file(tmp_path: Path):
    path = tmp_path / "passwd"
    shutil.copy(OLD_FILE, path)
    result = ocpp_gw("passwd", "import", "--machine-made", "--file", str(path),
                     stdin="GOOD:0123456789abcdef0123\nBAD+CID:0123456789abcdef0123\n")
    assert result.returncode == 2
    assert "<stdin>:2: cid must not contain '+'" in result.stderr
    assert path.read_bytes() == OLD_FILE.read_bytes()
