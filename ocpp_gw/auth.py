"""Who may connect (SPEC §3): the file, http and `none` backends, `make_backend` and the `passwd` subcommand.

Backend interface (what `handshake.authorize` calls):

    requires_credentials: bool    # False: every CP is let in, names are not checked
    authenticate(username: str, password: str, *, cid: str = "", peer: str = "") -> bool
                                  # may raise handshake.AuthUnavailable (→ 503) or handshake.Throttled (→ 429)
    profile(username: str) -> int | None    # optional: the OCPP security profile a CP is registered for
    knows(cid: str) -> bool                 # optional: whether a CP is registered at all (checked for CPs
                                            # that authenticate with a client certificate)

http backend contract: POST `auth.http.url` with a JSON object {cid, username, password, peer}; 200 lets the CP
in; 5xx, 429, a redirect, a timeout or no connection mean "cannot say" (503 to the CP, fail closed); any other
status refuses (401). Only yeses are cached (`auth.http.cache_ttl`), keyed by a salted hash of cid, username and
password. No proxy from the environment is used: passwords go to the configured URL and nowhere else.

Credentials file: one `cid:hash[:profile]` line per charge point, `#` comments and blank lines allowed; the profile
(OCPP security profile 1–3) defaults to 1. Hashes are salted scrypt (`hashlib.scrypt`), self-describing:
`scrypt$<n>$<r>$<p>$<salt base64>$<hash base64>`, so parameters can change without invalidating old lines.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import getpass
import hashlib
import hmac
import http.client
import json
import logging
import os
import secrets
import stat
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from typing import Callable, NamedTuple
from urllib.parse import urlsplit

from . import __version__
from .handshake import AuthUnavailable, cid_problem
from .throttle import FailureThrottle, ThrottledBackend

log = logging.getLogger(__name__)

DEFAULT_FILE = "/etc/ocpp_gw/passwd"
FILE_MODE = 0o640

# n=2**13, r=8, p=1 uses 8 MiB; one verification measured 17-19 ms (best of 30: 17 ms) on a 2-core AMD EPYC VM
# with OpenSSL 3.0 (n=2**14 took 39 ms): bounded work per login on a small appliance, costly to brute-force.
SCRYPT_N = 2**13
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32
# A tampered file must not make us allocate without bound.
_MAX_SCRYPT_MEMORY = 64 * 1024 * 1024
_PROFILES = (1, 2, 3)


class CredentialsError(Exception):
    """The credentials file is missing, unreadable or has a bad line; the message names file and line."""


class Credential(NamedTuple):
    password_hash: str
    profile: int


class _ScryptHash(NamedTuple):
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P, _HASH_BYTES)
    return "$".join(
        ["scrypt", str(SCRYPT_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)]
    )


# A connection storm runs thousands of KDFs at once; more at a time than cores only adds memory churn.
_KDF_SLOTS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


def verify(stored_hash: str, password: str) -> bool:
    """True when `password` matches `stored_hash`; False for a wrong password or a hash we cannot read."""
    parsed = _parse_hash(stored_hash)
    if parsed is None:
        return False
    with _KDF_SLOTS:
        candidate = _scrypt(password, parsed.salt, parsed.n, parsed.r, parsed.p, len(parsed.digest))
    return hmac.compare_digest(candidate, parsed.digest)


def generate_password() -> str:
    """24 URL-safe characters (144 random bits)."""
    return secrets.token_urlsafe(18)


def load_credentials(path: str) -> dict[str, Credential]:
    """Read and check the whole file; CredentialsError names the file and the first bad line."""
    try:
        with open(path, encoding="utf-8-sig") as file:
            text = file.read()
    except FileNotFoundError:
        raise CredentialsError(f"{path}: credentials file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CredentialsError(f"{path}: cannot read credentials file: {error}") from None
    return parse_credentials(text, path)


def parse_credentials(text: str, path: str = "<credentials>") -> dict[str, Credential]:
    table: dict[str, Credential] = {}
    first_seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) not in (2, 3):
            # Never echo the line: it may be a password typed in clear.
            raise CredentialsError(f"{path}:{number}: expected cid:hash or cid:hash:profile")
        cid, stored_hash = fields[0], fields[1]
        problem = cid_problem(cid)
        if problem:
            raise CredentialsError(f"{path}:{number}: {problem}")
        if cid in table:
            raise CredentialsError(f"{path}:{number}: duplicate cid {cid!r} (first on line {first_seen[cid]})")
        if _parse_hash(stored_hash) is None:
            raise CredentialsError(f"{path}:{number}: unrecognised password hash (use `ocpp-gw passwd add`)")
        profile = 1
        if len(fields) == 3:
            profile = _parse_profile(fields[2])
            if profile is None:
                raise CredentialsError(f"{path}:{number}: security profile must be one of 1, 2, 3")
        table[cid] = Credential(stored_hash, profile)
        first_seen[cid] = number
    return table


class FileBackend:
    """auth.backend = file. Thread-safe: readers take the table once; reload swaps it whole."""

    requires_credentials = True

    def __init__(self, path: str) -> None:
        self.path = path
        self._table: dict[str, Credential] = {}
        # Unknown users are checked against this, so they cost one KDF run like known ones.
        self._decoy_hash = hash_password(generate_password())
        # cid -> (stored hash, keyed digest of the password that matched it): a charger that
        # reconnects with the password it used before skips the KDF. The key never leaves memory.
        self._verified: dict[str, tuple[str, bytes]] = {}
        self._verified_key = secrets.token_bytes(32)
        self.reload()

    def reload(self) -> None:
        """Re-read the file; on any error the previous table stays in force and CredentialsError is raised."""
        table = load_credentials(self.path)
        self._warn_if_world_readable()
        self._table = table
        log.info("loaded %d credentials from %s", len(table), self.path)

    def authenticate(self, username: str, password: str, *, cid: str = "", peer: str = "") -> bool:
        entry = self._table.get(username)
        if entry is None:
            verify(self._decoy_hash, password)
            return False
        digest = hmac.new(self._verified_key, password.encode("utf-8", "surrogateescape"),
                          "sha256").digest()
        known = self._verified.get(username)
        if known is not None and known[0] == entry.password_hash \
                and hmac.compare_digest(known[1], digest):
            return True
        if not verify(entry.password_hash, password):
            return False
        self._verified[username] = (entry.password_hash, digest)
        return True

    def profile(self, cid: str) -> int | None:
        entry = self._table.get(cid)
        return entry.profile if entry else None

    def knows(self, cid: str) -> bool:
        """Whether `cid` has a line: a CP with a client certificate must have one too, so that removing the
        line (and SIGHUP) locks it out without touching the CA."""
        return cid in self._table

    def cids(self) -> list[str]:
        return sorted(self._table)

    def _warn_if_world_readable(self) -> None:
        try:
            mode = os.stat(self.path).st_mode
        except OSError:
            return
        if mode & stat.S_IROTH:
            log.warning("%s is readable by every user; chmod 0640 it", self.path)


class NoAuth:
    """auth.backend = none: every CP is let in, with or without credentials."""

    requires_credentials = False

    def authenticate(self, username: str, password: str, *, cid: str = "", peer: str = "") -> bool:
        return True


class HttpBackend:
    """auth.backend = http: ask a web service (contract in the module docstring). Thread-safe."""

    requires_credentials = True
    MAX_CACHED = 10_000

    def __init__(self, url: str, timeout: float, cache_ttl: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.timeout = timeout
        self.cache_ttl = cache_ttl
        self.clock = clock
        parts = urlsplit(url)
        # For log lines: never the user info a URL might carry.
        self.where = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())
        self._salt = secrets.token_bytes(16)
        self._cache: dict[bytes, float] = {}  # key → expiry, oldest first
        self._lock = threading.Lock()

    def authenticate(self, username: str, password: str, *, cid: str = "", peer: str = "") -> bool:
        key = self._cache_key(cid, username, password)
        if self._cached(key):
            return True
        status = self._ask(cid, username, password, peer)
        if status == 200:
            self._remember(key)
            return True
        if status >= 500 or status == 429 or 300 <= status < 400 or status < 200:
            raise AuthUnavailable(f"{self.where} answered HTTP {status}")
        return False

    def reload(self) -> None:
        """SIGHUP forgets every cached yes, so a CP revoked at the service is refused from now on."""
        with self._lock:
            self._cache.clear()

    def _ask(self, cid: str, username: str, password: str, peer: str) -> int:
        body = json.dumps({"cid": cid, "username": username, "password": password, "peer": peer}).encode()
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Accept": "*/*", "User-Agent": f"ocpp-gw/{__version__}"})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status
        except urllib.error.HTTPError as error:
            error.close()
            return error.code
        except urllib.error.URLError as error:
            raise AuthUnavailable(f"{self.where}: {_reason(error.reason)}") from None
        except (OSError, http.client.HTTPException, ValueError) as error:
            raise AuthUnavailable(f"{self.where}: {_reason(error)}") from None

    def _cache_key(self, cid: str, username: str, password: str) -> bytes:
        canonical = json.dumps([cid, username, password]).encode()
        return hashlib.sha256(self._salt + canonical).digest()

    def _cached(self, key: bytes) -> bool:
        with self._lock:
            expiry = self._cache.get(key)
            if expiry is None:
                return False
            if expiry > self.clock():
                return True
            del self._cache[key]
            return False

    def _remember(self, key: bytes) -> None:
        if self.cache_ttl <= 0:
            return
        with self._lock:
            now = self.clock()
            self._cache.pop(key, None)
            self._cache[key] = now + self.cache_ttl
            while self._cache and (next(iter(self._cache.values())) <= now or len(self._cache) > self.MAX_CACHED):
                del self._cache[next(iter(self._cache))]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer we do not understand, not a place to send passwords to."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _reason(error: object) -> str:
    if isinstance(error, TimeoutError) or "timed out" in str(error):
        return "timed out"
    return str(error) or type(error).__name__


def make_backend(settings):
    """The backend `auth.backend` names, behind the failed-login throttle unless that is off.
    CredentialsError when the credentials file cannot be used."""
    kind = settings["auth.backend"]
    if kind == "none":
        return NoAuth()
    if kind == "file":
        backend = FileBackend(settings["auth.file"])
    else:
        backend = HttpBackend(settings["auth.http.url"], settings["auth.http.timeout"],
                              settings["auth.http.cache_ttl"])
    if settings["auth.throttle.max_failures"] <= 0:
        return backend
    throttle = FailureThrottle(settings["auth.throttle.max_failures"], settings["auth.throttle.window"],
                               settings["auth.throttle.block"])
    return ThrottledBackend(backend, throttle)


def add_user(path: str, cid: str, password: str, profile: int | None = None) -> bool:
    """Add or replace `cid` (creating the file); True when an entry was replaced.

    profile None keeps the profile of a replaced entry, and writes none (meaning 1) for a new one.
    """
    problem = cid_problem(cid)
    if problem:
        raise ValueError(problem)
    if profile is not None and profile not in _PROFILES:
        raise ValueError("security profile must be one of 1, 2, 3")
    if not password:
        raise ValueError("empty password")
    lines = _read_lines(path, missing_ok=True)
    indexes = [index for index, line in enumerate(lines) if _line_cid(line) == cid]
    if profile is None and indexes:
        fields = lines[indexes[0]].strip().split(":")
        profile = _parse_profile(fields[2]) if len(fields) == 3 else None
    entry = f"{cid}:{hash_password(password)}" + (f":{profile}" if profile is not None else "")
    if indexes:
        lines[indexes[0]] = entry
        for index in reversed(indexes[1:]):
            del lines[index]
    else:
        lines.append(entry)
    _write_atomically(path, lines)
    return bool(indexes)


def set_profile(path: str, cid: str, profile: int) -> bool:
    """Set the security profile of `cid`, keeping its password; False when `cid` has no entry."""
    if profile not in _PROFILES:
        raise ValueError("security profile must be one of 1, 2, 3")
    lines = _read_lines(path, missing_ok=False)
    found = False
    for index, line in enumerate(lines):
        if _line_cid(line) == cid:
            stored_hash = line.strip().split(":")[1]
            lines[index] = f"{cid}:{stored_hash}:{profile}"
            found = True
    if found:
        _write_atomically(path, lines)
    return found


def remove_user(path: str, cid: str) -> bool:
    """Remove every line for `cid`; False when there was none (the file is then left untouched)."""
    lines = _read_lines(path, missing_ok=False)
    kept = [line for line in lines if _line_cid(line) != cid]
    if len(kept) == len(lines):
        return False
    _write_atomically(path, kept)
    return True


def passwd_main(argv: list[str]) -> int:
    """`ocpp-gw passwd add|remove|list`. Exit 0 ok, 1 cid not found on remove, 2 usage or file error."""
    parser = _passwd_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return args.run(args)
    except (CredentialsError, ValueError, OSError) as error:
        print(f"ocpp-gw passwd: error: {error}", file=sys.stderr)
        return 2


def _passwd_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ocpp-gw passwd", description="Manage the charge point credentials file.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{add,remove,list}")

    add = commands.add_parser("add", help="add a charge point or set its password")
    add.add_argument("cid")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.add_argument("--profile", type=int, choices=_PROFILES, help="OCPP security profile (default 1)")
    add.set_defaults(run=_passwd_add)

    remove = commands.add_parser("remove", help="remove a charge point")
    remove.add_argument("cid")
    remove.set_defaults(run=_passwd_remove)

    list_ = commands.add_parser("list", help="list the charge point ids (never the hashes)")
    list_.set_defaults(run=_passwd_list)

    for command in (add, remove, list_):
        command.add_argument("--file", default=DEFAULT_FILE, help=f"credentials file (default {DEFAULT_FILE})")
    return parser


def _passwd_add(args: argparse.Namespace) -> int:
    problem = cid_problem(args.cid)
    if problem:
        raise ValueError(problem)
    generated = False
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ValueError("no password on stdin")
    elif sys.stdin.isatty():
        try:
            password = getpass.getpass(f"New password for {args.cid}: ")
            again = getpass.getpass("Repeat it: ")
        except (EOFError, KeyboardInterrupt):
            raise ValueError("aborted") from None
        if password != again:
            raise ValueError("the passwords do not match")
        if not password:
            raise ValueError("empty password")
    else:
        password = generate_password()
        generated = True
    replaced = add_user(args.file, args.cid, password, args.profile)
    if generated:
        print(password)
    print(f"{'updated' if replaced else 'added'} {args.cid} in {args.file}; reload ocpp-gw (SIGHUP) to apply",
          file=sys.stderr)
    return 0


def _passwd_remove(args: argparse.Namespace) -> int:
    if not remove_user(args.file, args.cid):
        print(f"ocpp-gw passwd: {args.cid} not found in {args.file}", file=sys.stderr)
        return 1
    print(f"removed {args.cid} from {args.file}; reload ocpp-gw (SIGHUP) to apply", file=sys.stderr)
    return 0


def _passwd_list(args: argparse.Namespace) -> int:
    for cid in sorted(load_credentials(args.file)):
        print(cid)
    return 0


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(
        _password_bytes(password),
        salt=salt, n=n, r=r, p=p, maxmem=_MAX_SCRYPT_MEMORY + 1024 * 1024, dklen=length,
    )


def _password_bytes(password: str) -> bytes:
    # surrogateescape gives back the exact bytes a CP sent (see handshake.parse_basic_auth); any other lone
    # surrogate still needs some deterministic encoding rather than an exception.
    try:
        return password.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return password.encode("utf-8", "surrogatepass")


def _scrypt_memory(n: int, r: int, p: int) -> int:
    return 128 * r * (n + 2) + 128 * r * p


def _parse_hash(text: str) -> _ScryptHash | None:
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != "scrypt" or not all(part.isdigit() for part in parts[1:4]):
        return None
    n, r, p = (int(part) for part in parts[1:4])
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= 16:
        return None
    if _scrypt_memory(n, r, p) > _MAX_SCRYPT_MEMORY:
        return None
    try:
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (binascii.Error, ValueError):
        return None
    if not salt or not 16 <= len(digest) <= 64:
        return None
    return _ScryptHash(n, r, p, salt, digest)


def _parse_profile(text: str) -> int | None:
    return int(text) if text in ("1", "2", "3") else None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _line_cid(line: str) -> str | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None
    return stripped.split(":", 1)[0]


def _read_lines(path: str, *, missing_ok: bool) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig") as file:
            return file.read().splitlines()
    except FileNotFoundError:
        if missing_ok:
            return []
        raise CredentialsError(f"{path}: credentials file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise CredentialsError(f"{path}: cannot read credentials file: {error}") from None


def _write_atomically(path: str, lines: list[str]) -> None:
    """Temp file in the same directory, mode 0640, the old file's owner and group, fsync, rename."""
    target = os.path.realpath(path)
    directory = os.path.dirname(target) or "."
    owner = _existing_owner(target)
    try:
        fd, temporary = tempfile.mkstemp(prefix=".passwd.", dir=directory)
    except OSError as error:
        raise CredentialsError(f"{target}: cannot write credentials file: {error.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), FILE_MODE)
            if owner is not None:
                _keep_owner(file.fileno(), owner, target)
            file.write("".join(line + "\n" for line in lines))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        _unlink_quietly(temporary)
        raise
    _fsync_directory(directory)


def _existing_owner(path: str) -> tuple[int, int] | None:
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_uid, status.st_gid


def _keep_owner(fd: int, owner: tuple[int, int], target: str) -> None:
    current = os.fstat(fd)
    if (current.st_uid, current.st_gid) == owner:
        return
    try:
        os.fchown(fd, *owner)
    except PermissionError:
        uid, gid = owner
        raise CredentialsError(f"{target}: cannot keep its owner and group {uid}:{gid}; run as root") from None


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

