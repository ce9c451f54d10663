"""TLS of the wss listener: the server context (security profiles 2 and 3) and the client certificate check.

The context follows the OCPP 1.6 security whitepaper: TLS 1.2 or newer, for TLS 1.2 only the ECDHE suites with
AES-GCM (ECDSA or RSA server keys), no TLS compression, no renegotiation. TLS 1.3 keeps OpenSSL's suites, which
are all AEAD. With ``ocpp.listener.ssl.verify = verify_peer`` a client certificate is asked for and verified
against ``ocpp.listener.ssl.cacertfile`` during the TLS handshake (chain and validity period); an untrusted or
expired one fails the handshake. Whether the certificate names the charge point can only be checked once the
HTTP request (and so the cid) has been read: `certificate_refusal` does that. With ``ocpp.listener.ssl.crlfile``
a revoked client certificate fails the handshake too. `ServerTls` holds the context for new connections and swaps
it on SIGHUP.
"""

from __future__ import annotations

import logging
import ssl
import time
from dataclasses import dataclass

from ..protocol.handshake import Refusal
from . import x509

log = logging.getLogger("ocpp_gw.tls")

TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
])


@dataclass(frozen=True)
class TlsConfig:
    """The wss listener's files and client certificate policy (``ocpp.listener.ssl.*``)."""

    certfile: str | None = None
    keyfile: str | None = None
    cacertfile: str | None = None
    crlfile: str | None = None  # CRLs in PEM: a revoked client certificate fails the handshake
    verify_peer: bool = False  # ask for a client certificate and verify it
    fail_if_no_peer_cert: bool = False  # with verify_peer: refuse a client without one


class TlsFileError(Exception):
    """A certificate, key, CA or CRL file that cannot be used; the message names the key and the file."""


@dataclass(frozen=True)
class ServerCredentials:
    """A ready server context and what was read to make it."""
    context: ssl.SSLContext
    certfile: str
    not_after: float  # the server certificate's expiry, Unix time


def _load(name: str, path: str, action) -> None:
    try:
        action()
    except (OSError, ssl.SSLError, ValueError) as err:
        raise TlsFileError(f"{name} {path}: {getattr(err, 'strerror', None) or err}") from err


def make_ssl_context(config: TlsConfig) -> ssl.SSLContext:
    """The wss server context; TlsFileError names a file that does not load."""
    return make_server_credentials(config).context


def make_server_credentials(config: TlsConfig) -> ServerCredentials:
    """The wss server context from the files `config` names; TlsFileError names a file that does not load."""
    certfile, keyfile = config.certfile, config.keyfile
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    expiry: list[float] = []
    _load("ocpp.listener.ssl.certfile", certfile, lambda: expiry.append(x509.not_after(_read(certfile))))
    if keyfile:
        _load("ocpp.listener.ssl.keyfile", keyfile, lambda: context.load_cert_chain(certfile, keyfile))
    else:
        _load("ocpp.listener.ssl.certfile", certfile, lambda: context.load_cert_chain(certfile))
    if config.cacertfile:
        _load("ocpp.listener.ssl.cacertfile", config.cacertfile,
              lambda: context.load_verify_locations(config.cacertfile))
    if config.crlfile:
        _load("ocpp.listener.ssl.crlfile", config.crlfile, lambda: _load_crl(context, config.crlfile))
        # The leaf only: charge point certificates come straight from the CA (or its one sub-CA) whose CRL
        # the operator publishes; checking the whole chain would need a CRL for every CA above it too.
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    if config.verify_peer:
        context.verify_mode = ssl.CERT_REQUIRED if config.fail_if_no_peer_cert else ssl.CERT_OPTIONAL
    else:
        context.verify_mode = ssl.CERT_NONE
    return ServerCredentials(context, certfile, expiry[0])


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _load_crl(context: ssl.SSLContext, path: str) -> None:
    """OpenSSL loads the CRLs of a PEM file through load_verify_locations, and ignores a file with none:
    an empty or wrong file would silently revoke nothing, so it must hold at least one."""
    if b"-----BEGIN X509 CRL-----" not in _read(path):
        raise ValueError("no PEM CRL (-----BEGIN X509 CRL-----) in it")
    context.load_verify_locations(path)


class ServerTls:
    """The context new wss connections get. `reload` swaps it whole; a connection keeps the context it was
    accepted with, so reloading never touches a connected charge point."""

    def __init__(self, config: TlsConfig):
        self.credentials = make_server_credentials(config)

    @property
    def context(self) -> ssl.SSLContext:
        return self.credentials.context

    @property
    def not_after(self) -> float:
        return self.credentials.not_after

    def reload(self, config: TlsConfig) -> bool:
        """Re-read every file; on failure keep the running context, log an ERROR naming the file, False."""
        try:
            self.credentials = make_server_credentials(config)
        except TlsFileError as err:
            log.error("TLS files not reloaded, the wss listener keeps its running certificate: %s", err)
            return False
        log.info("reloaded the wss certificate %s (expires %s)", self.credentials.certfile,
                 time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(self.credentials.not_after)))
        return True


def names(certificate: dict, attribute: str) -> list[str]:
    """Every value of one subject attribute (``commonName``, ``organizationName``) of a getpeercert() dict."""
    return [value for rdn in certificate.get("subject", ()) for name, value in rdn if name == attribute]


def names_cid(common_name: str, cid: str) -> bool:
    """True when the CN contains the cid as a whole token: equal to it, or with no letter or digit right before
    or after it. A plain substring test would let the holder of ``CP0012`` connect as ``CP001`` or ``P``."""
    start = common_name.find(cid)
    while start >= 0:
        end = start + len(cid)
        before = common_name[start - 1] if start else ""
        after = common_name[end] if end < len(common_name) else ""
        if not before.isalnum() and not after.isalnum():
            return True
        start = common_name.find(cid, start + 1)
    return False


def certificate_refusal(certificate: dict, cid: str, organization: str | None) -> Refusal | None:
    """403 when a verified client certificate does not name `cid` in its CN, or lacks the required O."""
    common_names = names(certificate, "commonName")
    if not any(names_cid(common_name, cid) for common_name in common_names):
        return Refusal(403, f"client certificate CN {_shown(common_names)} does not name the charge point id")
    organizations = names(certificate, "organizationName")
    if organization and organization not in organizations:
        return Refusal(403, f"client certificate organization {_shown(organizations)} is not the required one")
    return None


def _shown(values: list[str]) -> str:
    return ", ".join(repr(value[:64]) for value in values) or "(none)"


def handshake_failure(error: ssl.SSLError) -> tuple[bool, str]:
    """(is it about the client certificate, a one-line reason) for a failed TLS handshake."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return True, f"client certificate refused: {error.verify_message or error.reason}"
    if error.reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return True, "client certificate refused: none presented"
    return False, f"TLS handshake failed: {error.reason or error}"
