"""Revocation of a validated certificate chain from CRLs (RFC 5280 §6.3, simplified).

For every certificate in the chain except the trust anchor, look for a CRL
issued by the next certificate up: same issuer name, signature valid under
its key, thisUpdate not in the future. A CRL listing the serial means
revoked, whether fresh or not (``removeFromCRL`` entries excepted). A
certificate is covered only by a CRL whose nextUpdate has not passed; with
no such CRL its status is unknown, which ``hard`` mode treats as a failure
and ``soft`` mode reports but accepts.

Not handled (such CRLs are ignored, i.e. count as missing): delta CRLs,
partitioned CRLs (IssuingDistributionPoint), indirect CRLs. No fetching:
CRLs come from the caller or from a cache directory that something else
fills (``load_crl_dir``).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Literal

from cryptography import x509

Mode = Literal["soft", "hard"]
_UNUSABLE = (x509.DeltaCRLIndicator, x509.IssuingDistributionPoint)


@dataclass(frozen=True)
class RevocationStatus:
    status: Literal["good", "revoked", "unknown"]
    detail: str = ""                 # which certificate is revoked / lacks a CRL


def check_chain(chain: Sequence[x509.Certificate], crls: Sequence[x509.CertificateRevocationList],
                now: dt.datetime) -> RevocationStatus:
    """``chain`` runs leaf first, trust anchor last (``VerifiedClient.chain``)."""
    unknown = []
    for cert, issuer in pairwise(chain):
        usable = [c for c in crls if _issued_by(c, issuer, now)]
        for crl in usable:
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None and _reason(entry) != x509.ReasonFlags.remove_from_crl:
                return RevocationStatus("revoked", _who(cert))
        if not any(c.next_update_utc is not None and c.next_update_utc >= now for c in usable):
            unknown.append(_who(cert))
    if unknown:
        return RevocationStatus("unknown", "no current CRL for " + ", ".join(unknown))
    return RevocationStatus("good")


def _issued_by(crl: x509.CertificateRevocationList, issuer: x509.Certificate,
               now: dt.datetime) -> bool:
    if crl.issuer != issuer.subject or crl.last_update_utc > now:
        return False
    if any(isinstance(ext.value, _UNUSABLE) for ext in crl.extensions):
        return False
    try:
        return crl.is_signature_valid(issuer.public_key())
    except (TypeError, ValueError):
        return False


def _reason(entry: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def _who(cert: x509.Certificate) -> str:
    return f"serial {cert.serial_number:x}"


def load_crl_dir(directory: Path | None) -> list[x509.CertificateRevocationList]:
    """Every CRL (DER or PEM) in ``directory``; unreadable files are skipped.
    Stale ones are kept: ``check_chain`` still honours what they revoke."""
    if directory is None or not Path(directory).is_dir():
        return []
    crls = []
    for path in sorted(Path(directory).iterdir()):
        if path.is_file():
            crls.extend(load_crls(path.read_bytes()))
    return crls


def load_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    """The CRLs in ``data`` (one DER CRL, or one or more PEM blocks); [] if none."""
    try:
        if b"-----BEGIN X509 CRL-----" not in data:
            return [x509.load_der_x509_crl(data)]
        end = b"-----END X509 CRL-----"
        blocks = [b + end for b in data.split(end) if b"-----BEGIN X509 CRL-----" in b]
        return [x509.load_pem_x509_crl(b[b.index(b"-----BEGIN"):]) for b in blocks]
    except ValueError:
        return []
