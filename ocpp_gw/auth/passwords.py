"""Password hashes, self-describing and verified in constant time; the scheme follows who made the secret.

- `scrypt$<n>$<r>$<p>$<salt>$<hash>`: secrets a person chose (memory-hard: a stolen file is slow to attack);
- `hmac-sha256$<salt>$<hash>`: secrets a machine made (`generate_password`, a CSMS's AuthorizationKey or
  BasicAuthPassword), HMAC-SHA-256 keyed with a random salt. Their entropy, not the hash's cost, is what
  stops a brute force (docs/security.md, "Password hashes"), so checking one costs microseconds.

The scheme is chosen when the line is written (`hash_password` or `hash_machine_made`), never from the
password at login.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
from typing import NamedTuple


# n=2**13, r=8, p=1 uses 8 MiB; one verification measured 17-19 ms (best of 30: 17 ms) on a 2-core AMD EPYC VM
# with OpenSSL 3.0 (n=2**14 took 39 ms): bounded work per login on a small appliance, costly to brute-force.
SCRYPT_N = 2**13


SCRYPT_R = 8


SCRYPT_P = 1


_SALT_BYTES = 16


_HASH_BYTES = 32


# A tampered file must not make us allocate without bound.
_MAX_SCRYPT_MEMORY = 64 * 1024 * 1024


SCRYPT = "scrypt"


MACHINE_MADE = "hmac-sha256"


# OCPP's own minimum for an AuthorizationKey / BasicAuthPassword; a machine-made secret shorter than this is
# refused at write time rather than given the fast scheme.
MACHINE_MADE_MIN_LENGTH = 16


class _ScryptHash(NamedTuple):
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


class _SaltedHash(NamedTuple):
    """A machine-made secret's hash: HMAC-SHA-256 of the secret, keyed with a random salt."""
    salt: bytes
    digest: bytes


def hash_password(password: str) -> str:
    """The scheme for a secret a person chose: salted scrypt."""
    salt = secrets.token_bytes(_SALT_BYTES)
    return _format_hash(salt, _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, _HASH_BYTES))


def decoy_hash() -> str:
    """A hash in :func:`hash_password`'s format and cost that no password matches: checking an unknown
    user against it costs what checking a known one does. Random bytes, so making it runs no KDF."""
    return _format_hash(secrets.token_bytes(_SALT_BYTES), secrets.token_bytes(_HASH_BYTES))


def _format_hash(salt: bytes, digest: bytes) -> str:
    return "$".join(["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)])


def hash_machine_made(secret: str) -> str:
    """The scheme for a secret a machine made (>= 16 random characters): salted HMAC-SHA-256.

    ValueError for a shorter secret: the fast scheme is only sound for a secret with enough entropy.
    """
    if len(secret) < MACHINE_MADE_MIN_LENGTH:
        raise ValueError(f"a machine-made secret has at least {MACHINE_MADE_MIN_LENGTH} characters")
    salt = secrets.token_bytes(_SALT_BYTES)
    return "$".join([MACHINE_MADE, _b64(salt), _b64(_salted_digest(secret, salt))])


def scheme_of(stored_hash: str) -> str | None:
    """`scrypt`, `hmac-sha256`, or None for a hash we cannot read."""
    parsed = parse_hash(stored_hash)
    if parsed is None:
        return None
    return SCRYPT if isinstance(parsed, _ScryptHash) else MACHINE_MADE


# A connection storm runs thousands of KDFs at once; more at a time than cores only adds memory churn.
_KDF_SLOTS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


def verify(stored_hash: str, password: str) -> bool:
    """True when `password` matches `stored_hash`; False for a wrong password or a hash we cannot read."""
    parsed = parse_hash(stored_hash)
    if parsed is None:
        return False
    if isinstance(parsed, _SaltedHash):
        return hmac.compare_digest(_salted_digest(password, parsed.salt), parsed.digest)
    with _KDF_SLOTS:
        candidate = _scrypt(password, parsed.salt, parsed.n, parsed.r, parsed.p, len(parsed.digest))
    return hmac.compare_digest(candidate, parsed.digest)


def generate_password() -> str:
    """24 URL-safe characters (144 random bits)."""
    return secrets.token_urlsafe(18)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        _password_bytes(password),
        salt=salt, n=n, r=r, p=p, maxmem=_MAX_SCRYPT_MEMORY + 1024 * 1024, dklen=length,
    )


def _salted_digest(secret: str, salt: bytes) -> bytes:
    return hmac.new(salt, _password_bytes(secret), hashlib.sha256).digest()


def _password_bytes(password: str) -> bytes:
    # surrogateescape gives back the exact bytes a CP sent (see handshake.parse_basic_auth); any other lone
    # surrogate still needs some deterministic encoding rather than an exception.
    try:
        return password.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return password.encode("utf-8", "surrogatepass")


def _scrypt_memory(n: int, r: int, p: int) -> int:
    return 128 * r * (n + 2) + 128 * r * p


def parse_hash(text: str) -> _ScryptHash | _SaltedHash | None:
    """The parsed hash of either scheme, or None when `text` is not one we can check."""
    if text.startswith(MACHINE_MADE + "$"):
        return _parse_salted(text)
    return _parse_scrypt(text)


def _parse_salted(text: str) -> _SaltedHash | None:
    parts = text.split("$")
    if len(parts) != 3:
        return None
    salt, digest = _b64_decode(parts[1]), _b64_decode(parts[2])
    if not salt or digest is None or len(digest) != hashlib.sha256().digest_size:
        return None
    return _SaltedHash(salt, digest)


def _parse_scrypt(text: str) -> _ScryptHash | None:
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(part.isdigit() for part in parts[1:4]):
        return None
    n, r, p = (int(part) for part in parts[1:4])
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
        return None
    if _scrypt_memory(n, r, p) > _MAX_SCRYPT_MEMORY:
        return None
    salt, digest = _b64_decode(parts[4]), _b64_decode(parts[5])
    if not salt or digest is None or not 16 <= len(digest) <= 64:
        return None
    return _ScryptHash(n, r, p, salt, digest)


def _b64_decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
