"""Per-CP credentials for the load: deterministic passwords and a cached credentials file.

Every simulated CP `BENCH00000`… has its own password, derived from a random seed kept in
bench/.cache/, so load generators compute passwords without reading anything. The passwords are
24 machine-made characters, like the ones `ocpp-gw passwd add --generate` issues. Two credentials
files are kept: `passwd-machine-made` stores them as the gateway stores a machine-made secret
(`ocpp_gw.auth.hash_machine_made`), `passwd` as it stores a password a person chose
(`ocpp_gw.auth.hash_password`, scrypt). Each is made once and extended when more CPs are needed:
one scrypt hash costs ~17 ms, 10,000 of them minutes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

CACHE = Path(__file__).resolve().parent / ".cache"
PREFIX = "BENCH"


def cid(index: int) -> str:
    return f"{PREFIX}{index:05d}"


def password(seed: bytes, charge_point: str) -> str:
    digest = hmac.new(seed, charge_point.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode()[:24]


def basic_authorization(seed: bytes, charge_point: str) -> str:
    token = base64.b64encode(f"{charge_point}:{password(seed, charge_point)}".encode()).decode()
    return f"Basic {token}"


def seed_file() -> Path:
    path = CACHE / "seed"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path


def load_seed(path: Path | None = None) -> bytes:
    return bytes.fromhex((path or seed_file()).read_text().strip())


# --auth choice → (file in bench/.cache/, how its lines are hashed)
SCHEMES = {"file": ("passwd-machine-made", "machine-made"), "scrypt": ("passwd", "scrypt")}


def credentials_file(count: int, auth: str = "file") -> Path:
    """The credentials file of `auth` (see SCHEMES) holding at least BENCH00000…cid(count-1); hashes
    only what is missing."""
    name, scheme = SCHEMES[auth]
    path = CACHE / name
    seed = load_seed()
    lines = path.read_text().splitlines() if path.exists() else []
    have = {line.split(":", 1)[0] for line in lines if line}
    missing = [cid(i) for i in range(count) if cid(i) not in have]
    if not missing:
        return path
    print(f"bench: hashing {len(missing)} passwords once (cached in {path})", flush=True)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        hasher = _hash if scheme == "scrypt" else _hash_machine_made
        hashes = list(pool.map(hasher, [password(seed, c) for c in missing], chunksize=64))
    lines += [f"{c}:{h}" for c, h in zip(missing, hashes)]
    temporary = path.with_suffix(".tmp")
    temporary.write_text("".join(line + "\n" for line in lines))
    temporary.chmod(0o640)
    os.replace(temporary, path)
    return path


def _hash(secret: str) -> str:
    from ocpp_gw.auth import hash_password
    return hash_password(secret)


def _hash_machine_made(secret: str) -> str:
    from ocpp_gw.auth import hash_machine_made
    return hash_machine_made(secret)
