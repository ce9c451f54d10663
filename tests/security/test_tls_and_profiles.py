"""wss and the OCPP security profiles through the real listener, with certificates made in this session."""

from __future__ import annotations

import json
import socket
import ssl
import time

import pytest

from ocpp_gw.auth import add_user
from tools.harness import password_for
from tests.security.conftest import ORGANIZATION, tls_settings, wss_address
from tests.security.wire import TEXT, RawClient, basic, frame_bytes, split_tls_client

PROFILES = {"CP001": 1, "CP002": 2, "CP003": 3}


@pytest.fixture(scope="module")
def profiled_passwd(tmp_path_factory):
    path = tmp_path_factory.mktemp("profiles") / "passwd"
    for cid, profile in PROFILES.items():
        add_user(str(path), cid, password_for(cid), profile)
    return path


@pytest.fixture(scope="module")
def gw(module_gateways, pki, profiled_passwd):
    """ws and wss; wss asks for a client certificate but lets Basic-auth CPs in without one."""
    return module_gateways(tls_settings(pki, **{"ocpp.listener.ssl.organization": ORGANIZATION}),
                           passwd=profiled_passwd)


@pytest.fixture(scope="module")
def strict_gw(module_gateways, pki, profiled_passwd):
    """wss only, and a client certificate is required (fail_if_no_peer_cert)."""
    return module_gateways(tls_settings(pki, **{"ocpp.listener.ws": "off",
                                                "ocpp.listener.ssl.fail_if_no_peer_cert": "true"}),
                           passwd=profiled_passwd)


def credentials(cid: str, password: str | None = None) -> dict:
    return {"Authorization": basic(cid, password_for(cid) if password is None else password)}


def over_wss(gw, pki, cid: str, pair=None, headers: dict | None = None):
    with RawClient(wss_address(gw), tls=pki.client_context(pair)) as client:
        return client.upgrade(f"/ocpp/{cid}", headers)


def over_ws(gw, cid: str, headers: dict | None = None):
    with RawClient(("127.0.0.1", gw.port)) as client:
        return client.upgrade(f"/ocpp/{cid}", headers)


def refused_during_tls(gw, pki, pair, cid: str = "CP001"):
    """Connect with `pair`, send a complete upgrade; True when no HTTP answer ever comes (the TLS handshake was
    refused: under TLS 1.3 the client only hears of it on its first read)."""
    try:
        with RawClient(wss_address(gw), tls=pki.client_context(pair)) as client:
            client.upgrade(f"/ocpp/{cid}", credentials(cid))
    except (ssl.SSLError, ConnectionError, OSError):
        return True
    return False


# -- client certificates (security profile 3) ---------------------------------------------------

def test_valid_client_certificate_naming_the_cid_gets_in_without_a_password(gw, pki):
    answer = over_wss(gw, pki, "CP001", pki.cp["valid"])
    assert answer.status == 101
    assert answer.headers["sec-websocket-protocol"] == "ocpp1.6"


def test_certificate_lets_the_cp_exchange_frames(gw, pki):
    with RawClient(wss_address(gw), tls=pki.client_context(pki.cp["valid"])) as client:
        assert client.upgrade("/ocpp/CP001").status == 101
        client.send_text('[2,"tls-1","Heartbeat",')
        answer = json.loads(client.recv_text())
    assert answer[:3] == [4, "tls-1", "FormationViolation"]


@pytest.mark.parametrize("kind, logged", [
    ("expired", "client certificate refused: certificate has expired"),
    ("other_ca", "client certificate refused: unable to get local issuer certificate"),
])
def test_expired_or_untrusted_certificate_is_refused_in_the_tls_handshake_and_logged(gw, pki, kind, logged):
    since = gw.mark()
    assert refused_during_tls(gw, pki, pki.cp[kind])
    gw.wait_for_log(rf"connection from 127\.0\.0\.1:\d+ refused: {logged}", since=since)


@pytest.mark.parametrize("kind, cid, reason", [
    ("wrong_cn", "CP001", "client certificate CN 'CP999' does not name the charge point id"),
    ("longer_cn", "CP001", "client certificate CN 'CP0012' does not name the charge point id"),
    ("valid", "CP00", "client certificate CN 'CP001' does not name the charge point id"),
    ("wrong_org", "CP001", "client certificate organization 'Evil CPO' is not the required one"),
])
def test_certificate_not_naming_the_cid_or_of_another_organization_is_403(gw, pki, kind, cid, reason):
    since = gw.mark()
    # Valid Basic credentials do not help: a certificate that names someone else is refused outright.
    answer = over_wss(gw, pki, cid, pki.cp[kind], credentials("CP001"))
    assert (answer.status, answer.body) == (403, (reason + "\n").encode())
    gw.wait_for_log(rf"refused: 403 {reason}", since=since)


def test_valid_certificate_of_a_cp_missing_from_the_credentials_file_is_403(gw, pki):
    # Removing a CP's line (and SIGHUP) locks it out without reissuing the CA.
    answer = over_wss(gw, pki, "CP999", pki.cp["wrong_cn"])
    assert (answer.status, answer.body) == (403, b"charge point is not registered\n")


def test_cid_as_a_token_inside_a_longer_cn_is_accepted(gw, pki):
    # CN "SN-4711 CP003": the cid stands as a word of its own.
    assert over_wss(gw, pki, "CP003", pki.cp["profile3"]).status == 101


def test_without_a_certificate_basic_auth_still_works_when_certificates_are_optional(gw, pki):
    assert over_wss(gw, pki, "CP001", None, credentials("CP001")).status == 101
    answer = over_wss(gw, pki, "CP001", None)
    assert (answer.status, answer.headers["www-authenticate"]) == (401, 'Basic realm="ocpp"')


def test_missing_certificate_is_refused_when_required(strict_gw, pki):
    since = strict_gw.mark()
    assert refused_during_tls(strict_gw, pki, None)
    strict_gw.wait_for_log(r"refused: client certificate refused: none presented", since=since)


def test_required_certificate_that_is_valid_gets_in(strict_gw, pki):
    assert over_wss(strict_gw, pki, "CP001", pki.cp["valid"]).status == 101


# -- TLS parameters ------------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_1_1_is_refused(gw, pki):
    # This client can speak TLS 1.1 (SECLEVEL=0): the refusal is the gateway's.
    context = pki.client_context()
    context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        RawClient(wss_address(gw), tls=context).close()


@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-CHACHA20-POLY1305"])
def test_tls_1_2_suites_other_than_ecdhe_with_aes_gcm_are_refused(gw, pki, cipher):
    context = pki.client_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(cipher)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        RawClient(wss_address(gw), tls=context).close()


@pytest.mark.parametrize("cipher", ["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384"])
def test_tls_1_2_with_a_whitepaper_suite_works_without_compression(gw, pki, cipher):
    context = pki.client_context(pki.cp["valid"])
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(cipher)
    with RawClient(wss_address(gw), tls=context) as client:
        assert client.sock.version() == "TLSv1.2"
        assert client.sock.cipher()[0] == cipher
        assert client.sock.compression() is None
        assert client.upgrade("/ocpp/CP001").status == 101


def test_tls_handshake_counts_against_the_handshake_deadline(module_gateways, pki):
    gw = module_gateways(tls_settings(pki, **{"ocpp.listener.handshake_timeout": "1s"}))
    since = gw.mark()
    with socket.create_connection(wss_address(gw), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never finished
        started = time.monotonic()
        assert sock.recv(100) == b""
        elapsed = time.monotonic() - started
    assert 0.8 <= elapsed < 2.5
    gw.wait_for_log(r"closed: no TLS handshake within 1s", since=since)


# -- per charge point security profile (credentials file `cid:hash:profile`) -------------------------

def test_profile_1_cp_may_use_ws_or_wss(gw, pki):
    assert over_ws(gw, "CP001", credentials("CP001")).status == 101
    assert over_wss(gw, pki, "CP001", None, credentials("CP001")).status == 101


def test_profile_2_cp_over_plain_ws_is_refused_even_with_the_right_password(gw):
    since = gw.mark()
    answer = over_ws(gw, "CP002", credentials("CP002"))
    assert (answer.status, answer.body) == (403, b"security profile 2: connect over wss\n")
    gw.wait_for_log(r"refused: 403 security profile 2: connect over wss", since=since)


def test_profile_2_cp_over_wss_with_its_password_gets_in(gw, pki):
    assert over_wss(gw, pki, "CP002", None, credentials("CP002")).status == 101


def test_profile_2_cp_with_a_wrong_password_over_ws_is_401_not_403(gw):
    # The profile is only told to someone who knows the password.
    assert over_ws(gw, "CP002", credentials("CP002", "wrong")).status == 401


@pytest.mark.parametrize("transport", ["ws", "wss"])
def test_profile_3_cp_with_only_a_password_is_refused(gw, pki, transport):
    answer = (over_ws(gw, "CP003", credentials("CP003")) if transport == "ws"
              else over_wss(gw, pki, "CP003", None, credentials("CP003")))
    assert (answer.status, answer.body) == (403, b"security profile 3: a TLS client certificate is required\n")


def test_profile_3_cp_with_its_certificate_gets_in(gw, pki):
    assert over_wss(gw, pki, "CP003", pki.cp["profile3"]).status == 101


# -- TLS records that arrive in pieces -----------------------------------------------------------

def test_tls_record_arriving_in_two_pieces_is_read_once_complete(gw, pki):
    with split_tls_client(wss_address(gw), pki.client_context()) as client:
        assert client.upgrade("/ocpp/CP002", credentials("CP002")).status == 101
        record = client.sock.seal(frame_bytes(TEXT, b'[2,"split-1","Heartbeat",'))
        client.sock.raw.sendall(record[:len(record) // 2])
        time.sleep(0.3)  # the gateway must not take the first half for the whole
        client.sock.raw.sendall(record[len(record) // 2:])
        answer = json.loads(client.recv_text())
    assert answer[:3] == [4, "split-1", "FormationViolation"]


def test_half_a_tls_record_does_not_hold_the_connection_past_its_deadline(module_gateways, pki,
                                                                           profiled_passwd):
    """The connection thread must not block inside a TLS read waiting for the rest of a record:
    the first-frame deadline still closes the connection on time."""
    gateway = module_gateways(tls_settings(pki, **{"ocpp.idle_timeout": "1s"}), passwd=profiled_passwd)
    with split_tls_client(wss_address(gateway), pki.client_context(), timeout=6.0) as client:
        assert client.upgrade("/ocpp/CP002", credentials("CP002")).status == 101
        record = client.sock.seal(frame_bytes(TEXT, b'[2,"half","Heartbeat",{}]'))
        client.sock.raw.sendall(record[:len(record) // 2])
        started = time.monotonic()
        code, reason, _ = client.wait_close(timeout=5.0)
        waited = time.monotonic() - started
    assert code is not None, "the gateway never closed the connection"
    assert waited < 3.0, f"closed only after {waited:.1f}s ({code} {reason})"
