"""Everything under this folder runs on RabbitMQ's MQTT plugin instead of Mosquitto: the session
`broker` is overridden, so every fixture built on it (gateway_factory, mqtt_probe, responder, the
integration and e2e fixtures re-exported below) talks to the RabbitMQ node."""

from __future__ import annotations

import pytest

# The fixtures of the folders the adopted tests come from (conftest fixtures are per folder).
from tests.e2e.conftest import e2e_gateway  # noqa: F401
from tests.integration.conftest import gw, module_start, shared_gw, start, watch  # noqa: F401


@pytest.fixture(scope="session")
def broker(rabbitmq):
    return rabbitmq
