"""Soak: random garbage over real sockets against a running gateway, while another charge point keeps working."""

from __future__ import annotations

import json
import os
import random
import socket
import threading
import time

import pytest

from tools.harness import password_for, wait_until
from tests.security.wire import RawClient, basic, deflated, frame_bytes, request_bytes

SOAK_SECONDS = 4.0
GARBAGE_WORKERS = 6
SEED = int(os.environ.get("OCPP_GW_SOAK_SEED", "20240605"))


@pytest.fixture(scope="module")
def gw(module_gateways):
    return module_gateways({"ocpp.idle_timeout": "2s", "ocpp.listener.handshake_timeout": "2s", "log.level": "info"})


def threads_of(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


def garbage_frame(rng: random.Random) -> bytes:
    """One hostile frame: random opcode and flags, random or nearly-OCPP payload, sometimes a lying length."""
    choice = rng.randrange(10)
    if choice == 0:
        payload = rng.randbytes(rng.randrange(0, 300))
    elif choice == 1:
        payload = b'[2,"' + rng.randbytes(8) + b'","Heartbeat",{}]'  # bad UTF-8 inside
    elif choice == 2:
        good = '[2,"g-%d","BootNotification",{"chargePointVendor":"v","chargePointModel":"m"}]' % rng.randrange(999)
        cut = rng.randrange(len(good))
        payload = (good[:cut] + rng.choice(["", "]", "}", "\\", '"', "\x00", "[" * 70]) + good[cut + 1:]).encode()
    elif choice == 3:
        payload = json.dumps([rng.choice([2, 3, 4, 5, "2", None]), rng.choice(["x", 1, "", "y" * 40]),
                              rng.choice(["Heartbeat", "Boot/#", "+", 7, {}]), {"n": rng.random()}]).encode()
    elif choice == 4:
        payload = deflated(b"A" * rng.randrange(1000, 200_000))
        return frame_bytes(0x1, payload, rsv1=True)
    elif choice == 5:
        return rng.randbytes(rng.randrange(1, 64))  # not even a frame
    elif choice == 6:
        head = frame_bytes(0x1, b"x" * 10)
        return head[:1] + bytes([0x80 | 127]) + (2**62).to_bytes(8, "big") + os.urandom(4) + b"short"
    else:
        payload = rng.randbytes(rng.randrange(0, 40)) if rng.random() < 0.3 else b'[3,"r",{}]'
    opcode = rng.choice([0x0, 0x1, 0x1, 0x1, 0x2, 0x3, 0x8, 0x9, 0xA, 0xB, 0xF])
    return frame_bytes(opcode, payload[:125] if opcode >= 0x8 else payload, fin=rng.random() < 0.9,
                       rsv1=rng.random() < 0.05)


def garbage_worker(gw, worker: int, stop: threading.Event, counts: dict) -> None:
    rng = random.Random(SEED + worker)
    cid = f"CP{31 + worker:03d}"
    while not stop.is_set():
        try:
            with socket.create_connection(("127.0.0.1", gw.port), timeout=2) as sock:
                if rng.random() < 0.2:  # garbage instead of an HTTP request
                    sock.sendall(rng.randbytes(rng.randrange(1, 2000)))
                else:
                    sock.sendall(request_bytes(f"/ocpp/{cid}", {"Authorization": basic(cid, password_for(cid))}))
                    for _ in range(rng.randrange(1, 30)):
                        sock.sendall(garbage_frame(rng))
                        counts["frames"] += 1
                sock.settimeout(0.05)
                try:
                    while sock.recv(65536):
                        pass
                except (TimeoutError, OSError):
                    pass
        except OSError:
            pass
        counts["connections"] += 1


def test_random_garbage_does_not_disturb_a_working_charge_point(gw, mqtt_probe):
    pid = gw.process.pid
    threads_before = threads_of(pid)
    downstream = f"{gw.mountpoint}cs/CP030"
    mqtt_probe.subscribe(f"{gw.mountpoint}cp/CP030")
    stop = threading.Event()
    counts = {"frames": 0, "connections": 0}
    workers = [threading.Thread(target=garbage_worker, args=(gw, n, stop, counts), name=f"soak-{n}", daemon=True)
               for n in range(GARBAGE_WORKERS)]
    with RawClient(("127.0.0.1", gw.port)) as good:
        assert good.upgrade("/ocpp/CP030", {"Authorization": basic("CP030", password_for("CP030"))}).status == 101
        for worker in workers:
            worker.start()
        rounds = 0
        deadline = time.monotonic() + SOAK_SECONDS
        try:
            while time.monotonic() < deadline:
                unique_id = f"hb-{rounds}"
                good.send_text(json.dumps([2, unique_id, "Heartbeat", {}]))
                call = mqtt_probe.expect_json(f"{gw.mountpoint}cp/CP030", timeout=5)
                assert call["UniqueId"] == unique_id
                mqtt_probe.publish(downstream, {"MessageTypeId": 3, "UniqueId": unique_id,
                                                "Payload": {"currentTime": "2024-01-01T00:00:00Z"}})
                assert json.loads(good.recv_text(timeout=5)) == [3, unique_id, {"currentTime": "2024-01-01T00:00:00Z"}]
                rounds += 1
        finally:
            stop.set()
            for worker in workers:
                worker.join(10)
    # Every round trip of the working CP succeeded, each within its own deadline; how many fit in the soak
    # depends on the machine, so only a floor is asserted.
    assert rounds >= 3, f"only {rounds} round trips for the working CP"
    assert counts["frames"] > 50 and counts["connections"] > 10, counts
    assert gw.returncode is None
    assert not any("Traceback" in line or " ERROR " in line or line.startswith("ERROR") for line in gw.logs)
    # Every garbage connection ends: the gateway gets back to its threads of before. Connections still in the
    # listen backlog are accepted (and end) after the workers stop, so this takes a few seconds on a busy machine.
    assert wait_until(lambda: threads_of(pid) <= threads_before, timeout=30), (threads_of(pid), threads_before)
    with RawClient(("127.0.0.1", gw.port)) as again:
        assert again.upgrade("/ocpp/CP030", {"Authorization": basic("CP030", password_for("CP030"))}).status == 101
