"""What makes a charge point id (cid) acceptable (SPEC §3).

One rule for everything that names a charge point: the upgrade request's path, the credentials file,
``ocpp-gw passwd`` and the admin API.
"""

from __future__ import annotations

import unicodedata

MAX_CID_LENGTH = 48   # OCPP 2.x identifierString; 1.6 sets no limit
# Why each character is refused in a cid. "+" is legal in an OCPP 2.x identity, but the cid is an
# MQTT topic level, where "+" and "#" are wildcards and "/" separates levels; ":" ends the user
# name of HTTP Basic auth (and 2.x forbids it in an identity).
FORBIDDEN_CID_CHARACTERS = {
    "/": "it separates MQTT topic levels and the cid is one level",
    "+": "it is the MQTT single-level wildcard and the cid is a topic level",
    "#": "it is the MQTT multi-level wildcard and the cid is a topic level",
    ":": "it ends the user name in HTTP Basic authentication",
}


def cid_problem(cid: str) -> str | None:
    """Why a decoded cid is not acceptable, or None."""
    if not cid:
        return "cid is empty"
    if len(cid) > MAX_CID_LENGTH:
        return f"cid is {len(cid)} characters long, at most {MAX_CID_LENGTH} are allowed"
    for character in cid:
        why = FORBIDDEN_CID_CHARACTERS.get(character)
        if why is not None:
            return f"cid must not contain {character!r}: {why}"
        if unicodedata.category(character) == "Cc":
            return "cid must not contain control characters"
    return None
