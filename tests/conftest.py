"""Shared fixtures: a real Mosquitto, the gateway as a subprocess, MQTT probes, the reference backend."""

from __future__ import annotations

import gc
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
from tools.harness.gateway import RUNNING  # noqa: E402
from tools.harness.leaks import FINDINGS, excess_after, resources  # noqa: E402

# What an in-process gateway's threads are called: ours, and paho's network loop.
GATEWAY_THREAD_PREFIXES = ("ocpp-", "paho-")
IN_PROCESS_GATEWAY_PREFIX = "ocpp-"
# Seconds an in-process test gets, after its fixtures are gone, for its threads to end and sockets to close.
IN_PROCESS_GRACE = 5.0


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
            gateway.record_leaks()  # the test's charge points are gone: back to idle before it stops?
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


@pytest.fixture(autouse=True)
def no_leaks(monkeypatch):
    """Every test: each gateway it used ends with no more threads or descriptors than it had idle after start.

    Subprocess gateways are read through /proc/<pid>: a gateway of the test's own just before its fixture stops
    it, one shared by a module at the end of each test. A gateway run in this process (its threads are named
    ocpp-*) must have ended its threads, and this process must hold no more descriptors than before the test.
    Each check waits up to a deadline, so a thread still finishing or a socket still closing is not mistaken for
    a leak."""
    threads_before = set(threading.enumerate())
    fds_before = resources().descriptors()
    started = _record_thread_starts(monkeypatch)
    yield
    findings = FINDINGS.take()
    for gateway in list(RUNNING):  # those that outlive the test: shared by its module
        finding = gateway.leaks()
        if finding is not None:
            findings.append(finding)
    threads = leaked_threads(threads_before, IN_PROCESS_GRACE, GATEWAY_THREAD_PREFIXES)
    if threads:
        findings.append("in-process gateway threads still running: " + ", ".join(t.name for t in threads))
    if any(name.startswith(IN_PROCESS_GATEWAY_PREFIX) for name in started):
        over = resources().descriptors().over(fds_before)
        if over is not None:
            gc.collect()  # sockets and files the test dropped without closing are closed by their finalizers
            over = excess_after(lambda: resources().descriptors(), fds_before, IN_PROCESS_GRACE)
        if over is not None:
            findings.append(f"this process, which ran gateway parts: {over}")
    if findings:
        pytest.fail("resources leaked:\n  " + "\n  ".join(findings), pytrace=False)


def _record_thread_starts(monkeypatch) -> list[str]:
    """The names of the threads started from now on in this process (while `monkeypatch` is in force)."""
    names: list[str] = []
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        names.append(thread.name)
        original(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    return names
