"""The credentials file: one `cid:hash[:profile[:versions]]` line per charge point; reading it, and editing it
atomically.

`versions` (optional) restricts a charge point to some OCPP versions, subprotocol names separated by commas,
e.g. `CP001:<hash>:1:ocpp1.6` or, keeping the default profile, `CP001:<hash>::ocpp2.0.1,ocpp1.6` (SPEC §9).
Without it the charge point may use every version the gateway serves."""

from __future__ import annotations

import os
import tempfile
from typing import NamedTuple
from ..protocol.identity import cid_problem
from ..protocol.versions import parse_version_list
from .passwords import hash_password, parse_hash


DEFAULT_FILE = "/etc/ocpp_gw/passwd"


FILE_MODE = 0o640


PROFILES = (1, 2, 3)


class CredentialsError(Exception):
    """The credentials file is missing, unreadable or has a bad line; the message names file and line."""


class Credential(NamedTuple):
    password_hash: str
    profile: int
    versions: frozenset[str] | None = None   # None: every version the gateway serves


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
        if len(fields) not in (2, 3, 4):
            # Never echo the line: it may be a password typed in clear.
            raise CredentialsError(f"{path}:{number}: expected cid:hash, cid:hash:profile or "
                                   "cid:hash:profile:versions")
        cid, stored_hash = fields[0], fields[1]
        problem = cid_problem(cid)
        if problem:
            raise CredentialsError(f"{path}:{number}: {problem}")
        if cid in table:
            raise CredentialsError(f"{path}:{number}: duplicate cid {cid!r} (first on line {first_seen[cid]})")
        if parse_hash(stored_hash) is None:
            raise CredentialsError(f"{path}:{number}: unrecognised password hash (use `ocpp-gw passwd add`)")
        profile = 1
        if len(fields) >= 3 and (len(fields) == 3 or fields[2]):
            profile = _parse_profile(fields[2])
            if profile is None:
                raise CredentialsError(f"{path}:{number}: security profile must be one of 1, 2, 3")
        versions = None
        if len(fields) == 4:
            try:
                versions = frozenset(v.subprotocol for v in parse_version_list(fields[3]))
            except ValueError as error:
                raise CredentialsError(f"{path}:{number}: versions: {error}") from None
        table[cid] = Credential(stored_hash, profile, versions)
        first_seen[cid] = number
    return table


ANY_VERSION = "any"   # `versions` value of add_user that lifts a restriction


def add_user(path: str, cid: str, password: str, profile: int | None = None,
             versions: str | None = None) -> bool:
    """Add or replace `cid` (creating the file); True when an entry was replaced.

    profile None keeps the profile of a replaced entry, and writes none (meaning 1) for a new one.
    versions (subprotocols separated by commas or spaces) restricts the CP to them; "any" lifts the
    restriction; None keeps that of a replaced entry.
    """
    problem = cid_problem(cid)
    if problem:
        raise ValueError(problem)
    if profile is not None and profile not in PROFILES:
        raise ValueError("security profile must be one of 1, 2, 3")
    if not password:
        raise ValueError("empty password")
    if versions is not None:
        versions = "" if versions == ANY_VERSION else ",".join(
            version.subprotocol for version in parse_version_list(versions))
    lines = _read_lines(path, missing_ok=True)
    indexes = [index for index, line in enumerate(lines) if _line_cid(line) == cid]
    if indexes:
        fields = lines[indexes[0]].strip().split(":")
        if profile is None:
            profile = _parse_profile(fields[2]) if len(fields) >= 3 else None
        if versions is None:
            versions = fields[3] if len(fields) == 4 else ""
    entry = f"{cid}:{hash_password(password)}" + (f":{profile}" if profile is not None else "")
    if versions:   # a restriction to some OCPP versions stays with the charge point
        entry += ("" if profile is not None else ":") + f":{versions}"
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
    if profile not in PROFILES:
        raise ValueError("security profile must be one of 1, 2, 3")
    lines = _read_lines(path, missing_ok=False)
    found = False
    for index, line in enumerate(lines):
        if _line_cid(line) == cid:
            fields = line.strip().split(":")
            lines[index] = f"{cid}:{fields[1]}:{profile}" + (f":{fields[3]}" if len(fields) == 4 else "")
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


def _parse_profile(text: str) -> int | None:
    return int(text) if text in ("1", "2", "3") else None


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
