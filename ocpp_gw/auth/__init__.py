"""Who may connect (SPEC §3): the file, http and `none` backends, `make_backend` and the `passwd` subcommand.

Modules: `passwords` (hashes), `credentials_file` (the file and its edits), `backends`, `throttle`
(failed logins), `passwd` (the subcommand). The names below are the package's public surface.

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
(OCPP security profile 1–3) defaults to 1. Hashes are self-describing, so parameters can change without
invalidating old lines: salted scrypt (`scrypt$<n>$<r>$<p>$<salt base64>$<hash base64>`) for secrets a person
chose, salted HMAC-SHA-256 (`hmac-sha256$<salt base64>$<hash base64>`) for secrets a machine made; the scheme is
chosen when the line is written (docs/security.md).
"""

from .backends import FileBackend, HttpBackend, NoAuth, make_backend
from .credentials_file import (DEFAULT_FILE, FILE_MODE, Credential, CredentialsError, add_user, import_users,
                               load_credentials, parse_credentials, remove_user, set_profile)
from .passwd import passwd_main
from .passwords import generate_password, hash_machine_made, hash_password, scheme_of, verify

__all__ = [
    "DEFAULT_FILE", "FILE_MODE", "Credential", "CredentialsError", "FileBackend", "HttpBackend", "NoAuth",
    "add_user", "generate_password", "hash_machine_made", "hash_password", "import_users", "load_credentials",
    "make_backend", "parse_credentials", "passwd_main", "remove_user", "scheme_of", "set_profile", "verify",
]
