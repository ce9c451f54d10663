"""Short texts about untrusted input, for error descriptions, refusals and logs."""

from __future__ import annotations

import re

EXCERPT = 40

# Control characters (C0, DEL, C1) and whitespace of any kind, in runs.
_BREAKS = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


def excerpt(value: object, limit: int = EXCERPT) -> str:
    """A short, single-line repr of `value` (repr escapes line breaks), at most `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def bounded(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, marked with "..." when cut."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def one_line(text: str) -> str:
    """`text` on one line: each run of whitespace or control characters becomes one space."""
    return _BREAKS.sub(" ", text).strip()
