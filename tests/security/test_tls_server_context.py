"""ocpp_gw.chargers.tls's server context, made from the session's test PKI (openssl): the whitepaper's settings,
client certificates asked for, a key found in the certfile."""

from __future__ import annotations

import ssl

import pytest

from ocpp_gw.chargers.tls import TLS12_CIPHERS, make_ssl_context
from ocpp_gw.config import tls_config
from ocpp_gw.settings import loads


def context_for(pki, **extra) -> ssl.SSLContext:
    lines = {"ocpp.listener.wss": "127.0.0.1:0", "ocpp.listener.ssl.certfile": pki.server.cert,
             "ocpp.listener.ssl.keyfile": pki.server.key, **extra}
    return make_ssl_context(tls_config(loads("".join(f"{key} = {value}\n" for key, value in lines.items()))))


def test_server_context_follows_the_whitepaper(pki):
    context = context_for(pki)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_RENEGOTIATION
    assert context.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    tls12 = {cipher["name"] for cipher in context.get_ciphers() if cipher["protocol"] == "TLSv1.2"}
    assert tls12 == set(TLS12_CIPHERS.split(":"))
    assert all("GCM" in name or "CHACHA20" in name for name in
               (cipher["name"] for cipher in context.get_ciphers() if cipher["protocol"] == "TLSv1.3"))
    assert context.verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize("required, mode", [("true", ssl.CERT_REQUIRED), ("false", ssl.CERT_OPTIONAL)])
def test_verify_peer_asks_for_client_certificates(pki, required, mode):
    context = context_for(pki, **{"ocpp.listener.ssl.verify": "verify_peer",
                                  "ocpp.listener.ssl.cacertfile": pki.ca.cert,
                                  "ocpp.listener.ssl.fail_if_no_peer_cert": required})
    assert context.verify_mode == mode


def test_key_in_the_certfile_is_found(pki, tmp_path):
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(pki.server.cert.read_bytes() + pki.server.key.read_bytes())
    lines = f"ocpp.listener.wss = 127.0.0.1:0\nocpp.listener.ssl.certfile = {bundle}\n"
    assert make_ssl_context(tls_config(loads(lines))).get_ciphers()
