"""One charge point as the ``ocpp`` library sees a websocket: ``recv()`` and ``send()`` of OCPP-J frames.

Frames the CP sent arrive as envelopes (the router turns them back into frames and hands them to
``deliver``); frames the CSMS sends become envelopes on the CP's downstream topic. When the CP
leaves, ``recv()`` first returns what had already arrived, then raises websockets'
``ConnectionClosedOK``, the exception ``ChargePoint.start()`` lets through when a real websocket
closes, so the handler ends the way it does over websockets.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Callable

from websockets.exceptions import ConnectionClosedOK
from websockets.frames import Close

from ..protocol import envelope, frames
from ..protocol.frames import Call, CallResult

log = logging.getLogger("ocpp_gw.backend")

DEFAULT_SUBPROTOCOL = "ocpp1.6"
_END = object()
_MAX_REASON = 120  # a websocket close reason is at most 123 bytes


class Connection:
    """What a handler gets for one CP: ``recv``, ``send``, ``subprotocol``, ``cid``."""

    def __init__(self, cid: str, subprotocol: str | None, gateway: str | None,
                 publish: Callable[[str, Call | CallResult | frames.CallError, str | None], None]):
        self.cid = cid
        self.subprotocol = subprotocol or DEFAULT_SUBPROTOCOL
        self.gateway = gateway  # the gateway instance serving the CP, when its event said so
        self._publish = publish
        self._frames: asyncio.Queue = asyncio.Queue()
        self._close: Close | None = None
        self._cp_call: tuple[str, str] | None = None  # (UniqueId, Action) of the CP's last call

    def __repr__(self) -> str:
        return f"Connection({self.cid!r}, {self.subprotocol!r})"

    @property
    def closed(self) -> bool:
        return self._close is not None

    @property
    def close_reason(self) -> str | None:
        return None if self._close is None else self._close.reason

    async def recv(self) -> str:
        """The next frame the CP sent; raises ConnectionClosedOK once it has left."""
        item = await self._frames.get()
        if item is _END:
            self._frames.put_nowait(_END)  # every later recv() ends the same way
            raise ConnectionClosedOK(self._close, None)
        return item

    async def send(self, frame: str) -> None:
        """Publish one OCPP-J frame to the CP; raises ConnectionClosedOK once it has left."""
        if self._close is not None:
            raise ConnectionClosedOK(None, self._close)
        message = frames.parse(frame)  # FrameError: the CSMS wrote something no CP would take
        action = None
        if isinstance(message, Call):
            action = message.action
        elif self._cp_call is not None and self._cp_call[0] == message.unique_id:
            action = self._cp_call[1]  # merged in as the gateway does upstream
        self._publish(self.cid, message, action)

    def __aiter__(self):
        return self

    async def __anext__(self) -> str:
        try:
            return await self.recv()
        except ConnectionClosedOK:
            raise StopAsyncIteration from None

    # -- the router's side --------------------------------------------------------------------

    def deliver(self, payload: bytes) -> bool:
        """Take one upstream envelope of this CP; False when it is not a valid one."""
        try:
            message, action = envelope.decode(payload)
        except envelope.EnvelopeError as err:
            log.warning("[%s] %s upstream envelope dropped: %s", self.cid, err.unique_id or "-",
                        err.reason, extra={"cid": self.cid, "unique_id": err.unique_id})
            return False
        if isinstance(message, Call):
            self._cp_call = (message.unique_id, message.action)
        self._frames.put_nowait(frames.serialize(message))
        return True

    def end(self, reason: str, code: int = 1000) -> None:
        """The CP has left: ``recv()`` raises once the frames already here are read."""
        if self._close is None:
            self._close = Close(code, reason.encode()[:_MAX_REASON].decode(errors="ignore"))
            self._frames.put_nowait(_END)
