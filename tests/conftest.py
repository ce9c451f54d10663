"""Shared fixtures: a real Mosquitto, the gateway as a subprocess, MQTT probes, the reference backend."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
for importable in (ROOT, ROOT / "examples"):  # `tools.harness` and `csms_responder`
    if str(importable) not in sys.path:
        sys.path.insert(0, str(importable))

from tools.harness import (  # noqa: E402
    GatewayProcess,
    Mosquitto,
    MqttProbe,
    leaked_threads,
    stop_process,
    write_credentials,
)


# The tiers, one per folder of tests/. A slow tier's tests get its marker and the umbrella `slow` (registered in
# pyproject.toml): `pytest -m "not slow"` (make test-fast) leaves them out, plain `pytest` (make test) runs them all.
# Slow: each test waits seconds on a fault or a cluster, drives Chromium, or builds and installs the .deb.
FAST_TIERS = ("unit", "bench_tools", "security", "integration", "e2e")
SLOW_TIERS = ("browser", "cluster", "faults", "packaging")


def tier_of(path: Path) -> str | None:
    """The folder of tests/ a test file is in; None for a file outside tests/."""
    try:
        return path.resolve().relative_to(Path(__file__).resolve().parent).parts[0]
    except ValueError:
        return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = tier_of(item.path)
        if tier in SLOW_TIERS:
            item.add_marker(tier)
            item.add_marker("slow")


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """One Mosquitto for the whole session (no persistence). Has .host, .port, .restart(), .stop(), .start()."""
    mosquitto = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield mosquitto
    mosquitto.stop()


@pytest.fixture
def broker_factory(tmp_path):
    """Private brokers for tests that stop, restart or need persistence: broker_factory(persistence=True)."""
    started: list[Mosquitto] = []

    def make(**options) -> Mosquitto:
        mosquitto = Mosquitto(tmp_path / f"mosquitto-{len(started)}", **options).start()
        started.append(mosquitto)
        return mosquitto

    yield make
    for mosquitto in started:
        mosquitto.stop()


@pytest.fixture
def private_broker(broker_factory):
    """A broker of this test's own, free to be stopped and restarted."""
    return broker_factory()


@pytest.fixture(scope="session")
def passwd_file(tmp_path_factory) -> Path:
    """Credentials CP001..CP050, each with password `password_for(cid)` (hashed once per session)."""
    return write_credentials(tmp_path_factory.mktemp("auth") / "passwd")


@pytest.fixture
def gateway_factory(tmp_path, broker, passwd_file):
    """gateway_factory(overrides={...}, broker=None, start=True) → a running GatewayProcess, stopped after the test."""
    made: list[GatewayProcess] = []

    def make(overrides: dict | None = None, *, broker=broker, start: bool = True) -> GatewayProcess:
        gateway = GatewayProcess(tmp_path / f"gateway-{len(made)}", broker, passwd_file, overrides)
        made.append(gateway)
        return gateway.start() if start else gateway

    yield make
    for gateway in made:
        if gateway.output is not None:
            stop_process(gateway.process, timeout=10)
            print(f"--- gateway {gateway.client_id} log (last lines) ---\n{gateway.output.tail(200)}")


@pytest.fixture
def gateway(gateway_factory):
    """A gateway with the test defaults, on the session broker."""
    return gateway_factory()


@pytest.fixture
def mqtt_probe(broker):
    """An MQTT client on the session broker: .subscribe(filter), .expect(filter, predicate, timeout), .publish()."""
    with MqttProbe(broker.host, broker.port) as probe:
        yield probe


@pytest.fixture
def responder(broker):
    """The reference backend (examples/csms_responder.py) answering on the session broker with default topics."""
    from csms_responder import Responder

    with Responder(broker.host, broker.port) as backend:
        yield backend


@pytest.fixture
def no_thread_leaks():
    """Opt-in: fail the test if threads it started are still alive shortly after it ends. List it after the other
    fixtures, so that their threads count as already there; the harness's own output drains are ignored."""
    before = set(threading.enumerate())
    yield
    leaked = leaked_threads(before, grace=5.0)
    if leaked:
        pytest.fail("test leaked threads: " + ", ".join(thread.name for thread in leaked), pytrace=False)
