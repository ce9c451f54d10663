"""The upgrade request of SPEC §3: data-driven cases in tests/data/handshake/*.json plus the pure helpers.

A case builds a request from defaults (a valid request for CP001 with ocpp1.6 and Basic credentials) and
overrides: `request_line`, `target`, `headers` (null removes one), `extra_lines` (raw header lines appended),
`auth` ([user, password] or null), `raw` / `raw_repeat` (the whole request), `pad_bytes` / `pad_to_total`.
Options: `path_prefix`, `fail_if_no_subprotocol`, `must_match_cid`, `backend` (file | none | broken),
`backend_users`, and for the version negotiation (SPEC §9) `versions` (served, in preference order),
`default_version`, `bare`, `allowed` (the CP's restriction from the credentials file).
Expectations: `expect` ("accept", "close" = upgrade without subprotocol then close 1002, or a status),
`reason_contains`, `refusal_headers`, `cid`, `subprotocol` (echoed), `version` (negotiated), `subprotocols`,
`username`, `header_values`.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from ocpp_gw.protocol.handshake import (
    MAX_REQUEST_BYTES,
    Refusal,
    UpgradeRequest,
    authorize,
    check_cid,
    Negotiated,
    NoVersion,
    VersionPolicy,
    find_header_end,
    parse_basic_auth,
    parse_request,
    negotiate,
    too_large,
)
from ocpp_gw.protocol.identity import cid_problem
from ocpp_gw.protocol.versions import VERSIONS

CASE_DIR = Path(__file__).parent.parent / "data" / "handshake"
USERS = {"CP001": "s3cret-pass", "CP002": "a:b:c"}
DEFAULT_HEADERS = {
    "Host": "gw.example:33033",
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Protocol": "ocpp1.6",
}


class DictBackend:
    requires_credentials = True

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.calls: list[tuple[str, str, str, str]] = []

    def authenticate(self, username: str, password: str, *, cid: str = "", peer: str = "") -> bool:
        self.calls.append((username, password, cid, peer))
        return username in self.users and self.users[username] == password


class OpenBackend:
    requires_credentials = False

    def authenticate(self, username: str, password: str, *, cid: str = "", peer: str = "") -> bool:
        return True


class BrokenBackend:
    requires_credentials = True

    def authenticate(self, username: str, password: str, *, cid: str = "", peer: str = "") -> bool:
        raise ConnectionError("auth server down")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode("utf-8", "surrogateescape")).decode()


def load_cases() -> list:
    cases = []
    for path in sorted(CASE_DIR.glob("*.json")):
        for case in json.loads(path.read_text(encoding="utf-8")):
            cases.append(pytest.param(case, id=f"{path.stem}: {case['name']}"))
    return cases


def build_request(case: dict) -> bytes:
    if "raw" in case:
        return case["raw"].encode("latin-1")
    if "raw_repeat" in case:
        line, count = case["raw_repeat"]
        return ("GET /ocpp/CP001 HTTP/1.1\r\n" + line * count).encode("latin-1")
    request_line = case.get("request_line", f"GET {case.get('target', '/ocpp/CP001')} HTTP/1.1")
    headers = dict(DEFAULT_HEADERS)
    auth = case.get("auth", ["CP001", "s3cret-pass"])
    if auth is not None:
        headers["Authorization"] = basic(*auth)
    for name, value in case.get("headers", {}).items():
        headers.pop(name, None)
        if value is not None:
            headers[name] = value
    lines = [request_line, *(f"{name}: {value}" for name, value in headers.items()), *case.get("extra_lines", [])]
    if "pad_bytes" in case:
        lines.append("X-Pad: " + "a" * case["pad_bytes"])
    raw = "\r\n".join(lines) + "\r\n\r\n"
    if "pad_to_total" in case:
        filler = case["pad_to_total"] - len(raw.encode("latin-1")) - len("X-Pad: \r\n")
        raw = "\r\n".join([*lines, "X-Pad: " + "a" * filler]) + "\r\n\r\n"
        assert len(raw.encode("latin-1")) == case["pad_to_total"]
    return raw.encode("latin-1")


def make_backend(case: dict):
    kind = case.get("backend", "file")
    if kind == "none":
        return OpenBackend()
    if kind == "broken":
        return BrokenBackend()
    return DictBackend(case.get("backend_users", USERS))


def policy_of(case: dict) -> VersionPolicy:
    served = tuple(VERSIONS[name] for name in case.get("versions", ["ocpp2.1", "ocpp2.0.1", "ocpp1.6"]))
    why = ""
    if case.get("bare"):
        served, why = tuple(v for v in served if v.bare_mode), "with the bare MQTT payload format"
    return VersionPolicy(served, VERSIONS[case.get("default_version", "ocpp1.6")],
                         case.get("fail_if_no_subprotocol", True), why)


def run_case(case: dict) -> tuple[UpgradeRequest, Negotiated | NoVersion] | Refusal:
    result = parse_request(build_request(case), path_prefix=case.get("path_prefix", "/ocpp"))
    if isinstance(result, Refusal):
        return result
    refusal = authorize(result, make_backend(case), must_match_cid=case.get("must_match_cid", True))
    if refusal is not None:
        return refusal
    allowed = frozenset(case["allowed"]) if "allowed" in case else None
    return result, negotiate(result.subprotocols, policy_of(case), allowed)


@pytest.mark.parametrize("case", load_cases())
def test_handshake_case(case: dict) -> None:
    result = run_case(case)
    if case["expect"] == "close":
        assert not isinstance(result, Refusal), result
        outcome = result[1]
        assert isinstance(outcome, NoVersion), outcome
        assert case.get("reason_contains", "") in outcome.reason
        assert len(outcome.reason.encode()) <= 123   # it must fit a close frame
    elif case["expect"] == "accept":
        assert not isinstance(result, Refusal), result
        request, outcome = result
        assert isinstance(outcome, Negotiated), outcome
        for attribute in ("cid", "subprotocols", "username"):
            if attribute in case:
                assert getattr(request, attribute) == case[attribute]
        if "subprotocol" in case:
            assert outcome.echo == case["subprotocol"]
        if "version" in case:
            assert outcome.version.subprotocol == case["version"]
        for name, value in case.get("header_values", {}).items():
            assert request.header(name) == value
    else:
        assert isinstance(result, Refusal), result
        assert result.status == case["expect"], result.reason
        assert case.get("reason_contains", "") in result.reason
        for name, value in case.get("refusal_headers", {}).items():
            assert result.headers[name] == value


@pytest.mark.parametrize("case", load_cases())
def test_refusal_reason_is_one_line_without_credentials(case: dict) -> None:
    result = run_case(case)
    if isinstance(result, Refusal):
        assert "\n" not in result.reason and "\r" not in result.reason
        password = (case.get("auth") or ["", "s3cret-pass"])[1]
        if password:
            assert password not in result.reason
        for line in build_request(case).decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            scheme_and_token = value.split()
            if name.lower() == "authorization" and len(scheme_and_token) > 1:
                assert scheme_and_token[-1] not in result.reason


def test_every_status_code_is_covered_by_a_case() -> None:
    statuses = {param.values[0]["expect"] for param in load_cases()}
    assert {400, 401, 403, 404, 426, 431, 503, "accept"} <= statuses


# Refusal bytes


def test_refusal_bytes_have_status_line_headers_and_body() -> None:
    raw = Refusal(404, "unknown path; expected /ocpp/<cid>").to_bytes()
    assert raw == (
        b"HTTP/1.1 404 Not Found\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: 35\r\n"
        b"Connection: close\r\n"
        b"\r\n"
        b"unknown path; expected /ocpp/<cid>\n"
    )


def test_refusal_bytes_put_extra_headers_after_connection_close() -> None:
    raw = Refusal(401, "HTTP Basic credentials required", {"WWW-Authenticate": 'Basic realm="ocpp"'}).to_bytes()
    head, body = raw.split(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 401 Unauthorized",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Length: 32",
        b"Connection: close",
        b'WWW-Authenticate: Basic realm="ocpp"',
    ]
    assert body == b"HTTP Basic credentials required\n"


@pytest.mark.parametrize(
    ("status", "phrase"),
    [(400, b"Bad Request"), (426, b"Upgrade Required"), (431, b"Request Header Fields Too Large"),
     (403, b"Forbidden"), (503, b"Service Unavailable"), (599, b"Error")],
)
def test_refusal_status_line_carries_the_standard_phrase(status: int, phrase: bytes) -> None:
    assert Refusal(status, "x").to_bytes().startswith(b"HTTP/1.1 %d %s\r\n" % (status, phrase))


def test_refusal_content_length_counts_utf8_bytes() -> None:
    raw = Refusal(400, "cid must not contain 'ä'").to_bytes()
    head, body = raw.split(b"\r\n\r\n")
    assert body == "cid must not contain 'ä'\n".encode()
    assert f"Content-Length: {len(body)}".encode() in head


def test_refusal_reason_with_line_breaks_stays_one_line() -> None:
    raw = Refusal(400, "bad\r\nInjected: header\n").to_bytes()
    head, body = raw.split(b"\r\n\r\n")
    assert b"Injected: header\r\n" not in head
    assert body == b"bad Injected: header\n"


def test_refusal_header_value_cannot_inject_lines() -> None:
    raw = Refusal(400, "x", {"X-A": "1\r\nSet-Cookie: y"}).to_bytes()
    assert b"\r\nSet-Cookie" not in raw


def test_too_large_is_431() -> None:
    assert too_large().status == 431


# find_header_end


@pytest.mark.parametrize(
    ("buf", "end"),
    [
        (b"", -1),
        (b"GET / HTTP/1.1\r\nHost: a\r\n", -1),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27),
        (b"GET / HTTP/1.1\r\n\r\nextra", 18),
        (b"\r\n\r\n", 4),
        (b"GET / HTTP/1.1\n\n", -1),
        (b"a\r\n\r\nb\r\n\r\n", 5),
    ],
)
def test_find_header_end_points_just_past_the_blank_line(buf: bytes, end: int) -> None:
    assert find_header_end(buf) == end


def test_bytes_after_the_header_block_are_ignored() -> None:
    raw = build_request({}) + b"\x81\x05hello"
    assert isinstance(parse_request(raw, path_prefix="/ocpp"), UpgradeRequest)


def test_max_request_bytes_is_8192() -> None:
    assert MAX_REQUEST_BYTES == 8192


# parsed request


def test_parsed_request_carries_every_field() -> None:
    raw = build_request({"target": "/ocpp/CP001?fw=2"})
    req = parse_request(raw, path_prefix="/ocpp")
    assert isinstance(req, UpgradeRequest)
    assert (req.method, req.target, req.path, req.cid) == ("GET", "/ocpp/CP001?fw=2", "/ocpp/CP001", "CP001")
    assert (req.username, req.password) == ("CP001", "s3cret-pass")
    assert req.key == "dGhlIHNhbXBsZSBub25jZQ=="
    assert req.subprotocols == ["ocpp1.6"]
    assert req.headers["host"] == "gw.example:33033"
    assert req.header("SEC-WEBSOCKET-VERSION") == "13"
    assert req.header("X-Missing") is None


def test_request_repr_hides_password_and_authorization() -> None:
    req = parse_request(build_request({}), path_prefix="/ocpp")
    text = repr(req)
    assert "s3cret-pass" not in text
    assert "Q1AwMDE6" not in text
    assert "CP001" in text


def test_malformed_authorization_leaves_credentials_empty() -> None:
    req = parse_request(
        build_request({"headers": {"Authorization": "Bearer x"}}), path_prefix="/ocpp"
    )
    assert isinstance(req, UpgradeRequest)
    assert (req.username, req.password) == (None, None)


def test_authorize_passes_cid_and_peer_to_the_backend() -> None:
    req = parse_request(build_request({}), path_prefix="/ocpp")
    backend = DictBackend(USERS)
    assert authorize(req, backend, must_match_cid=True, peer="192.0.2.7:50000") is None
    assert backend.calls == [("CP001", "s3cret-pass", "CP001", "192.0.2.7:50000")]


def test_authorize_does_not_call_the_backend_without_credentials() -> None:
    req = parse_request(build_request({"auth": None}), path_prefix="/ocpp")
    backend = DictBackend(USERS)
    assert authorize(req, backend, must_match_cid=True).status == 401
    assert backend.calls == []


# check_cid, cid_problem


@pytest.mark.parametrize(
    ("raw", "cid"),
    [("CP001", "CP001"), ("CP%20001", "CP 001"), ("%E2%82%AC", "€"), ("a" * 48, "a" * 48), ("x", "x")],
)
def test_check_cid_decodes_acceptable_ids(raw: str, cid: str) -> None:
    assert check_cid(raw) == cid


@pytest.mark.parametrize(
    "raw",
    ["", "CP+1", "%2B", "%23", "#", "a/b", "%2F", "a:b", "a" * 49, "CP\x001", "CP\x1f", "CP\x7f", "CP\x85",
     "%", "%4", "%GG", "%C3", "%C3%28"],
)
def test_check_cid_refuses_with_400(raw: str) -> None:
    result = check_cid(raw)
    assert isinstance(result, Refusal) and result.status == 400


def test_cid_problem_accepts_a_plain_id() -> None:
    assert cid_problem("CP001") is None


# parse_basic_auth


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (basic("CP001", "pw"), ("CP001", "pw")),
        (basic("CP001", "a:b"), ("CP001", "a:b")),
        (basic("CP001", ""), ("CP001", "")),
        (basic("Ladesäule", "pässwort"), ("Ladesäule", "pässwort")),
        ("BASIC " + basic("CP001", "pw")[6:], ("CP001", "pw")),
        ("  Basic   " + basic("CP001", "pw")[6:] + "  ", ("CP001", "pw")),
        ("Basic Q1AwMDE6/w==", ("CP001", "\udcff")),
        ("Basic", None),
        ("Basic ", None),
        ("Bearer abc", None),
        ("Digest username=x", None),
        ("Basic Q1AwMDE=", None),
        ("Basic OnB3", None),
        ("Basic Q1AwMDE6cHc", None),
        ("Basic Q1Aw MDE6cHc=", None),
        ("Basic ***", None),
        ("", None),
    ],
)
def test_parse_basic_auth(value: str, expected) -> None:
    assert parse_basic_auth(value) == expected


# identity (SPEC §3, §9): what a 2.x identity may hold but a cid may not, and why


@pytest.mark.parametrize("character, why", [
    ("+", "MQTT single-level wildcard"), ("#", "MQTT multi-level wildcard"),
    ("/", "separates MQTT topic levels"), (":", "HTTP Basic authentication")])
def test_a_refused_cid_character_is_named_with_the_reason(character, why) -> None:
    problem = cid_problem(f"CP{character}1")
    assert problem.startswith(f"cid must not contain {character!r}: ") and why in problem


def test_every_other_character_of_the_2x_identity_set_is_accepted() -> None:
    assert cid_problem("aZ09*-_=|@.") is None


def test_an_identity_of_48_characters_is_accepted_and_49_refused() -> None:
    assert cid_problem("C" * 48) is None
    assert "at most 48" in cid_problem("C" * 49)
