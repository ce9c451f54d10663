"""Serving a CSMS handler over the gateway's MQTT API: one ``handler(connection, cid)`` per CP visit.

A CP's visit begins with its ``connected`` event (or, when that was missed, its first message) and
ends with its ``disconnected`` event or its gateway going offline: the connection's ``recv()`` then
raises and the handler returns. The router keeps one dict entry and one task per connected CP and
nothing once it has left; the MQTT subscriptions are wildcards shared by every CP.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Awaitable, Callable

from websockets.exceptions import ConnectionClosed

from ..protocol import envelope
from .connection import Connection
from .link import MqttLink
from .options import BackendOptions

log = logging.getLogger("ocpp_gw.backend")

Handler = Callable[[Connection, str], Awaitable[None]]


class Backend:
    """The adapter: ``async with Backend(handler, options):`` serves until the block ends."""

    def __init__(self, handler: Handler, options: BackendOptions):
        self.handler = handler
        self.options = options
        self._upstream = options.upstream_templates()
        self._events = options.events_template()
        self._dnstream = options.dnstream_template()
        self._status_prefix = options.mountpoint + "gateway/"
        self._connections: dict[str, Connection] = {}
        self._tasks: dict[Connection, asyncio.Task] = {}
        self._offline_gateways: set[str] = set()
        # Status first: its retained messages then arrive before the retained events, so a
        # "connected" left behind by a gateway that has since died is known to be stale.
        filters = [options.status_filter(), self._events.wildcard()] + [t.wildcard() for t in self._upstream]
        self.link = MqttLink(options, filters, self._on_message)

    @property
    def connections(self) -> dict[str, Connection]:
        """The CPs being served now, by cid."""
        return dict(self._connections)

    async def start(self) -> None:
        await self.link.start()

    async def close(self) -> None:
        """End every connection, wait for the handlers, disconnect from the broker."""
        for connection in list(self._connections.values()):
            self._leave(connection, "adapter closing")
        tasks = list(self._tasks.values())
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=5.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self.link.stop()

    async def __aenter__(self) -> "Backend":
        await self.start()
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()

    # -- from MQTT (on the event loop, in broker order) -----------------------------------------

    def _on_message(self, topic: str, payload: bytes) -> None:
        event = self._events.match(topic)
        if event is not None:
            self._on_event(payload)
            return
        if topic.startswith(self._status_prefix) and topic.endswith("/status"):
            gateway = topic[len(self._status_prefix):-len("/status")]
            if payload == b"offline":
                self._offline_gateways.add(gateway)
                self._gateway_offline(gateway)
            else:
                self._offline_gateways.discard(gateway)
            return
        for template in self._upstream:
            fields = template.match(topic)
            if fields is not None and fields.get("cid"):
                self._on_upstream(fields["cid"], payload)
                return

    def _on_upstream(self, cid: str, payload: bytes) -> None:
        connection = self._connections.get(cid)
        if connection is None:  # its connected event was missed (e.g. the adapter started later)
            connection = self._arrive(cid, _protocol_of(payload), None)
        connection.deliver(payload)

    def _on_event(self, payload: bytes) -> None:
        try:
            event = json.loads(payload)
            cid, kind = event["cid"], event["event"]
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable event dropped: %r", payload[:200])
            return
        current = self._connections.get(cid)
        if kind == "connected":
            if current is not None:
                self._leave(current, "connected again")
            if event.get("gateway") in self._offline_gateways:
                return  # a retained event of a gateway that went away since: no CP behind it
            self._arrive(cid, event.get("subprotocol"), event.get("gateway"))
        elif kind == "disconnected" and current is not None:
            # After a move to another gateway instance, the old instance's late "disconnected"
            # is not about the connection being served now.
            gateway = event.get("gateway")
            if current.gateway is None or gateway is None or gateway == current.gateway:
                self._leave(current, event.get("reason") or "disconnected")

    def _gateway_offline(self, gateway: str) -> None:
        for connection in list(self._connections.values()):
            if connection.gateway == gateway:
                self._leave(connection, f"gateway {gateway} offline")

    # -- a CP's visit ---------------------------------------------------------------------------

    def _arrive(self, cid: str, subprotocol: str | None, gateway: str | None) -> Connection:
        connection = Connection(cid, subprotocol, gateway, self._publish)
        self._connections[cid] = connection
        task = asyncio.get_running_loop().create_task(self._serve(connection), name=f"ocpp-backend-{cid}")
        self._tasks[connection] = task
        return connection

    def _leave(self, connection: Connection, reason: str) -> None:
        connection.end(reason)
        if self._connections.get(connection.cid) is connection:
            del self._connections[connection.cid]

    async def _serve(self, connection: Connection) -> None:
        try:
            await self.handler(connection, connection.cid)
        except ConnectionClosed:
            pass  # the CP left: the usual end of ChargePoint.start()
        except Exception:  # noqa: BLE001 - one handler's failure must not end the others
            log.exception("[%s] handler failed", connection.cid, extra={"cid": connection.cid})
        finally:
            # A handler that returns while its CP is still connected: the CP's next message
            # starts a new one, as a reconnect would.
            self._leave(connection, "handler ended")
            self._tasks.pop(connection, None)

    def _publish(self, cid: str, message, action: str | None) -> None:
        topic = self._dnstream.render(cid, action or "", message.unique_id, envelope.type_name(message))
        self.link.publish(topic, envelope.encode(message, action))


def _protocol_of(payload: bytes) -> str | None:
    """The OCPP version an envelope says it carries ("Protocol"), if it says."""
    try:
        protocol = json.loads(payload).get("Protocol")
    except (ValueError, AttributeError):
        return None
    return protocol if isinstance(protocol, str) else None


async def serve(handler: Handler, broker: str = "127.0.0.1:1883", **options) -> None:
    """Call ``await handler(connection, cid)`` for every CP that connects; runs until cancelled.

    ``options`` are the fields of :class:`BackendOptions` (topic templates, credentials, TLS,
    client id); pass ``options=BackendOptions(...)`` to give them all at once.
    """
    given = options.pop("options", None)
    resolved = (given.replace(broker=broker, **options) if given is not None
                else BackendOptions(broker=broker, **options))
    async with Backend(handler, resolved):
        await asyncio.Future()
