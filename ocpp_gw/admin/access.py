"""Who may use the admin listener, and how a browser is kept from being used against it.

The rules (docs/console.md has the reasoning):

* With no token (``admin.token_file`` unset; the listener is then on loopback, settings enforce it)
  anyone on this machine may call the API, but only through a loopback ``Host`` name, so a web page
  whose DNS name was rebound to 127.0.0.1 cannot reach it.
* With a token, every request but the open ones (the console's files, ``/healthz``, session and
  login) needs it: ``Authorization: Bearer <token>``, or the cookie of a console login.
* A state-changing request (POST, PUT, PATCH, DELETE) is refused when the browser says it comes
  from another site (``Sec-Fetch-Site``) or another origin (``Origin``); when it comes from a
  browser at all, it must carry the login's CSRF token in ``X-CSRF-Token``.

No I/O here but reading the token file; the clock is injectable.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Mapping
from urllib.parse import urlsplit

MIN_TOKEN_LENGTH = 16
SESSION_LIFETIME = 12 * 3600.0
MAX_SESSIONS = 64
# Wrong tokens tolerated per address within the window, before its logins get 429 for the window.
LOGIN_FAILURES_ALLOWED = 5
LOGIN_FAILURE_WINDOW = 60.0

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Reachable without the token: the console must load to show its login form.
OPEN_PATHS = frozenset({"/", "/index.html", "/console.js", "/console.css", "/healthz",
                        "/api/v1/session", "/api/v1/login", "/api/v1/logout"})
CSRF_HEADER = "x-csrf-token"
_SAME_ORIGIN_FETCH = frozenset({"same-origin", "none"})


class TokenError(Exception):
    """The token file cannot be used; the message names the file."""


def load_token(path: str) -> str:
    """The admin token: the file's first line, stripped; TokenError when unusable."""
    try:
        with open(path, encoding="utf-8") as file:
            token = file.readline().strip()
            mode = os.fstat(file.fileno()).st_mode
    except OSError as err:
        raise TokenError(f"{path}: cannot read the admin token: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise TokenError(f"{path}: the admin token is not UTF-8 text") from None
    if len(token) < MIN_TOKEN_LENGTH:
        raise TokenError(f"{path}: the admin token must be at least {MIN_TOKEN_LENGTH} characters")
    if mode & stat.S_IROTH:
        raise TokenError(f"{path}: the admin token is readable by every user; chmod 0600 it")
    return token


def is_loopback_host(host_header: str) -> bool:
    """True when a ``Host`` header names this machine by a loopback name or address."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1:host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Login:
    sid: str
    csrf: str
    expires: float


class Logins:
    """Console logins (random session ids → CSRF token), bounded in number and lifetime."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._logins: OrderedDict[str, Login] = OrderedDict()

    def create(self) -> Login:
        login = Login(secrets.token_urlsafe(32), secrets.token_urlsafe(32),
                      self._clock() + SESSION_LIFETIME)
        with self._lock:
            self._logins[login.sid] = login
            while len(self._logins) > MAX_SESSIONS:
                self._logins.popitem(last=False)
        return login

    def get(self, sid: str | None) -> Login | None:
        if not sid:
            return None
        with self._lock:
            login = self._logins.get(sid)
            if login is not None and login.expires <= self._clock():
                del self._logins[sid]
                return None
            return login

    def end(self, sid: str | None) -> None:
        with self._lock:
            self._logins.pop(sid or "", None)


@dataclass(frozen=True)
class Verdict:
    """``status`` None lets the request through; ``login`` is the console login it came with."""

    status: int | None = None
    error: str = ""
    login: Login | None = None
    by_bearer: bool = False

    @property
    def allowed(self) -> bool:
        return self.status is None


class AccessPolicy:
    """Judges one request from its method, path and headers (names in lower case)."""

    def __init__(self, token: str | None, logins: Logins, cookie_name: str):
        self.token = token
        self.logins = logins
        self.cookie_name = cookie_name
        # Without a token there are no logins; browsers then use this one CSRF token, which only a
        # page of our own origin can read (GET /api/v1/session).
        self.open_csrf = secrets.token_urlsafe(32)

    @property
    def token_required(self) -> bool:
        return self.token is not None

    def token_matches(self, candidate: str) -> bool:
        return self.token is not None and hmac.compare_digest(candidate.encode(), self.token.encode())

    def judge(self, method: str, path: str, headers: Mapping[str, str]) -> Verdict:
        if self.token is None and not is_loopback_host(headers.get("host", "localhost")):
            return Verdict(403, "the admin API answers only to a loopback Host name")
        if method in UNSAFE_METHODS:
            problem = cross_site_problem(headers)
            if problem:
                return Verdict(403, problem)
        login = self.logins.get(cookie_value(headers.get("cookie", ""), self.cookie_name))
        by_bearer = self._bearer_ok(headers.get("authorization", ""))
        if self.token is not None and path not in OPEN_PATHS and not (by_bearer or login):
            return Verdict(401, "log in, or send the admin token as Authorization: Bearer")
        if method in UNSAFE_METHODS and not by_bearer and path not in ("/api/v1/login", "/api/v1/logout"):
            expected = login.csrf if login else self.open_csrf
            sent = headers.get(CSRF_HEADER)
            if (login or from_browser(headers)) and not (
                    sent and hmac.compare_digest(sent.encode(), expected.encode())):
                return Verdict(403, "missing or wrong X-CSRF-Token")
        return Verdict(login=login, by_bearer=by_bearer)

    def csrf_for(self, login: Login | None) -> str | None:
        """The CSRF token a console page should send, or None when it must log in first."""
        if login is not None:
            return login.csrf
        return None if self.token is not None else self.open_csrf

    def _bearer_ok(self, authorization: str) -> bool:
        scheme, _, credentials = authorization.strip().partition(" ")
        return scheme.lower() == "bearer" and self.token_matches(credentials.strip())


def cross_site_problem(headers: Mapping[str, str]) -> str:
    """Why a state-changing request looks cross-site, or "" when it does not."""
    fetch_site = headers.get("sec-fetch-site", "").strip().lower()
    if fetch_site and fetch_site not in _SAME_ORIGIN_FETCH:
        return f"cross-site request refused (Sec-Fetch-Site: {fetch_site})"
    origin = headers.get("origin")
    if origin is not None:
        origin = origin.strip()
        if origin.lower() == "null":
            return "cross-site request refused (Origin: null)"
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or \
                parts.netloc.lower() != headers.get("host", "").strip().lower():
            return f"cross-site request refused (Origin: {origin})"
    return ""


def from_browser(headers: Mapping[str, str]) -> bool:
    """Browsers send these on every state-changing request; ctl, curl and scripts do not."""
    return any(name in headers for name in ("origin", "sec-fetch-site", "sec-fetch-mode", "cookie"))


def cookie_value(cookie_header: str, name: str) -> str | None:
    for part in cookie_header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def session_cookie(name: str, login: Login | None) -> str:
    """A Set-Cookie value: HttpOnly, SameSite=Strict; None clears the cookie."""
    if login is None:
        return f"{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    return f"{name}={login.sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age={int(SESSION_LIFETIME)}"
