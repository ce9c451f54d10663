"""The configuration: value parsers, the loader's errors, Settings, and the generated files."""

from __future__ import annotations

import ast
import importlib.util
import re
import socket
from pathlib import Path

import pytest

from ocpp_gw import settings
from ocpp_gw.settings import KEYS, KEYS_BY_NAME, ConfigError, Settings, load, loads

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "config"


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_conf", ROOT / "tools" / "gen_conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen_conf = _load_generator()


def parse(name: str, text: str):
    return KEYS_BY_NAME[name].parse(text)


def problem(name: str, text: str) -> str:
    with pytest.raises(ValueError) as caught:
        parse(name, text)
    return str(caught.value)


# --- parsers: good values --------------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0), ("500ms", 0.5), ("1.5s", 1.5),
    ("30", 30.0), ("0", 0.0), ("0.25", 0.25), (".5s", 0.5), ("2 m", 120.0), ("10S", 10.0), ("1H", 3600.0),
])
def test_duration_is_float_seconds(text, seconds):
    value = parse("ocpp.close_timeout", text)
    assert value == seconds and isinstance(value, float)


@pytest.mark.parametrize("text", ["-5s", "-1", "abc", "5 minutes", "5x", "1h30m", "nan", "inf", "1e3", "", "s",
                                  "5..0s"])
def test_duration_rejects_garbage_and_negatives(text):
    expected = f"{text!r} is negative" if text.startswith("-") else f"{text!r} is not a duration"
    assert problem("ocpp.close_timeout", text) == expected


@pytest.mark.parametrize("name", ["ocpp.idle_timeout", "ocpp.awaiting_timeout", "ocpp.retry_interval",
                                  "auth.http.timeout"])
def test_zero_is_refused_where_it_would_mean_instant_expiry(name):
    assert problem(name, "0s") == "'0s' must be more than 0"


@pytest.mark.parametrize("name", ["ocpp.default_heartbeat_interval", "ocpp.dnstream.offline_hold",
                                  "ocpp.close_timeout", "mqtt.keepalive", "mqtt.session_expiry"])
def test_zero_is_allowed_where_it_means_off_or_at_once(name):
    assert parse(name, "0") == 0.0


def test_keepalive_is_capped_at_the_mqtt_maximum():
    assert parse("mqtt.keepalive", "65535") == 65535.0
    assert problem("mqtt.keepalive", "65536") == "'65536' is more than 65535s"


@pytest.mark.parametrize("text, size", [
    ("64KB", 65536), ("1MB", 1048576), ("1GB", 1 << 30), ("512B", 512), ("512", 512), ("1", 1),
    ("64kb", 65536), ("64 KB", 65536),
])
def test_size_is_int_bytes_with_binary_units(text, size):
    value = parse("ocpp.max_frame_size", text)
    assert value == size and isinstance(value, int)


@pytest.mark.parametrize("text", ["-1KB", "1.5MB", "64KiB", "64K", "lots", "", "0", "0B", "1TB"])
def test_size_rejects_garbage_fractions_and_zero(text):
    with pytest.raises(ValueError):
        parse("ocpp.max_frame_size", text)


@pytest.mark.parametrize("text, value", [
    ("true", True), ("yes", True), ("on", True), ("1", True), ("TRUE", True), ("Yes", True),
    ("false", False), ("no", False), ("off", False), ("0", False), ("False", False), ("OFF", False),
])
def test_boolean_spellings(text, value):
    assert parse("auth.username_must_match_cid", text) is value


@pytest.mark.parametrize("text", ["", "maybe", "2", "y", "t", "enabled"])
def test_boolean_rejects_other_words(text):
    assert problem("auth.username_must_match_cid", text) == f"{text!r} is not a boolean"


@pytest.mark.parametrize("name, choices", [
    ("ocpp.message_format_checking", ["all", "upstream_only", "dnstream_only", "disable"]),
    ("ocpp.listener.ssl.verify", ["verify_none", "verify_peer"]),
    ("ocpp.payload_format", ["envelope", "bare"]),
    ("mqtt.protocol", ["3.1.1", "5"]),
    ("auth.backend", ["file", "http", "none"]),
    ("log.level", ["debug", "info", "warning", "error"]),
])
def test_enums_take_exactly_the_listed_words(name, choices):
    for choice in choices:
        assert parse(name, choice) == choice
    for wrong in {"", choices[0].upper(), choices[0] + "x", "other"} - set(choices):
        assert problem(name, wrong) == f"{wrong!r} is not a valid choice"


@pytest.mark.parametrize("name, text, value", [
    ("ocpp.listener.max_connections", "1", 1),
    ("ocpp.listener.max_connections", "+7", 7),
    ("ocpp.dnstream.max_mqueue_len", "100000", 100000),
    ("ocpp.upstream.qos", "0", 0),
    ("ocpp.upstream.qos", "2", 2),
    ("mqtt.max_queued_messages", "1", 1),
    ("ocpp.max_bad_frames", "1", 1),
    ("ocpp.recent_csms_calls", "64", 64),
])
def test_integers_in_range(name, text, value):
    assert parse(name, text) == value


@pytest.mark.parametrize("name, text", [
    ("ocpp.listener.max_connections", "0"),
    ("ocpp.listener.max_connections", "-1"),
    ("ocpp.dnstream.max_mqueue_len", "0"),
    ("ocpp.upstream.qos", "3"),
    ("ocpp.upstream.qos", "-1"),
    ("mqtt.max_queued_messages", "0"),
    ("ocpp.max_bad_frames", "0"),
    ("ocpp.recent_csms_calls", "0"),
])
def test_integers_out_of_range(name, text):
    assert problem(name, text) == f"{text!r} is out of range"


@pytest.mark.parametrize("text", ["1.0", "ten", "", "1e2", "0x10", "1 000"])
def test_integers_reject_non_integers(text):
    assert problem("ocpp.listener.max_connections", text) == f"{text!r} is not a whole number"


@pytest.mark.parametrize("text, value", [("1", 1.0), ("1.5", 1.5), ("3", 3.0), ("2.0", 2.0)])
def test_heartbeat_backoff_may_be_fractional(text, value):
    assert parse("ocpp.heartbeat_checking_times_backoff", text) == value


@pytest.mark.parametrize("text, message", [
    ("0.99", "'0.99' is less than 1"), ("0", "'0' is less than 1"), ("-2", "'-2' is less than 1"),
    ("x", "'x' is not a number"), ("", "'' is not a number"), ("1.5x", "'1.5x' is not a number"),
])
def test_heartbeat_backoff_below_one_or_garbage(text, message):
    assert problem("ocpp.heartbeat_checking_times_backoff", text) == message


@pytest.mark.parametrize("text, address", [
    ("0.0.0.0:33033", ("0.0.0.0", 33033)),
    ("127.0.0.1:1", ("127.0.0.1", 1)),
    (":33033", ("0.0.0.0", 33033)),
    ("33033", ("0.0.0.0", 33033)),
    ("[::1]:33033", ("::1", 33033)),
    ("[::]:80", ("::", 80)),
    ("localhost:8080", ("localhost", 8080)),
    ("gw-1.example.net:443", ("gw-1.example.net", 443)),
    ("127.0.0.1:0", ("127.0.0.1", 0)),
    ("off", None),
])
def test_listener_addresses(text, address):
    assert parse("ocpp.listener.ws", text) == address


@pytest.mark.parametrize("text, message", [
    ("127.0.0.1", "'127.0.0.1' has no port"),
    ("localhost:", "port '' is not a number from 0 to 65535"),
    ("localhost:http", "port 'http' is not a number from 0 to 65535"),
    (":65536", "port '65536' is not a number from 0 to 65535"),
    ("::1:80", "'::1:80': write an IPv6 address in brackets, e.g. [::1]:1883"),
    ("[::1", "'[::1' is not an address"),
    ("[zz]:80", "'zz' in brackets is not an IPv6 address"),
    ("bad host:80", "'bad host' is not a host name or address"),
    ("-host:80", "'-host' is not a host name or address"),
    ("", "'' has no port"),
    ("OFF", "'OFF' has no port"),
])
def test_listener_address_errors(text, message):
    assert problem("ocpp.listener.ws", text) == message


@pytest.mark.parametrize("text, address", [
    ("127.0.0.1:1883", ("127.0.0.1", 1883)),
    ("broker", ("broker", 1883)),
    ("broker.example.net:8883", ("broker.example.net", 8883)),
    ("[::1]:1884", ("::1", 1884)),
    ("[::1]", ("::1", 1883)),
])
def test_mqtt_server_addresses(text, address):
    assert parse("mqtt.server", text) == (address,)


@pytest.mark.parametrize("text", ["mq1:1883, mq2:1884 [::1]", "mq1:1883,mq2:1884,[::1]", " mq1:1883  mq2:1884\t[::1] "])
def test_several_brokers_separated_by_commas_or_spaces_keep_their_order(text):
    assert parse("mqtt.server", text) == (("mq1", 1883), ("mq2", 1884), ("::1", 1883))


@pytest.mark.parametrize("text, message", [
    ("off", "the broker address cannot be off"),
    (":1883", "':1883' has no host"),
    ("", "'' has no host"),
    ("broker:0", "port '0' is not a number from 1 to 65535"),
    ("broker:65536", "port '65536' is not a number from 1 to 65535"),
    ("mq1:1883, mq2:0", "port '0' is not a number from 1 to 65535"),
    ("mq1, mq1:1883", "mq1:1883 is listed twice"),
    (" , ", "',' has no host"),
])
def test_mqtt_server_errors(text, message):
    assert problem("mqtt.server", text) == message


@pytest.mark.parametrize("text, path", [("/ocpp", "/ocpp"), ("/ocpp/", "/ocpp"), ("/", ""), ("/a/b", "/a/b")])
def test_listener_path_is_kept_without_trailing_slash(text, path):
    assert parse("ocpp.listener.path", text) == path


@pytest.mark.parametrize("text", ["ocpp", "", "/ocpp?x=1", "/oc pp", "/ocpp#frag"])
def test_listener_path_errors(text):
    assert problem("ocpp.listener.path", text) == f"{text!r} is not a URL path"


@pytest.mark.parametrize("name", ["ocpp.listener.ssl.certfile", "ocpp.listener.ssl.keyfile",
                                  "ocpp.listener.ssl.cacertfile", "ocpp.listener.ssl.organization",
                                  "ocpp.json_schema_dir", "mqtt.username", "mqtt.password",
                                  "mqtt.ssl.cafile", "mqtt.ssl.certfile", "mqtt.ssl.keyfile", "auth.http.url"])
def test_optional_values_are_none_when_empty(name):
    assert parse(name, "") is None


def test_required_text_must_not_be_empty():
    assert problem("auth.file", "") == "must not be empty"
    assert problem("ocpp.json_schema_id_prefix", "") == "must not be empty"


def test_client_id_defaults_to_the_host_name(monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "depot7")
    assert parse("mqtt.client_id", "") == "ocpp-gw-depot7"
    assert Settings.defaults()["mqtt.client_id"] == "ocpp-gw-depot7"
    assert parse("mqtt.client_id", "gw-a") == "gw-a"


@pytest.mark.parametrize("text", ["gw+", "gw#", "gw/1", "a\x00b"])
def test_client_id_must_be_one_plain_topic_level(text):
    assert problem("mqtt.client_id", text) == f"{text!r} contains +, #, / or a NUL"


@pytest.mark.parametrize("text", ["http://127.0.0.1:8080/auth", "https://auth.example.net/ocpp?a=b,c"])
def test_http_urls(text):
    assert parse("auth.http.url", text) == text


@pytest.mark.parametrize("text", ["ftp://x/y", "auth.example.net/ocpp", "http://", "http:///path", "https://a b/"])
def test_http_url_errors(text):
    assert problem("auth.http.url", text) == f"{text!r} is not an http:// or https:// URL"


@pytest.mark.parametrize("text", ["ocpp/", "", "a/b/", "gw"])
def test_mountpoints(text):
    assert parse("ocpp.mountpoint", text) == text


@pytest.mark.parametrize("text", ["ocpp/#", "ocpp/+/", "${cid}/", "x\x00"])
def test_mountpoint_refuses_wildcards_and_placeholders(text):
    assert "contains a wildcard, a placeholder or a NUL" in problem("ocpp.mountpoint", text)


# --- templates --------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "cp/${cid}", "cp/${clientid}/${action}", "${cid}/up/${type}/${action}/${id}", "a/${cid}-x/${id}${type}",
    "$cid/${cid}", "cp/${cid}/${cid}",
])
def test_upstream_templates(text):
    assert parse("ocpp.upstream.topic", text) == text


@pytest.mark.parametrize("text, message", [
    ("cp/${foo}", "unknown placeholder ${foo}"),
    ("cp/${CID}", "unknown placeholder ${CID}"),
    ("cp/${}", "unknown placeholder ${}"),
    ("cp/${cid", "a ${ is not closed by }"),
    ("cp/${cid}/${", "a ${ is not closed by }"),
    ("cp/${cid}/+", "'cp/${cid}/+' contains a wildcard (+ or #); published topics cannot"),
    ("cp/${cid}/#", "'cp/${cid}/#' contains a wildcard (+ or #); published topics cannot"),
    ("cp/all", "'cp/all' lacks ${cid} (or ${clientid}), so it cannot tell charge points apart"),
    ("cp/$cid", "'cp/$cid' lacks ${cid} (or ${clientid}), so it cannot tell charge points apart"),
    ("", "must not be empty"),
    ("cp/${cid}\x00", "contains a NUL character"),
])
def test_upstream_template_errors(text, message):
    for name in ("ocpp.upstream.topic", "ocpp.upstream.reply_topic", "ocpp.upstream.error_topic"):
        assert problem(name, text) == message


@pytest.mark.parametrize("text", [
    "cs/${cid}", "cs/${clientid}/+", "cs/${cid}/#", "${cid}/dn/${type}/${action}/${id}", "+/${cid}/x-${cid}",
    "cs/${cid}/+/#",
])
def test_dnstream_templates(text):
    assert parse("ocpp.dnstream.topic", text) == text


@pytest.mark.parametrize("text, message", [
    ("cs/+", "'cs/+' lacks ${cid} (or ${clientid}), so it cannot tell charge points apart"),
    ("cs/${cid}/a+", "'cs/${cid}/a+': + must be a whole topic level"),
    ("cs/${cid}/#/x", "'cs/${cid}/#/x': # must be the whole last topic level"),
    ("cs/${cid}/x#", "'cs/${cid}/x#': # must be the whole last topic level"),
    ("cs/${cid}/id-${id}", "'cs/${cid}/id-${id}': ${id} must be a whole topic level"),
    ("cs/${cid}/${type}${action}", "'cs/${cid}/${type}${action}': ${type} must be a whole topic level"),
    ("cs/${cid}/${type}/${type}", "'cs/${cid}/${type}/${type}': ${type} appears twice"),
    ("cs/${cid}/${bogus}", "unknown placeholder ${bogus}"),
])
def test_dnstream_template_errors(text, message):
    assert problem("ocpp.dnstream.topic", text) == message


@pytest.mark.parametrize("text", ["events/${cid}", "events/${clientid}", "events", "ev/${cid}/status"])
def test_events_templates(text):
    assert parse("ocpp.events.topic", text) == text


@pytest.mark.parametrize("text, message", [
    ("events/${cid}/${action}", "events have no action, id or type; remove ${action}"),
    ("events/${id}/${type}", "events have no action, id or type; remove ${id}, ${type}"),
    ("events/+", "'events/+' contains a wildcard (+ or #); published topics cannot"),
])
def test_events_template_errors(text, message):
    assert problem("ocpp.events.topic", text) == message


def test_placeholders_lists_names_in_order():
    assert settings.placeholders("${cid}/x/${type}/${id}/${cid}") == ["cid", "type", "id", "cid"]
    assert settings.placeholders("plain") == []


# --- the table --------------------------------------------------------------------------------

SPEC_DEFAULTS = {
    "ocpp.listener.ws": ("0.0.0.0", 33033), "ocpp.listener.wss": None, "ocpp.listener.path": "/ocpp",
    "ocpp.listener.max_connections": 10000, "ocpp.listener.ssl.certfile": None,
    "ocpp.listener.ssl.keyfile": None, "ocpp.listener.ssl.cacertfile": None, "ocpp.listener.ssl.crlfile": None,
    "ocpp.listener.ssl.verify": "verify_none", "ocpp.listener.ssl.fail_if_no_peer_cert": False,
    "ocpp.listener.ssl.organization": None, "ocpp.listener.fail_if_no_subprotocol": True,
    "ocpp.mountpoint": "ocpp/", "ocpp.default_heartbeat_interval": 60.0,
    "ocpp.heartbeat_checking_times_backoff": 1.0, "ocpp.idle_timeout": 30.0, "ocpp.max_frame_size": 65536,
    "ocpp.awaiting_timeout": 30.0, "ocpp.retry_interval": 30.0, "ocpp.message_format_checking": "disable",
    "ocpp.json_schema_dir": None, "ocpp.json_schema_id_prefix": "urn:OCPP:1.6:2019:12:",
    "ocpp.upstream.topic": "cp/${cid}", "ocpp.upstream.reply_topic": "cp/${cid}/Reply",
    "ocpp.upstream.error_topic": "cp/${cid}/Reply", "ocpp.upstream.qos": 1, "ocpp.dnstream.topic": "cs/${cid}",
    "ocpp.dnstream.channels": (), "ocpp.dnstream.max_mqueue_len": 100, "ocpp.dnstream.offline_hold": 60.0, "ocpp.events.topic": "events/${cid}",
    "ocpp.payload_format": "envelope",
    # SPEC §9
    "ocpp.versions": ("ocpp2.1", "ocpp2.0.1", "ocpp1.6"), "ocpp.default_version": "ocpp1.6",
    **{f"{name}.{version}": None for version in ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")
       for name in ("ocpp.upstream.topic", "ocpp.upstream.reply_topic", "ocpp.upstream.error_topic")},
    "mqtt.server": (("127.0.0.1", 1883),), "mqtt.username": None,
    "mqtt.password": None, "mqtt.protocol": "3.1.1", "mqtt.keepalive": 30.0, "mqtt.session_expiry": 3600.0,
    "mqtt.ssl.cafile": None, "mqtt.ssl.certfile": None, "mqtt.ssl.keyfile": None,
    "mqtt.max_queued_messages": 10000, "auth.backend": "file", "auth.file": "/etc/ocpp_gw/passwd",
    "auth.http.url": None, "auth.http.timeout": 5.0, "auth.username_must_match_cid": True,
    "admin.listener": ("127.0.0.1", 33080), "log.level": "info",
    # Not in SPEC §2; the gateway needs them.
    "ocpp.max_bad_frames": 10, "ocpp.recent_csms_calls": 16, "ocpp.close_timeout": 1.0,
    "admin.history_len": 20, "admin.history_payloads": False, "admin.token_file": None,
    "auth.http.cache_ttl": 60.0, "auth.throttle.max_failures": 5, "auth.throttle.window": 60.0,
    "auth.throttle.block": 300.0, "auth.throttle.max_failures_per_address": 100,
    "ocpp.listener.handshake_timeout": 10.0, "ocpp.listener.max_pending": 2000,
    "ocpp.listener.max_pending_per_address": 500, "ocpp.listener.proxy_protocol": "off", "ocpp.listener.proxy_protocol.trusted": ("127.0.0.0/8", "::1/128"),
    "process.cpus": "one",
}


def test_defaults_are_the_ones_spec_lists():
    defaults = dict(Settings.defaults())
    assert defaults.pop("mqtt.client_id") == f"ocpp-gw-{socket.gethostname()}"
    assert defaults == SPEC_DEFAULTS


def test_every_key_is_documented_with_a_group():
    for key in KEYS:
        assert key.doc.strip() and key.group and key.parse.accepts, key.name
        assert len(key.doc.strip()) > 30, key.name
    assert len(KEYS_BY_NAME) == len(KEYS)


def test_only_the_password_is_secret():
    assert [key.name for key in KEYS if key.secret] == ["mqtt.password"]


# --- loading files: data-driven -----------------------------------------------------------------

BAD_FILES = sorted((DATA / "bad").glob("*.conf"))
GOOD_FILES = sorted((DATA / "good").glob("*.conf"))


@pytest.mark.parametrize("path", BAD_FILES, ids=lambda path: path.stem)
def test_broken_file_is_refused_naming_file_line_and_key(path):
    expect = re.fullmatch(r"# expect: (\d+): (\S*): (.+)", path.read_text().splitlines()[0])
    assert expect, f"{path.name}: first line must be '# expect: <line>: <key>: <fragment>'"
    line, key, fragment = int(expect[1]), expect[2], expect[3]
    with pytest.raises(ConfigError) as caught:
        load(path)
    error = caught.value
    assert (error.source, error.line, error.key) == (str(path), line, key)
    assert str(error).startswith(f"{path}:{line}: {key}: ")
    assert fragment in error.problem


@pytest.mark.parametrize("path", GOOD_FILES, ids=lambda path: path.stem)
def test_good_file_gives_the_expected_values(path):
    loaded = load(path)
    expectations = re.findall(r"^# expect: (\S+) == (.+)$", path.read_text(), re.M)
    assert expectations, f"{path.name} has no '# expect: <key> == <value>' lines"
    for name, literal in expectations:
        actual = loaded.topic_overrides if name == "topic_overrides" else loaded[name]
        assert actual == ast.literal_eval(literal), name
    assert loaded.source == str(path)


def test_every_key_set_file_sets_every_key():
    text = (DATA / "good" / "every_key_set.conf").read_text()
    named = set(re.findall(r"^([a-z][\w.]*) =", text, re.M))
    assert {name for name in named if not name.startswith("ocpp.dnstream.channel.")} == set(KEYS_BY_NAME)


def test_values_given_override_defaults_and_the_rest_stay_default(tmp_path):
    path = tmp_path / "ocpp.conf"
    path.write_text("ocpp.idle_timeout = 2s\n")
    loaded = load(path)
    assert loaded["ocpp.idle_timeout"] == 2.0
    assert loaded == Settings.defaults().replace(**{"ocpp.idle_timeout": 2.0})


def test_missing_file(tmp_path):
    path = tmp_path / "nope.conf"
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == f"{path}: cannot read: No such file or directory"
    assert caught.value.line is None and caught.value.key is None


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load(tmp_path)
    assert str(caught.value) == f"{tmp_path}: cannot read: Is a directory"


def test_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.conf"
    path.write_bytes(b"mqtt.password = caf\xe9\n")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == f"{path}: cannot read: not UTF-8 text (byte 19)"


def test_byte_order_mark_is_ignored(tmp_path):
    path = tmp_path / "bom.conf"
    path.write_bytes(b"\xef\xbb\xbflog.level = debug\n")
    assert load(path)["log.level"] == "debug"


def test_crlf_line_endings(tmp_path):
    path = tmp_path / "dos.conf"
    path.write_bytes(b"# dos\r\nlog.level = error\r\nocpp.idle_timeout = 1x\r\n")
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert (caught.value.line, caught.value.key) == (3, "ocpp.idle_timeout")


def test_placeholders_and_commas_come_through_verbatim():
    loaded = loads("ocpp.upstream.topic = cp/${cid}/${action}, x\nmqtt.username = a,b,c\n")
    assert loaded["ocpp.upstream.topic"] == "cp/${cid}/${action}, x"
    assert loaded["mqtt.username"] == "a,b,c"


def test_a_hash_after_a_space_is_a_comment_even_if_the_comment_has_a_glued_hash():
    loaded = loads("mqtt.username = gw # see ticket#42\n")
    assert loaded["mqtt.username"] == "gw"


def test_a_quoted_value_may_hold_a_hash():
    assert loads("ocpp.dnstream.topic = 'cs/${cid}/#'\n")["ocpp.dnstream.topic"] == "cs/${cid}/#"


def test_loads_names_its_source_in_errors():
    with pytest.raises(ConfigError) as caught:
        loads("\nlog.level = loud\n", source="inline")
    assert str(caught.value).startswith("inline:2: log.level: 'loud' is not a valid choice")


def test_only_the_first_problem_is_reported_in_file_order():
    with pytest.raises(ConfigError) as caught:
        loads("a.b = 1\nlog.level = loud\n")
    assert (caught.value.line, caught.value.key) == (1, "a.b")


def test_a_line_that_only_looks_like_a_key_in_a_comment_does_not_confuse_line_numbers():
    with pytest.raises(ConfigError) as caught:
        loads("# log.level = info\n#log.level = debug\n\nlog.level = loud\n")
    assert caught.value.line == 4


def test_cross_key_error_points_at_the_template_line_when_set():
    text = ("ocpp.payload_format = bare\n"
            "ocpp.upstream.topic = ${cid}/up/${type}/${action}/${id}\n"
            "ocpp.upstream.reply_topic = ${cid}/up/${type}/${id}\n"
            "ocpp.upstream.error_topic = ${cid}/up/${type}/${id}\n"
            "ocpp.dnstream.topic = ${cid}/dn/${type}/${id}\n")
    with pytest.raises(ConfigError) as caught:
        loads(text, "f.conf")
    assert str(caught.value) == (
        "f.conf:5: ocpp.dnstream.topic: with ocpp.payload_format = bare the topic carries the message type, "
        "action and id, so this template needs ${type}, ${action}, ${id}; it lacks ${action}")


def test_bare_layout_with_clientid_alias_and_answers_carrying_action_loads():
    loaded = loads("\n".join(f"{name} = {value}" for name, value in gen_conf.EMQX4_LAYOUT.items()))
    assert loaded["ocpp.payload_format"] == "bare"


def test_envelope_mode_needs_none_of_the_bare_placeholders():
    loaded = loads("ocpp.upstream.topic = cp/${cid}\nocpp.dnstream.topic = cs/${cid}\n")
    assert loaded["ocpp.payload_format"] == "envelope"


def test_verify_peer_without_wss_needs_no_ca():
    assert loads("ocpp.listener.ssl.verify = verify_peer\n")["ocpp.listener.ssl.verify"] == "verify_peer"


def test_the_same_port_on_different_explicit_hosts_is_allowed():
    loaded = loads("ocpp.listener.ws = 127.0.0.1:9000\nadmin.listener = 127.0.0.2:9000\n")
    assert loaded["admin.listener"] == ("127.0.0.2", 9000)


def test_port_zero_never_conflicts():
    loaded = loads("ocpp.listener.ws = 127.0.0.1:0\nadmin.listener = 127.0.0.1:0\n")
    assert loaded["admin.listener"] == ("127.0.0.1", 0)


def test_wildcard_ipv6_host_conflicts_with_any_host_on_the_same_port():
    with pytest.raises(ConfigError) as caught:
        loads("ocpp.listener.ws = [::]:9000\nadmin.listener = 127.0.0.1:9000\n")
    assert caught.value.problem == "port 9000 is already taken by ocpp.listener.ws"


# --- Settings ---------------------------------------------------------------------------------

def test_settings_is_a_read_only_mapping():
    defaults = Settings.defaults()
    assert defaults["ocpp.idle_timeout"] == 30.0
    assert len(defaults) == len(KEYS) and set(defaults) == set(KEYS_BY_NAME)
    assert defaults.get("no.such.key") is None
    with pytest.raises(TypeError):
        defaults["ocpp.idle_timeout"] = 1.0  # type: ignore[index]
    with pytest.raises(KeyError):
        defaults["no.such.key"]


def test_defaults_have_no_source_and_no_overrides():
    defaults = Settings.defaults()
    assert defaults.source is None and defaults.topic_overrides == {}


def test_replace_returns_a_modified_copy():
    defaults = Settings.defaults()
    changed = defaults.replace(**{"ocpp.idle_timeout": 1.0, "ocpp.upstream.qos": 0})
    assert (changed["ocpp.idle_timeout"], changed["ocpp.upstream.qos"]) == (1.0, 0)
    assert defaults["ocpp.idle_timeout"] == 30.0
    assert changed != defaults


def test_with_values_is_replace_with_a_dict():
    defaults = Settings.defaults()
    assert defaults.with_values({"log.level": "debug"}) == defaults.replace(**{"log.level": "debug"})


def test_replace_parses_strings_like_the_file_does():
    changed = Settings.defaults().replace(**{"ocpp.idle_timeout": "500ms", "ocpp.listener.ws": "127.0.0.1:0",
                                              "mqtt.password": '"x#y"'})
    assert changed["ocpp.idle_timeout"] == 0.5
    assert changed["ocpp.listener.ws"] == ("127.0.0.1", 0)
    assert changed["mqtt.password"] == "x#y"


def test_replace_keeps_the_source():
    loaded = loads("log.level = debug\n", source="x.conf")
    assert loaded.replace(**{"ocpp.idle_timeout": 1.0}).source == "x.conf"


def test_replace_refuses_a_bad_string_value():
    with pytest.raises(ConfigError) as caught:
        Settings.defaults().replace(**{"ocpp.idle_timeout": "soon"})
    assert str(caught.value).startswith("ocpp.idle_timeout: 'soon' is not a duration; expected a duration")


def test_replace_refuses_an_unknown_key_with_a_suggestion():
    with pytest.raises(ConfigError) as caught:
        Settings.defaults().replace(**{"ocpp.idle_timeot": 1.0})
    assert str(caught.value) == "ocpp.idle_timeot: unknown key; did you mean ocpp.idle_timeout?"


def test_replace_runs_the_cross_key_checks():
    with pytest.raises(ConfigError) as caught:
        Settings.defaults().replace(**{"ocpp.payload_format": "bare"})
    assert caught.value.key == "ocpp.upstream.topic" and caught.value.source is None


def test_replace_sets_and_removes_topic_overrides():
    changed = Settings.defaults().replace(**{"ocpp.upstream.topic.Heartbeat": "hb/${cid}"})
    assert changed.topic_overrides == {"Heartbeat": "hb/${cid}"}
    assert changed.replace(**{"ocpp.upstream.topic.Heartbeat": None}).topic_overrides == {}


def test_replace_checks_override_templates():
    with pytest.raises(ConfigError) as caught:
        Settings.defaults().replace(**{"ocpp.upstream.topic.Heartbeat": "hb/+"})
    assert caught.value.key == "ocpp.upstream.topic.Heartbeat"
    with pytest.raises(ConfigError):
        Settings.defaults().replace(**{"ocpp.upstream.topic.Heartbeat": 5})


def test_topic_overrides_is_a_copy():
    loaded = loads("ocpp.upstream.topic.Heartbeat = hb/${cid}\n")
    loaded.topic_overrides["Authorize"] = "x/${cid}"
    assert loaded.topic_overrides == {"Heartbeat": "hb/${cid}"}


def test_overrides_are_not_mapping_keys_but_are_in_the_public_dict():
    loaded = loads("ocpp.upstream.topic.Heartbeat = hb/${cid}\n")
    assert "ocpp.upstream.topic.Heartbeat" not in loaded
    assert loaded.public_dict()["ocpp.upstream.topic.Heartbeat"] == "hb/${cid}"


def test_public_dict_masks_the_password_and_nothing_else():
    loaded = loads("mqtt.username = gw\nmqtt.password = hunter2\n")
    public = loaded.public_dict()
    assert public["mqtt.password"] == "******" and public["mqtt.username"] == "gw"
    assert "hunter2" not in repr(public) and "hunter2" not in repr(loaded)
    assert {name: value for name, value in public.items() if name != "mqtt.password"} == \
        {name: value for name, value in loaded.items() if name != "mqtt.password"}


def test_public_dict_shows_an_unset_password_as_unset():
    assert Settings.defaults().public_dict()["mqtt.password"] is None


def test_config_error_format_without_parts():
    assert str(ConfigError("boom")) == "boom"
    assert str(ConfigError("boom", key="k")) == "k: boom"
    assert str(ConfigError("boom", source="f", key="k")) == "f: k: boom"
    assert str(ConfigError("boom", source="f", line=3, key="k")) == "f:3: k: boom"


# --- the shipped files ------------------------------------------------------------------------

def test_shipped_conf_is_what_the_generator_writes():
    assert (ROOT / "etc" / "ocpp.conf").read_text(encoding="utf-8") == gen_conf.render_conf(), \
        "etc/ocpp.conf is stale: run python tools/gen_conf.py"


def test_configuration_doc_is_what_the_generator_writes():
    assert (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8") == gen_conf.render_markdown(), \
        "docs/configuration.md is stale: run python tools/gen_conf.py"


def test_shipped_conf_loads_to_the_defaults():
    assert load(ROOT / "etc" / "ocpp.conf") == Settings.defaults()


def test_every_key_has_a_comment_block_and_a_commented_default_line():
    lines = (ROOT / "etc" / "ocpp.conf").read_text(encoding="utf-8").splitlines()
    for key in KEYS:
        default_line = f"#{key.name} = {key.default}".rstrip()
        index = lines.index(default_line)
        assert lines[index - 1] == f"# Default: {key.default or 'empty'}", key.name
        assert lines[index - 2].startswith("# ") and lines[index + 1:index + 2] in ([], [""]), key.name
        assert f"### {key.name}" in gen_conf.render_markdown()


def test_uncommenting_every_default_line_changes_nothing(tmp_path):
    seen: set[str] = set()
    out = []
    for line in (ROOT / "etc" / "ocpp.conf").read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(r"#([a-z][\w.]*) =.*", line)
        if match and match[1] in KEYS_BY_NAME and match[1] not in seen:
            seen.add(match[1])
            line = line[1:]
        out.append(line)
    path = tmp_path / "ocpp.conf"
    path.write_text("\n".join(out) + "\n")
    assert seen == set(KEYS_BY_NAME)
    assert load(path) == Settings.defaults()


def _example_block(title: str) -> str:
    text = (ROOT / "etc" / "ocpp.conf").read_text(encoding="utf-8")
    block = text.split(f"# {title}\n", 1)[1].split("\n\n", 1)[0]
    return "\n".join(line[1:] for line in block.splitlines() if re.match(r"#[a-z]", line))


def test_shipped_emqx4_block_uncommented_is_a_valid_bare_layout():
    loaded = loads(_example_block(gen_conf.EMQX4_TITLE))
    assert loaded["ocpp.payload_format"] == "bare"
    assert loaded["ocpp.upstream.topic"] == "${clientid}/up/${type}/${action}/${id}"
    assert loaded["ocpp.upstream.reply_topic"] == "${clientid}/up/${type}/${action}/${id}"
    assert loaded["ocpp.upstream.error_topic"] == "${clientid}/up/${type}/${action}/${id}"
    assert loaded["ocpp.dnstream.topic"] == "${clientid}/dn/${type}/${action}/${id}"


def test_shipped_override_example_uncommented_sets_overrides():
    loaded = loads(_example_block(gen_conf.OVERRIDE_TITLE))
    assert loaded.topic_overrides == {"BootNotification": "cp/${cid}/Notify/${action}",
                                      "MeterValues": "cp/${cid}/MeterValues"}


def test_generator_check_mode_reports_current_files(capsys):
    assert gen_conf.main(["--check"]) == 0
    assert capsys.readouterr().out == ""
