"""The WebSocket listeners: accept loops, one thread per connection, the HTTP upgrade (SPEC §3)."""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple

from ..protocol import handshake
from ..protocol import proxy_header as handshake_proxy
from ..netio import cpus
from ..protocol.peers import address_key
from . import tls
from .admission import PLACE_POLL, SETUP_WAIT, SETUPS_AT_ONCE, PendingLimits, ReadingPlace, Slot
from .proxy_protocol import ProxyPolicy, read_header
from .session import Peer, Session
from .waiting_room import Accepted, WaitingRoom
from .websocket import refuse_after_upgrade

log = logging.getLogger("ocpp_gw.listener")

# Out of file descriptors: the process limit (EMFILE) or the system's (ENFILE).
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)
# How long the accept loop pauses when accept() itself finds no descriptor left: the pending
# connection stays in the backlog, so retrying at once would spin.
DESCRIPTOR_PAUSE = 0.1
# ...and says so at most this often (with the count since), not ten times a second.
DESCRIPTOR_WARNING_EVERY = 10.0
# Connections from untrusted addresses on a PROXY protocol listener: one warning per this many seconds.
UNTRUSTED_WARNING_EVERY = 10.0
# Connections the accept loop takes from the backlog before it looks at the silent ones again.
ACCEPT_BATCH = 64
DESCRIPTOR_HINT = "raise the open files limit, LimitNOFILE: each charge point needs two"


@dataclass(frozen=True)
class ListenerConfig:
    """How the upgrade request is read and judged (built by ``ocpp_gw.config``)."""

    path: str = "/ocpp"  # the cid is the one path segment after it
    handshake_timeout: float = 10.0  # for the whole handshake: PROXY header, TLS, the HTTP request
    versions: handshake.VersionPolicy = field(default_factory=handshake.VersionPolicy)  # SPEC §9
    username_must_match_cid: bool = True
    ssl_organization: str | None = None  # required O of a client certificate
    close_timeout: float = 1.0  # for the close handshake of a CP offering no version served
    proxy: ProxyPolicy = ProxyPolicy()  # PROXY protocol: off, or the versions and the trusted proxies
    pending: PendingLimits = PendingLimits()  # connections before authentication


def _format_peer(address) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Listener:
    """Accepts connections on one address and hands each to its own thread once its client has spoken."""

    def __init__(self, runtime, address: tuple[str, int], name: str, server_tls: tls.ServerTls | None = None):
        self.runtime = runtime
        self.name = name
        self.server_tls = server_tls  # read per accepted connection: SIGHUP swaps its context
        self.sock = socket.create_server(address, family=_family(address[0]), backlog=4096,
                                         reuse_port=False)
        self.sock.setblocking(False)  # the accept loop takes what the backlog holds, then waits in its selector
        self.address = self.sock.getsockname()[:2]
        self.thread = threading.Thread(target=self._accept_loop, name=f"ocpp-accept-{name}",
                                       daemon=True)
        self._stopping = False
        self._descriptor_warned_at = -DESCRIPTOR_WARNING_EVERY
        self._descriptor_misses = 0  # accept() calls without a descriptor since the last warning
        self._untrusted_warned_at = -UNTRUSTED_WARNING_EVERY
        self._untrusted_since_warning = 0  # untrusted PROXY peers closed since the last warning

    def start(self) -> None:
        self.thread.start()
        log.info("listening for charge points on %s://%s/%s", self.name,
                 _format_peer(self.address), self.runtime.config.listener.path.strip("/"))

    def stop(self) -> None:
        self._stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(2.0)

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def _accept_loop(self) -> None:
        room = WaitingRoom(self.sock)
        try:
            while not self._stopping:
                incoming, spoken = room.wait(PLACE_POLL, time.monotonic())
                for accepted in spoken:
                    self._start(accepted)
                if incoming:
                    self._accept_backlog(room)
                for accepted in room.expired(time.monotonic()):
                    self._close_silent(accepted)
        finally:
            for accepted in room.close():
                accepted.drop()

    def _accept_backlog(self, room: WaitingRoom) -> None:
        """Accept what the backlog holds, up to ACCEPT_BATCH: a connection whose client has spoken gets its
        thread, the others wait in `room` until they do."""
        for _ in range(ACCEPT_BATCH):
            try:
                conn, address = self.sock.accept()
            except BlockingIOError:
                return
            except OSError as err:
                self._accept_failed(err)
                return
            accepted = self._admit(conn, _format_peer(address), address[0])
            if accepted is None:
                continue
            if accepted.has_spoken():
                self._start(accepted)
            else:
                room.add(accepted)

    def _accept_failed(self, err: OSError) -> None:
        if self._stopping:
            return
        if err.errno in OUT_OF_DESCRIPTORS:
            self._out_of_descriptors(err)
        else:
            log.exception("accept failed on %s", self.name)

    def _admit(self, conn: socket.socket, peer: str, host: str) -> Accepted | None:
        """The accepted connection with its pending slot and handshake deadline; None when refused or shed."""
        listener = self.runtime.config.listener
        if listener.proxy.enabled and not listener.proxy.trusts(host):
            self._refuse_untrusted(conn, peer)
            return None
        slot = self._pending_slot(peer)
        if slot is None:
            conn.close()  # shed at once, unread: it holds nothing, costs no thread
            return None
        return Accepted(conn, peer, slot, time.monotonic() + listener.handshake_timeout)

    def _start(self, accepted: Accepted) -> None:
        """Start the thread of a connection whose client has spoken, once a reading place is free."""
        place = None
        while place is None:
            if self._stopping:
                accepted.drop()
                return
            place = self.runtime.reading.take(PLACE_POLL)  # the backlog holds the next connections meanwhile
        thread = threading.Thread(target=self._serve, args=(accepted, place),
                                  name=f"ocpp-conn-{accepted.peer}", daemon=True)
        try:
            thread.start()
        except RuntimeError:
            place.give_back()
            accepted.slot.release()
            _refuse_quickly(accepted.conn, handshake.Refusal(503, "cannot start a thread"))

    def _close_silent(self, accepted: Accepted) -> None:
        log.warning("connection from %s closed: no handshake within %gs", accepted.peer,
                    self.runtime.config.listener.handshake_timeout)
        self.runtime.stats.incr("refused.handshake_timeout")
        accepted.drop()

    def _pending_slot(self, peer: str) -> Slot | None:
        """A slot before authentication; its address's too, unless a PROXY header will name the address."""
        slot = self.runtime.pending.admit()
        if slot is not None and not self.runtime.config.listener.proxy.enabled \
                and not slot.claim_address(address_key(peer)):
            slot.release()
            return None
        return slot

    def _refuse_untrusted(self, conn: socket.socket, peer: str) -> None:
        """A PROXY protocol listener takes connections from its trusted proxies only: anyone else could claim any
        address in a header. Closed at once, unread."""
        self.runtime.stats.incr("refused.proxy_untrusted")
        conn.close()
        self._untrusted_since_warning += 1
        now = time.monotonic()
        if now - self._untrusted_warned_at >= UNTRUSTED_WARNING_EVERY:  # a flood must not flood the log
            log.warning("connection from %s closed: not a trusted PROXY protocol source "
                        "(ocpp.listener.proxy_protocol.trusted); %d such connection(s) since the last warning",
                        peer, self._untrusted_since_warning)
            self._untrusted_warned_at = now
            self._untrusted_since_warning = 0

    def _out_of_descriptors(self, err: OSError) -> None:
        self.runtime.stats.incr("refused.no_file_descriptors")
        self._descriptor_misses += 1
        now = time.monotonic()
        if now - self._descriptor_warned_at >= DESCRIPTOR_WARNING_EVERY:
            log.warning("cannot accept on %s: %s (%d time(s) since the last warning; connections "
                        "wait in the backlog; %s)", self.name, err.strerror, self._descriptor_misses,
                        DESCRIPTOR_HINT)
            self._descriptor_warned_at = now
            self._descriptor_misses = 0
        time.sleep(DESCRIPTOR_PAUSE)

    def _serve(self, accepted: Accepted, place: ReadingPlace) -> None:
        try:
            context = self.server_tls.context if self.server_tls is not None else None
            Connection(self.runtime, accepted.conn, accepted.peer, context, accepted.slot, place,
                       deadline=accepted.deadline).handle()
        finally:
            place.give_back()
            accepted.slot.release()


class Connection:
    """One accepted socket until it is refused or has become a session."""

    def __init__(self, runtime, sock: socket.socket, peer: str, ssl_context, slot: Slot | None = None,
                 place: ReadingPlace | None = None, *, deadline: float | None = None):
        self.runtime = runtime
        self.slot = slot  # the pending slot, given back when the handshake ends
        self.place = place  # the reading place, given back when this thread first waits
        self.config: ListenerConfig = runtime.config.listener
        self.sock = sock
        self.peer = peer  # the charge point's address: the socket's, or the one a trusted proxy names
        self.ssl_context = ssl_context
        self.deadline = deadline  # of the handshake, on the monotonic clock; None: from when it starts
        self.upgrade: handshake.Upgrade | None = None  # set by _decide() for a request that passed the checks
        self._has_turn = False  # holds one of runtime.setting_up

    def handle(self) -> None:
        try:
            decision = self._handshake()
            if decision is not None:
                self._serve_session(decision)
        except (OSError, ssl.SSLError) as err:
            log.info("connection from %s ended during the handshake: %s", self.peer, err)
            self.runtime.stats.incr("handshake.aborted")
        except Exception:  # noqa: BLE001 - never let one connection take the listener down
            log.exception("connection from %s failed", self.peer)
            self.runtime.stats.incr("errors.handshake")
        finally:
            self._give_back_place()
            self._end_turn()
            self._release_slot()
            if self.sock is not None:
                self.sock.close()

    def _handshake(self) -> Peer | None:
        """PROXY header, TLS, the HTTP request and its authorization, within one deadline; the peer to serve, or
        None when the connection was refused or ended (answered, logged, counted)."""
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # One deadline for the whole handshake: a per-read timeout would let a client that
        # dribbles its request a byte at a time hold the connection forever.
        if self.deadline is None:
            self.deadline = time.monotonic() + self.config.handshake_timeout
        if self.config.proxy.enabled:
            if not self._take_proxy_header() or not self._claim_address():
                return None
        if self.ssl_context is not None and self._tls_handshake() is None:
            return None
        raw = self._read_request()
        if raw is None:
            return None
        if not self._take_turn():
            log.warning("connection from %s refused: %d connections were being set up for %gs", self.peer,
                        SETUPS_AT_ONCE, SETUP_WAIT)
            self._refuse(handshake.Refusal(503, "busy", {"Retry-After": "10"}))
            return None
        decision = self._decide(raw)
        if isinstance(decision, handshake.Refusal):
            self._refuse(decision)
            return None
        if isinstance(decision, _Unserved):
            self._close_unserved(self.sock, decision)
            return None
        return decision

    def _serve_session(self, decision: Peer) -> None:
        """An authenticated charge point: it takes one of max_connections and runs its session."""
        if not self.runtime.connections.acquire(blocking=False):
            self.runtime.stats.incr("refused.max_connections")
            log.warning("[%s] connection from %s refused: max_connections reached", decision.cid, self.peer,
                        extra={"cid": decision.cid})
            self._refuse(handshake.Refusal(503, "too many connections", {"Retry-After": "30"}))
            return
        try:
            self._release_slot()
            self.sock.settimeout(None)
            try:
                session = Session(self.runtime, self.sock, self.upgrade, decision)
            except OSError as err:
                if err.errno not in OUT_OF_DESCRIPTORS:
                    raise
                # The doorbell's eventfd could not be opened: tell the CP, which will retry later.
                log.warning("[%s] no file descriptor left for the connection from %s: %s (%s)",
                            decision.cid, self.peer, err.strerror, DESCRIPTOR_HINT,
                            extra={"cid": decision.cid})
                self.runtime.stats.incr("refused.no_file_descriptors")
                self._refuse(handshake.Refusal(503, "out of file descriptors", {"Retry-After": "10"}))
                return
            self.sock = None  # the session owns it now
            session.run(ready=self._end_turn)
        finally:
            self.runtime.connections.release()

    def _take_turn(self) -> bool:
        """One of the SETUPS_AT_ONCE turns, waiting for it at most SETUP_WAIT."""
        self._give_back_place()
        self._has_turn = self.runtime.setting_up.acquire(timeout=SETUP_WAIT)
        return self._has_turn

    def _end_turn(self) -> None:
        if self._has_turn:
            self._has_turn = False
            self.runtime.setting_up.release()

    def _release_slot(self) -> None:
        if self.slot is not None:
            self.slot.release()

    def _give_back_place(self) -> None:
        if self.place is not None:
            self.place.give_back()

    def _claim_address(self) -> bool:
        """Behind a proxy the address is known from its header only; shed when that address has its slots."""
        return self.slot is None or self.slot.claim_address(address_key(self.peer))

    def _take_proxy_header(self) -> bool:
        """Read the PROXY protocol header (before TLS); the peer becomes the address it names. False when there
        is none or it is malformed (logged, counted)."""
        verdict = read_header(self.sock, self.deadline, self.config.proxy.versions)
        if isinstance(verdict, handshake_proxy.Malformed):
            log.warning("connection from %s closed: %s", self.peer, verdict.reason)
            self.runtime.stats.incr("refused.proxy_header")
            return False
        if verdict.source is not None:
            proxy, self.peer = self.peer, _format_peer(verdict.source)
            log.debug("connection from %s through proxy %s (PROXY v%d)", self.peer, proxy, verdict.version)
        return True

    def _tls_handshake(self) -> ssl.SSLSocket | None:
        """TLS on this thread, within the handshake deadline (do_handshake treats the socket timeout as one
        deadline for the whole exchange); the TLS socket, or None when the handshake failed (logged)."""
        self._give_back_place()  # the handshake waits for the client's answers
        self.sock = self.ssl_context.wrap_socket(self.sock, server_side=True, do_handshake_on_connect=False)
        try:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            with cpus.spread():  # its cryptography runs without the GIL: any CPU will do
                self.sock.do_handshake()
            return self.sock
        except TimeoutError:
            log.warning("connection from %s closed: no TLS handshake within %gs", self.peer,
                        self.config.handshake_timeout)
            self.runtime.stats.incr("refused.handshake_timeout")
        except ssl.SSLError as error:
            about_certificate, reason = tls.handshake_failure(error)
            if about_certificate:
                log.warning("connection from %s refused: %s", self.peer, reason)
                self.runtime.stats.incr("refused.tls_certificate")
            else:  # scanners, plain HTTP on the TLS port, old TLS versions: not worth a warning each
                log.info("connection from %s: %s", self.peer, reason)
                self.runtime.stats.incr("handshake.tls_failed")
        return None

    def _read_request(self) -> bytes | None:
        buf = b""
        while True:
            try:
                chunk = self._receive()
            except TimeoutError:
                log.warning("connection from %s closed: no handshake within %gs", self.peer,
                            self.config.handshake_timeout)
                self.runtime.stats.incr("refused.handshake_timeout")
                return None
            if not chunk:
                return None
            buf += chunk
            end = handshake.find_header_end(buf)
            if end >= 0:
                # Frames sent right behind the request stay in buf: wsproto gets them too.
                return buf
            if len(buf) > handshake.MAX_REQUEST_BYTES:
                self._refuse(handshake.too_large())
                return None

    def _receive(self) -> bytes:
        """The next bytes of the request, by the deadline. While this thread holds its reading place it reads
        without waiting first; when nothing has arrived it gives the place back, then waits."""
        if self.place is not None and self.place.held:
            self.sock.settimeout(0.0)
            try:
                return self.sock.recv(4096)
            except BlockingIOError:
                self.place.give_back()
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        return self.sock.recv(4096)

    def _decide(self, raw: bytes) -> Peer | handshake.Refusal | "_Unserved":
        config = self.config
        end = handshake.find_header_end(raw)
        if end > handshake.MAX_REQUEST_BYTES:
            return handshake.too_large()
        request = handshake.parse_request(raw[:end], path_prefix=config.path)
        if isinstance(request, handshake.Refusal):
            return request
        self.upgrade = handshake.Upgrade.of(request, raw[end:])
        transport = handshake.PLAIN
        if isinstance(self.sock, ssl.SSLSocket):
            # A non-empty dict only when TLS asked for a client certificate and verified it.
            certificate = self.sock.getpeercert()
            if certificate:
                refusal = tls.certificate_refusal(certificate, request.cid, config.ssl_organization)
                if refusal is not None:
                    return refusal
            transport = handshake.Transport(tls=True, client_certificate=bool(certificate))
        with cpus.spread():  # a password hash runs without the GIL: any CPU will do
            refusal = handshake.authorize(request, self.runtime.auth, peer=self.peer, transport=transport,
                                          must_match_cid=config.username_must_match_cid)
        if refusal is not None:
            return refusal
        versions_of = getattr(self.runtime.auth, "versions", None)   # the file backend has them
        allowed = versions_of(request.cid) if versions_of is not None else None
        outcome = handshake.negotiate(request.subprotocols, config.versions, allowed)
        if isinstance(outcome, handshake.NoVersion):
            return _Unserved(request.cid, outcome.reason)
        return Peer(request.cid, self.peer, request.username, outcome.echo, outcome.version)

    def _close_unserved(self, sock, unserved: "_Unserved") -> None:
        """OCPP-J §3: complete the upgrade without a subprotocol, then close at once (1002)."""
        log.warning("[%s] connection from %s closed: %s", unserved.cid, self.peer, unserved.reason,
                    extra={"cid": unserved.cid})
        self.runtime.stats.incr("refused.no_subprotocol")
        sock.settimeout(None)
        self.sock = None   # refuse_after_upgrade closes it
        refuse_after_upgrade(sock, self.upgrade, unserved.reason,
                             close_timeout=self.config.close_timeout)

    def _refuse(self, refusal: handshake.Refusal) -> None:
        # 429s come in bursts; the throttle logs the start of each burst once.
        self._give_back_place()  # the client may take its time to read the answer
        level = logging.DEBUG if refusal.status == 429 else logging.WARNING
        log.log(level, "connection from %s refused: %d %s", self.peer, refusal.status, refusal.reason)
        self.runtime.stats.incr(f"refused.http_{refusal.status}")
        try:
            self.sock.settimeout(REFUSAL_SEND_TIME)
            self.sock.sendall(refusal.to_bytes())
        except OSError:
            pass


class _Unserved(NamedTuple):
    """An authorized CP that offered no version it may use (SPEC §9)."""

    cid: str
    reason: str


# Seconds a refusal may take to send (a client that reads nothing must not hold the thread).
REFUSAL_SEND_TIME = 2.0
# Seconds the accept loop gives a refused client, at most, to send its request. The loop accepts
# nothing meanwhile; it only ever waits when the connection limit is reached.
REFUSAL_READ_TIME = 1.0


def _refuse_quickly(conn: socket.socket, refusal: handshake.Refusal) -> None:
    try:
        # Closing with the request unread makes the kernel reset the connection, and the reset can
        # overtake our answer: the client would see "connection reset" instead of the 503. So read
        # the request first, within one short deadline (this runs on the accept loop).
        deadline = time.monotonic() + REFUSAL_READ_TIME
        received = b""
        try:
            while handshake.find_header_end(received) < 0 and len(received) <= handshake.MAX_REQUEST_BYTES:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                conn.settimeout(remaining)
                chunk = conn.recv(4096)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pass
        conn.settimeout(1.0)
        conn.sendall(refusal.to_bytes())
    except OSError:
        pass
    finally:
        conn.close()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
