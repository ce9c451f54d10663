"""Every private or undocumented member of a third-party library that the gateway relies on, by library.

``ocpp_gw/mqtt/client.py`` (paho-mqtt) and ``ocpp_gw/chargers/websocket.py`` (simple-websocket and
wsproto) are the only modules that use these names. When an upgrade renames or drops one, the test
of that library fails naming the member, the version installed and what depends on it, instead of
the gateway silently losing a speed-up or a safety bound.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import paho.mqtt.client as paho_client
import simple_websocket.ws as simple_websocket_ws
import wsproto
import wsproto.connection as wsproto_connection
import wsproto.extensions as wsproto_extensions
import wsproto.frame_protocol as wsproto_frame_protocol


def _method(cls, name: str) -> str:
    member = getattr(cls, name, None)
    return inspect.getsource(member) if callable(member) else ""


def _missing(checks: dict[str, bool]) -> list[str]:
    return [what for what, present in checks.items() if not present]


def _explain(package: str, module: str, missing: list[str]) -> str:
    return (f"{package} {version(package)} changed internals that {module} relies on:\n  - "
            + "\n  - ".join(missing) + f"\nAdapt {module} to this version (or pin {package}).")


def test_paho_mqtt_still_has_every_internal_the_buffered_client_uses():
    client = paho_client.Client
    source = inspect.getsource(client)
    checks = {
        "Client._sock (the broker socket, read by BufferedClient)": "self._sock = " in source,
        "Client._sock_recv(bufsize) (every packet read goes through it)":
            "self._sock_recv(" in _method(client, "_packet_read"),
        "Client._sock_send(buf) (every packet write goes through it)":
            "self._sock_send(" in _method(client, "_packet_write"),
        "Client._sockpairW (the wake-up socket, assigned by loop_start, written by _packet_queue)":
            "self._sockpairW" in _method(client, "loop_start")
            and "self._sockpairW.send(" in _method(client, "_packet_queue"),
        "Client._call_socket_register_write() (called when a send would block)":
            callable(getattr(client, "_call_socket_register_write", None)),
        "Client._thread (the network thread, for the watchdog's liveness check)":
            "self._thread = threading.Thread(" in source,
        "Client._loop calls loop_read() when select() says readable":
            "self.loop_read()" in _method(client, "_loop"),
        "module-level `select` used by Client._loop (replaced by a poll()-based one)":
            hasattr(paho_client, "select") and "select.select(" in _method(client, "_loop"),
        "Client._sockpairR (the wake-up socket's read end, drained by Client._loop)":
            "self._sockpairR.recv(" in _method(client, "_loop"),
        "Client._packet_queue(command, packet, mid, qos, info) (PUBLISH and PUBACK sent at once)":
            list(inspect.signature(client._packet_queue).parameters)[1:6] == [
                "command", "packet", "mid", "qos", "info"]
            and "self._packet_queue(PUBLISH" in _method(client, "_send_publish")
            and "self._packet_queue(command" in _method(client, "_send_command_with_mid"),
        "Client._out_packet entries {command, mid, qos, pos, to_process, packet, info}, written by "
        "_packet_write": all(f"'{key}'" in _method(client, "_packet_write") or f'"{key}"' in _method(
            client, "_packet_queue") for key in ("command", "mid", "qos", "pos", "to_process", "packet", "info"))
            and "self._out_packet.popleft()" in _method(client, "_packet_write"),
        "Client._msgtime_mutex and _last_msg_out (updated after a write, for the keepalive)":
            "self._last_msg_out = time_func()" in _method(client, "_packet_write")
            and "with self._msgtime_mutex:" in _method(client, "_packet_write"),
        "module-level time_func and sockpair_data":
            callable(getattr(paho_client, "time_func", None)) and hasattr(paho_client, "sockpair_data"),
        "MQTTMessageInfo._set_as_published() (a QoS 0 PUBLISH sent at once)":
            callable(getattr(paho_client.MQTTMessageInfo, "_set_as_published", None)),
        "Client._handle_pubackcomp(cmd), called by _packet_handle with \"PUBACK\"":
            "self._handle_pubackcomp(\"PUBACK\")" in _method(client, "_packet_handle"),
        "Client._in_packet[\"packet\"] (the body of the packet being handled)":
            "self._in_packet[\"packet\"]" in _method(client, "_handle_pubackcomp")
            or "self._in_packet['packet']" in _method(client, "_handle_pubackcomp"),
        "Client._out_messages, _out_message_mutex, _inflight_messages, _max_inflight_messages and "
        "_update_inflight() (a PUBACK settles its message)": all(
            name in _method(client, "_do_on_publish") + _method(client, "_handle_pubackcomp") for name in (
                "self._out_messages.pop(mid)", "self._out_message_mutex", "self._inflight_messages -= 1",
                "self._max_inflight_messages", "self._update_inflight()", "msg.info._set_as_published()")),
        "Client._handle_publish(), called by _packet_handle for a PUBLISH; _manual_ack, _protocol and "
        "_send_puback(mid) (a plain PUBLISH handed over as topic and payload)":
            "self._handle_publish()" in _method(client, "_packet_handle")
            and "self._manual_ack" in _method(client, "_handle_publish")
            and "self._send_puback(message.mid)" in _method(client, "_handle_publish")
            and "self._protocol" in _method(client, "_handle_publish"),
        "Client.reconnect() connects to self._host/self._port (pointed at the next broker before each attempt)":
            "self._host" in _method(client, "reconnect") and "self._port" in _method(client, "reconnect"),
        "Client.loop_forever retries through reconnect() and _reconnect_wait()":
            "self.reconnect()" in _method(client, "loop_forever")
            and "self._reconnect_wait()" in _method(client, "loop_forever"),
        "Client._handle_suback(), called by _packet_handle for a SUBACK (dropped when nobody reads it)":
            "self._handle_suback()" in _method(client, "_packet_handle"),
        "module-level mqtt_ms_publish and mqtt_ms_queued, set by _messages_reconnect_reset_out and read by "
        "_handle_connack's resending (limit_in_flight re-marks the messages beyond the broker's limit)":
            hasattr(paho_client, "mqtt_ms_publish") and hasattr(paho_client, "mqtt_ms_queued")
            and "m.state = mqtt_ms_publish" in _method(client, "_messages_reconnect_reset_out")
            and "if m.state == mqtt_ms_queued:" in _method(client, "_handle_connack"),
        "Client._reconnect_delay (None after a CONNACK), _reconnect_min_delay":
            "self._reconnect_delay = None" in _method(client, "_handle_connack")
            and "self._reconnect_min_delay" in _method(client, "_reconnect_wait"),
    }
    missing = _missing(checks)
    assert not missing, _explain("paho-mqtt", "ocpp_gw/mqtt/client.py", missing)


def test_simple_websocket_still_has_every_internal_the_charge_point_socket_uses():
    base = simple_websocket_ws.Base
    init = inspect.getsource(base.__init__)
    server_init = inspect.getsource(simple_websocket_ws.Server.__init__)
    checks = {
        "Base.__init__(sock, connection_type, receive_bytes, ping_interval, max_message_size, thread_class, "
        "event_class)": all(name in inspect.signature(base.__init__).parameters for name in (
            "receive_bytes", "max_message_size", "thread_class", "event_class")),
        "Base.__init__ calls self.handshake() (overridden to replay our request)": "self.handshake()" in init,
        "Base.__init__ starts thread_class(target=...) (replaced by one that never starts)":
            "thread_class(target=" in init and ".start()" in init,
        "Server.__init__ reads the socket from environ['werkzeug.socket']": "werkzeug.socket" in server_init,
        "Base._handle_events() -> bool (turns wsproto events into input_buffer)":
            callable(getattr(base, "_handle_events", None)),
        "Base.ws (the wsproto connection)": "self.ws = WSConnection(" in init,
        "Base.input_buffer, incoming_message, incoming_message_len, close_reason, close_message, connected": all(
            f"self.{name} = " in init for name in ("input_buffer", "incoming_message", "incoming_message_len",
                                                   "close_reason", "close_message", "connected")),
    }
    missing = _missing(checks)
    assert not missing, _explain("simple-websocket", "ocpp_gw/chargers/websocket.py", missing)


def test_wsproto_still_has_every_internal_the_text_frame_shortcut_checks():
    connection = inspect.getsource(wsproto_connection.Connection)
    protocol = inspect.getsource(wsproto_frame_protocol.FrameProtocol)
    decoder = inspect.getsource(wsproto_frame_protocol.FrameDecoder)
    checks = {
        "WSConnection.connection (the Connection once open)": "self.connection: Connection | None"
                                                             in inspect.getsource(wsproto.WSConnection),
        "Connection._proto (its FrameProtocol)": "self._proto = FrameProtocol(" in connection,
        "Connection._events (events not yet taken)": "self._events" in connection,
        "FrameProtocol.extensions (the enabled ones)": "self.extensions = [ext for ext in extensions if ext.enabled()]"
                                                        in protocol,
        "FrameProtocol._frame_decoder, _message_decoder, _outbound_opcode": all(
            f"self.{name} = " in protocol for name in ("_frame_decoder", "_message_decoder", "_outbound_opcode")),
        "FrameDecoder.header and FrameDecoder.buffer (a Buffer with len())": "self.header: " in decoder
            and "self.buffer = Buffer()" in decoder and callable(getattr(wsproto_frame_protocol.Buffer, "__len__", None)),
        "MessageDecoder.opcode (None between messages)":
            "self.opcode = None" in inspect.getsource(wsproto_frame_protocol.MessageDecoder),
    }
    missing = _missing(checks)
    assert not missing, _explain("wsproto", "ocpp_gw/chargers/websocket.py", missing)


def test_wsproto_still_has_every_internal_the_bounded_deflate_uses():
    deflate = wsproto_extensions.PerMessageDeflate
    source = inspect.getsource(deflate)
    checks = {
        f"PerMessageDeflate.{name}": f"self.{name}" in source
        for name in ("_inbound_compressed", "_inbound_is_compressible", "_decompressor",
                     "server_no_context_takeover", "client_no_context_takeover")
    }
    checks.update({
        f"PerMessageDeflate.{name}(proto, ...) (overridden)": callable(getattr(deflate, name, None))
        for name in ("frame_inbound_payload_data", "frame_inbound_complete")
    })
    checks["ParseFailed(message, code) (raised with MESSAGE_TOO_BIG)"] = list(
        inspect.signature(wsproto_frame_protocol.ParseFailed.__init__).parameters)[1:3] == ["msg", "code"]
    missing = _missing(checks)
    assert not missing, _explain("wsproto", "ocpp_gw/chargers/websocket.py", missing)
