"""What a connected charge point costs the gateway process: one thread, its socket and one eventfd,
all given back when it leaves (issue 7: a second thread per CP doubled the GIL contention)."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import time
import urllib.request

from tools.harness.gateway import TEST_CIDS, render_config
from websockets.exceptions import InvalidStatus

from tests.integration._support import answered_marker, connect_cp, read_http_response, upgrade_request

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


OPEN_FILES_LIMIT = 80


def leave_an_odd_number_free(pid: int) -> int:
    """Lower the running gateway's open files limit so that an odd number of descriptors is free: the last CP
    in then gets its socket but not its doorbell (each CP needs two). Returns the limit now in force."""
    base = threads_and_fds(pid)[1]
    limit = OPEN_FILES_LIMIT - (OPEN_FILES_LIMIT - base + 1) % 2
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
    return limit


def fill_up(gateway, stack: contextlib.ExitStack):
    """Connect CPs until one is refused: (the CPs in, the refused cid, the refusal)."""
    cps = []
    for cid in TEST_CIDS:
        try:
            cp = stack.enter_context(connect_cp(gateway, cid))
        except InvalidStatus as refused:
            return cps, cid, refused.response
        assert answered_marker(cp) == []
        cps.append(cp)
    raise AssertionError(f"{len(cps)} CPs in, none refused")


def test_a_charge_point_beyond_the_open_files_limit_gets_503_and_the_next_one_in_gets_in(start):
    gateway = start({"ocpp.dnstream.offline_hold": "0s"}, start=False)
    gateway.settings["admin.listener"] = f"127.0.0.1:{gateway.admin_port}"  # for the counters
    gateway.config_path.write_text(render_config(gateway.settings))
    gateway.open_files_limit = OPEN_FILES_LIMIT
    gateway.start()
    gateway.wait_for_log(r"open files limit \(80\) holds only about \d+ charge points")
    pid = gateway.process.pid
    limit = leave_an_odd_number_free(pid)
    base = threads_and_fds(pid)[1]
    with contextlib.ExitStack() as stack:
        cps, cid, refusal = fill_up(gateway, stack)
        # Each CP holds two descriptors (the socket, the doorbell); logins may hold one briefly.
        assert len(cps) >= (limit - base) // 2 - 1
        assert refusal.status_code == 503 and refusal.headers.get("Retry-After") == "10"
        assert b"out of file descriptors" in refusal.body
        gateway.wait_for_log(rf"\[{cid}\] no file descriptor left")
        threads = threads_and_fds(pid)[0]
        cps.pop().close()
        wait_for(pid, (threads - 1, base + 2 * len(cps)))
        with connect_cp(gateway, cid) as late:  # room again once one has left
            assert answered_marker(late) == []
    with urllib.request.urlopen(gateway.admin_url("/api/v1/stats"), timeout=5) as reply:
        counters = json.load(reply)["counters"]
    assert counters["refused.no_file_descriptors"] >= 1


def test_with_no_descriptor_left_connections_wait_in_the_backlog_and_the_gateway_warns_once(start):
    # A long handshake deadline: the connection that holds the last descriptor must not be closed.
    gateway = start({"ocpp.dnstream.offline_hold": "0s", "ocpp.idle_timeout": "60s"}, start=False)
    gateway.open_files_limit = OPEN_FILES_LIMIT
    gateway.start()
    pid = gateway.process.pid
    limit = leave_an_odd_number_free(pid)
    with contextlib.ExitStack() as stack:
        cps, cid, _ = fill_up(gateway, stack)  # the last CP was refused for want of its doorbell
        # Take the last descriptor with a connection that sends nothing yet.
        hog = stack.enter_context(socket.create_connection(("127.0.0.1", gateway.port)))
        deadline = time.monotonic() + 10.0
        while threads_and_fds(pid)[1] < limit and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threads_and_fds(pid)[1] == limit
        waiting = stack.enter_context(socket.create_connection(("127.0.0.1", gateway.port)))
        waiting.sendall(upgrade_request(f"/ocpp/{cid}", {"Authorization": gateway.auth_header(cid)}))
        time.sleep(1.5)  # the accept loop retries every 0.1 s meanwhile
        warnings = [line for line in gateway.logs if "cannot accept on ws: Too many open files" in line]
        assert warnings, "no warning that accept() found no descriptor"
        # At most one per 10 s (this test is younger than that), however often accept() failed.
        assert len(warnings) == 1, warnings
        assert threads_and_fds(pid)[1] == limit  # nothing was accepted meanwhile
        hog.close()
        cps.pop().close()  # two descriptors back: the waiting connection is served
        response = read_http_response(waiting, timeout=10.0)
        assert response.status == 101



def cpus_of_threads(pid: int) -> set[frozenset[int]]:
    placements = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            placements.add(frozenset(os.sched_getaffinity(int(tid))))
    return placements


def test_by_default_every_gateway_thread_runs_on_the_highest_numbered_cpu(module_start):
    gateway = module_start()
    allowed = frozenset(os.sched_getaffinity(0))
    with connect_cp(gateway, TEST_CIDS[CPS]) as cp:
        assert answered_marker(cp) == []  # its connection thread runs
        assert cpus_of_threads(gateway.process.pid) == {frozenset({max(allowed)})}


def test_with_process_cpus_all_the_threads_may_run_anywhere(module_start):
    gateway = module_start({"process.cpus": "all"})
    with connect_cp(gateway, TEST_CIDS[CPS + 1]) as cp:
        assert answered_marker(cp) == []
        assert cpus_of_threads(gateway.process.pid) == {frozenset(os.sched_getaffinity(0))}
