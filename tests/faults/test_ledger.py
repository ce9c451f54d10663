"""The short ledger run (issue 6): 50 charge points and a backend call each other while the broker restarts,
the gateway is killed and started again, and charge points drop their connections; no call goes unaccounted."""

from __future__ import annotations

import asyncio

from tools.harness.ledger import CP, CSMS, Csms, Fleet, FleetConfig, Ledger, LedgerRun
from tools.harness import TEST_CIDS

OFFLINE_HOLD = 4.0
AWAITING = 3.0
SETTINGS = {
    "ocpp.mountpoint": "ledger/",
    "ocpp.awaiting_timeout": f"{AWAITING:g}s",
    "ocpp.dnstream.offline_hold": f"{OFFLINE_HOLD:g}s",
    "log.level": "info",
}
# A dropped CP stays away up to twice the hold: some come back in time for what was held, some do not.
FLEET = FleetConfig(think=(0.2, 0.8), cp_timeout=20.0, drop_chance=0.03, away=(0.0, 2 * OFFLINE_HOLD))


async def faulted_run(broker, gateway) -> tuple[LedgerRun, object]:
    ledger = Ledger()
    fleet = Fleet(ledger, TEST_CIDS, gateway.ws_url, lambda cid: {"Authorization": gateway.auth_header(cid)},
                  FLEET, seed=6)
    run = LedgerRun(ledger, fleet, Csms(ledger, broker.host, broker.port, gateway.mountpoint),
                    csms_interval=0.03)
    healthz = gateway.admin_url("/healthz")
    await run.start()
    await run.more_calls(600, timeout=15)
    await run.restart_broker(broker, healthz)
    await run.more_calls(600, timeout=15)
    await run.kill_gateway(gateway)
    await run.more_calls(900, timeout=20)
    return run, await run.settle(timeout=AWAITING + OFFLINE_HOLD + 5)


def test_every_call_is_answered_or_accounted_for_through_broker_and_gateway_restarts(broker_factory,
                                                                                     gateway_factory,
                                                                                     no_thread_leaks):
    broker = broker_factory(persistence=True)
    gateway = gateway_factory(SETTINGS, broker=broker)

    run, report = asyncio.run(faulted_run(broker, gateway))

    print(report.format())
    assert report.unaccounted == (), report.format()
    # The faults really happened and the paths they open were taken.
    assert report.faults["broker restart"] == 1 and report.faults["gateway kill"] == 1
    assert report.count(CP, "answered") > 500 and report.count(CSMS, "answered") > 500, report.format()
    assert report.count(CP, "answered", phase="broker down") > 0, report.format()
    assert report.count(CSMS, phase="gateway down") > 0, report.format()
    assert report.count(CP, "own_drop") > 0, report.format()
    assert no_errors_logged(run.killed_logs + gateway.logs)


def no_errors_logged(lines: list[str]) -> bool:
    """True, or fail showing each ERROR line or traceback the gateway logged, with what follows it."""
    starts = [i for i, line in enumerate(lines) if line.startswith(("ERROR", "Traceback"))]
    assert not starts, "the gateway logged errors:\n" + "\n---\n".join("\n".join(lines[i:i + 25]) for i in starts)
    return True
