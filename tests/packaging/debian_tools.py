"""Helpers for the Debian package tests: running commands, as root, with a bare environment.

The install tests need root (or password-less sudo): they are meant for a throwaway CI machine, where `make test`
runs them. Commands of the installed package run with a bare environment, so nothing of the repository or its
virtualenv can stand in for what the package ships.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "ocpp-gw"
# Left while the tests' own installation is on the machine, so a run that was killed can be cleaned up by the next;
# an ocpp-gw installed without it is someone's real one, which the tests refuse to touch.
MARKER = Path("/var/tmp/ocpp-gw-packaging-tests.installed")
BARE_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
APT_ENV = {**BARE_ENV, "DEBIAN_FRONTEND": "noninteractive"}
BUILD_TIMEOUT = 480
APT_TIMEOUT = 240


def as_root(command: list[str]) -> list[str]:
    return command if os.geteuid() == 0 else ["sudo", "-n", *command]


def run(command: list[str], *, timeout: float = 60, check: bool = True, env: dict | None = None,
        input: str | None = None, cwd: str | Path = "/") -> subprocess.CompletedProcess:
    """Run and capture; on failure the assertion shows the command and everything it printed."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env or BARE_ENV,
                            input=input, cwd=cwd)
    if check:
        assert result.returncode == 0, (
            f"{' '.join(command)} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}")
    return result


def package_installed() -> bool:
    status = run(["dpkg-query", "-W", "-f=${Status}", PACKAGE], check=False)
    return status.returncode == 0 and status.stdout.endswith(" installed")


def purge() -> subprocess.CompletedProcess:
    return run(as_root(["apt-get", "purge", "-y", "-q", PACKAGE]), env=APT_ENV, timeout=APT_TIMEOUT)
