"""The per-charge-point pipe: OCPP-J call discipline between one CP and the CSMS (SPEC §5).

The pipe knows nothing about sockets or MQTT. Producers put into its two receive channels
(``ChargeStationRx``: raw WebSocket frames; ``CSMSRx``: decoded envelopes), which ring its
doorbell; its owner thread calls :meth:`Pipe.step` and forwards what appears on the two transmit
channels (``ChargeStationTx``: messages and a final :class:`Close` for the CP; ``CSMSTx``:
:class:`Upstream` items for MQTT). All state changes happen inside ``step`` on that one thread,
so the state needs no locks. Deadlines are plain numbers on the pipe's clock; ``step`` returns
the earliest, and the owner waits on the doorbell with that timeout.

A pipe speaks one OCPP version (:class:`~ocpp_gw.protocol.versions.OcppVersion`), fixed for the
connection, and consults its rules: how frames are parsed and malformed ones answered, which
error codes the gateway uses. On 2.1, SEND bypasses the one-call-in-flight discipline both ways
(no deadline, no answer, never queued) and a CALLRESULTERROR goes to whoever sent the CallResult
it answers (SPEC §9).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Callable, Iterable

from . import frames
from .close_codes import CLOSE_GOING_AWAY, CLOSE_PROTOCOL_ERROR, CLOSE_UNSUPPORTED_DATA
from .envelope import gateway_error
from .history import FROM_CP, History
from .frames import Call, CallError, CallResult, CallResultError, Message, Send
from .versions import V16, OcppVersion

log = logging.getLogger("ocpp_gw.pipe")

WAITING = "WAITING"
CS_CALL = "CS_CALL"
CSMS_CALL = "CSMS_CALL"

# More than 68 years is "never" (and more than a float holds would raise): the keepalive uses this.
MAX_HEARTBEAT_INTERVAL = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Upstream:
    """A message for MQTT, with the Action it belongs to (merged into replies)."""

    message: Message
    action: str | None
    channel: str | None = None  # the command channel whose call this answers (SPEC §11), else None


@dataclass(frozen=True, slots=True)
class Close:
    """The last item on ``ChargeStationTx``: close the WebSocket with this code."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """Put on ``ChargeStationRx`` by the reader when the CP's socket has closed."""

    code: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Adopted:
    """Put on ``CSMSRx`` on takeover: CSMS calls the previous connection had not finished."""

    calls: tuple[Call, ...]
    channels: tuple[tuple[str, str], ...] = ()  # (UniqueId, channel) of the calls that came from one


@dataclass(frozen=True, slots=True)
class FromChannel:
    """Put on ``CSMSRx`` by the bridge: a CSMS call that came on a command channel, already allowed."""

    call: Call
    channel: str


@dataclass(frozen=True, slots=True)
class PipeConfig:
    """The pipe's settings (built by ``ocpp_gw.config``); the defaults are those of ``settings.KEYS``."""

    awaiting_timeout: float = 30.0
    retry_interval: float = 30.0
    max_mqueue_len: int = 100
    heartbeat_interval: float = 60.0
    heartbeat_backoff: float = 1.0
    idle_timeout: float = 30.0
    max_bad_frames: int = 10
    recent_csms_calls: int = 16
    check_upstream: bool = False
    check_dnstream: bool = False
    history_len: int = 20
    history_payloads: bool = False


class LeanCondition(threading.Condition):
    """A ``threading.Condition`` on a re-entrant lock that keeps two objects for the cycle collector, not eight.

    ``Condition.__init__`` stores five bound methods of its lock on the instance (for speed), each an object
    the collector tracks; a connection's four queues have twelve conditions, so 60 of the 125 objects a
    connection leaves for the collector were these (docs/performance.md, item 20). Here they are methods of
    the class calling the lock's own; ``wait``, ``notify`` and the rest are Condition's, unchanged."""

    def __init__(self, lock: threading.RLock):  # instead of super().__init__, not after it
        self._lock = lock
        self._waiters = deque()

    def acquire(self, *args) -> bool:
        return self._lock.acquire(*args)

    def release(self) -> None:
        self._lock.release()

    def _release_save(self):
        return self._lock._release_save()

    def _acquire_restore(self, state) -> None:
        self._lock._acquire_restore(state)

    def _is_owned(self) -> bool:
        return self._lock._is_owned()


class PipeQueue(queue.Queue):
    """A ``queue.Queue`` whose three conditions share a re-entrant lock instead of a plain one.

    Every connection builds four queues. ``threading.Condition`` on a plain lock looks for three
    methods the lock lacks, each lookup a caught AttributeError: 3.8 µs a condition against 1.1 µs on
    an RLock, so 56 of a connection's 183 µs of set-up went to its queues (docs/performance.md,
    item 18); the conditions are :class:`LeanCondition`\ s (item 20). The attributes are the ones
    ``queue.Queue.__init__`` sets; a test compares the two."""

    def __init__(self, maxsize: int = 0):  # instead of super().__init__, not after it
        self.maxsize = maxsize
        self._init(maxsize)
        self.mutex = threading.RLock()
        self.not_empty = LeanCondition(self.mutex)
        self.not_full = LeanCondition(self.mutex)
        self.all_tasks_done = LeanCondition(self.mutex)
        self.unfinished_tasks = 0


class Channel(PipeQueue):
    """A queue that rings its pipe's doorbell on every put."""

    def __init__(self, doorbell, maxsize: int = 0):
        super().__init__(maxsize)
        self._doorbell = doorbell

    def _put(self, item):
        super()._put(item)
        self._doorbell.set()

    def put_quietly(self, item) -> None:
        """Put without ringing: for a producer that is about to run the step itself."""
        with self.not_full:
            super()._put(item)
            self.unfinished_tasks += 1
            self.not_empty.notify()


class _NullStats:
    def incr(self, name: str, n: int = 1) -> None:
        pass


@dataclass(slots=True)
class _CpCall:
    unique_id: str
    action: str
    deadline: float
    expired: bool = False


@dataclass(slots=True)
class _CsmsCall:
    call: Call
    deadline: float
    next_retry: float


class Pipe:
    """One charge point's state machine (SPEC §5)."""

    def __init__(self, cid: str, config: PipeConfig = PipeConfig(), *,
                 clock: Callable[[], float] = time.monotonic, stats=None, checker=None, doorbell=None,
                 version: OcppVersion = V16):
        self.cid = cid
        self.config = config
        self.version = version
        self.clock = clock
        self.stats = stats or _NullStats()
        # None: no format checking for this connection's version, whatever the configuration says.
        self.checker = checker
        # Anything with set() and clear(): a threading.Event, or the connection's pollable Doorbell.
        self.doorbell = doorbell if doorbell is not None else threading.Event()
        self.ChargeStationRx = Channel(self.doorbell)
        self.ChargeStationTx: queue.Queue = PipeQueue()
        # Sized so the paho thread can always put replies; calls are bounded by the pending queue.
        self.CSMSRx = Channel(self.doorbell, maxsize=config.max_mqueue_len + 64)
        self.CSMSTx: queue.Queue = PipeQueue()

        now = clock()
        self.connected_at = now
        self.last_rx = now  # written by the socket reader on any received bytes
        self.last_message_wall: float | None = None  # for operators only
        self.last_action: str | None = None
        self.messages_in = 0
        self.messages_out = 0
        self.heartbeat_interval = config.heartbeat_interval
        self.closed: Close | None = None
        self.history = History(config.history_len, config.history_payloads)

        self._cp_call: _CpCall | None = None
        self._csms_call: _CsmsCall | None = None
        self._pending: deque[Call] = deque()
        self._recent: OrderedDict[str, str] = OrderedDict()  # sent CSMS call id -> action
        # CSMS calls the CP answered (id -> action): a QoS 1 redelivery of one must not reach the
        # CP again, and a CALLRESULTERROR of the CSMS about the CP's answer is matched here.
        self._answered: OrderedDict[str, str] = OrderedDict()
        # The CP's last call whose CallResult the CSMS sent (id, action): a CALLRESULTERROR of
        # the CP about that answer goes upstream.
        self._last_answered_cp_call: tuple[str, str] | None = None
        # Command channel of each CSMS call that came on one, while it is queued, out or recent.
        self._channel_of: OrderedDict[str, str] = OrderedDict()
        self._bad_frames = 0
        self._idle_deadline: float | None = now + config.idle_timeout if config.idle_timeout else None

    # -- what the owner and the admin API read ------------------------------------------------

    @property
    def state(self) -> str:
        if self._cp_call is not None and not self._cp_call.expired:
            return CS_CALL
        if self._csms_call is not None:
            return CSMS_CALL
        return WAITING

    @property
    def _check_upstream(self) -> bool:
        return self.checker is not None and self.config.check_upstream

    @property
    def _check_dnstream(self) -> bool:
        return self.checker is not None and self.config.check_dnstream

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    # -- the step ----------------------------------------------------------------------------

    def step(self) -> float | None:
        """Handle everything that is pending or due; return the next deadline (or None)."""
        self.doorbell.clear()
        while self.closed is None:
            progressed = self._drain(self.ChargeStationRx, self._on_cp_item)
            self._expire(self.clock())
            if self.closed is not None:
                break
            progressed |= self._drain(self.CSMSRx, self._on_csms_item)
            progressed |= self._dispatch()
            if not progressed:
                break
        return self.next_deadline()

    def next_deadline(self) -> float | None:
        if self.closed is not None:
            return None
        # Plain comparisons, not a list and min(): this runs twice per message on every connection.
        earliest = self._keepalive_deadline()
        for candidate in self._call_deadlines():
            if earliest is None or candidate < earliest:
                earliest = candidate
        return earliest

    def _call_deadlines(self) -> tuple[float, ...]:
        """The deadlines besides the keepalive's: the first frame's, and those of the calls out."""
        cp_call, csms_call, idle = self._cp_call, self._csms_call, self._idle_deadline
        if cp_call is None and csms_call is None and idle is None:
            return ()
        deadlines = () if idle is None else (idle,)
        if cp_call is not None and not cp_call.expired:
            deadlines += (cp_call.deadline,)
        if csms_call is not None:
            deadlines += (min(csms_call.deadline, csms_call.next_retry),)
        return deadlines

    @staticmethod
    def _drain(channel: queue.Queue, handle) -> bool:
        handled = False
        for item in drain(channel):
            handle(item)
            handled = True
        return handled

    # -- from the charge point ---------------------------------------------------------------

    def _on_cp_item(self, item) -> None:
        if self.closed is not None:
            return
        if isinstance(item, Close):
            self._close(item.code, item.reason)
            return
        if isinstance(item, Disconnected):
            self.closed = Close(item.code or CLOSE_GOING_AWAY, item.reason or "connection lost")
            return
        if isinstance(item, bytes):
            self._warn("binary frame refused", None)
            self.stats.incr("refused.binary_frame")
            self._close(CLOSE_UNSUPPORTED_DATA, "binary frames are not OCPP-J")
            return
        try:
            message = frames.parse(item, self.version)
        except frames.FrameError as err:
            self._on_bad_frame(err)
            return
        self._bad_frames = 0
        self._idle_deadline = None
        self.history.record(FROM_CP, message, None, len(item))
        self.messages_in += 1
        self.last_message_wall = time.time()
        kind = type(message)
        if kind is Call:
            self.last_action = message.action
            self._on_cp_call(message)
        elif kind is Send:
            self.last_action = message.action
            self._on_cp_send(message)
        elif kind is CallResultError:
            self._on_cp_callresulterror(message)
        else:
            self._on_cp_reply(message)

    def _on_bad_frame(self, err: frames.FrameError) -> None:
        answer = frames.answer_malformed(err, self.version)
        if isinstance(err, frames.UnknownMessageType):
            self._warn(f"{'answered' if answer else 'ignored'} frame: {err.description}",
                       err.unique_id)
            self.stats.incr("dropped.unknown_message_type")
        else:
            self._warn(f"malformed frame: {err.description}", err.unique_id)
            self.stats.incr("refused.malformed_frame")
        if answer is not None:
            self._to_cp(answer)
        self._bad_frame()

    def _bad_frame(self) -> None:
        self._bad_frames += 1
        if self._bad_frames >= self.config.max_bad_frames:
            self._close(CLOSE_PROTOCOL_ERROR, f"{self._bad_frames} bad frames in a row")

    def _on_cp_call(self, call: Call) -> None:
        self.stats.incr("upstream.calls")
        if self._check_upstream:
            violation = self._check_request(call)
            if violation is not None:
                self._to_cp(CallError(call.unique_id, violation.code, violation.description, {}))
                return
        if self._cp_call is not None and not self._cp_call.expired:
            self._warn(f"new call {call.action} before the answer to {self._cp_call.action} "
                       f"{self._cp_call.unique_id}; that answer will be dropped",
                       call.unique_id, call.action)
            self.stats.incr("upstream.superseded_calls")
        self._cp_call = _CpCall(call.unique_id, call.action,
                                self.clock() + self.config.awaiting_timeout)
        self._to_csms(call, call.action)

    def _on_cp_reply(self, reply: CallResult | CallError) -> None:
        current = self._csms_call
        if current is not None and current.call.unique_id == reply.unique_id:
            self._csms_call = None
        action = self._recent.pop(reply.unique_id, None)
        if action is None:
            self._warn("dropped CP reply: it matches no recent CSMS call", reply.unique_id)
            self.stats.incr("dropped.cp_reply_unmatched")
            return
        channel = self._channel_of.pop(reply.unique_id, None)
        self._remember(self._answered, reply.unique_id, action)
        if current is None or current.call.unique_id != reply.unique_id:
            log.info("[%s] late reply %s to %s forwarded", self.cid, reply.unique_id, action,
                     extra=self._fields(reply.unique_id, action))
            self.stats.incr("upstream.late_replies")
        if isinstance(reply, CallResult) and self._check_upstream:
            violation = self._check_response(action, reply)
            if violation is not None:
                if self.version.has_callresulterror:   # 2.1: the CP learns its answer failed
                    self._to_cp(CallResultError(reply.unique_id, violation.code,
                                                violation.description, {}))
                reply = self._schema_error(reply, violation, action)
        self.stats.incr("upstream.replies")
        self._to_csms(reply, action, channel)

    def _on_cp_send(self, send: Send) -> None:
        """A SEND goes up at once whatever the state; it is never answered (OCPP 2.1 §4.2.4). One that
        fails format checking goes up as a schema gateway error carrying its payload, as a failing CP
        CallResult does (SPEC §7): the CP cannot be told, the CSMS can."""
        if self._check_upstream:
            violation = self._check_request(send)
            if violation is not None:
                self._to_csms(self._schema_error(send, violation, send.action), send.action)
                return
        self.stats.incr("upstream.sends")
        self._to_csms(send, send.action)

    def _on_cp_callresulterror(self, error: CallResultError) -> None:
        """The CP could not process the CSMS's answer to its last call: tell the CSMS."""
        last = self._last_answered_cp_call
        if last is None or last[0] != error.unique_id:
            self._warn("dropped CP CALLRESULTERROR: it matches no answer the CSMS sent it",
                       error.unique_id)
            self.stats.incr("dropped.cp_callresulterror_unmatched")
            return
        self.stats.incr("upstream.callresulterrors")
        self._to_csms(error, last[1])

    # -- from the CSMS -----------------------------------------------------------------------

    def _on_csms_item(self, item) -> None:
        if isinstance(item, Adopted):
            self._pending.extendleft(reversed(item.calls))
            for unique_id, channel in item.channels:
                self._remember_channel(unique_id, channel)
            return
        if isinstance(item, FromChannel):
            self._on_csms_call(item.call, item.channel)
            return
        message, _action = item
        kind = type(message)
        if frames.type_id(message) not in self.version.message_types:
            # Held while the CP was offline, and decoded for another version than it came back with.
            self._warn(f"dropped CSMS {kind.__name__}: {self.version.subprotocol} has no such message",
                       message.unique_id)
            self.stats.incr("dropped.csms_version_mismatch")
            return
        if self.closed is not None and kind is not Call:
            self._warn(f"dropped CSMS {kind.__name__}: the CP has gone", message.unique_id)
            self.stats.incr("dropped.csms_reply_cp_gone")
            return
        if kind is Call:
            self._on_csms_call(message)
        elif kind is Send:
            self._on_csms_send(message)
        elif kind is CallResultError:
            self._on_csms_callresulterror(message)
        else:
            self._on_csms_reply(message)

    def _on_csms_send(self, send: Send) -> None:
        """Delivered at once in any state, never behind calls; no deadline, no answer."""
        if self._check_dnstream:
            violation = self._check_request(send)
            if violation is not None:
                self._to_csms(self._schema_error(send, violation, send.action), send.action)
                return
        self.stats.incr("dnstream.sends")
        self._to_cp(send)

    def _on_csms_callresulterror(self, error: CallResultError) -> None:
        """The CSMS could not process the CP's answer to one of its calls: tell the CP."""
        if error.unique_id not in self._answered:
            self._warn("dropped CSMS CALLRESULTERROR: it matches no answer of the CP",
                       error.unique_id)
            self.stats.incr("dropped.csms_callresulterror_unmatched")
            return
        self.stats.incr("dnstream.callresulterrors")
        self._to_cp(error)

    def _on_csms_call(self, call: Call, channel: str | None = None) -> None:
        if self._check_dnstream:
            violation = self._check_request(call)
            if violation is not None:
                self._to_csms(self._schema_error(call, violation, call.action), call.action, channel)
                return
        if self._knows_csms_call(call.unique_id):
            # e.g. handed over by another gateway instance that had received it too
            self._warn(f"duplicate CSMS call {call.action} dropped: this UniqueId is already "
                       "queued, out, or recently sent or answered", call.unique_id, call.action)
            self.stats.incr("dropped.duplicate_csms_call")
            return
        if len(self._pending) >= self.config.max_mqueue_len:
            self._refuse_csms_call(call, "queue_full",
                                   f"{len(self._pending)} calls already queued for {self.cid}", channel)
            return
        if channel is not None:
            self._remember_channel(call.unique_id, channel)
        self._pending.append(call)

    def _remember_channel(self, unique_id: str, channel: str) -> None:
        # Enough for every call queued, the one out and the recent ones; the oldest go first.
        self._channel_of[unique_id] = channel
        while len(self._channel_of) > self.config.max_mqueue_len + self.config.recent_csms_calls + 1:
            self._channel_of.popitem(last=False)

    def channel_of(self, unique_id: str) -> str | None:
        """The command channel a CSMS call came on (None: the primary downstream topic)."""
        return self._channel_of.get(unique_id)

    def _knows_csms_call(self, unique_id: str) -> bool:
        return (unique_id in self._recent or unique_id in self._answered
                or any(c.unique_id == unique_id for c in self._pending))

    def _remember(self, memory: OrderedDict, unique_id: str, value) -> None:
        memory[unique_id] = value
        while len(memory) > self.config.recent_csms_calls:
            memory.popitem(last=False)

    def _on_csms_reply(self, reply: CallResult | CallError) -> None:
        current = self._cp_call
        if current is None or current.unique_id != reply.unique_id:
            self._warn("dropped CSMS reply: it matches no open call of the CP", reply.unique_id)
            self.stats.incr("dropped.csms_reply_unmatched")
            return
        if isinstance(reply, CallResult) and self._check_dnstream:
            violation = self._check_response(current.action, reply)
            if violation is not None:
                self._to_csms(self._schema_error(reply, violation, current.action), current.action)
                return
        if current.expired:
            log.info("[%s] late reply %s to %s forwarded", self.cid, reply.unique_id, current.action,
                     extra=self._fields(reply.unique_id, current.action))
            self.stats.incr("dnstream.late_replies")
        self._cp_call = None
        if isinstance(reply, CallResult):
            self._last_answered_cp_call = (current.unique_id, current.action)
            if current.action == "BootNotification":
                self._adopt_heartbeat_interval(reply.payload, reply.unique_id)
        self.stats.incr("dnstream.replies")
        self._to_cp(reply)

    def _adopt_heartbeat_interval(self, payload: dict, unique_id: str) -> None:
        interval = payload.get("interval")
        if payload.get("status") != "Accepted" or not isinstance(interval, int) \
                or isinstance(interval, bool) or interval < 0:
            return
        if interval > MAX_HEARTBEAT_INTERVAL:
            self._warn(f"heartbeat interval from the CSMS is more than {MAX_HEARTBEAT_INTERVAL} s; "
                       f"the keepalive check uses {MAX_HEARTBEAT_INTERVAL} s", unique_id, "BootNotification")
            interval = MAX_HEARTBEAT_INTERVAL
        self.heartbeat_interval = float(interval)
        log.info("[%s] heartbeat interval %ss", self.cid, interval, extra=self._fields())

    def upstream_refused(self, item: Upstream) -> None:
        """MQTT would not take ``item``: a CP call is answered so the charger retries later."""
        message = item.message
        if not isinstance(message, Call):
            self._warn(f"{type(message).__name__} to {item.action} lost: MQTT refused it",
                       message.unique_id, item.action)
            self.stats.incr("dropped.upstream_refused")
            return
        if self._cp_call is not None and self._cp_call.unique_id == message.unique_id:
            self._cp_call = None
        self.stats.incr("refused.upstream_call")
        self._to_cp(CallError(message.unique_id, self.version.codes.internal_error,
                              "central system unreachable", {}))

    # -- message format checking (SPEC §7) -----------------------------------------------------

    def _check_request(self, call: Call | Send):
        violation = self.checker.check_request(call.action, call.payload)
        if violation is None:
            self.stats.incr("schema.passed")
            return None
        self._warn(f"{call.action} failed the schema check: {violation.description}",
                   call.unique_id, call.action)
        self.stats.incr(f"schema.failed.{violation.code}")
        return violation

    def _check_response(self, action: str, reply: CallResult):
        violation = self.checker.check_response(action, reply.payload)
        if violation is None or violation.code == "NotImplemented":
            # No schema for an action the other side chose to use: nothing to hold it to.
            self.stats.incr("schema.passed")
            return None
        self._warn(f"{action} reply failed the schema check: {violation.description}",
                   reply.unique_id, action)
        self.stats.incr(f"schema.failed.{violation.code}")
        return violation

    def _refuse_csms_call(self, call: Call, reason: str, description: str,
                          channel: str | None = None) -> None:
        self._warn(f"CSMS call {call.action} refused ({reason}): {description}", call.unique_id,
                   call.action)
        self.stats.incr(f"refused.{reason}")
        self._to_csms(gateway_error(call.unique_id, reason, description, call.action,
                                    version=self.version),
                      call.action, channel)

    # -- sending CSMS calls to the CP --------------------------------------------------------

    def _dispatch(self) -> bool:
        if not self._pending or self.state != WAITING:
            return False
        call = self._pending.popleft()
        now = self.clock()
        self._csms_call = _CsmsCall(call, now + self.config.awaiting_timeout,
                                    now + self.config.retry_interval)
        self._remember(self._recent, call.unique_id, call.action)
        self.stats.incr("dnstream.calls")
        self._to_cp(call)
        return True

    # -- deadlines ---------------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        if self._idle_deadline is not None and now >= self._idle_deadline:
            self._warn(f"no OCPP frame within {self.config.idle_timeout:g}s of connecting", None)
            self.stats.incr("closed.idle_timeout")
            self._close(CLOSE_GOING_AWAY, "idle timeout")
            return
        keepalive = self._keepalive_deadline()
        if keepalive is not None and now >= keepalive:
            self._warn(f"nothing received for {now - self.last_rx:.1f}s "
                       f"(allowed {keepalive - self.last_rx:g}s)", None)
            self.stats.incr("closed.heartbeat_timeout")
            self._close(CLOSE_GOING_AWAY, "heartbeat timeout")
            return
        cp_call = self._cp_call
        if cp_call is not None and not cp_call.expired and now >= cp_call.deadline:
            cp_call.expired = True
            self._warn(f"CSMS did not answer {cp_call.action} within "
                       f"{self.config.awaiting_timeout:g}s", cp_call.unique_id, cp_call.action)
            self.stats.incr("timeouts.csms")
        csms_call = self._csms_call
        if csms_call is None:
            return
        call = csms_call.call
        if now >= csms_call.deadline:
            self._csms_call = None
            self._warn(f"CP did not answer {call.action} within {self.config.awaiting_timeout:g}s",
                       call.unique_id, call.action)
            self.stats.incr("timeouts.cp")
            self._to_csms(gateway_error(call.unique_id, "timeout",
                                        f"{self.cid} did not answer within "
                                        f"{self.config.awaiting_timeout:g}s", call.action,
                                        version=self.version),
                          call.action, self._channel_of.get(call.unique_id))
        elif now >= csms_call.next_retry:
            csms_call.next_retry += self.config.retry_interval
            log.info("[%s] re-sending %s %s", self.cid, call.action, call.unique_id,
                     extra=self._fields(call.unique_id, call.action))
            self.stats.incr("dnstream.retries")
            self._to_cp(call)

    def _keepalive_deadline(self) -> float | None:
        """When the CP will have been silent for too long: computed from the last bytes received, so
        a CP that talks never wakes its thread for a check (at 10,000 CPs those checks were a wake-up
        per CP per interval). Half an interval of tolerance: a CP that heartbeats exactly on time is
        otherwise a network delay away from "silent for longer than the interval"."""
        if self.heartbeat_interval <= 0:
            return None
        return self.last_rx + self.heartbeat_interval * (self.config.heartbeat_backoff + 0.5)

    # -- endings -----------------------------------------------------------------------------

    def _close(self, code: int, reason: str) -> None:
        self.closed = Close(code, reason)
        self.ChargeStationTx.put(self.closed)

    def request_close(self, code: int, reason: str) -> None:
        """Ask the pipe to close the CP (kick, shutdown, takeover); safe from any thread."""
        self.ChargeStationRx.put(Close(code, reason))

    def unfinished_calls(self) -> list[Call]:
        """CSMS calls not answered yet (the one out first); empties the pipe of them."""
        self.step_inputs_only()
        calls = [self._csms_call.call] if self._csms_call is not None else []
        calls.extend(self._pending)
        self._csms_call = None
        self._pending.clear()
        return calls

    def step_inputs_only(self) -> None:
        """Take in what the CSMS already sent, without dispatching (used when ending)."""
        self._drain(self.CSMSRx, self._on_csms_item)

    def answer_unfinished(self, reason: str, description: str) -> int:
        """Answer every CSMS call still held with a gateway error; return how many."""
        calls = self.unfinished_calls()
        for call in calls:
            self._refuse_csms_call(call, reason, description, self._channel_of.get(call.unique_id))
        return len(calls)

    # -- outputs -----------------------------------------------------------------------------

    def _to_cp(self, message: Message) -> None:
        self.messages_out += 1
        self.ChargeStationTx.put(message)

    def _to_csms(self, message: Message, action: str | None, channel: str | None = None) -> None:
        self.CSMSTx.put(Upstream(message, action, channel))

    def _schema_error(self, message: Call | CallResult | Send, violation, action: str) -> CallError:
        """The gateway error that stands in for a message failing its schema (SPEC §6, §7)."""
        return gateway_error(message.unique_id, "schema", violation.description, action,
                             code=violation.code, version=self.version, payload=message.payload)

    def _fields(self, unique_id: str | None = None, action: str | None = None) -> dict:
        return {"cid": self.cid, "unique_id": unique_id, "action": action}

    def _warn(self, text: str, unique_id: str | None, action: str | None = None) -> None:
        ident = f" {unique_id}" if unique_id else ""
        log.warning("[%s]%s %s", self.cid, ident, text, extra=self._fields(unique_id, action))


def drain(channel: queue.Queue) -> Iterable:
    """Everything currently on a channel, taken at once without blocking, oldest first."""
    # Peeking at the deque first skips the lock on an empty channel, which is most calls (a step looks
    # at each channel at least twice); the peek may miss an item put just after it, but that put rings
    # the doorbell, so the owner steps again. Taking the lot under the channel's own lock costs one
    # acquisition instead of get_nowait()'s lock and two condition checks per item.
    if not channel.queue:
        return ()
    with channel.mutex:
        items = tuple(channel.queue)
        channel.queue.clear()
        if channel.maxsize > 0:  # a producer may be waiting for room
            channel.not_full.notify_all()
    return items
