"""The wss certificate files over time: the server certificate's expiry read from its PEM, the CRL check, and
reloading (a file that does not load keeps the running context, an ERROR names it). Certificates from the
session's test PKI (openssl)."""

from __future__ import annotations

import calendar
import ssl
import subprocess
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocpp_gw.chargers import x509
from ocpp_gw.chargers.tls import ServerTls, make_ssl_context
from ocpp_gw.config import tls_config
from ocpp_gw.settings import loads
from tests.security.conftest import _issue


def settings_of(lines: dict):
    return loads("".join(f"{key} = {value}\n" for key, value in lines.items()))


def tls_lines(pki, **extra) -> dict:
    return {"ocpp.listener.wss": "127.0.0.1:0", "ocpp.listener.ssl.certfile": pki.server.cert,
            "ocpp.listener.ssl.keyfile": pki.server.key, **extra}


def tls_of(lines: dict):
    return tls_config(settings_of(lines))


def context_for(pki, **extra) -> ssl.SSLContext:
    return make_ssl_context(tls_of(tls_lines(pki, **extra)))


def openssl_end_date(path) -> float:
    out = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", str(path)], capture_output=True,
                         text=True, check=True).stdout
    return calendar.timegm(time.strptime(out.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y %Z"))


@pytest.mark.parametrize("kind", ["valid", "expired", "profile3"])
def test_expiry_read_from_the_pem_matches_what_openssl_reads(pki, kind):
    path = pki.cp[kind].cert
    assert x509.not_after(path.read_bytes()) == openssl_end_date(path)


def test_expiry_of_a_certificate_beyond_2049_uses_generalized_time(pki, tmp_path):
    far = tmp_path / "far"
    far.mkdir()
    pair = _issue(pki.ca, far, "far", "/CN=far", start="20250101000000Z", end="20600101000000Z")
    assert x509.not_after(pair.cert.read_bytes()) == calendar.timegm((2060, 1, 1, 0, 0, 0))


def test_the_first_certificate_of_a_chain_file_is_the_one_read(pki):
    chain = pki.server.cert.read_bytes() + pki.cp["expired"].cert.read_bytes()
    assert x509.not_after(chain) == openssl_end_date(pki.server.cert)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_a_value_error_or_a_time(data):
    try:
        x509.validity(data)
    except ValueError:
        pass


@pytest.mark.parametrize("text", [b"", b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"])
def test_a_file_without_a_readable_certificate_is_a_value_error(text):
    with pytest.raises(ValueError):
        x509.not_after(text)

def test_crl_file_turns_on_the_leaf_revocation_check(pki, tmp_path):
    crl = tmp_path / "crl.pem"
    subprocess.run(["openssl", "ca", "-gencrl", "-config", str(pki.ca.cert.parent / "ca.cnf"), "-cert",
                    str(pki.ca.cert), "-keyfile", str(pki.ca.key), "-crldays", "1", "-out", str(crl)],
                   check=True, capture_output=True)
    context = context_for(pki, **{"ocpp.listener.ssl.verify": "verify_peer",
                                  "ocpp.listener.ssl.cacertfile": pki.ca.cert,
                                  "ocpp.listener.ssl.crlfile": crl})
    assert context.verify_flags & ssl.VERIFY_CRL_CHECK_LEAF
    assert context.cert_store_stats()["crl"] == 1


@pytest.mark.parametrize("key, content, named", [
    ("ocpp.listener.ssl.certfile", "garbage", "ocpp.listener.ssl.certfile"),
    ("ocpp.listener.ssl.keyfile", "garbage", "ocpp.listener.ssl.keyfile"),
    ("ocpp.listener.ssl.cacertfile", "garbage", "ocpp.listener.ssl.cacertfile"),
    ("ocpp.listener.ssl.crlfile", "", "ocpp.listener.ssl.crlfile"),
    ("ocpp.listener.ssl.crlfile", None, "ocpp.listener.ssl.crlfile"),
])
def test_a_file_that_does_not_load_is_named_and_the_running_context_stays(pki, tmp_path, caplog, key,
                                                                           content, named):
    good = tls_lines(pki, **{"ocpp.listener.ssl.verify": "verify_peer",
                             "ocpp.listener.ssl.cacertfile": pki.ca.cert})
    server_tls = ServerTls(tls_of(good))
    running = server_tls.context
    broken = tmp_path / "broken.pem"
    if content is not None:  # None: the file is missing
        broken.write_text(content)
    assert not server_tls.reload(tls_of({**good, key: broken}))
    assert server_tls.context is running
    [record] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert f"{named} {broken}" in record.getMessage()


def test_a_good_reload_swaps_the_context_and_the_expiry(pki):
    server_tls = ServerTls(tls_of(tls_lines(pki)))
    running = server_tls.context
    renewed = tls_lines(pki, **{"ocpp.listener.ssl.certfile": pki.cp["expired"].cert,
                                "ocpp.listener.ssl.keyfile": pki.cp["expired"].key})
    assert server_tls.reload(tls_of(renewed))
    assert server_tls.context is not running
    assert server_tls.not_after == openssl_end_date(pki.cp["expired"].cert)
