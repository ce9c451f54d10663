"""The auth backends the handshake calls: file, http, none; `make_backend` picks one from the settings."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import os
import secrets
import stat
import threading
import time
import urllib.error
import urllib.request
from typing import Callable
from urllib.parse import urlsplit
from .. import __version__
from ..protocol.handshake import AuthUnavailable
from .throttle import FailureThrottle, ThrottledBackend
from .credentials_file import Credential, load_credentials
from .passwords import decoy_hash, verify


log = logging.getLogger(__name__)


class FileBackend:
    """auth.backend = file. Thread-safe: readers take the table once; reload swaps it whole."""

    requires_credentials = True

    def __init__(self, path: str) -> None:
        self.path = path
        self._table: dict[str, Credential] = {}
        # Unknown users are checked against this, so they cost one KDF run like known ones.
        self._decoy_hash = decoy_hash()
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

    def versions(self, cid: str) -> frozenset[str] | None:
        """The OCPP versions `cid` may use (its line's 4th field), None for any the gateway serves."""
        entry = self._table.get(cid)
        return entry.versions if entry else None

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
    window, block = settings["auth.throttle.window"], settings["auth.throttle.block"]
    per_pair = FailureThrottle(settings["auth.throttle.max_failures"], window, block)
    ceiling = settings["auth.throttle.max_failures_per_address"]
    per_address = FailureThrottle(ceiling, window, block) if ceiling > 0 else None
    return ThrottledBackend(backend, per_pair, per_address)
