"""Non-blocking system calls that keep the GIL: same answers as Python's own socket calls."""

import errno
import os
import socket
import threading

import pytest

from ocpp_gw.netio import gil_io


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_sent_bytes_arrive_unchanged(pair):
    a, b = pair
    data = bytes(range(256)) * 4  # NUL bytes included: the buffer is passed by length, not as a C string
    assert gil_io.send_nowait(a.fileno(), data) == len(data)
    assert gil_io.recv_nowait(b.fileno(), gil_io.receive_buffer(4096)) == data


def test_bytearray_and_memoryview_are_sent_too(pair):
    a, b = pair
    assert gil_io.send_nowait(a.fileno(), bytearray(b"abc")) == 3
    assert gil_io.send_nowait(a.fileno(), memoryview(b"xdefx")[1:4]) == 3
    assert b.recv(10) == b"abcdef"


def test_receive_with_nothing_arrived_is_none(pair):
    _, b = pair
    assert gil_io.recv_nowait(b.fileno(), gil_io.receive_buffer(16)) is None


def test_receive_is_bounded_by_the_buffer(pair):
    a, b = pair
    a.sendall(b"0123456789")
    assert gil_io.recv_nowait(b.fileno(), gil_io.receive_buffer(4)) == b"0123"
    assert gil_io.recv_nowait(b.fileno(), gil_io.receive_buffer(64)) == b"456789"


def test_receive_at_end_of_stream_is_empty(pair):
    a, b = pair
    a.shutdown(socket.SHUT_WR)
    assert gil_io.recv_nowait(b.fileno(), gil_io.receive_buffer(16)) == b""


def test_send_into_a_full_buffer_is_none(pair):
    a, _ = pair
    chunk = b"x" * 65536
    for _ in range(1000):
        if gil_io.send_nowait(a.fileno(), chunk) is None:
            return
    pytest.fail("the send buffer never filled")


def test_send_to_a_closed_peer_raises_the_errno_and_no_sigpipe(pair):
    a, b = pair
    b.close()
    with pytest.raises(BrokenPipeError):  # EPIPE; MSG_NOSIGNAL keeps SIGPIPE from killing the process
        gil_io.send_nowait(a.fileno(), b"x")


def test_a_bad_descriptor_raises_oserror():
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    with pytest.raises(OSError) as raised:
        gil_io.recv_nowait(r, gil_io.receive_buffer(8))
    assert raised.value.errno == errno.EBADF


def test_eventfd_counter_round_trip():
    fd = os.eventfd(0, os.EFD_NONBLOCK)
    try:
        gil_io.eventfd_add(fd)
        gil_io.eventfd_add(fd)
        gil_io.eventfd_take(fd)
        with pytest.raises(BlockingIOError):
            gil_io.eventfd_take(fd)
    finally:
        os.close(fd)


def test_other_threads_run_while_a_thread_loops_on_these_calls(pair):
    """Keeping the GIL across one call must not starve the rest: the interpreter still switches."""
    a, b = pair
    done = threading.Event()
    counted = []

    def other():
        n = 0
        while not done.is_set():
            n += 1
        counted.append(n)

    thread = threading.Thread(target=other)
    thread.start()
    buffer = gil_io.receive_buffer(16)
    for _ in range(20000):
        gil_io.send_nowait(a.fileno(), b"x")
        gil_io.recv_nowait(b.fileno(), buffer)
    done.set()
    thread.join()
    assert counted[0] > 0


def test_only_plain_sockets_qualify(pair):
    import ssl
    a, _ = pair
    assert gil_io.is_plain_socket(a)
    assert not gil_io.is_plain_socket(None)
    assert not gil_io.is_plain_socket(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).wrap_socket(
        socket.socket(), server_hostname="x", do_handshake_on_connect=False))


def test_works_where_memory_may_not_be_writable_and_executable():
    """The packaged unit sets MemoryDenyWriteExecute=yes: libc calls through ctypes must not need
    W+X memory (ctypes callbacks would). PR_SET_MDWE is the kernel's version of that rule."""
    import subprocess
    import sys
    code = """
import ctypes, socket
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(65, 1, 0, 0, 0) == 0, ctypes.get_errno()  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
from ocpp_gw.netio import gil_io
from ocpp_gw.netio.doorbell import Doorbell
a, b = socket.socketpair()
assert gil_io.send_nowait(a.fileno(), b"hi") == 2
assert gil_io.recv_nowait(b.fileno(), gil_io.receive_buffer(8)) == b"hi"
bell = Doorbell(); bell.set(); bell.clear(); bell.close()
print("fine")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "fine", result.stderr
