"""System calls that cannot block, made without releasing the GIL.

Python releases the GIL around every socket call. With a thousand connection threads waiting for
it, each release hands the GIL to one of them, and the caller waits its turn to get it back: a
round trip through the gateway cost about ten context switches, most of them that (issue 7,
``docs/performance.md``). A call that cannot block - ``MSG_DONTWAIT`` on a socket, a non-blocking
eventfd - takes a microsecond, so it is cheaper to keep the GIL across it. ``ctypes.PyDLL`` calls
libc that way (``ctypes.CDLL`` would release the GIL around each call).

Only plain sockets go through here; TLS sockets keep Python's ``ssl`` calls.
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import threading

_libc = ctypes.PyDLL(None, use_errno=True)


def _function(name: str, restype, *argtypes):
    function = getattr(_libc, name)
    function.restype = restype
    function.argtypes = argtypes
    return function


_send = _function("send", ctypes.c_ssize_t, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int)
_recv = _function("recv", ctypes.c_ssize_t, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int)
_eventfd_write = _function("eventfd_write", ctypes.c_int, ctypes.c_int, ctypes.c_uint64)
_eventfd_read = _function("eventfd_read", ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_uint64))

_SEND_FLAGS = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL
_WOULD_BLOCK = (errno.EAGAIN, errno.EWOULDBLOCK)


def _fail() -> OSError:
    err = ctypes.get_errno()
    return OSError(err, os.strerror(err))


def send_nowait(fd: int, data) -> int | None:
    """Bytes of `data` sent on `fd`; None when its send buffer is full."""
    if not isinstance(data, bytes):
        data = bytes(data)
    while True:
        sent = _send(fd, data, len(data), _SEND_FLAGS)
        if sent >= 0:
            return sent
        err = ctypes.get_errno()
        if err in _WOULD_BLOCK:
            return None
        if err != errno.EINTR:
            raise OSError(err, os.strerror(err))


def recv_nowait(fd: int, buffer: ctypes.Array, size: int | None = None) -> bytes | None:
    """What has arrived on `fd`, at most `size` (default len(buffer)) bytes, read through `buffer`;
    b"" at the end of the stream; None when nothing has arrived."""
    while True:
        received = _recv(fd, buffer, len(buffer) if size is None else size, socket.MSG_DONTWAIT)
        if received >= 0:
            return ctypes.string_at(buffer, received)
        err = ctypes.get_errno()
        if err in _WOULD_BLOCK:
            return None
        if err != errno.EINTR:
            raise OSError(err, os.strerror(err))


def receive_buffer(size: int) -> ctypes.Array:
    """A buffer for :func:`recv_nowait`; one per reading thread."""
    return ctypes.create_string_buffer(size)


# One buffer for the many connection threads: no CP holds one while idle, and no read makes one.
_SHARED_SIZE = 65536
_shared_buffer = ctypes.create_string_buffer(_SHARED_SIZE)
_shared_lock = threading.Lock()


def recv_nowait_shared(fd: int, size: int) -> bytes | None:
    """:func:`recv_nowait` of at most `size` bytes through a buffer all threads share (the lock
    covers the read and the copy out of it)."""
    if size > _SHARED_SIZE:
        return recv_nowait(fd, receive_buffer(size))
    with _shared_lock:
        return recv_nowait(fd, _shared_buffer, size)


def eventfd_add(fd: int) -> None:
    """Add one to a non-blocking eventfd's counter."""
    if _eventfd_write(fd, 1) != 0:
        raise _fail()


# Where eventfd_read puts the counter, which nobody reads: one for all callers.
_eventfd_value = ctypes.byref(ctypes.c_uint64())


def eventfd_take(fd: int) -> None:
    """Reset a non-blocking eventfd's counter to zero (EAGAIN if it was zero)."""
    if _eventfd_read(fd, _eventfd_value) != 0:
        raise _fail()


def is_plain_socket(sock) -> bool:
    """A kernel socket Python reads directly (not TLS, not a wrapper): the calls above apply."""
    return type(sock) is socket.socket
