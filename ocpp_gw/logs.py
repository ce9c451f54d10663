"""Logging set-up: readable lines with time on a terminal, bare lines when a supervisor stamps them."""

from __future__ import annotations

import logging
import os
import sys

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}


def setup(level: str) -> None:
    stamped = sys.stderr.isatty() and "JOURNAL_STREAM" not in os.environ
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if stamped \
        else "%(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)


def set_level(level: str) -> None:
    logging.getLogger().setLevel(LEVELS[level])
