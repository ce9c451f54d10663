"""Several brokers (`mqtt.server = A, B`): the node in use is stopped, the gateway moves to the other, charge points
stay connected and the ledger accounts for every call across the move.

The two Mosquittos stand for two nodes of a cluster: A bridges every topic both ways to B, so a backend connected
to B sees what the gateway publishes on A and the other way round. The bridge is a clean session: when A goes,
B forgets A's subscriptions, so a backend call published in the moment the gateway is on neither node is refused
by B with "no matching subscribers" (an MQTT 5 backend is told) instead of being queued for a node that is gone.
What a real cluster must replicate for no loss at all is in docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request

from tools.harness.ledger import CP, CSMS, Csms, Fleet, FleetConfig, Ledger, LedgerRun, until
from tests.faults._support import start_gateway
from tools.harness import TEST_CIDS

AWAITING = 3.0
CHARGERS = TEST_CIDS[:20]
# No drops of their own: every charger that reconnects would be one the move cost.
# The gateway gives a CP call no answer of its own when the CSMS's is lost: the CP's deadline ends it.
FLEET = FleetConfig(think=(0.1, 0.4), cp_timeout=6.0, drop_chance=0.0)
MOVE_WITHIN = 10.0


def bridge_to(node) -> str:
    """Mosquitto config lines bridging every topic, QoS 1, both ways to `node`."""
    return "\n".join([
        "connection cluster-link",
        f"address {node.host}:{node.port}",
        "topic # both 1",
        "cleansession true",
        "try_private true",
        "restart_timeout 1",
        "notifications false",
    ])


def health(gateway) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(gateway.admin_url("/healthz"), timeout=2) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)


async def moved(gateway, node, timeout: float) -> None:
    """Returns once /healthz says the gateway is up on `node`; fails after `timeout`."""
    address = f"{node.host}:{node.port}"
    if not await until(lambda: health(gateway) == (200, {"status": "ok", "mqtt": "up", "mqtt_server": address,
                                                         "listeners": "up"}), timeout):
        raise AssertionError(f"not on {address} within {timeout} s: /healthz says {health(gateway)}")


async def failover_run(node_a, node_b, gateway) -> tuple:
    ledger = Ledger()
    fleet = Fleet(ledger, CHARGERS, gateway.ws_url, lambda cid: {"Authorization": gateway.auth_header(cid)},
                  FLEET, seed=11)
    run = LedgerRun(ledger, fleet, Csms(ledger, node_b.host, node_b.port, gateway.mountpoint), csms_interval=0.03)
    await run.start()
    await moved(gateway, node_a, 5)
    await run.more_calls(300, timeout=20)
    ledger.broker_node_stopping()
    stopping = time.monotonic()
    await asyncio.to_thread(node_a.stop)
    ledger.broker_node_gone()
    await moved(gateway, node_b, MOVE_WITHIN)
    took = time.monotonic() - stopping
    await run.more_calls(300, timeout=20)
    connects = fleet.connects
    return took, connects, await run.settle(timeout=FLEET.cp_timeout + AWAITING)


def test_the_gateway_moves_to_the_other_broker_when_the_one_in_use_stops_and_no_call_is_lost(
        broker_factory, gateway_factory):
    node_b = broker_factory()
    node_a = broker_factory(extra_config=bridge_to(node_b))
    gateway = start_gateway(gateway_factory, {
        "mqtt.server": f"{node_a.host}:{node_a.port}, {node_b.host}:{node_b.port}",
        "mqtt.protocol": "5",
        "ocpp.awaiting_timeout": f"{AWAITING:g}s",
        "log.level": "info",
    }, broker=node_a)

    took, connects, report = asyncio.run(failover_run(node_a, node_b, gateway))

    print(report.format())
    print(f"moved to the other broker {took:.2f} s after node A was told to stop")
    assert took < MOVE_WITHIN
    assert report.unaccounted == (), report.format()
    assert connects == len(CHARGERS), "a charge point had to reconnect: the move cost it its connection"
    assert report.count(CP, "closed_by_gateway") == 0
    assert report.count(CP, "answered") > 300 and report.count(CSMS, "answered") > 100, report.format()
    gateway.wait_for_log(rf"MQTT connected to {node_b.host}:{node_b.port}")
