"""How many QoS 1 messages the gateway's MQTT link sends ahead of their PUBACKs, against a real Mosquitto
that is stopped (SIGSTOP) so that no acknowledgement comes back while the test publishes."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ocpp_gw.mqtt.link import LinkConfig, MqttLink
from ocpp_gw.stats import Stats


def _link(broker, mqtt5: bool) -> MqttLink:
    tag = uuid.uuid4().hex[:8]
    config = LinkConfig(servers=((broker.host, broker.port),), client_id=f"flow-{tag}", mqtt5=mqtt5,
                        status_topic=f"flow/{tag}/status")
    link = MqttLink(config, Stats(), lambda topic, payload: None)
    link.start()
    assert link.connected.wait(10)
    return link


def _subscriber(broker, topic: str, expected: int):
    """A subscriber that sets the returned event once `expected` messages arrived on `topic`."""
    received, done, subscribed = [], threading.Event(), threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"flow-sub-{uuid.uuid4().hex[:8]}")

    def on_message(client, userdata, message):
        received.append(message.payload)
        if len(received) >= expected:
            done.set()

    client.on_message = on_message
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_connect = lambda client, *args: client.subscribe(topic, qos=1)
    client.connect(broker.host, broker.port, 30)
    client.loop_start()
    assert subscribed.wait(10)
    return client, received, done


def _stopped(process) -> bool:
    with open(f"/proc/{process.pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "T"


def _pause(broker) -> None:
    os.kill(broker.process.pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while not _stopped(broker.process):
        assert time.monotonic() < deadline, "mosquitto did not stop"
        time.sleep(0.01)


def _burst_while_the_broker_is_paused(broker, link: MqttLink, count: int) -> int:
    """Publish `count` QoS 1 messages with no PUBACK possible; how many went out unacknowledged. Then let
    the broker go on and check that every message reaches a subscriber, in order."""
    topic = f"flow/{uuid.uuid4().hex[:8]}"
    subscriber, received, done = _subscriber(broker, topic, count)
    try:
        _pause(broker)
        try:
            for i in range(count):
                link.publish(topic, str(i), 1)
            in_flight = link.unacknowledged()
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)
        assert done.wait(20), f"{len(received)} of {count} arrived"
        assert received == [str(i).encode() for i in range(count)]
        return in_flight
    finally:
        subscriber.disconnect()
        subscriber.loop_stop()


def _unacknowledged_in_a_burst(broker, mqtt5: bool, count: int) -> int:
    link = _link(broker, mqtt5)
    try:
        return _burst_while_the_broker_is_paused(broker, link, count)
    finally:
        link.stop()


def test_mqtt311_link_sends_a_burst_without_waiting_for_pubacks(broker_factory):
    assert _unacknowledged_in_a_burst(broker_factory(), mqtt5=False, count=300) == 300


def test_mqtt5_link_keeps_to_the_receive_maximum_of_the_brokers_connack(broker_factory):
    broker = broker_factory(extra_config="max_inflight_messages 5")  # Mosquitto's Receive Maximum for v5
    assert _unacknowledged_in_a_burst(broker, mqtt5=True, count=50) == 5


def test_mqtt5_messages_queued_before_the_connection_all_arrive_in_order_within_the_window(broker_factory):
    """paho marks everything unacknowledged to be sent again on (re)connect; the link then holds back all
    but the broker's Receive Maximum, which must not stall the rest."""
    broker = broker_factory(extra_config="max_inflight_messages 5")
    tag = uuid.uuid4().hex[:8]
    topic = f"flow/{tag}/queued"
    subscriber, received, done = _subscriber(broker, topic, 40)
    config = LinkConfig(servers=((broker.host, broker.port),), client_id=f"flow-{tag}", mqtt5=True,
                        status_topic=f"flow/{tag}/status")
    link = MqttLink(config, Stats(), lambda topic, payload: None)
    try:
        for i in range(40):
            link.publish(topic, str(i), 1)  # not connected yet: paho keeps them
        link.start()
        assert done.wait(20), f"{len(received)} of 40 arrived"
        assert received == [str(i).encode() for i in range(40)]
    finally:
        link.stop()
        subscriber.disconnect()
        subscriber.loop_stop()
