"""Fixtures for the cluster tests: a RabbitMQ node (MQTT plugin) for the whole session, a broker
parameter (Mosquitto and RabbitMQ), HAProxy in front of gateway instances."""

from __future__ import annotations

import pytest

from tests.cluster._support import Backend, HaProxy, RabbitMq
from tools.harness import MqttProbe

BROKERS = ["mosquitto", "rabbitmq"]


@pytest.fixture(scope="session")
def rabbitmq(tmp_path_factory):
    """One private RabbitMQ node with rabbitmq_mqtt for the session (it takes seconds to boot)."""
    node = RabbitMq(tmp_path_factory.mktemp("rabbitmq")).start()
    yield node
    node.stop()


@pytest.fixture(params=BROKERS)
def any_broker(request):
    """Each test that asks for it runs once on Mosquitto (the session `broker`) and once on RabbitMQ."""
    return request.getfixturevalue("broker" if request.param == "mosquitto" else "rabbitmq")


@pytest.fixture
def probe_on():
    """probe_on(broker) → a connected MqttProbe on that broker, closed after the test."""
    probes: list[MqttProbe] = []

    def make(broker, **options) -> MqttProbe:
        probe = MqttProbe(broker.host, broker.port, **options).connect()
        probes.append(probe)
        return probe

    yield make
    for probe in probes:
        probe.close()


@pytest.fixture
def haproxy_in_front(tmp_path):
    """haproxy_in_front(gateways) → HAProxy (from deploy/haproxy.cfg) balancing ws across the gateways,
    servers named after their MQTT client ids, started and seen UP."""
    started: list[HaProxy] = []

    def make(gateways) -> HaProxy:
        backends = [Backend(gateway.client_id, gateway.port, gateway.admin_port) for gateway in gateways]
        proxy = HaProxy(tmp_path / f"haproxy-{len(started)}", {"ocpp_gw_ws": backends}).start()
        started.append(proxy)
        proxy.wait_for_states({backend.name: "UP" for backend in backends})
        return proxy

    yield make
    for proxy in started:
        proxy.stop()
        print(f"--- haproxy log (last lines) ---\n{proxy.output.tail(80)}")
