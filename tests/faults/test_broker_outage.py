"""Broker outage (issue 6): charge points stay connected, their calls wait for the broker (bounded, and the call
beyond the bound is answered InternalError), /healthz says so, and the gateway reconnects with growing pauses."""

from __future__ import annotations

import contextlib
import itertools
import json

from tests.faults._support import (
    AttemptCounter,
    healthz,
    persistent_backend,
    start_gateway,
    wait_for_health,
)
from tools.harness import json_matches
from tests.integration._support import answered_marker, connect_cp, recv_frame, topics

HEARTBEAT_REPLY = {"currentTime": "2026-01-01T00:00:00Z"}


def test_a_cp_stays_connected_through_a_broker_outage_and_its_call_is_delivered_after(broker_factory,
                                                                                      gateway_factory):
    broker = broker_factory(persistence=True)
    gateway = start_gateway(gateway_factory, {"ocpp.awaiting_timeout": "30s"}, broker=broker)
    cp001 = topics(gateway, "CP001")
    with persistent_backend(broker) as backend, connect_cp(gateway, "CP001") as cp:
        backend.subscribe(cp001.call)
        broker.stop()
        wait_for_health(gateway, 503)

        cp.send(json.dumps([2, "during-outage", "Heartbeat", {}]))
        assert answered_marker(cp) == []  # handled, neither answered nor refused: it waits for the broker

        broker.start()
        call = backend.expect(cp001.call, json_matches({"UniqueId": "during-outage"}), timeout=20).json
        assert call == {"MessageTypeId": 2, "UniqueId": "during-outage", "Action": "Heartbeat", "Payload": {},
                        "Protocol": "ocpp1.6"}
        backend.publish(cp001.dnstream, {"MessageTypeId": 3, "UniqueId": "during-outage",
                                          "Payload": HEARTBEAT_REPLY})
        assert recv_frame(cp, timeout=10) == [3, "during-outage", HEARTBEAT_REPLY]  # same connection


def test_the_call_beyond_the_mqtt_queue_bound_is_answered_internal_error_and_the_queued_ones_arrive(
        broker_factory, gateway_factory):
    broker = broker_factory(persistence=True)
    gateway = start_gateway(gateway_factory, {"mqtt.max_queued_messages": 2, "ocpp.awaiting_timeout": "30s"},
                            broker=broker)
    cids = ["CP002", "CP003", "CP004", "CP005"]
    with persistent_backend(broker) as backend, contextlib.ExitStack() as stack:
        backend.subscribe(f"{gateway.mountpoint}cp/+")
        backend.subscribe(f"{gateway.mountpoint}events/+")
        cps = {cid: stack.enter_context(connect_cp(gateway, cid)) for cid in cids}
        for cid in cids:  # their connected events are out of the gateway's queue before the outage
            backend.expect(topics(gateway, cid).event, json_matches({"event": "connected"}))
        broker.stop()
        wait_for_health(gateway, 503)

        queued, refused = [], []
        for cid, cp in cps.items():  # one call each, one after the other
            cp.send(json.dumps([2, f"q-{cid}", "Heartbeat", {}]))
            # A refusal may follow the first marker's answer (it is found when the step's output is
            # published); by the second marker's answer it has been sent.
            answers = answered_marker(cp) + answered_marker(cp)
            (refused if answers else queued).append((cid, answers))

        assert [cid for cid, _ in queued] == cids[:2]
        assert refused == [(cid, [[4, f"q-{cid}", "InternalError", "central system unreachable", {}]])
                           for cid in cids[2:]]
        broker.start()
        for cid, _ in queued:
            backend.expect(topics(gateway, cid).call, json_matches({"UniqueId": f"q-{cid}"}), timeout=20)


def test_healthz_answers_503_while_the_broker_is_down_and_200_once_it_is_back(private_broker, gateway_factory):
    gateway = start_gateway(gateway_factory, broker=private_broker)
    assert healthz(gateway) == 200

    private_broker.stop()
    wait_for_health(gateway, 503)
    private_broker.start()
    wait_for_health(gateway, 200, timeout=20)


def test_the_gateway_retries_the_broker_with_growing_pauses(private_broker, gateway_factory):
    gateway = start_gateway(gateway_factory, broker=private_broker)
    private_broker.stop()
    wait_for_health(gateway, 503)
    with AttemptCounter(private_broker.host, private_broker.port) as counter:
        attempts = counter.wait_for(3, timeout=20)  # about 1, 3 and 7 s after the loss: 1 s, doubling

    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert len(gaps) == 2 and gaps[0] > 1.5 and gaps[1] > 1.5 * gaps[0], attempts
