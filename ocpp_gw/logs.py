"""Logging: journald with structured fields under systemd, readable timed lines on a terminal.

Under systemd (``$JOURNAL_STREAM`` set and the journal socket present) records go to journald over
its native protocol with ``OCPP_CID``, ``OCPP_UNIQUE_ID`` and ``OCPP_ACTION`` fields, so
``journalctl -u ocpp-gw OCPP_CID=CP001`` tells one charger's story. We speak the protocol
ourselves (a datagram of fields; length-prefixed for values with newlines) instead of adding
systemd-python, which needs libsystemd headers to build into the .deb.
Elsewhere: stderr, with a time stamp only when nothing else adds one.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import sys

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "ocpp-gw"

# record attribute → journal field
_FIELDS = (("cid", "OCPP_CID"), ("unique_id", "OCPP_UNIQUE_ID"), ("action", "OCPP_ACTION"))
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


def journal_fields(record: logging.LogRecord, message: str) -> list[tuple[str, str]]:
    fields = [("MESSAGE", message),
              ("PRIORITY", str(_PRIORITY.get(record.levelno, 6))),
              ("SYSLOG_IDENTIFIER", IDENTIFIER),
              ("LOGGER", record.name),
              ("THREAD_NAME", record.threadName or ""),
              ("CODE_FILE", record.pathname or ""),
              ("CODE_LINE", str(record.lineno)),
              ("CODE_FUNC", record.funcName or "")]
    for attribute, field in _FIELDS:
        value = getattr(record, attribute, None)
        if value:
            fields.append((field, str(value)))
    return fields


def encode_journal(fields: list[tuple[str, str]]) -> bytes:
    out = bytearray()
    for name, value in fields:
        data = value.encode("utf-8", "replace")
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


class JournalHandler(logging.Handler):
    """Sends each record as one native-protocol datagram to journald."""

    def __init__(self, address: str = JOURNAL_SOCKET):
        super().__init__()
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            self.sock.sendto(encode_journal(journal_fields(record, message)), self.address)
        except Exception:  # noqa: BLE001 - logging must never take the service down
            self.handleError(record)

    def close(self) -> None:
        self.sock.close()
        super().close()


def make_handler(environ=os.environ, stream=sys.stderr) -> logging.Handler:
    if environ.get("JOURNAL_STREAM") and os.path.exists(JOURNAL_SOCKET):
        handler: logging.Handler = JournalHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        return handler
    handler = logging.StreamHandler(stream)
    stamped = stream.isatty() and not environ.get("JOURNAL_STREAM")
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if stamped \
        else "%(levelname)s %(name)s: %(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    return handler


def setup(level: str) -> None:
    root = logging.getLogger()
    root.handlers[:] = [make_handler()]
    set_level(level)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(LEVELS[level])
