"""Property-based fuzzing of the two parsers that face the network: the frame codec and the HTTP upgrade parser.

For any input: no exception but the documented ones escapes, and every input ends in a SPEC §4 answer (a
message, or a FormationViolation when an id can be read, or a logged refusal) or a SPEC §3 HTTP refusal.
"""

from __future__ import annotations

import base64
import json
import string

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ocpp_gw.protocol import frames
from ocpp_gw.protocol import handshake, identity
from ocpp_gw.protocol.handshake import Refusal, UpgradeRequest
from tests.security.wire import request_bytes

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- the frame codec ---------------------------------------------------------------------------------

json_leaves = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
               | st.text(max_size=40))
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=5)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=5), max_leaves=30)
unique_ids = st.text(max_size=40) | st.integers() | st.none() | st.sampled_from(["", "a" * 36, "a" * 37, "1"])
actions = (st.sampled_from(["Heartbeat", "BootNotification", "Boot/#", "+", "", "A" * 65, "1abc"])
           | st.text(max_size=20))
frame_shapes = st.one_of(
    st.tuples(st.sampled_from([2, 3, 4, 5, 0, -1, 2.0, "2", True, None]), unique_ids, actions, json_values),
    st.tuples(st.just(3), unique_ids, json_values),
    st.tuples(st.just(4), unique_ids, st.text(max_size=30), st.text(max_size=30), json_values),
    st.lists(json_values, max_size=7),
).map(list)


def mutated(text: str, data) -> str:
    """`text` with a random slice cut out and random characters put in."""
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    insert = data.draw(st.text(alphabet=string.printable + "\x00\ud800\ufeff\u2028[]{}\",:\\", max_size=6))
    return text[:start] + insert + text[end:]


def check_frame(text: str) -> None:
    try:
        message = frames.parse(text)
    except frames.FrameError as error:
        assert "\n" not in error.description
        answer = frames.formation_violation(error)
        if isinstance(error, frames.UnknownMessageType) or error.unique_id is None:
            assert answer is None  # logged and counted, never answered (SPEC §4)
            return
        # Echoed as the CP sent it (1-36 characters), even one we refuse to put in a topic.
        assert frames.readable_unique_id(error.unique_id) == error.unique_id
        if frames.unique_id_problem(error.unique_id) is None:
            again = frames.parse(frames.serialize(answer))
            assert again == answer and again.code == "FormationViolation"
        return
    # Accepted: it must survive serialization unchanged (nothing malformed can reach MQTT).
    assert frames.parse(frames.serialize(message)) == message
    if isinstance(message, frames.Call):
        assert frames.action_problem(message.action) is None


@FUZZ
@given(st.text(max_size=300))
@example("[" * 100_000)
@example('[2,"x","Heartbeat",{"a":' + "1" * 5000 + "}]")
@example('[2,"x","Heartbeat",{"a":1e400}]')
@example('[2,"x","Heartbeat",{"a":"\\ud800"}]')
@example("\ufeff[3,\"x\",{}]")
def test_any_text_parses_or_fails_cleanly(text):
    check_frame(text)


@FUZZ
@given(frame_shapes)
def test_any_json_shaped_frame_parses_or_fails_cleanly(frame):
    check_frame(json.dumps(frame))


@FUZZ
@given(st.sampled_from(['[2,"id-1","Heartbeat",{}]', '[3,"id-2",{"status":"Accepted"}]',
                        '[4,"id-3","GenericError","oops",{}]', '[2,"id-4","DataTransfer",{"a":[1,{"b":null}]}]']),
       st.data())
def test_mutated_frames_parse_or_fail_cleanly(frame, data):
    check_frame(mutated(frame, data))


def test_non_text_is_a_frame_error():
    for value in (b'[2,"a","B",{}]', None, 5):
        try:
            frames.parse(value)
        except frames.FrameError as error:
            assert error.unique_id is None
        else:
            raise AssertionError(f"{value!r} was accepted")


# -- the HTTP upgrade parser -------------------------------------------------------------------------

REFUSAL_STATUSES = {400, 404, 426, 431}
VALID_HEADERS = {"Host": "gw", "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                 "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "ocpp1.6"}
header_names = st.sampled_from(["Host", "Upgrade", "Connection", "Sec-WebSocket-Key", "Sec-WebSocket-Version",
                                "Sec-WebSocket-Protocol", "Authorization", "X-Other", "Host ", "Bad Name", ""])
header_values = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=40) | st.sampled_from(
    ["websocket", "Upgrade", "13", "12", "ocpp1.6", "ocpp2.0, ocpp1.6", "Basic " + base64.b64encode(b"CP1:pw").decode(),
     "Basic !!", "dGhlIHNhbXBsZSBub25jZQ=="])
targets = st.sampled_from(["/ocpp/CP1", "/ocpp/CP%2F1", "/ocpp/", "/other/CP1", "/ocpp/CP1?x=1", "*", "",
                           "/ocpp/CP1#f", "/ocpp/%FF", "http://h/ocpp/CP1"]) | st.text(max_size=30).map(lambda t: "/ocpp/" + t)


def check_request(raw: bytes) -> None:
    result = handshake.parse_request(raw, path_prefix="/ocpp")
    if isinstance(result, Refusal):
        assert result.status in REFUSAL_STATUSES, result
        assert "\n" not in result.reason and result.reason
        head = result.to_bytes().split(b"\r\n\r\n", 1)[0].decode("latin-1")
        assert head.startswith(f"HTTP/1.1 {result.status} ") and "\n\n" not in head
        return
    assert isinstance(result, UpgradeRequest)
    assert identity.cid_problem(result.cid) is None
    assert result.subprotocols is None or all(result.subprotocols)  # the version is negotiated later
    assert len(base64.b64decode(result.key)) == 16
    assert result.password is None or "password" not in repr(result)


@FUZZ
@given(st.binary(max_size=2000))
@example(b"GET /ocpp/CP1 HTTP/1.1\r\n" + b"X: " + b"a" * 9000 + b"\r\n\r\n")
@example(b"\r\n\r\n")
def test_any_bytes_get_a_request_or_an_http_refusal(raw):
    check_request(raw)


@FUZZ
@given(st.sampled_from(["GET", "POST", "get", ""]), targets, st.sampled_from(["HTTP/1.1", "HTTP/1.0", "HTTP/2", ""]),
       st.lists(st.tuples(header_names, header_values), max_size=8), st.booleans())
def test_any_request_shape_gets_a_request_or_an_http_refusal(method, target, version, extra, start_valid):
    fields = list(VALID_HEADERS.items()) if start_valid else []
    fields += extra
    lines = [f"{method} {target} {version}"] + [f"{name}: {value}" for name, value in fields]
    # UTF-8, so that non-ASCII targets and values arrive as the raw multi-byte sequences a client could send.
    check_request(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", errors="surrogatepass"))


@FUZZ
@given(st.text(max_size=60), st.binary(max_size=60))
def test_any_authorization_value_parses_or_is_none(text, blob):
    for value in (text, "Basic " + base64.b64encode(blob).decode(), "Basic " + text):
        credentials = handshake.parse_basic_auth(value)
        assert credentials is None or (credentials[0] and isinstance(credentials[1], str))


class _AnyBackend:
    requires_credentials = True

    def __init__(self, answer):
        self.answer = answer

    def authenticate(self, username, password, *, cid="", peer=""):
        return self.answer

    def profile(self, username):
        return 2


@FUZZ
@given(st.text(min_size=1, max_size=20).filter(lambda u: ":" not in u), st.text(max_size=20), st.booleans(),
       st.booleans(), st.booleans())
def test_authorize_always_decides(username, password, answer, tls, must_match):
    authorization = "Basic " + base64.b64encode(f"{username}:{password}".encode("utf-8", "surrogatepass")).decode()
    request = handshake.parse_request(request_bytes("/ocpp/CP1", {"Authorization": authorization}),
                                      path_prefix="/ocpp")
    refusal = handshake.authorize(request, _AnyBackend(answer), must_match_cid=must_match,
                                  transport=handshake.Transport(tls=tls))
    # Fixed reasons only: nothing the client sent is echoed.
    assert refusal is None or (refusal.status, refusal.reason) in {
        (401, "invalid username or password"), (403, "username does not match the charge point id"),
        (403, "security profile 2: connect over wss")}
