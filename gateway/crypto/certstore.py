"""The certificate store: partners' certificates, the practice's identities,
trust anchors, on disk under one directory (``smime.store_dir``).

Layout (directories 0700, every file 0600, written atomically)::

    recipients/<sha256>.pem + <sha256>.json   partner certificates + {source, for}
    intermediates/<sha256>.pem                CA certificates that came in bundles
    anchors/<sha256>.pem                      trust anchors (roots the admin trusts)
    identities/<addr or @domain>/cert.pem     leaf first, then its chain
    identities/<addr or @domain>/key.pem      unencrypted PKCS#8 (0600, never logged)
    identities/<addr or @domain>/meta.json    {source}

Public API (kept stable; only ever added to):

* ``import_certificates(path, for_address=None) -> list[CertRecord]``: PEM
  (one or many), DER, or PKCS#7 bundles (PEM or DER). End-entity certificates
  become recipient certificates; CA certificates in a bundle go to
  ``intermediates()`` (path building for inbound verification).
* ``certificate_for(address, purpose="encrypt"|"sign", now=None)``: the best
  valid recipient certificate, or None (see ``usable`` and ``rank`` below).
* ``list()``, ``get(fp_prefix)``, ``remove(fp_prefix)``: records of every kind.
* ``import_identity(path, password, for_address_or_domain, key_path=None)``:
  PKCS#12, or PEM certificate(s) with the key in the same file or ``key_path``.
* ``identity_for(address, now=None)``: the practice identity for a sender
  (exact address, then ``@domain``), only while its certificate is valid.
  ``identities()`` lists all of them, expired ones too (old mail still decrypts).
* ``add_anchor(path)``, ``trust_anchors()``, ``intermediates()``.

Lookups (``certificate_for``, ``identity_for``) are answered from an
in-memory index (address → recipient records, binding → identity), never by
walking the directory. The index is rebuilt when the store changes: every
write is an atomic rename into one of the store's directories, so a change
shows as a new mtime/ctime of that directory, and a lookup costs a handful of
``stat`` calls of directories whatever the number of certificates. A running
daemon therefore sees ``phigate certs`` edits on its next lookup. Directory
timestamps have a granularity, so two changes close together may leave the
same mtime: an index built while the newest timestamp is younger than
``RACY_WINDOW`` is not trusted and rebuilt on the next lookup (git's "racily
clean" rule).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.model.envelope import address_key, domain_of
from gateway.queue.safeio import atomic_replace, ensure_dir, fsync_dir

Purpose = Literal["encrypt", "sign"]
Kind = Literal["recipient", "intermediate", "anchor", "identity"]
EXPIRING_WITHIN = dt.timedelta(days=30)
MIN_RSA_BITS = 2048
RACY_WINDOW_NS = 2_000_000_000          # coarser than any local file system's timestamps
KIND_DIRS = (("recipient", "recipients"), ("intermediate", "intermediates"),
             ("anchor", "anchors"))
_ADDRESS = re.compile(r"^[^@\s/\\]+@[^@\s/\\]+\.[^@\s/\\]+$")
_DOMAIN = re.compile(r"^@[^@\s/\\]+\.[^@\s/\\]+$")
_EKU_NAMES = {ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
              ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
              ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
              ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
              ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage"}


class CertStoreError(ValueError):
    """A file that cannot be imported, a key that does not match, a bad address."""


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex (what ``certs list`` shows)."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def san_emails(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(a.lower() for a in san.get_values_for_type(x509.RFC822Name))


def cert_emails(cert: x509.Certificate) -> tuple[str, ...]:
    """The addresses a certificate binds (lower case): its SAN rfc822Names, or
    the subject emailAddress only when it has none (RFC 8550 §3). One rule
    for both directions: choosing an encryption certificate and binding a
    signer to the From address."""
    found = san_emails(cert)
    if found:
        return found
    return tuple(str(a.value).strip().lower()
                 for a in cert.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS))


def key_usage(cert: x509.Certificate) -> tuple[str, ...] | None:
    """Names of the KeyUsage bits set, or None when the extension is absent."""
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None
    names = ["digital_signature", "content_commitment", "key_encipherment",
             "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign"]
    bits = [n for n in names if getattr(ku, n)]
    if ku.key_agreement:
        bits += [n for n in ("encipher_only", "decipher_only") if getattr(ku, n)]
    return tuple(bits)


def extended_key_usage(cert: x509.Certificate) -> tuple[str, ...] | None:
    """Dotted OIDs / known names of the EKU, or None when the extension is absent."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None
    return tuple(_EKU_NAMES.get(o, o.dotted_string) for o in eku)


def is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def key_strength(cert: x509.Certificate) -> tuple[str, int]:
    """(description, approximate security bits per NIST SP 800-57)."""
    pub = cert.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        bits = pub.key_size
        security = 80 if bits < 2048 else 112 if bits < 3072 else 128 if bits < 7680 else 192
        return f"RSA {bits}", security
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return f"EC {pub.curve.name}", pub.curve.key_size // 2
    return type(pub).__name__.replace("PublicKey", ""), 0


@dataclass(frozen=True)
class CertRecord:
    """One certificate in the store, as ``certs list`` shows it."""
    kind: Kind
    certificate: x509.Certificate = field(repr=False)
    fingerprint: str
    source: str                          # "import:<filename>"
    for_addresses: tuple[str, ...] = ()  # bound with --for (recipients) / the identity's key

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(cert_emails(self.certificate) + self.for_addresses))

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    @property
    def issuer(self) -> str:
        return self.certificate.issuer.rfc4514_string()

    @property
    def not_before(self) -> dt.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    @property
    def key_usage(self) -> tuple[str, ...] | None:
        return key_usage(self.certificate)

    @property
    def extended_key_usage(self) -> tuple[str, ...] | None:
        return extended_key_usage(self.certificate)

    @property
    def key(self) -> str:
        return key_strength(self.certificate)[0]

    def status(self, now: dt.datetime | None = None) -> str:
        """valid | expiring (within 30 days) | expired | not_yet_valid"""
        now = now or dt.datetime.now(dt.UTC)
        if now > self.not_after:
            return "expired"
        if now < self.not_before:
            return "not_yet_valid"
        return "expiring" if self.not_after - now <= EXPIRING_WITHIN else "valid"

    def to_json(self, now: dt.datetime | None = None) -> dict:
        return {"kind": self.kind, "fingerprint": self.fingerprint,
                "addresses": list(self.addresses), "subject": self.subject,
                "issuer": self.issuer, "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(),
                "key_usage": None if self.key_usage is None else list(self.key_usage),
                "extended_key_usage": (None if self.extended_key_usage is None
                                       else list(self.extended_key_usage)),
                "key": self.key, "source": self.source, "status": self.status(now)}


@dataclass(frozen=True)
class Identity:
    """The practice's own certificate and private key for a sender address or
    ``@domain``; ``chain`` holds the issuing CA certificates (no root needed)."""
    bound_to: str                        # "dr.lee@smile.example" or "@smile.example"
    cert: x509.Certificate = field(repr=False)
    key: object = field(repr=False)      # private key: never printed, never logged
    chain: tuple[x509.Certificate, ...] = field(default=(), repr=False)
    source: str = ""

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)

    def record(self) -> CertRecord:
        return CertRecord("identity", self.cert, self.fingerprint, self.source, (self.bound_to,))


def usable(cert: x509.Certificate, purpose: Purpose, now: dt.datetime, *,
           require_email_protection: bool = False) -> bool:
    """Whether ``cert`` may be used for ``purpose`` now: inside its validity,
    KeyUsage (when present) has keyEncipherment (encrypt) or digitalSignature
    (sign), EKU absent or containing emailProtection (present and containing it
    when ``require_email_protection``), RSA keys at least 2048 bits. Encryption
    needs an RSA key (key transport; cryptography has no ECDH KARI)."""
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc or is_ca(cert):
        return False
    ku = key_usage(cert)
    wanted = "key_encipherment" if purpose == "encrypt" else "digital_signature"
    if ku is not None and wanted not in ku:
        return False
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        if ExtendedKeyUsageOID.EMAIL_PROTECTION not in eku:
            return False
    except x509.ExtensionNotFound:
        if require_email_protection:
            return False
    pub = cert.public_key()
    if isinstance(pub, rsa.RSAPublicKey):
        return pub.key_size >= MIN_RSA_BITS
    return purpose == "sign" and isinstance(pub, ec.EllipticCurvePublicKey)


def rank(record: CertRecord, address: str) -> tuple:
    """Sort key among usable certificates (highest first): SAN names the
    address, stronger key, later notAfter."""
    return (address in san_emails(record.certificate), key_strength(record.certificate)[1],
            record.not_after)


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Certificates from PEM (any number of CERTIFICATE or PKCS7 blocks), DER
    certificate, or DER PKCS#7 bundle."""
    if b"-----BEGIN" in data:
        certs: list[x509.Certificate] = []
        if b"-----BEGIN PKCS7-----" in data:
            certs += pkcs7.load_pem_pkcs7_certificates(data)
        if b"-----BEGIN CERTIFICATE-----" in data:
            certs += x509.load_pem_x509_certificates(data)
        return certs
    try:
        return [x509.load_der_x509_certificate(data)]
    except ValueError:
        return list(pkcs7.load_der_pkcs7_certificates(data))


def read_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM, DER or PKCS#7 file (CertStoreError if none)."""
    try:
        certs = load_certificates(path.read_bytes())
    except ValueError as exc:
        raise CertStoreError(f"{path.name}: no certificate found ({exc})") from None
    if not certs:
        raise CertStoreError(f"{path.name}: no certificate found")
    return certs


def _normal_binding(value: str) -> str:
    value = address_key(value)
    if not (_ADDRESS.match(value) or _DOMAIN.match(value)):
        raise CertStoreError(f"not an address or @domain: {value!r}")
    return value


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


class CertStore:
    def __init__(self, directory: Path, *, require_email_protection: bool = False):
        self.directory = Path(directory)
        self.require_email_protection = require_email_protection
        self._stamp: tuple | None = None
        self._records: list[CertRecord] = []
        self._identities: list[Identity] = []
        self._by_address: dict[str, list[CertRecord]] = {}
        self._by_binding: dict[str, Identity] = {}

    # ---- paths and the in-memory index ---------------------------------------

    def _dir(self, name: str) -> Path:
        path = self.directory / name
        ensure_dir(path)
        return path

    def _watched(self) -> list[Path]:
        """The directories whose entries change with any write to the store."""
        return [self.directory, *(self.directory / sub for _, sub in KIND_DIRS),
                self.directory / "identities",
                *(self.directory / "identities" / i.bound_to for i in self._identities)]

    def _current_stamp(self) -> tuple:
        stamp = []
        for path in self._watched():
            try:
                st = os.stat(path)
            except FileNotFoundError:
                stamp.append(None)
                continue
            stamp.append((st.st_ino, st.st_mtime_ns, st.st_ctime_ns))
        return tuple(stamp)

    def _load(self) -> None:
        """Rebuild the index if a watched directory changed since it was built."""
        stamp = self._current_stamp()          # before reading: a change while reading shows
        if stamp == self._stamp:
            return
        records: list[CertRecord] = []
        for kind, sub in KIND_DIRS:
            folder = self.directory / sub
            for pem in sorted(folder.glob("*.pem")) if folder.is_dir() else ():
                meta_path = pem.with_suffix(".json")
                meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
                cert = x509.load_pem_x509_certificate(pem.read_bytes())
                records.append(CertRecord(kind, cert, fingerprint(cert), meta.get("source", ""),
                                          tuple(meta.get("for", ()))))
        identities = [self._read_identity(d) for d in sorted((self.directory / "identities")
                                                              .glob("*"))
                      if (d / "key.pem").exists()]
        by_address: dict[str, list[CertRecord]] = {}
        for record in records:
            if record.kind == "recipient":
                for address in record.addresses:
                    by_address.setdefault(address, []).append(record)
        changed_identities = [i.bound_to for i in identities] != [
            i.bound_to for i in self._identities]
        self._records, self._identities = records, identities
        self._by_address = by_address
        self._by_binding = {i.bound_to: i for i in identities}
        if changed_identities:          # watch the new set of identity folders (a change to
            stamp = self._current_stamp()   # one since reading it is racy, hence rebuilt)
        newest = max((s[1] for s in stamp if s is not None), default=0)
        racy = time.time_ns() - newest < RACY_WINDOW_NS
        self._stamp = None if racy else stamp

    @staticmethod
    def _read_identity(folder: Path) -> Identity:
        certs = x509.load_pem_x509_certificates((folder / "cert.pem").read_bytes())
        key = serialization.load_pem_private_key((folder / "key.pem").read_bytes(), None)
        meta = json.loads((folder / "meta.json").read_text())
        return Identity(meta["for"], certs[0], key, tuple(certs[1:]), meta.get("source", ""))

    def _write_cert(self, sub: str, cert: x509.Certificate, meta: dict | None = None) -> None:
        folder = self._dir(sub)
        fp = fingerprint(cert)
        self._stamp = None
        atomic_replace(folder / f"{fp}.pem", _pem(cert))
        if meta is not None:
            atomic_replace(folder / f"{fp}.json", json.dumps(meta, sort_keys=True).encode())

    # ---- recipient certificates -------------------------------------------

    def import_certificates(self, path: Path, for_address: str | None = None
                            ) -> list[CertRecord]:
        """Import every certificate in ``path``; return the recipient records
        (end-entity certificates). Re-importing a certificate keeps its earlier
        ``--for`` bindings and adds the new one."""
        path = Path(path)
        certs = read_certificates(path)
        bound = _normal_binding(for_address) if for_address else None
        if bound and bound.startswith("@"):
            raise CertStoreError("--for takes one address for a recipient certificate")
        existing = {r.fingerprint: r for r in self.list() if r.kind == "recipient"}
        imported = []
        for cert in certs:
            if is_ca(cert):
                self._write_cert("intermediates", cert, {"source": f"import:{path.name}"})
                continue
            fp = fingerprint(cert)
            old = existing.get(fp)
            bindings = tuple(dict.fromkeys((old.for_addresses if old else ()) +
                                           ((bound,) if bound else ())))
            source = old.source if old else f"import:{path.name}"
            self._write_cert("recipients", cert, {"source": source, "for": list(bindings)})
            imported.append(CertRecord("recipient", cert, fp, source, bindings))
        return imported

    def certificate_for(self, address: str, *, purpose: Purpose = "encrypt",
                        now: dt.datetime | None = None) -> x509.Certificate | None:
        """The best usable recipient certificate for ``address`` (SAN
        rfc822Name or ``--for`` binding, case-insensitive), or None."""
        address = address_key(address)
        now = now or dt.datetime.now(dt.UTC)
        self._load()
        candidates = [r for r in self._by_address.get(address, ())
                      if usable(r.certificate, purpose, now,
                                require_email_protection=self.require_email_protection)]
        if not candidates:
            return None
        return max(candidates, key=lambda r: rank(r, address)).certificate

    def list(self) -> list[CertRecord]:
        """Every certificate: recipients, intermediates, anchors and identities."""
        self._load()
        return self._records + [i.record() for i in self._identities]

    def get(self, fingerprint_prefix: str, kind: Kind | None = None) -> CertRecord:
        """The one record (of ``kind``, if given) whose fingerprint starts with
        the prefix (colons and case ignored). KeyError if none, CertStoreError
        if ambiguous."""
        prefix = fingerprint_prefix.replace(":", "").lower()
        if len(prefix) < 4:
            raise CertStoreError("give at least 4 hex digits of the fingerprint")
        found = [r for r in self.list() if r.fingerprint.startswith(prefix)
                 and kind in (None, r.kind)]
        if not found:
            raise KeyError(fingerprint_prefix)
        if len(found) > 1:
            kinds = ", ".join(f"{r.kind} {r.fingerprint[:16]}" for r in found)
            raise CertStoreError(f"fingerprint prefix {fingerprint_prefix} is ambiguous: {kinds}"
                                 " (give more digits or the kind)")
        return found[0]

    def remove(self, fingerprint_prefix: str, kind: Kind | None = None) -> CertRecord:
        """Remove one certificate (and, for an identity, its key)."""
        record = self.get(fingerprint_prefix, kind)
        self._stamp = None
        if record.kind == "identity":
            folder = self.directory / "identities" / record.for_addresses[0]
            for name in ("key.pem", "cert.pem", "meta.json"):
                (folder / name).unlink(missing_ok=True)
            folder.rmdir()
            fsync_dir(folder.parent)
        else:
            folder = self.directory / f"{record.kind}s"
            for suffix in (".pem", ".json"):
                (folder / f"{record.fingerprint}{suffix}").unlink(missing_ok=True)
            fsync_dir(folder)
        return record

    # ---- the practice's identities -----------------------------------------

    def import_identity(self, path: Path, password: bytes | None,
                        for_address_or_domain: str | None, key_path: Path | None = None
                        ) -> Identity:
        """Import a signing/decryption identity from PKCS#12 (``password`` opens
        it), or from PEM certificate(s) with the private key in the same file or
        in ``key_path`` (``password`` opens an encrypted key). Bound to
        ``for_address_or_domain``, or (None) to the certificate's first SAN
        address. Replaces an earlier identity for the same binding."""
        path = Path(path)
        data = path.read_bytes()
        try:
            if b"-----BEGIN" in data:
                certs = load_certificates(data)
                key_data = Path(key_path).read_bytes() if key_path else data
                key = serialization.load_pem_private_key(key_data, password)
            else:
                key, leaf, extra = pkcs12.load_key_and_certificates(data, password)
                certs = [leaf, *extra] if leaf else list(extra)
        except (ValueError, TypeError) as exc:
            # Messages name the problem (bad password, wrong format), never the key.
            raise CertStoreError(f"{path.name}: cannot read the identity: {exc}") from None
        if key is None or not certs:
            raise CertStoreError(f"{path.name}: needs a private key and its certificate")
        pub = key.public_key()
        leaves = [c for c in certs if c.public_key() == pub]
        if not leaves:
            raise CertStoreError(f"{path.name}: the private key matches none of the certificates")
        leaf = leaves[0]
        chain = [c for c in certs if c is not leaf and is_ca(c)]
        if for_address_or_domain is None and not san_emails(leaf):
            raise CertStoreError(f"{path.name}: the certificate names no address: give --for")
        bound = _normal_binding(for_address_or_domain or san_emails(leaf)[0])
        folder = self._dir("identities") / bound
        ensure_dir(folder)
        self._stamp = None
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        atomic_replace(folder / "key.pem", key_pem)
        atomic_replace(folder / "cert.pem", _pem(leaf, *chain))
        source = f"import:{path.name}"
        atomic_replace(folder / "meta.json", json.dumps({"for": bound, "source": source}).encode())
        return Identity(bound, leaf, key, tuple(chain), source)

    def identities(self) -> list[Identity]:
        self._load()
        return list(self._identities)

    def identity_for(self, address: str, *, now: dt.datetime | None = None) -> Identity | None:
        """The identity for ``address``, else for its ``@domain``; None when
        there is none or its certificate is not valid now."""
        address = address_key(address)
        now = now or dt.datetime.now(dt.UTC)
        self._load()
        for key in (address, "@" + domain_of(address)):
            ident = self._by_binding.get(key)
            if ident is not None:
                valid = ident.cert.not_valid_before_utc <= now <= ident.cert.not_valid_after_utc
                return ident if valid else None
        return None

    # ---- trust anchors -----------------------------------------------------

    def add_anchor(self, path: Path) -> list[CertRecord]:
        path = Path(path)
        certs = read_certificates(path)
        source = f"import:{path.name}"
        for cert in certs:
            self._write_cert("anchors", cert, {"source": source})
        return [CertRecord("anchor", c, fingerprint(c), source) for c in certs]

    def trust_anchors(self) -> list[x509.Certificate]:
        return [r.certificate for r in self.list() if r.kind == "anchor"]

    def intermediates(self) -> list[x509.Certificate]:
        return [r.certificate for r in self.list() if r.kind == "intermediate"]
