"""sd_notify and the journald handler, checked by reading what they send on real unix sockets."""

import logging
import socket
import struct

import pytest

from ocpp_gw import logs
from ocpp_gw import systemd


@pytest.fixture
def datagram_socket(tmp_path):
    path = str(tmp_path / "sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def parse_journal(data: bytes) -> dict:
    fields, i = {}, 0
    while i < len(data):
        newline = data.index(b"\n", i)
        line = data[i:newline]
        if b"=" in line:
            name, value = line.split(b"=", 1)
            fields[name.decode()] = value.decode()
            i = newline + 1
        else:
            size = struct.unpack("<Q", data[newline + 1:newline + 9])[0]
            start = newline + 9
            fields[line.decode()] = data[start:start + size].decode()
            i = start + size + 1
    return fields


def test_notify_sends_the_state_to_notify_socket(datagram_socket):
    path, sock = datagram_socket
    assert systemd.notify("READY=1", {"NOTIFY_SOCKET": path})
    assert sock.recv(100) == b"READY=1"


def test_notify_outside_systemd_does_nothing():
    assert systemd.notify("READY=1", {}) is False


def test_watchdog_interval_is_half_of_watchdog_usec():
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert systemd.watchdog_interval({}) is None


def test_watchdog_pings_only_while_healthy(datagram_socket):
    path, sock = datagram_socket
    healthy = [True]
    dog = systemd.Watchdog(0.05, lambda: healthy[0], {"NOTIFY_SOCKET": path})
    dog.start()
    try:
        assert sock.recv(100) == b"WATCHDOG=1"
        healthy[0] = False
        while True:  # drain pings sent before the flip, then expect silence
            try:
                sock.settimeout(0.3)
                sock.recv(100)
            except TimeoutError:
                break
    finally:
        dog.stop()


def test_journal_handler_sends_structured_ocpp_fields(datagram_socket):
    path, sock = datagram_socket
    handler = logs.JournalHandler(path)
    handler.setFormatter(logging.Formatter("%(message)s"))
    record = logging.LogRecord("ocpp_gw.protocol.pipe", logging.WARNING, __file__, 1,
                               "[%s] dropped", ("CP001",), None)
    record.cid, record.unique_id, record.action = "CP001", "u-1", "Reset"
    handler.emit(record)
    fields = parse_journal(sock.recv(65536))
    handler.close()
    assert fields["MESSAGE"] == "[CP001] dropped"
    assert fields["PRIORITY"] == "4"
    assert fields["SYSLOG_IDENTIFIER"] == "ocpp-gw"
    assert (fields["OCPP_CID"], fields["OCPP_UNIQUE_ID"], fields["OCPP_ACTION"]) == \
        ("CP001", "u-1", "Reset")


def test_multiline_messages_use_the_length_prefixed_form():
    encoded = logs.encode_journal([("MESSAGE", "a\nb")])
    assert encoded == b"MESSAGE\n" + struct.pack("<Q", 3) + b"a\nb\n"


def test_terminal_lines_carry_a_time_and_supervised_lines_do_not(tmp_path):
    class Tty:
        def isatty(self):
            return True
    handler = logs.make_handler({}, Tty())
    assert "asctime" in handler.formatter._fmt
    handler = logs.make_handler({"JOURNAL_STREAM": "1:2"}, Tty())
    assert isinstance(handler, logs.JournalHandler) or "asctime" not in handler.formatter._fmt
