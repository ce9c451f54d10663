"""The gateway's paho client against a real Mosquitto, where descriptor numbers are high.

With two descriptors per charge point, the MQTT socket of a reconnect gets a number above 1024 once a
few hundred CPs are connected; paho's select() cannot wait on it and never connected again."""

from __future__ import annotations

import os
import resource
import threading
import uuid

import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ocpp_gw.mqtt.client import BufferedClient

SELECT_LIMIT = 1024  # FD_SETSIZE


@pytest.fixture
def low_descriptors_taken():
    """Hold every descriptor below 1024 for the test, as thousands of CP connections would."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2 * SELECT_LIMIT:  # a default soft limit of 1024 would stop us one short
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * SELECT_LIMIT), hard))
    held = []
    try:
        while True:
            fd = os.open(os.devnull, os.O_RDONLY)
            held.append(fd)
            if fd >= SELECT_LIMIT:
                break
        yield
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_client_on_a_descriptor_above_1024_connects_publishes_and_receives(broker, low_descriptors_taken):
    connected, received = threading.Event(), []
    arrived = threading.Event()
    topic = f"it-high-fd/{uuid.uuid4().hex[:8]}"
    client = BufferedClient(CallbackAPIVersion.VERSION2, client_id=f"high-fd-{uuid.uuid4().hex[:8]}")

    def on_connect(client, userdata, flags, reason_code, properties):
        client.subscribe(topic, qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        connected.set()

    def on_message(client, userdata, message):
        received.append(message.payload)
        arrived.set()

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect_async(broker.host, broker.port, 10)
    client.loop_start()
    try:
        assert connected.wait(10), "no CONNACK/SUBACK: paho could not wait on its socket"
        assert client.socket().fileno() >= SELECT_LIMIT
        client.publish(topic, b"over 1024", qos=1)
        assert arrived.wait(10)
        assert received == [b"over 1024"]
    finally:
        client.disconnect()
        client.loop_stop()
