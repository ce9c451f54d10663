"""Fixtures for the integration tests: the real gateway process on the session Mosquitto, fast timeouts."""

from __future__ import annotations

import functools

import pytest

from tools.harness import GatewayProcess
from tests.integration._support import FAST_SETTINGS, start_gateway, unique_mountpoint


@pytest.fixture
def start(gateway_factory):
    """start(overrides) → a running gateway with fast timeouts and a mountpoint of its own."""
    return functools.partial(start_gateway, gateway_factory)


@pytest.fixture
def gw(start):
    """A gateway of this test's own, with the integration defaults (_support.FAST_SETTINGS)."""
    return start()


@pytest.fixture(scope="module")
def module_start(tmp_path_factory, broker, passwd_file):
    """Like `start`, but the gateway lives until the end of the module: for tests that leave nothing
    behind (refused handshakes, closed connections) or use cids no other test of the module uses."""
    made: list[GatewayProcess] = []

    def make(overrides: dict | None = None, *, start: bool = True) -> GatewayProcess:
        settings = {**FAST_SETTINGS, "ocpp.mountpoint": unique_mountpoint(), **(overrides or {})}
        gateway = GatewayProcess(tmp_path_factory.mktemp("module-gateway"), broker, passwd_file, settings)
        made.append(gateway)
        return gateway.start() if start else gateway

    yield make
    for gateway in made:
        if gateway.output is None:
            continue  # never started
        try:
            gateway.stop()
        finally:
            print(f"--- module gateway {gateway.client_id} log (last lines) ---\n{gateway.output.tail(200)}")


@pytest.fixture(scope="module")
def shared_gw(module_start):
    """One gateway with the integration defaults for the whole module."""
    return module_start()


@pytest.fixture
def watch(mqtt_probe):
    """watch(gateway) → the MQTT probe, subscribed to everything under that gateway's mountpoint."""
    def subscribe(gateway):
        return mqtt_probe.subscribe(f"{gateway.mountpoint}#")
    return subscribe
