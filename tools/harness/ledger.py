"""The message ledger of issue 6: every call each side starts, and how it ended.

Two kinds of calls are booked. *CP calls* are made by real charge point clients (raw ``websockets``
connections, many in one asyncio loop); *CSMS calls* by a paho client on MQTT 5 acting as the
backend, which also answers every CP call. An ending is the first thing that settles a call:

CP call    answered (CallResult / CallError from the CSMS), a CallError made by the gateway, or a
           connection close the CP observed: its own deliberate drop, the loss of a gateway that the
           harness killed, or a close the gateway sent. A CP-side timeout on an open connection, or
           an answer that belongs to another call, is UNACCOUNTED.
CSMS call  answered by the CP (CallResult / CallError), a gateway error (by reason), or refused by
           the broker at publish time (MQTT 5 PUBACK "no matching subscribers", 0x10: the backend
           is told). A call still open at the end is "in flight in a killed process" when it was
           open at the moment the harness killed the gateway (listed one by one), else UNACCOUNTED.
Either     open when the harness stopped the broker node the gateway was on, and never answered
           (still open, or a CP-side timeout): lost in flight in that node, listed one by one (bridged
           nodes do not replicate in-flight QoS 1 messages; docs/reliability.md).

The accounting (``Ledger``, ``Report``, the classify functions) is pure; below it are the actors
(``Fleet`` of charge points, ``Csms``) and the fault steps the short test and ``bench/soak.py``
share.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

CP, CSMS = "cp", "csms"
VENDOR = "ocpp_gw-ledger"
CSMS_REFUSAL = ("NotSupported", "refused by the ledger CSMS")
NO_MATCHING_SUBSCRIBERS = 0x10

# (side, kind) -> (label, accounted). A detail (reason, close code) refines a kind in the table.
ENDINGS: dict[tuple[str, str], tuple[str, bool]] = {
    (CP, "answered"): ("answered: CallResult from the CSMS", True),
    (CP, "csms_error"): ("answered: CallError from the CSMS", True),
    (CP, "gateway_error"): ("answered: CallError from the gateway", True),
    (CP, "own_drop"): ("ended: the CP dropped its own connection", True),
    (CP, "gateway_killed"): ("ended: connection lost, the gateway was killed", True),
    (CP, "closed_by_gateway"): ("ended: the gateway closed the connection", True),
    (CP, "timeout"): ("UNACCOUNTED: no answer and no close", False),
    (CP, "node_lost"): ("no answer: in flight in a stopped broker node (listed)", True),
    (CP, "wrong_answer"): ("UNACCOUNTED: answered with another call's answer", False),
    (CP, "open"): ("UNACCOUNTED: still open at the end", False),
    (CSMS, "answered"): ("answered: CallResult from the charge point", True),
    (CSMS, "cp_error"): ("answered: CallError from the charge point", True),
    (CSMS, "gateway_error"): ("answered: gateway error", True),
    (CSMS, "no_subscriber"): ("refused by the broker: no subscriber (PUBACK 0x10)", True),
    (CSMS, "killed"): ("in flight in a killed process (listed)", True),
    (CSMS, "node_lost"): ("no answer: in flight in a stopped broker node (listed)", True),
    (CSMS, "wrong_answer"): ("UNACCOUNTED: answered with another call's answer", False),
    (CSMS, "open"): ("UNACCOUNTED: no answer", False),
}
SIDE_TITLES = {CP: "CP calls (made by charge points)", CSMS: "CSMS calls (made by the backend)"}


# --- accounting (pure) ---------------------------------------------------------------------------

@dataclass
class Entry:
    side: str
    cid: str
    uid: str
    started: float
    kind: str | None = None
    detail: str = ""
    ended: float | None = None
    open_at_kill: bool = False
    open_at_node_loss: bool = False  # open when the broker node the gateway was on was stopped
    phase: str = ""      # the fault under way when it started ("broker down", "gateway down")
    deliveries: int = 0  # times the other side received the call
    answers: int = 0     # endings that arrived (more than one: duplicates)


@dataclass(frozen=True)
class Row:
    side: str
    kind: str
    detail: str
    phase: str
    count: int

    @property
    def label(self) -> str:
        return ENDINGS[(self.side, self.kind)][0]

    @property
    def accounted(self) -> bool:
        return ENDINGS[(self.side, self.kind)][1]


@dataclass(frozen=True)
class Report:
    rows: tuple[Row, ...]
    unaccounted: tuple[Entry, ...]
    killed: tuple[Entry, ...]
    duplicates: dict[str, int]
    strays: dict[str, int]
    faults: dict[str, int]
    elapsed: float

    @property
    def ok(self) -> bool:
        return not self.unaccounted

    def count(self, side: str, kind: str | None = None, detail: str | None = None,
              phase: str | None = None) -> int:
        return sum(row.count for row in self.rows if row.side == side
                   and (kind is None or row.kind == kind) and (detail is None or row.detail == detail)
                   and (phase is None or row.phase == phase))

    def _sub_rows(self, side: str, kind: str) -> list[tuple[str, int]]:
        counts: Counter = Counter()
        for row in self.rows:
            if row.side == side and row.kind == kind and (row.detail or row.phase):
                counts[row.detail + (f" [started while the {row.phase}]" if row.phase else "")] += row.count
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    def format(self, limit: int = 40) -> str:
        lines = [f"ledger over {self.elapsed:.1f} s; faults: "
                 + (", ".join(f"{name} ×{n}" for name, n in sorted(self.faults.items())) or "none")]
        for side in (CP, CSMS):
            lines.append(f"  {SIDE_TITLES[side]:<64}{self.count(side):>8}")
            kinds = [kind for (s, kind) in ENDINGS if s == side and self.count(side, kind)]
            for kind in kinds:
                lines.append(f"    {ENDINGS[(side, kind)][0]:<62}{self.count(side, kind):>8}")
                for text, n in self._sub_rows(side, kind):
                    lines.append(f"        {text.strip()[:56]:<58}{n:>8}")
        for title, values in (("duplicate deliveries (QoS 1 allows them)", self.duplicates),
                              ("frames matching no call of the ledger", self.strays)):
            if values:
                lines.append(f"  {title}: " + ", ".join(f"{k} {v}" for k, v in sorted(values.items())))
        for title, entries in (("in flight in a killed process or a stopped broker node", self.killed),
                               ("UNACCOUNTED", self.unaccounted)):
            lines.append(f"  {title}: {len(entries)}")
            for entry in entries[:limit]:
                lines.append(f"    {entry.side} call {entry.uid} for {entry.cid}, started at "
                             f"{entry.started:.2f} s, seen by the other side {entry.deliveries}×"
                             + (f", ended {entry.kind} {entry.detail}".rstrip() if entry.kind else ""))
            if len(entries) > limit:
                lines.append(f"    … and {len(entries) - limit} more")
        return "\n".join(lines)


class Ledger:
    """Calls started and how each ended; safe to use from the asyncio thread and paho's thread."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.t0 = clock()
        self.epoch = 0              # bumped by each gateway kill
        self.gateway_down = False
        self.node_stopping = False  # a broker node is shutting down (broker_node_stopping)
        self.phase = ""             # set by the fault steps while a fault lasts
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], Entry] = {}
        self._open: dict[tuple[str, str], Entry] = {}
        self._started = Counter()
        self._ended = Counter()
        self._duplicates = Counter()
        self._strays = Counter()
        self._faults = Counter()

    def _now(self) -> float:
        return self.clock() - self.t0

    def start(self, side: str, cid: str, uid: str) -> None:
        with self._lock:
            key = (side, uid)
            if key in self._entries:
                raise ValueError(f"{side} call {uid} started twice")
            entry = Entry(side, cid, uid, self._now(), phase=self.phase, open_at_node_loss=self.node_stopping)
            self._entries[key] = entry
            self._open[key] = entry
            self._started[side] += 1

    def end(self, side: str, uid: str, kind: str, detail: str = "") -> bool:
        """Book how a call ended; the first ending wins. False for a repeat or an unknown call."""
        if (side, kind) not in ENDINGS or kind in ("open", "killed", "node_lost"):
            raise ValueError(f"not an ending a {side} call can be given: {kind}")
        with self._lock:
            entry = self._entries.get((side, uid))
            if entry is None:
                self._strays[f"{side} ending for an unknown call"] += 1
                return False
            entry.answers += 1
            if entry.kind is not None:
                self._duplicates[f"{side} call endings"] += 1
                return False
            entry.kind, entry.detail, entry.ended = kind, detail, self._now()
            del self._open[(side, uid)]
            self._ended[side] += 1
            return True

    def delivered(self, side: str, uid: str) -> None:
        """The other side received this call (a second time: a duplicate delivery)."""
        with self._lock:
            entry = self._entries.get((side, uid))
            if entry is None:
                self._strays[f"{side} call the ledger never started"] += 1
                return
            entry.deliveries += 1
            if entry.deliveries > 1:
                self._duplicates[f"{side} calls delivered again"] += 1

    def stray(self, what: str) -> None:
        with self._lock:
            self._strays[what] += 1

    def fault(self, name: str) -> None:
        with self._lock:
            self._faults[name] += 1

    def gateway_killed(self) -> int:
        """Call right before killing the gateway: what is open now may die with it."""
        with self._lock:
            self.epoch += 1
            self.gateway_down = True
            self.phase = "gateway down"
            self._faults["gateway kill"] += 1
            for entry in self._open.values():
                entry.open_at_kill = True
            return self.epoch

    def broker_node_stopping(self) -> None:
        """Call right before stopping the broker node the gateway is on, and `broker_node_gone` once it has
        exited. Between nodes that do not replicate in-flight QoS 1 messages (bridged brokers), a call or an
        answer that node holds, or takes while it shuts down, dies with it: a call open now or started until
        then that gets no answer (a CSMS call still open at the end, a CP call that timed out) is listed as lost
        in the node, not counted as unaccounted. Any other ending counts as usual."""
        with self._lock:
            self._faults["broker node lost"] += 1
            self.node_stopping = True
            for entry in self._open.values():
                entry.open_at_node_loss = True

    def broker_node_gone(self) -> None:
        self.node_stopping = False

    def gateway_back(self) -> None:
        self.gateway_down = False
        self.phase = ""

    def started(self, side: str | None = None) -> int:
        with self._lock:
            return sum(self._started.values()) if side is None else self._started[side]

    def ended(self, side: str | None = None) -> int:
        with self._lock:
            return sum(self._ended.values()) if side is None else self._ended[side]

    def open(self, side: str | None = None, *, killed: bool | None = None) -> int:
        """Calls not ended yet; ``killed`` narrows to those open (or not) at a gateway kill."""
        with self._lock:
            return sum(1 for entry in self._open.values()
                       if (side is None or entry.side == side)
                       and (killed is None or entry.open_at_kill == killed))

    def report(self) -> Report:
        with self._lock:
            tally: Counter = Counter()
            unaccounted: list[Entry] = []
            killed: list[Entry] = []
            for entry in self._entries.values():
                kind, detail = entry.kind, entry.detail
                if entry.open_at_node_loss and kind in (None, "timeout"):
                    kind, detail = "node_lost", ""
                    killed.append(entry)
                elif kind is None:
                    kind = "killed" if entry.side == CSMS and entry.open_at_kill else "open"
                    (killed if kind == "killed" else unaccounted).append(entry)
                elif not ENDINGS[(entry.side, kind)][1]:
                    unaccounted.append(entry)
                tally[(entry.side, kind, detail, entry.phase)] += 1
            rows = tuple(Row(*key, n) for key, n in sorted(tally.items()))
            by_start = lambda entry: entry.started
            return Report(rows, tuple(sorted(unaccounted, key=by_start)), tuple(sorted(killed, key=by_start)),
                          dict(self._duplicates), dict(self._strays), dict(self._faults), self._now())


def cp_answer_ending(frame: list) -> tuple[str, str]:
    """How a CP call ended, from the answer frame the CP received for it."""
    uid = frame[1]
    if frame[0] == 3:
        payload = frame[2] if len(frame) > 2 else None
        if isinstance(payload, dict) and payload.get("data") == uid:
            return "answered", ""
        return "wrong_answer", json.dumps(payload)[:80]
    code, description = (frame[2], frame[3]) if len(frame) > 3 else ("?", "?")
    if (code, description) == CSMS_REFUSAL:
        return "csms_error", ""
    return "gateway_error", f"{code}: {description}"


def csms_reply_ending(envelope: dict) -> tuple[str, str]:
    """How a CSMS call ended, from the reply envelope that came back on the Reply topic."""
    if envelope.get("MessageTypeId") == 3:
        payload = envelope.get("Payload")
        if isinstance(payload, dict) and payload.get("data") == envelope.get("UniqueId"):
            return "answered", ""
        return "wrong_answer", json.dumps(payload)[:80]
    details = envelope.get("ErrorDetails")
    if isinstance(details, dict) and details.get("origin") == "ocpp_gw":
        return "gateway_error", str(details.get("reason"))
    return "cp_error", str(envelope.get("ErrorCode"))


def close_ending(dropped: str | None, link_epoch: int, epoch: int, gateway_down: bool,
                 code: int | None, reason: str) -> tuple[str, str]:
    """How a CP call ended when its connection closed under it."""
    if dropped is not None:
        return "own_drop", dropped
    if link_epoch != epoch or gateway_down:
        return "gateway_killed", ""
    return "closed_by_gateway", f"{code} {reason}".strip()


# --- charge points (asyncio) ---------------------------------------------------------------------

@dataclass(frozen=True)
class FleetConfig:
    think: tuple[float, float] = (0.2, 1.0)      # pause between one CP's calls, seconds
    cp_timeout: float = 20.0                     # a CP's own deadline for an answer
    drop_chance: float = 0.02                    # per call: the CP drops its connection
    drop_modes: tuple[str, ...] = ("close", "abort", "takeover")
    away: tuple[float, float] = (0.0, 3.0)       # how long a CP that dropped stays away
    retry: tuple[float, float] = (0.2, 0.6)      # between failed connection attempts
    open_timeout: float = 30.0                   # a slow handshake (scrypt logins pile up) is waited for


class _Link:
    """One WebSocket connection of a charge point and the calls it has out."""

    def __init__(self, ws, epoch: int):
        self.ws = ws
        self.epoch = epoch
        self.dropped: str | None = None
        self.ending: tuple[str, str] | None = None
        self.pending: dict[str, asyncio.Future] = {}
        self.reader: asyncio.Task | None = None

    def expect(self, uid: str) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        if self.ending is not None:
            future.set_result(self.ending)
        else:
            self.pending[uid] = future
        return future


class ChargePoint:
    def __init__(self, fleet: Fleet, cid: str, rng: random.Random):
        self.fleet = fleet
        self.cid = cid
        self.rng = rng
        self.link: _Link | None = None
        self.ever_connected = False
        self._background: set[asyncio.Task] = set()

    @property
    def connected(self) -> bool:
        return self.link is not None and self.link.ending is None

    async def run(self) -> None:
        fleet, config = self.fleet, self.fleet.config
        while not fleet.stopping.is_set():
            link = await self._connect()
            if link is None:
                break
            how = await self._converse(link)
            if how == "takeover":
                self._background.add(link.reader)  # ends when the next connection takes it over
                link.reader.add_done_callback(self._background.discard)
                continue
            pause = config.away if how in config.drop_modes else config.retry
            await fleet.pause(self.rng.uniform(*pause))
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _connect(self) -> _Link | None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidHandshake

        fleet = self.fleet
        while not fleet.stopping.is_set():
            epoch = fleet.ledger.epoch  # read first: a kill during the handshake counts against this link
            try:
                ws = await connect(fleet.url_for(self.cid), subprotocols=["ocpp1.6"],
                                   additional_headers=fleet.headers_for(self.cid),
                                   open_timeout=fleet.config.open_timeout, close_timeout=2,
                                   compression=None, max_size=None, proxy=None)
            except (OSError, InvalidHandshake, TimeoutError):
                fleet.connect_failures += 1
                await fleet.pause(self.rng.uniform(*fleet.config.retry))
                continue
            link = _Link(ws, epoch)
            link.reader = asyncio.create_task(self._read(link))
            self.link = link
            self.ever_connected = True
            fleet.connects += 1
            return link
        return None

    async def _converse(self, link: _Link) -> str:
        fleet, config = self.fleet, self.fleet.config
        while not fleet.calls_stopped.is_set():
            await fleet.pause(self.rng.uniform(*config.think), link.reader)
            if link.ending is not None:
                return "lost"
            if fleet.calls_stopped.is_set():
                break
            drop = self.rng.choice(config.drop_modes) \
                if config.drop_modes and self.rng.random() < config.drop_chance else None
            if drop is not None and self.rng.random() < 0.5:
                await self._drop(link, drop)  # between calls
                return drop
            await self._call(link, drop)
            if drop is not None:
                return drop
        await fleet.pause(None, link.reader)  # calls stopped: keep answering the CSMS until the end
        if link.ending is None:
            link.dropped = "end of run"
            await link.ws.close()
        await link.reader
        return "stopped"

    async def _call(self, link: _Link, drop: str | None) -> None:
        uid = self.fleet.new_uid("c")
        ledger = self.fleet.ledger
        ledger.start(CP, self.cid, uid)
        future = link.expect(uid)
        frame = [2, uid, "DataTransfer", {"vendorId": VENDOR, "messageId": "cp", "data": uid}]
        try:
            await link.ws.send(json.dumps(frame))
        except Exception:  # noqa: BLE001, S110 - closed under us: the reader books how
            pass
        if drop is None:
            await self._settle(uid, future)
            return
        await self._drop(link, drop)  # with this call in flight
        task = asyncio.create_task(self._settle(uid, future))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _settle(self, uid: str, future: asyncio.Future) -> None:
        timeout = self.fleet.config.cp_timeout
        try:
            kind, detail = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            kind, detail = "timeout", f"no answer within {timeout:g} s"
        self.fleet.ledger.end(CP, uid, kind, detail)

    async def _drop(self, link: _Link, mode: str) -> None:
        link.dropped = mode
        self.fleet.ledger.fault(f"CP drop ({mode})")
        if mode == "close":
            await link.ws.close(1000, "ledger drop")
        elif mode == "abort":
            link.ws.transport.abort()
        # takeover: leave it open; the next connection of this cid makes the gateway close it

    async def _read(self, link: _Link) -> None:
        ws, ledger = link.ws, self.fleet.ledger
        try:
            async for text in ws:
                try:
                    frame = json.loads(text)
                    type_id, uid = frame[0], frame[1]
                except (ValueError, TypeError, IndexError, KeyError):
                    ledger.stray("cp: frame that is not OCPP-J")
                    continue
                if type_id == 2:
                    ledger.delivered(CSMS, uid)
                    data = frame[3].get("data") if len(frame) > 3 and isinstance(frame[3], dict) else None
                    await ws.send(json.dumps([3, uid, {"status": "Accepted", "data": data}]))
                    continue
                future = link.pending.pop(uid, None)
                if future is None or future.done():
                    ledger.stray("cp: answer matching no open call")
                    continue
                future.set_result(cp_answer_ending(frame))
        except Exception:  # noqa: BLE001, S110 - any way the connection ends is booked below
            pass
        finally:
            link.ending = close_ending(link.dropped, link.epoch, ledger.epoch, ledger.gateway_down,
                                       ws.close_code, ws.close_reason or "")
            for future in link.pending.values():
                if not future.done():
                    future.set_result(link.ending)
            link.pending.clear()


class Fleet:
    """Charge points in one asyncio loop, each connecting, calling, answering and dropping on its own."""

    def __init__(self, ledger: Ledger, cids: Iterable[str], url_for: Callable[[str], str],
                 headers_for: Callable[[str], dict], config: FleetConfig = FleetConfig(), seed: int = 1):
        self.ledger = ledger
        self.url_for = url_for
        self.headers_for = headers_for
        self.config = config
        self.token = secrets.token_hex(2)
        self._ids = itertools.count(1)
        rng = random.Random(seed)
        self.cps = [ChargePoint(self, cid, random.Random(rng.random())) for cid in cids]
        self.calls_stopped = asyncio.Event()
        self.stopping = asyncio.Event()
        self.connects = 0
        self.connect_failures = 0
        self._tasks: list[asyncio.Task] = []

    def new_uid(self, prefix: str) -> str:
        return f"{self.token}{prefix}{next(self._ids)}"

    def start(self) -> None:
        self._tasks = [asyncio.create_task(cp.run(), name=f"cp-{cp.cid}") for cp in self.cps]

    def connected(self) -> int:
        return sum(cp.connected for cp in self.cps)

    def ever_connected(self) -> int:
        return sum(cp.ever_connected for cp in self.cps)

    async def pause(self, seconds: float | None, until: asyncio.Task | None = None) -> None:
        """Wait ``seconds`` (None: no limit), cut short by the end of the run or of ``until``."""
        waits = [asyncio.ensure_future(self.stopping.wait())]
        if until is not None:
            waits.append(until)
        if seconds is None and until is None:
            seconds = 0
        done, _ = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        if waits[0] not in done:
            waits[0].cancel()

    async def close(self) -> None:
        self.calls_stopped.set()
        self.stopping.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# --- the backend (paho, MQTT 5) ------------------------------------------------------------------

class Csms:
    """A backend that answers every CP call and makes DataTransfer calls of its own.

    Like a backend that follows docs/mqtt-api.md, it only calls charge points whose retained event
    says ``connected``; it keeps doing so while the gateway is dead (the events are then stale), which
    is what puts calls into the gateway's persistent session.
    """

    def __init__(self, ledger: Ledger, host: str, port: int, mountpoint: str = "ocpp/", *,
                 error_share: float = 0.1, seed: int = 2):
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.ledger = ledger
        self.host, self.port = host, port
        self.mountpoint = mountpoint
        self.error_share = error_share
        self.rng = random.Random(seed)
        self.token = secrets.token_hex(2)
        self._ids = itertools.count(1)
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"ledger-csms-{self.token}",
                                  protocol=mqtt.MQTTv5)
        self.client.reconnect_delay_set(1, 2)
        self.client.max_inflight_messages_set(200)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._online: set[str] = set()
        self._mids: dict[int, str | None] = {}
        self._early_acks: dict[int, int] = {}

    def start(self, timeout: float = 10.0) -> Csms:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600  # replies published while the broker restarts still reach us
        self.client.connect_async(self.host, self.port, 30, clean_start=False, properties=props)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise TimeoutError(f"the ledger CSMS could not connect to {self.host}:{self.port}")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def online(self) -> list[str]:
        with self._lock:
            return sorted(self._online)

    def call(self, cid: str) -> str:
        uid = f"{self.token}s{next(self._ids)}"
        self.ledger.start(CSMS, cid, uid)
        envelope = {"MessageTypeId": 2, "UniqueId": uid, "Action": "DataTransfer",
                    "Payload": {"vendorId": VENDOR, "messageId": "csms", "data": uid}}
        self._publish(f"{self.mountpoint}cs/{cid}", envelope, uid)
        return uid

    def _publish(self, topic: str, body: dict, uid: str | None) -> None:
        mid = self.client.publish(topic, json.dumps(body), qos=1).mid
        with self._lock:
            reason = self._early_acks.pop(mid, None)
            if reason is None:
                self._mids[mid] = uid
                return
        self._acked(uid, reason)

    # paho's thread from here on

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            return
        mp = self.mountpoint
        client.subscribe([(f"{mp}cp/+", 1), (f"{mp}cp/+/Reply", 1), (f"{mp}events/+", 1)])
        self.connected.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            if mid not in self._mids:
                self._early_acks[mid] = reason_code.value
                return
            uid = self._mids.pop(mid)
        self._acked(uid, reason_code.value)

    def _acked(self, uid: str | None, reason: int) -> None:
        if uid is not None and reason == NO_MATCHING_SUBSCRIBERS:
            self.ledger.end(CSMS, uid, "no_subscriber")

    def _on_message(self, client, userdata, msg) -> None:
        try:
            self._route(msg.topic, msg.payload)
        except Exception as err:  # noqa: BLE001 - paho's thread must survive anything
            self.ledger.stray(f"csms: message it could not read ({type(err).__name__})")

    def _route(self, topic: str, payload: bytes) -> None:
        levels = topic[len(self.mountpoint):].split("/")
        body = json.loads(payload)
        if not isinstance(body, dict):
            raise TypeError("not an object")
        if levels[0] == "events" and len(levels) == 2:
            with self._lock:
                (self._online.add if body.get("event") == "connected" else self._online.discard)(levels[1])
        elif levels[0] == "cp" and len(levels) == 2 and body.get("MessageTypeId") == 2:
            self._answer(levels[1], body)
        elif levels[0] == "cp" and len(levels) == 3 and levels[2] == "Reply":
            kind, detail = csms_reply_ending(body)
            self.ledger.end(CSMS, str(body.get("UniqueId")), kind, detail)
        else:
            self.ledger.stray(f"csms: unexpected message on {topic}")

    def _answer(self, cid: str, call: dict) -> None:
        uid = call.get("UniqueId")
        self.ledger.delivered(CP, uid)
        if self.rng.random() < self.error_share:
            code, description = CSMS_REFUSAL
            reply = {"MessageTypeId": 4, "UniqueId": uid, "ErrorCode": code, "ErrorDescription": description,
                     "ErrorDetails": {}}
        else:
            reply = {"MessageTypeId": 3, "UniqueId": uid, "Payload": {"status": "Accepted", "data": uid}}
        self._publish(f"{self.mountpoint}cs/{cid}", reply, None)


# --- one run: actors together, faults, settling --------------------------------------------------

async def until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes (for state with nothing to await on)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


def health(url: str) -> int:
    """HTTP status of the gateway's /healthz (0 when it does not answer)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return 0


async def until_health(url: str, status: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (seen := await asyncio.to_thread(health, url)) != status:
        if time.monotonic() >= deadline:
            raise AssertionError(f"{url} answered {seen}, not {status}, for {timeout} s")
        await asyncio.sleep(0.05)


@dataclass
class LedgerRun:
    """A fleet and a CSMS booking into one ledger; ``csms_interval`` paces the CSMS's calls."""

    ledger: Ledger
    fleet: Fleet
    csms: Csms
    csms_interval: float = 0.05
    killed_logs: list[str] = field(default_factory=list, init=False)  # what killed gateways logged
    _caller: asyncio.Task | None = field(default=None, init=False)
    _calling: bool = field(default=True, init=False)

    async def start(self, timeout: float = 60.0) -> None:
        """Connect the CSMS, start the fleet, and return once every charge point has connected."""
        await asyncio.to_thread(self.csms.start)
        self.fleet.start()
        everyone = len(self.fleet.cps)
        if not await until(lambda: self.fleet.ever_connected() == everyone, timeout):
            raise AssertionError(f"only {self.fleet.ever_connected()} of {everyone} charge points connected "
                                 f"within {timeout} s")
        self._caller = asyncio.create_task(self._call_loop())

    async def _call_loop(self) -> None:
        rng = random.Random(3)
        while self._calling:
            online = self.csms.online()
            if online:
                self.csms.call(rng.choice(online))
            await asyncio.sleep(self.csms_interval)

    async def more_calls(self, n: int, timeout: float) -> bool:
        """Wait until ``n`` more calls (both sides) have ended."""
        target = self.ledger.ended() + n
        return await until(lambda: self.ledger.ended() >= target, timeout)

    async def restart_broker(self, broker, healthz_url: str, queued_calls: int = 20, outage: float = 0.0) -> None:
        """Stop the broker, let CP calls pile up behind it (and ``outage`` seconds pass), start it again;
        /healthz must follow."""
        self.ledger.fault("broker restart")
        self.ledger.phase = "broker down"
        stopped = time.monotonic()
        await asyncio.to_thread(broker.stop)
        await until_health(healthz_url, 503, 10)
        started = self.ledger.started(CP)
        await until(lambda: self.ledger.started(CP) >= started + queued_calls, 10)
        await asyncio.sleep(max(0.0, stopped + outage - time.monotonic()))
        await asyncio.to_thread(broker.start)
        self.ledger.phase = ""
        await until_health(healthz_url, 200, 40)

    async def kill_gateway(self, gateway, calls_while_down: int = 20) -> None:
        """SIGKILL the gateway, let the CSMS call into the void, start it again (same client_id)."""
        self.ledger.gateway_killed()
        await asyncio.to_thread(gateway.kill)
        if gateway.output is not None and await asyncio.to_thread(gateway.output.wait_closed, 5):
            self.killed_logs.extend(gateway.logs)
        started = self.ledger.started(CSMS)
        await until(lambda: self.ledger.started(CSMS) >= started + calls_while_down, 10)
        await asyncio.to_thread(gateway.start)
        self.ledger.gateway_back()

    async def settle(self, timeout: float, killed_grace: float = 0.0) -> Report:
        """Stop calling, wait for every call to end, close the fleet, and account."""
        self.fleet.calls_stopped.set()
        self._calling = False
        if self._caller is not None:
            await self._caller
        await until(lambda: self.ledger.open(killed=False) == 0, timeout)
        await until(lambda: self.ledger.open() == 0, killed_grace)
        await self.fleet.close()
        await until(lambda: self.ledger.open(killed=False) == 0, 5)
        await asyncio.to_thread(self.csms.stop)
        return self.ledger.report()
