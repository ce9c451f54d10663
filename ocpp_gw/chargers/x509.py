"""The validity period of an X.509 certificate in PEM, read with the standard library alone.

Python's ssl module decodes a certificate only for a peer (``getpeercert``) or for the CA certificates of a
context (``get_ca_certs``, which skips leaf certificates), so the server's own certificate is read here: the
DER walk down to ``tbsCertificate.validity`` is a few lines (RFC 5280 §4.1), needs no new dependency and no
private API, and refuses anything it does not understand with a ValueError.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import re

_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)
_SEQUENCE, _EXPLICIT_0, _UTC_TIME, _GENERALIZED_TIME = 0x30, 0xA0, 0x17, 0x18


def first_certificate_der(pem: bytes) -> bytes:
    """The DER bytes of the first certificate of a PEM file (a chain starts with its leaf)."""
    match = _PEM_CERTIFICATE.search(pem)
    if match is None:
        raise ValueError("no PEM certificate in it")
    try:
        return base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except binascii.Error as err:
        raise ValueError(f"the certificate's base64 is damaged: {err}") from None


def _element(data: bytes, offset: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at `offset`, which must end by `end`."""
    if offset + 2 > end:
        raise ValueError("truncated DER")
    tag, length = data[offset], data[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or offset + count > end:
            raise ValueError("bad DER length")
        length = int.from_bytes(data[offset:offset + count], "big")
        offset += count
    if offset + length > end:
        raise ValueError("truncated DER")
    return tag, offset, offset + length


def _expect(data: bytes, offset: int, end: int, tag: int) -> tuple[int, int]:
    found, start, stop = _element(data, offset, end)
    if found != tag:
        raise ValueError(f"expected DER tag {tag:#x}, found {found:#x}")
    return start, stop


def _time(data: bytes, offset: int, end: int) -> tuple[float, int]:
    """(Unix time, offset after it) of a UTCTime or GeneralizedTime in Zulu time."""
    tag, start, stop = _element(data, offset, end)
    text = data[start:stop].decode("ascii", "replace")
    if tag == _UTC_TIME and re.fullmatch(r"\d{12}Z", text):
        year = int(text[:2])
        text = ("19" if year >= 50 else "20") + text  # RFC 5280 §4.1.2.5.1
    elif not (tag == _GENERALIZED_TIME and re.fullmatch(r"\d{14}Z", text)):
        raise ValueError(f"unsupported certificate time {text!r}")
    fields = [int(text[0:4]), int(text[4:6]), int(text[6:8]), int(text[8:10]), int(text[10:12]),
              int(text[12:14])]
    return float(calendar.timegm((*fields, 0, 0, 0))), stop


def validity(der: bytes) -> tuple[float, float]:
    """(notBefore, notAfter) as Unix times, from a DER certificate."""
    start, end = _expect(der, 0, len(der), _SEQUENCE)              # Certificate
    offset, end = _expect(der, start, end, _SEQUENCE)              # tbsCertificate
    if _element(der, offset, end)[0] == _EXPLICIT_0:                # [0] version, when not v1
        offset = _element(der, offset, end)[2]
    for _ in ("serialNumber", "signature", "issuer"):
        offset = _element(der, offset, end)[2]
    offset, validity_end = _expect(der, offset, end, _SEQUENCE)    # validity
    not_before, offset = _time(der, offset, validity_end)
    not_after, _ = _time(der, offset, validity_end)
    return not_before, not_after


def not_after(pem: bytes) -> float:
    """When the first certificate of a PEM file expires, as a Unix time."""
    return validity(first_certificate_der(pem))[1]
