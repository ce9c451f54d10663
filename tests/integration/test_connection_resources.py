"""What a connected charge point costs the gateway process: one thread, its socket and one eventfd,
all given back when it leaves (issue 7: a second thread per CP doubled the GIL contention)."""

from __future__ import annotations

import contextlib
import os
import time

from tests.helpers.gateway import TEST_CIDS
from tests.integration._support import answered_marker, connect_cp

CPS = 20


def threads_and_fds(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/status") as status:
        threads = next(int(line.split()[1]) for line in status if line.startswith("Threads:"))
    return threads, len(os.listdir(f"/proc/{pid}/fd"))


def wait_for(pid: int, expected: tuple[int, int], timeout: float = 10.0) -> tuple[int, int]:
    deadline = time.monotonic() + timeout
    while (now := threads_and_fds(pid)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return now


def test_each_connected_charge_point_costs_one_thread_and_two_descriptors(module_start):
    gateway = module_start({"ocpp.dnstream.offline_hold": "0s"})
    pid = gateway.process.pid
    idle = threads_and_fds(pid)
    with contextlib.ExitStack() as stack:
        cps = [stack.enter_context(connect_cp(gateway, cid)) for cid in TEST_CIDS[:CPS]]
        for cp in cps:
            assert answered_marker(cp) == []  # the session runs: the gateway answers on its own
        threads, fds = threads_and_fds(pid)
        assert (threads - idle[0], fds - idle[1]) == (CPS, 2 * CPS)
    assert wait_for(pid, idle) == idle, "threads or descriptors were not given back"


def test_a_charge_point_that_drops_its_tcp_connection_gives_everything_back(module_start):
    gateway = module_start({"ocpp.dnstream.offline_hold": "0s"})
    pid = gateway.process.pid
    idle = threads_and_fds(pid)
    with connect_cp(gateway, TEST_CIDS[CPS]) as cp:
        assert answered_marker(cp) == []
        cp.socket.close()  # no close frame: the gateway sees the end of the stream
    assert wait_for(pid, idle) == idle
