"""The test harness itself: the broker fixtures and the MQTT probe behave as the other tests rely on."""

from __future__ import annotations

import threading

import pytest

from tools.harness import MqttProbe, leaked_threads, mqtt_connack


def test_session_broker_accepts_mqtt_connections(broker):
    assert mqtt_connack(broker.host, broker.port, timeout=2)


def test_restarted_broker_keeps_its_port(private_broker):
    port = private_broker.port
    private_broker.stop()
    assert not mqtt_connack(private_broker.host, port, timeout=1)

    private_broker.start()
    assert private_broker.port == port
    assert mqtt_connack(private_broker.host, port, timeout=2)


def test_persistent_broker_delivers_queued_qos1_messages_after_a_restart(broker_factory):
    broker = broker_factory(persistence=True)
    subscriber = MqttProbe(broker.host, broker.port, client_id="durable-subscriber", clean_session=False)
    subscriber.connect().subscribe("durable/topic", qos=1)
    subscriber.close()

    with MqttProbe(broker.host, broker.port) as publisher:
        publisher.publish("durable/topic", {"n": 1}, qos=1)
    broker.restart()

    subscriber.connect()
    try:
        assert subscriber.expect("durable/topic", timeout=5).json == {"n": 1}
    finally:
        subscriber.close()


def test_probe_keeps_messages_it_was_not_asked_for_yet(mqtt_probe):
    mqtt_probe.subscribe("harness/#")
    mqtt_probe.publish("harness/a", {"n": 1})
    mqtt_probe.publish("harness/b", {"n": 2})

    assert mqtt_probe.expect("harness/b").json == {"n": 2}
    assert mqtt_probe.expect("harness/a").json == {"n": 1}
    mqtt_probe.expect_none("harness/#", within=0.2)


def test_probe_expect_fails_with_what_it_saw(mqtt_probe):
    mqtt_probe.subscribe("harness2/#")
    mqtt_probe.publish("harness2/x", {"n": 3})
    with pytest.raises(AssertionError, match="harness2/x"):
        mqtt_probe.expect("harness2/y", timeout=0.3)


def test_leaked_threads_names_a_thread_still_running_and_forgets_a_finished_one():
    before = set(threading.enumerate())
    release = threading.Event()
    worker = threading.Thread(target=release.wait, name="lingering-worker")
    worker.start()

    assert leaked_threads(before, grace=0.05) == [worker]
    release.set()
    assert leaked_threads(before, grace=5) == []


def test_a_gateway_holding_a_charge_point_is_over_its_idle_state_until_the_charge_point_leaves(gateway):
    from tools.harness.leaks import FINDINGS
    from tests.security.wire import RawClient

    with RawClient(("127.0.0.1", gateway.port)) as client:
        assert client.upgrade("/ocpp/CP001", {"Authorization": gateway.auth_header("CP001")}).status == 101
        finding = gateway.leaks(timeout=0.2)
        assert finding is not None and "threads" in finding and "descriptors" in finding, finding
        gateway.record_leaks(timeout=0.2)  # what gateway_factory does before it stops a gateway
        recorded = FINDINGS.take()
        assert len(recorded) == 1 and recorded[0].startswith(f"gateway {gateway.client_id} "), recorded
    assert gateway.leaks() is None


def test_resources_over_a_baseline_name_the_new_threads_and_descriptors():
    from tools.harness.leaks import Resources

    idle = Resources({1: "python", 2: "ocpp-accept-ws"}, {0: "/dev/null", 3: "socket:[1]"})
    busy = Resources({1: "python", 2: "ocpp-accept-ws", 9: "ocpp-conn"}, {0: "/dev/null", 3: "socket:[1]",
                                                                         7: "socket:[2]"})
    assert busy.over(idle) == ("3 threads, 2 at idle (new: ocpp-conn); "
                               "3 descriptors, 2 at idle (new: 7→socket:[2])")
    assert idle.over(busy) is None
