"""Fixtures for end-to-end tests: real broker, real gateway process, real third-party charge point clients."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent / "node"

# Generous: these tests exercise the happy path, where nothing waits on this deadline.
E2E_SETTINGS = {"ocpp.awaiting_timeout": "10s"}


@pytest.fixture
def e2e_gateway(gateway_factory):
    return gateway_factory(E2E_SETTINGS)


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """tests/e2e/node with its npm dependencies installed (`make test` installs them; this covers a bare pytest)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "node and npm are needed for the ocpp-rpc tests: run `make test` (it installs them)"
    if not (NODE_DIR / "node_modules" / "ocpp-rpc" / "package.json").exists():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=300,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return NODE_DIR
