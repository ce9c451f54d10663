"""BufferedClient relies on paho internals: these tests fail when a paho upgrade moves them."""

import inspect
import socket

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ocpp_gw.mqtt.client import BufferedClient


def source(name):
    return inspect.getsource(getattr(mqtt.Client, name))


def test_paho_reads_packets_through_sock_recv():
    assert "self._sock_recv(" in source("_packet_read")


def test_paho_writes_packets_through_sock_send():
    assert "self._sock_send(" in source("_packet_write")


def test_paho_wakes_its_loop_through_sockpair_w():
    assert "self._sockpairW.send(" in source("_packet_queue")
    assert "self._sockpairW" in source("loop_start")


def test_paho_checks_for_readable_data_before_loop_read():
    assert "self.loop_read()" in source("_loop")


def make_client():
    return BufferedClient(CallbackAPIVersion.VERSION2, client_id="unit")


class FakePahoSocket:
    """Stands in for the broker connection: hands out what a test queued, then EAGAIN."""

    def __init__(self, *chunks):
        self.chunks = list(chunks)

    def recv(self, n):
        if not self.chunks:
            raise BlockingIOError
        return self.chunks.pop(0)[:n]

    def close(self):
        pass


def test_small_reads_are_served_from_one_large_read():
    client = make_client()
    client._sock = FakePahoSocket(b"\x30\x05hello\x40\x02")
    assert client._sock_recv(1) == b"\x30"
    assert client._sock_recv(1) == b"\x05"
    assert client._sock_recv(5) == b"hello"
    assert client.buffered_bytes() == 2
    assert client._sock_recv(10) == b"\x40\x02"  # short: what is left
    assert client.buffered_bytes() == 0


def test_buffered_bytes_of_an_old_connection_are_dropped():
    client = make_client()
    client._sock = FakePahoSocket(b"old-bytes")
    assert client._sock_recv(1) == b"o"
    client._sock = FakePahoSocket(b"new")
    assert client.buffered_bytes() == 0
    assert client._sock_recv(3) == b"new"


def test_nothing_to_read_raises_blocking_io_error_as_paho_expects():
    client = make_client()
    client._sock = FakePahoSocket()
    try:
        client._sock_recv(1)
    except BlockingIOError:
        return
    raise AssertionError("expected BlockingIOError")


def test_plain_socket_reads_go_through_the_gil_keeping_call():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    client = make_client()
    try:
        client._sock = b
        a.sendall(b"\x20\x02\x00\x00")
        assert client._sock_recv(1) == b"\x20"
        assert client.buffered_bytes() == 3
        assert client._sock_send(b"ping") == 4
        assert a.recv(10) == b"ping"
    finally:
        client._sock = None
        a.close()
        b.close()


def test_the_wake_up_socket_is_wrapped_and_still_wakes():
    client = make_client()
    client.loop_start()  # creates paho's socketpair (no broker needed: it only waits)
    try:
        waker = client._sockpairW
        assert type(waker).__name__ == "_Waker"
        waker.send(b"x")
    finally:
        client.loop_stop()


def test_paho_waits_through_its_module_level_select():
    from ocpp_gw.mqtt.client import poll_select
    assert "select.select(" in source("_loop")
    assert mqtt.select.select is poll_select


def test_poll_select_answers_like_select():
    from ocpp_gw.mqtt.client import poll_select
    a, b = socket.socketpair()
    try:
        assert poll_select([a], [], [], 0) == ([], [], [])
        assert poll_select([a], [b], [], 0) == ([], [b], [])
        b.sendall(b"x")
        assert poll_select([a, b.fileno()], [], [], 0.5) == ([a], [], [])
        b.close()  # a hang-up reads as readable, as with select
        a.recv(1)
        assert poll_select([a], [], [], 0.5) == ([a], [], [])
    finally:
        a.close()


def test_poll_select_refuses_a_closed_socket_like_select():
    from ocpp_gw.mqtt.client import poll_select
    a, b = socket.socketpair()
    a.close()
    b.close()
    try:
        poll_select([a], [], [], 0)
    except ValueError:
        return
    raise AssertionError("expected ValueError for a closed socket (fileno -1)")


class WakeRecorder:
    def __init__(self):
        self.sent = []

    def send(self, data):
        self.sent.append(data)
        return len(data)

    def close(self):
        pass


class ConnectedClient:
    """A BufferedClient on one end of a socketpair, as if paho's loop thread were `loop_thread`."""

    def __init__(self, loop_thread):
        self.peer, sock = socket.socketpair()
        sock.setblocking(False)
        self.peer.settimeout(2)
        self.client = make_client()
        self.client._sock = sock
        self.client._thread = loop_thread
        self.client._sockpairW = self.wake = WakeRecorder()

    def close(self):
        self.client._sock.close()
        self.client._sock = None
        self.client._thread = None
        self.peer.close()


def test_a_publish_from_a_connection_thread_is_sent_at_once_without_waking_paho():
    import threading
    paho_thread = threading.Thread(target=lambda: None)
    side = ConnectedClient(paho_thread)
    try:
        rc = side.client._send_publish(1, b"ocpp/cp/CP1", b"[2]", qos=1)
        assert rc == 0
        assert side.peer.recv(100) == b"\x32\x12\x00\x0bocpp/cp/CP1\x00\x01[2]"
        assert not side.client._out_packet
        assert side.wake.sent == []
    finally:
        side.close()


def test_a_publish_behind_a_queued_packet_waits_its_turn_and_wakes_paho():
    import threading
    side = ConnectedClient(threading.Thread(target=lambda: None))
    try:
        side.client._send_simple_command(mqtt.PINGREQ)  # goes paho's way: queued, paho woken
        side.client._send_publish(2, b"t", b"x", qos=1)
        assert len(side.client._out_packet) == 2
        assert side.wake.sent == [b"0", b"0"]
        side.client._packet_write()  # paho's thread sends both, in order
        assert side.peer.recv(100) == b"\xc0\x00" + b"\x32\x06\x00\x01t\x00\x02x"
    finally:
        side.close()


def test_paho_thread_sends_its_puback_in_the_same_pass_without_waking_itself():
    import threading
    side = ConnectedClient(threading.current_thread())
    try:
        side.client._send_puback(7)
        assert side.peer.recv(100) == b"\x40\x02\x00\x07"
        assert side.wake.sent == [] and not side.client._out_packet
    finally:
        side.close()


def test_a_publish_while_another_thread_writes_is_left_to_paho():
    import threading
    side = ConnectedClient(threading.Thread(target=lambda: None))
    writing = threading.Event()
    done = threading.Event()

    def hold_the_write_lock():
        with side.client._write_lock:
            writing.set()
            done.wait(5)

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    try:
        assert writing.wait(5)
        side.client._send_publish(3, b"t", b"x", qos=1)
        assert len(side.client._out_packet) == 1 and side.wake.sent == [b"0"]
    finally:
        done.set()
        holder.join()
        side.close()
def test_a_puback_settles_its_message_without_building_a_reason_code_or_properties(monkeypatch):
    import threading
    import paho.mqtt.properties
    import paho.mqtt.reasoncodes

    side = ConnectedClient(threading.current_thread())
    try:
        info = side.client.publish("t", b"x", qos=1)
        side.peer.recv(100)
        assert side.client._inflight_messages == 1 and not info.is_published()

        def not_wanted(*args, **kwargs):
            raise AssertionError("built for a PUBACK nobody reads")
        monkeypatch.setattr(paho.mqtt.properties.Properties, "__init__", not_wanted)
        monkeypatch.setattr(paho.mqtt.reasoncodes.ReasonCode, "__init__", not_wanted)
        side.peer.sendall(b"\x40\x02" + info.mid.to_bytes(2, "big") + b"\x40\x02\x99\x99")  # ours, then a stranger's
        assert side.client.loop_read() == 0
        assert info.is_published() and side.client._inflight_messages == 0 and not side.client._out_messages
    finally:
        side.close()


def test_with_an_on_publish_callback_a_puback_goes_paho_s_way_and_reaches_it():
    import threading
    side = ConnectedClient(threading.current_thread())
    published = []
    side.client.on_publish = lambda client, userdata, mid, reason_code, properties: published.append(
        (mid, reason_code.is_failure))
    try:
        info = side.client.publish("t", b"x", qos=1)
        side.client._packet_write()
        side.peer.sendall(b"\x40\x02" + info.mid.to_bytes(2, "big"))
        assert side.client.loop_read() == 0
        assert published == [(info.mid, False)] and info.is_published()
    finally:
        side.close()


def test_a_qos1_publish_goes_to_on_received_as_topic_and_payload_then_is_acked(monkeypatch):
    import threading
    side = ConnectedClient(threading.current_thread())
    received = []
    side.client.on_received = lambda topic, payload: received.append((topic, payload))
    side.client.on_message = lambda *args: received.append("paho's way")

    def not_wanted(*args, **kwargs):
        raise AssertionError("a message object built for a plain PUBLISH")
    monkeypatch.setattr(mqtt.MQTTMessage, "__init__", not_wanted)
    try:
        side.peer.sendall(b"\x32\x0c\x00\x05ocp\xc3\xa9\x00\x09[3]" + b"\x30\x04\x00\x01tx")  # QoS 1, then QoS 0
        assert side.client.loop_read() == 0
        assert received == [("ocp\u00e9", b"[3]"), ("t", b"x")]
        assert all(type(payload) is bytes for _topic, payload in received)
        assert side.peer.recv(100) == b"\x40\x02\x00\x09"  # one PUBACK, for the QoS 1 message
    finally:
        side.close()


def test_a_publish_that_is_not_plain_takes_pahos_way():
    from ocpp_gw.mqtt.client import _parse_publish
    assert _parse_publish(b"\x00\x01t\x00\x07body", 1, mqtt5=False) == ("t", 7, b"body")
    assert _parse_publish(b"\x00\x01t\x00\x07\x00body", 1, mqtt5=True) == ("t", 7, b"body")
    assert _parse_publish(b"\x00\x01t\x00\x07\x02\x01\x01body", 1, mqtt5=True) is None  # MQTT 5 properties
    assert _parse_publish(b"\x00\x02\xff\xfebody", 0, mqtt5=False) is None  # a topic that is not UTF-8
    assert _parse_publish(b"\x00\x09t", 0, mqtt5=False) is None  # shorter than its topic
    assert _parse_publish(b"\x00", 0, mqtt5=False) is None


def test_without_on_received_a_publish_reaches_on_message_as_paho_delivers_it():
    import threading
    side = ConnectedClient(threading.current_thread())
    received = []
    side.client.on_message = lambda client, userdata, message: received.append((message.topic, message.payload))
    try:
        side.peer.sendall(b"\x32\x06\x00\x01t\x00\x05x")
        assert side.client.loop_read() == 0
        assert received == [("t", b"x")] and side.peer.recv(100) == b"\x40\x02\x00\x05"
    finally:
        side.close()


def test_poll_select_keeps_its_poll_object_while_the_descriptors_stay_the_same():
    from ocpp_gw.mqtt import client as module
    a, b = socket.socketpair()
    try:
        module.poll_select([a], [], [], 0)
        first = module._pollers.poller
        module.poll_select([a.fileno()], [], [], 0)
        assert module._pollers.poller is first
        assert module.poll_select([a], [b], [], 0) == ([], [b], [])  # other events: a new one
        assert module._pollers.poller is not first
    finally:
        a.close()
        b.close()


class Attempts(BufferedClient):
    """Records where each (re)connection attempt goes instead of connecting."""

    def __init__(self, servers):
        super().__init__(CallbackAPIVersion.VERSION2, client_id="unit")
        self.use_servers(servers)
        self.tried = []

    def attempt(self):
        try:
            self.reconnect()
        except OSError:
            pass
        self.tried.append((self.host, self.port))


def test_each_attempt_goes_to_the_next_broker_in_turn():
    ports = []
    for _ in range(3):  # three closed ports on this host
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    client = Attempts([("127.0.0.1", port) for port in ports])
    for _ in range(4):
        client.attempt()
    assert client.tried == [("127.0.0.1", ports[0]), ("127.0.0.1", ports[1]), ("127.0.0.1", ports[2]),
                            ("127.0.0.1", ports[0])]


def test_after_a_lost_connection_the_next_broker_is_tried_at_once_then_paho_backs_off():
    client = Attempts([("mq1", 1883), ("mq2", 1883)])
    client.reconnect_delay_set(1, 8)
    client._reconnect_delay = None  # as paho leaves it after a CONNACK
    client._state = mqtt._ConnectionState.MQTT_CS_DISCONNECTED  # so that paho's own wait would return at once
    client._reconnect_wait()
    assert client._reconnect_delay == 0.5
    client._reconnect_wait()
    assert client._reconnect_delay == 1  # paho's backoff from its minimum on


def test_a_single_broker_keeps_pahos_pause():
    client = Attempts([("mq1", 1883)])
    client.reconnect_delay_set(1, 8)
    client._state = mqtt._ConnectionState.MQTT_CS_DISCONNECTED
    client._reconnect_wait()
    assert client._reconnect_delay == 1
