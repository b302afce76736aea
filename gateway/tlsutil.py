"""TLS helpers: server contexts, and the self-signed certificate made on first
start when no certificate is configured (embedded defaults)."""
from __future__ import annotations

import datetime
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.queue.safeio import atomic_replace, ensure_dir


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def fingerprint(cert_path: Path) -> str:
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    return "SHA256:" + cert.fingerprint(hashes.SHA256()).hex(":")


def ensure_self_signed(state_dir: Path, hostname: str) -> tuple[Path, Path, str]:
    """``state_dir/tls/{cert,key}.pem``: made once (P-256, 10 years, SAN =
    hostname and localhost), reused afterwards. Returns paths and fingerprint."""
    directory = Path(state_dir) / "tls"
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path, fingerprint(cert_path)
    ensure_dir(directory)
    os.chmod(directory, 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "phigate self-signed")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName(hostname)] + ([x509.DNSName("localhost")] if hostname != "localhost" else [])
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256()))
    atomic_replace(key_path, key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    atomic_replace(cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path, fingerprint(cert_path)
