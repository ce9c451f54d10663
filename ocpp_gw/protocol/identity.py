"""What makes a charge point id (cid) acceptable (SPEC §3).

One rule for everything that names a charge point: the upgrade request's path, the credentials file,
``ocpp-gw passwd`` and the admin API.
"""

from __future__ import annotations

import unicodedata

MAX_CID_LENGTH = 48
# "/" would split the path; "+" and "#" are MQTT wildcards and ":" separates Basic credentials.
FORBIDDEN_CID_CHARACTERS = "/+#:"


def cid_problem(cid: str) -> str | None:
    """Why a decoded cid is not acceptable, or None."""
    if not cid:
        return "cid is empty"
    if len(cid) > MAX_CID_LENGTH:
        return f"cid is {len(cid)} characters long, at most {MAX_CID_LENGTH} are allowed"
    for character in cid:
        if character in FORBIDDEN_CID_CHARACTERS:
            return f"cid must not contain {character!r}"
        if unicodedata.category(character) == "Cc":
            return "cid must not contain control characters"
    return None
