"""ocpp_gw.chargers.tls on its own: the CN rule, the certificate checks, the failure reasons (the server context,
which needs the test PKI, is in tests/security/test_tls_server_context.py)."""

from __future__ import annotations

import ssl

import pytest

from ocpp_gw.chargers.tls import certificate_refusal, handshake_failure, names, names_cid


def certificate(*subject: tuple[str, str]) -> dict:
    """A getpeercert() dict with these subject attributes, one RDN each."""
    return {"subject": tuple(((name, value),) for name, value in subject)}


@pytest.mark.parametrize("common_name, cid, named", [
    ("CP001", "CP001", True),
    ("SN-4711 CP001", "CP001", True),
    ("CP001.depot-3", "CP001", True),
    ("CP001/CP002", "CP002", True),
    ("x CP001 y CP0012", "CP0012", True),
    ("CP0012 CP001", "CP001", True),      # the second occurrence stands alone
    ("CP0012", "CP001", False),
    ("XCP001", "CP001", False),
    ("CP001", "CP00", False),
    ("CP001", "P", False),
    ("CP001", "0", False),
    ("cp001", "CP001", False),            # case matters, as in the URL
    ("", "CP001", False),
    ("Zürich-Ladepunkt-7", "Ladepunkt", True),
    ("Ladepunkt7", "Ladepunkt", False),
    ("DE*ABC*E123", "DE*ABC*E123", True),
    ("DE-ACME-0001", "ACME", True),       # an operator's cid scheme decides what a token is; "-" separates
])
def test_cn_names_the_cid_only_as_a_whole_token(common_name, cid, named):
    assert names_cid(common_name, cid) is named


def test_names_reads_every_value_of_an_attribute():
    cert = certificate(("organizationName", "A"), ("commonName", "X"), ("organizationName", "B"))
    assert names(cert, "organizationName") == ["A", "B"]
    assert names(cert, "commonName") == ["X"]
    assert names({}, "commonName") == []


@pytest.mark.parametrize("cert, cid, organization, expected", [
    (certificate(("commonName", "CP001")), "CP001", None, None),
    (certificate(("commonName", "CP001"), ("organizationName", "CPO")), "CP001", "CPO", None),
    (certificate(("commonName", "CP001")), "CP001", "CPO",
     (403, "client certificate organization (none) is not the required one")),
    (certificate(("commonName", "CP001"), ("organizationName", "Other")), "CP001", "CPO",
     (403, "client certificate organization 'Other' is not the required one")),
    (certificate(("commonName", "CP002")), "CP001", None,
     (403, "client certificate CN 'CP002' does not name the charge point id")),
    (certificate(("organizationName", "CPO")), "CP001", None,
     (403, "client certificate CN (none) does not name the charge point id")),
    (certificate(("commonName", "A"), ("commonName", "CP001")), "CP001", None, None),
    (certificate(("commonName", "evil\r\nX-Header: 1")), "CP001", None,
     (403, "client certificate CN 'evil\\r\\nX-Header: 1' does not name the charge point id")),
])
def test_certificate_refusal(cert, cid, organization, expected):
    refusal = certificate_refusal(cert, cid, organization)
    assert (None if refusal is None else (refusal.status, refusal.reason)) == expected


def test_cn_shown_in_a_refusal_is_cut_short():
    refusal = certificate_refusal(certificate(("commonName", "C" * 500)), "CP001", None)
    assert len(refusal.reason) < 150


def test_handshake_failure_tells_certificate_problems_from_the_rest():
    verify = ssl.SSLCertVerificationError(1, "certificate verify failed")
    verify.verify_message = "certificate has expired"
    assert handshake_failure(verify) == (True, "client certificate refused: certificate has expired")
    missing = ssl.SSLError(1, "peer did not return a certificate")
    missing.reason = "PEER_DID_NOT_RETURN_A_CERTIFICATE"
    assert handshake_failure(missing) == (True, "client certificate refused: none presented")
    version = ssl.SSLError(1, "unsupported protocol")
    version.reason = "UNSUPPORTED_PROTOCOL"
    assert handshake_failure(version) == (False, "TLS handshake failed: UNSUPPORTED_PROTOCOL")
