"""Load generator worker: one process simulating a slice of the charge points over real OCPP-J.

    python -m bench.loadgen --url ws://127.0.0.1:33033/ocpp/ --first 0 --count 2500 [--ocpp 2.0.1]

Each CP is a `websockets` client speaking one OCPP version (`--ocpp`, default 1.6: its subprotocol
and its BootNotification; Heartbeats are alike in every version), Basic auth (its own password, see
credentials.py), no compression and no WebSocket pings, so its Heartbeat is the only keepalive. A CP
makes one call at a time and sends a Heartbeat when it has sent nothing for the interval its
BootNotification answer gave.

Driven by the orchestrator over JSON lines: one command per stdin line, one answer per stdout line.
Times are `time.monotonic()`, the system-wide clock, so `at` instants line up across processes.

    {"op": "populate", "concurrency": 50}      connect and boot every CP, a few at a time
    {"op": "sequence", "at": T, "count": 2000} the first CP sends Heartbeats one after another
    {"op": "burst", "at": T, "first": k}       the first k CPs each send one Heartbeat at T
    {"op": "sustain", "at": T, "duration": d, "first": k}  closed loop of Heartbeats until T+d
    {"op": "storm", "at": T, "timeout": s}     every CP connects and boots at T
    {"op": "status"}                           how many are open, closed (by code), heartbeat failures
    {"op": "exit"}
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import resource
import sys
import time
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from . import credentials
from .ocppj import CALL, DEFAULT_VERSION, DIALECTS, HEARTBEAT_PAYLOAD, Dialect, call_frame, result_frame

CALL_TIMEOUT = 30.0


class CallFailed(Exception):
    """A call that got no answer: kind is timeout, closed or error."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class ChargePoint:
    def __init__(self, cid: str, url: str, authorization: str, local_addr: tuple[str, int] | None,
                 dialect: Dialect = DIALECTS[DEFAULT_VERSION]):
        self.cid = cid
        self.dialect = dialect
        self.url = url + cid
        self.authorization = authorization
        self.local_addr = local_addr
        self.ws = None
        self.interval: float | None = None
        self.last_sent = 0.0
        self.close_code: int | None = None
        self.heartbeats = 0
        self.heartbeat_failures = 0
        self._pending: dict[str, asyncio.Future] = {}
        self._lock = asyncio.Lock()
        self._counter = 0
        self._tasks: list[asyncio.Task] = []

    async def connect(self, open_timeout: float) -> None:
        extra = {"local_addr": self.local_addr} if self.local_addr else {}
        self.ws = await connect(
            self.url, subprotocols=[self.dialect.subprotocol], additional_headers={"Authorization": self.authorization},
            compression=None, ping_interval=None, open_timeout=open_timeout, close_timeout=1, proxy=None,
            user_agent_header=None, **extra)
        self._tasks.append(asyncio.create_task(self._read()))

    async def boot(self, timeout: float = CALL_TIMEOUT) -> None:
        reply = await self.call("BootNotification", self.dialect.boot_payload, timeout)
        interval = reply[2].get("interval") if reply[0] == 3 and isinstance(reply[2], dict) else None
        if isinstance(interval, int) and interval > 0:
            self.interval = float(interval)
            self._tasks.append(asyncio.create_task(self._heartbeat()))

    async def call(self, action: str, payload: dict, timeout: float = CALL_TIMEOUT) -> list:
        """Send one call and wait for its answer; the answer's arrival time is in .answered_at."""
        async with self._lock:
            if self.close_code is not None:
                raise CallFailed("closed")
            self._counter += 1
            unique_id = str(self._counter)
            future = asyncio.get_running_loop().create_future()
            self._pending[unique_id] = future
            self.last_sent = time.monotonic()
            try:
                async with asyncio.timeout(timeout):  # the send too: a wedged server may stop reading
                    await self.ws.send(call_frame(unique_id, action, payload))
                    self.answered_at, reply = await future
                return reply
            except TimeoutError:
                raise CallFailed("timeout") from None
            except (ConnectionClosed, ConnectionError):
                raise CallFailed("closed") from None
            finally:
                self._pending.pop(unique_id, None)

    async def _read(self) -> None:
        ws = self.ws
        try:
            async for text in ws:
                now = time.monotonic()
                message = json.loads(text)
                if message[0] == CALL:  # the bench's central systems make no calls; answer politely anyway
                    await ws.send(result_frame(message[1], {}))
                    continue
                future = self._pending.get(message[1])
                if future is not None and not future.done():
                    future.set_result((now, message))
        except ConnectionClosed:
            pass
        finally:
            self.close_code = ws.close_code if ws.close_code is not None else 1006
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("closed"))

    async def _heartbeat(self) -> None:
        while self.close_code is None:
            delay = self.last_sent + self.interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            try:
                await self.call("Heartbeat", HEARTBEAT_PAYLOAD)
                self.heartbeats += 1
            except CallFailed:
                if self.close_code is None:
                    self.heartbeat_failures += 1


def failure_kind(error: BaseException) -> str:
    if isinstance(error, CallFailed):
        return error.kind
    if isinstance(error, InvalidStatus):
        return f"http_{error.response.status_code}"
    if isinstance(error, TimeoutError):
        return "handshake_timeout"
    return type(error).__name__


async def sleep_until(instant: float) -> None:
    delay = instant - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


class Worker:
    def __init__(self, charge_points: list[ChargePoint]):
        self.charge_points = charge_points

    async def populate(self, concurrency: int = 50, open_timeout: float = 60.0, deadline: float = 600.0) -> dict:
        """Connect and boot every CP, `concurrency` at a time; give up on those not booted after `deadline` s."""
        gate = asyncio.Semaphore(concurrency)
        failures: collections.Counter = collections.Counter()

        async def bring_up(cp: ChargePoint) -> None:
            async with gate:
                try:
                    await cp.connect(open_timeout)
                    await cp.boot()
                except Exception as error:  # noqa: BLE001 - every failure is counted by kind
                    failures[failure_kind(error)] += 1

        started = time.monotonic()
        tasks = [asyncio.create_task(bring_up(cp)) for cp in self.charge_points]
        done, late = await asyncio.wait(tasks, timeout=deadline)
        for task in late:
            task.cancel()
        if late:
            failures["not_booted_by_deadline"] += len(late)
            await asyncio.wait(late)
        return {"booted": len(self.charge_points) - sum(failures.values()), "failures": dict(failures),
                "seconds": time.monotonic() - started}

    async def sequence(self, at: float, count: int) -> dict:
        cp = self.charge_points[0]
        latencies = []
        failures: collections.Counter = collections.Counter()
        await sleep_until(at)
        for _ in range(count):
            try:
                await cp.call("Heartbeat", HEARTBEAT_PAYLOAD)
            except CallFailed as error:
                failures[error.kind] += 1
                continue
            latencies.append(cp.answered_at - cp.last_sent)
        return {"latencies": latencies, "failures": dict(failures)}

    async def burst(self, at: float, first: int) -> dict:
        """The first `first` CPs each send one Heartbeat at `at`; when did each answer arrive."""
        failures: collections.Counter = collections.Counter()
        answered: list[float] = []

        async def one(cp: ChargePoint) -> None:
            try:
                await cp.call("Heartbeat", HEARTBEAT_PAYLOAD)
                answered.append(cp.answered_at - at)
            except CallFailed as error:
                failures[error.kind] += 1

        await sleep_until(at)
        await asyncio.gather(*(one(cp) for cp in self.charge_points[:first]))
        return {"answered": answered, "failures": dict(failures)}

    async def sustain(self, at: float, duration: float, first: int) -> dict:
        """Closed loop: each CP sends its next Heartbeat as soon as the last one is answered."""
        end = at + duration
        latencies: list[float] = []
        failures: collections.Counter = collections.Counter()

        async def loop(cp: ChargePoint) -> None:
            while time.monotonic() < end:
                try:
                    await cp.call("Heartbeat", HEARTBEAT_PAYLOAD)
                except CallFailed as error:
                    failures[error.kind] += 1
                    if error.kind == "closed":
                        return
                    continue
                if cp.answered_at <= end:
                    latencies.append(cp.answered_at - cp.last_sent)

        await sleep_until(at)
        await asyncio.gather(*(loop(cp) for cp in self.charge_points[:first]))
        return {"latencies": latencies, "failures": dict(failures)}

    async def storm(self, at: float, timeout: float) -> dict:
        """Every CP connects and boots at `at`; when was each booted."""
        failures: collections.Counter = collections.Counter()
        booted: list[float] = []

        async def one(cp: ChargePoint) -> None:
            try:
                async with asyncio.timeout(max(0.0, at + timeout - time.monotonic())):
                    await cp.connect(open_timeout=timeout)
                    await cp.boot(timeout)
                booted.append(time.monotonic() - at)
            except BaseException as error:  # noqa: BLE001 - counted by kind; TimeoutError included
                if isinstance(error, asyncio.CancelledError):
                    raise
                failures[failure_kind(error)] += 1

        await sleep_until(at)
        await asyncio.gather(*(one(cp) for cp in self.charge_points))
        return {"booted": booted, "failures": dict(failures)}

    def status(self) -> dict:
        codes = collections.Counter(cp.close_code for cp in self.charge_points
                                    if cp.ws is not None and cp.close_code is not None)
        return {"open": sum(1 for cp in self.charge_points if cp.ws is not None and cp.close_code is None),
                "closed": {str(code): n for code, n in codes.items()},
                "heartbeats": sum(cp.heartbeats for cp in self.charge_points),
                "heartbeat_failures": sum(cp.heartbeat_failures for cp in self.charge_points)}


async def serve_commands(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    background: set[asyncio.Task] = set()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        command: dict[str, Any] = json.loads(line)
        op = command.pop("op")
        if op == "exit":
            return
        if op == "status":
            reply(worker.status())
            continue
        task = asyncio.create_task(run_command(worker, op, command))
        background.add(task)
        task.add_done_callback(background.discard)


async def run_command(worker: Worker, op: str, arguments: dict) -> None:
    try:
        reply(await getattr(worker, op)(**arguments))
    except Exception as error:  # noqa: BLE001 - the orchestrator must always get an answer
        reply({"error": f"{op}: {type(error).__name__}: {error}"})


def reply(answer: dict) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen")
    parser.add_argument("--url", required=True, help="ws://host:port/ocpp/ (the cid is appended)")
    parser.add_argument("--first", type=int, default=0, help="index of this worker's first CP")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--source", help="local address to connect from (e.g. 127.0.0.2)")
    parser.add_argument("--ocpp", choices=DIALECTS, default=DEFAULT_VERSION, help="the OCPP version the CPs speak")
    args = parser.parse_args(argv)
    raise_fd_limit()
    seed = credentials.load_seed()
    local_addr = (args.source, 0) if args.source else None
    cids = [credentials.cid(i) for i in range(args.first, args.first + args.count)]
    dialect = DIALECTS[args.ocpp]
    worker = Worker([ChargePoint(c, args.url, credentials.basic_authorization(seed, c), local_addr, dialect)
                     for c in cids])
    asyncio.run(serve_commands(worker))
    sys.stdout.flush()
    # Closing thousands of sockets politely takes long and measures nothing; the kernel closes them.
    import os
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
