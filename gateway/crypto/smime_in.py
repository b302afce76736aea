"""Decrypt CMS EnvelopedData and AuthEnvelopedData (RFC 5652, 5083, 5084).

cryptography 50 decrypts only PKCS#1 v1.5 / issuerAndSerialNumber /
AES-128|256-CBC, so parsing is done with asn1crypto and only the primitives
come from cryptography. One code path for everything:

* key transport (ktri): RSA PKCS#1 v1.5 and RSAES-OAEP (any SHA-1/SHA-2 hash
  and MGF1 hash, with or without a label); recipients named by
  issuerAndSerialNumber or subjectKeyIdentifier;
* key agreement (kari, RFC 5753 §3.1 / RFC 8418 for what ECC clients
  send): ephemeral-static ECDH on the practice's EC key with
  dhSinglePass-stdDH or -cofactorDH and the X9.63 KDF (SHA-1/SHA-2), the
  content key unwrapped with AES key wrap (RFC 3394). Other key-agreement
  schemes (X25519/X448 with HKDF, MQV) are refused as "unsupported key
  agreement algorithm …", never as a missing key;
* content: AES-128/192/256-CBC (EnvelopedData), AES-128/192/256-GCM
  (AuthEnvelopedData, authenticated attributes as AAD).

The practice may hold several identities; the first RecipientInfo naming one
of them is used. A PKCS#1 v1.5 padding failure carries on with a random key
(RFC 3218 §2.3), so a sender learns nothing beyond "decryption failed".
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from asn1crypto import cms, core
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, keywrap
from cryptography.hazmat.primitives import padding as sympad
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.x963kdf import X963KDF

HASHES = {"sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
          "sha384": hashes.SHA384, "sha512": hashes.SHA512}
_CBC = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}
_GCM = {"aes128_gcm": 16, "aes192_gcm": 24, "aes256_gcm": 32}
ENVELOPED_TYPES = ("enveloped_data", "authenticated_enveloped_data")
# RFC 5753 §7.1.4 / SEC 1: dhSinglePass-{std,cofactor}DH-<hash>kdf-scheme → KDF hash.
# On the prime curves S/MIME uses the cofactor is 1, so both give the same secret.
_ECDH_SCHEMES = {"1.3.133.16.840.63.0.2": "sha1", "1.3.133.16.840.63.0.3": "sha1",
                 **{f"1.3.132.1.{scheme}.{i}": md for scheme in (11, 14)
                    for i, md in enumerate(("sha224", "sha256", "sha384", "sha512"))}}
_WRAPS = {"aes128_wrap": 16, "aes192_wrap": 24, "aes256_wrap": 32}


class DecryptionIdentity(Protocol):
    """What decryption needs from a practice identity (``certstore.Identity`` fits)."""
    cert: x509.Certificate
    key: Any


class DecryptError(ValueError):
    """Why a message could not be decrypted; ``reason`` is short and content-free."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class GCMParameters(core.Sequence):
    """RFC 5084 GCMParameters (asn1crypto 1.5 has no definition)."""
    _fields: ClassVar = [("nonce", core.OctetString), ("icv_len", core.Integer, {"default": 12})]


class EccCmsSharedInfo(core.Sequence):
    """RFC 5753 §7.2 ECC-CMS-SharedInfo, the X9.63 KDF's SharedInfo."""
    _fields: ClassVar = [("key_info", cms.KeyEncryptionAlgorithm),
                         ("entity_u_info", core.OctetString, {"explicit": 0, "optional": True}),
                         ("supp_pub_info", core.OctetString, {"explicit": 2})]


@dataclass(frozen=True)
class Decrypted:
    content: bytes
    cipher: str                      # e.g. "aes256_gcm"
    key_transport: str               # "rsa_pkcs1v15" | "rsaes_oaep_sha256" …
    recipient: x509.Certificate      # the identity certificate whose key opened it


def decrypt(der: bytes, identities: Sequence[DecryptionIdentity]) -> Decrypted:
    """Open ``der`` (a ContentInfo) with the first identity a RecipientInfo names."""
    try:
        return _decrypt(der, identities)
    except DecryptError:
        raise
    except (ValueError, TypeError, KeyError) as exc:     # asn1crypto parse errors
        raise DecryptError("malformed CMS") from exc


def _decrypt(der: bytes, identities: Sequence[DecryptionIdentity]) -> Decrypted:
    info = cms.ContentInfo.load(der, strict=True)
    ctype = info["content_type"].native
    if ctype not in ENVELOPED_TYPES:
        raise DecryptError(f"not enveloped data ({ctype})")
    env = info["content"]
    eci = env["encrypted_content_info" if ctype == "enveloped_data"
              else "auth_encrypted_content_info"]
    cipher = eci["content_encryption_algorithm"]["algorithm"].native
    ciphers = _CBC if ctype == "enveloped_data" else _GCM
    if cipher not in ciphers:
        raise DecryptError(f"unsupported content cipher {cipher}")
    for ident, transport, cek in _content_keys(env["recipient_infos"], identities,
                                               ciphers[cipher]):
        content = _decrypt_cbc(eci, cek) if ctype == "enveloped_data" else _decrypt_gcm(env, cek)
        return Decrypted(content, cipher, transport, ident.cert)
    raise DecryptError("no matching recipient key")


def _content_keys(infos: cms.RecipientInfos, identities: Sequence[DecryptionIdentity],
                  size: int):
    """(identity, key transport name, content key) for the first RecipientInfo
    naming one of ``identities`` (a generator: at most one is used)."""
    for ri in infos:
        if ri.name == "ktri":
            ident = next((i for i in identities if _names(ri.chosen["rid"], i.cert)), None)
            if ident is None:
                continue
            if not isinstance(ident.key, rsa.RSAPrivateKey):
                raise DecryptError("recipient key is not RSA")
            transport, pad = _key_transport(ri.chosen["key_encryption_algorithm"])
            yield ident, transport, _unwrap(ident.key, ri.chosen["encrypted_key"].native,
                                            pad, size)
            return
        if ri.name == "kari":
            for rek in ri.chosen["recipient_encrypted_keys"]:
                ident = next((i for i in identities if _names(rek["rid"], i.cert)), None)
                if ident is not None:
                    yield ident, *_agree(ri.chosen, ident.key, rek["encrypted_key"].native,
                                         size)
                    return


def _names(rid, cert: x509.Certificate) -> bool:
    """Whether a RecipientIdentifier (ktri) or KeyAgreeRecipientIdentifier
    (kari) names ``cert``."""
    if rid.name == "issuer_and_serial_number":
        return (rid.chosen["serial_number"].native == cert.serial_number
                and rid.chosen["issuer"].dump() == cert.issuer.public_bytes())
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ski = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    wanted = rid.chosen["subject_key_identifier"] if rid.name == "r_key_id" else rid.chosen
    return wanted.native == ski


def _agree(kari: cms.KeyAgreeRecipientInfo, key, encrypted: bytes, size: int
           ) -> tuple[str, bytes]:
    """RFC 5753 §3.1.2: ECDH with the sender's ephemeral key, X9.63 KDF over
    ECC-CMS-SharedInfo, AES key unwrap."""
    alg = kari["key_encryption_algorithm"]
    scheme = alg["algorithm"].dotted
    md = _ECDH_SCHEMES.get(scheme)
    if md is None:
        raise DecryptError(f"unsupported key agreement algorithm {alg['algorithm'].native}")
    wrap = cms.KeyEncryptionAlgorithm.load(alg["parameters"].dump())["algorithm"].native
    if wrap not in _WRAPS:
        raise DecryptError(f"unsupported key agreement algorithm {scheme} with {wrap}")
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise DecryptError("recipient key is not EC")
    originator = kari["originator"]
    if originator.name != "originator_key":
        raise DecryptError("unsupported key agreement algorithm (static originator key)")
    try:
        peer = ec.EllipticCurvePublicKey.from_encoded_point(
            key.curve, originator.chosen["public_key"].native)
        shared = key.exchange(ec.ECDH(), peer)
    except ValueError as exc:
        raise DecryptError("decryption failed") from exc
    ukm = kari["ukm"].native
    info = EccCmsSharedInfo({"key_info": {"algorithm": wrap},
                             "entity_u_info": ukm,
                             "supp_pub_info": (_WRAPS[wrap] * 8).to_bytes(4, "big")})
    kek = X963KDF(HASHES[md](), _WRAPS[wrap], info.dump()).derive(shared)
    try:
        cek = keywrap.aes_key_unwrap(kek, encrypted)
    except keywrap.InvalidUnwrap as exc:
        raise DecryptError("decryption failed") from exc
    if len(cek) != size:
        raise DecryptError("decryption failed")
    return f"ecdh_{md}kdf_{wrap}", cek


def _key_transport(alg: cms.KeyEncryptionAlgorithm) -> tuple[str, padding.AsymmetricPadding]:
    name = alg["algorithm"].native
    if name == "rsaes_pkcs1v15":
        return "rsa_pkcs1v15", padding.PKCS1v15()
    if name != "rsaes_oaep":
        raise DecryptError(f"unsupported key transport {name}")
    params = alg["parameters"]
    md = params["hash_algorithm"]["algorithm"].native
    mgf_md = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
    if md not in HASHES or mgf_md not in HASHES:
        raise DecryptError("unsupported OAEP hash")
    label = params["p_source_algorithm"]["parameters"].native or None
    return f"rsaes_oaep_{md}", padding.OAEP(mgf=padding.MGF1(HASHES[mgf_md]()),
                                            algorithm=HASHES[md](), label=label)


def _unwrap(key: rsa.RSAPrivateKey, encrypted: bytes, pad: padding.AsymmetricPadding,
            size: int) -> bytes:
    """The content-encryption key. A bad PKCS#1 v1.5 block or a key of the
    wrong size gives a random key (RFC 3218 §2.3): the failure then shows at
    the content, the same as for any other wrong key."""
    try:
        cek = key.decrypt(encrypted, pad)
    except ValueError as exc:
        if not isinstance(pad, padding.PKCS1v15):
            raise DecryptError("decryption failed") from exc
        cek = b""
    return cek if len(cek) == size else os.urandom(size)


def _decrypt_cbc(eci: cms.EncryptedContentInfo, cek: bytes) -> bytes:
    iv = eci["content_encryption_algorithm"]["parameters"].native
    ct = eci["encrypted_content"].native
    if not isinstance(iv, bytes) or len(iv) != 16 or not ct or len(ct) % 16:
        raise DecryptError("decryption failed")
    dec = Cipher(algorithms.AES(cek), modes.CBC(iv)).decryptor()
    unpadder = sympad.PKCS7(128).unpadder()
    try:
        return unpadder.update(dec.update(ct) + dec.finalize()) + unpadder.finalize()
    except ValueError as exc:
        raise DecryptError("decryption failed") from exc


def _decrypt_gcm(env: cms.AuthEnvelopedData, cek: bytes) -> bytes:
    eci = env["auth_encrypted_content_info"]
    params = GCMParameters.load(eci["content_encryption_algorithm"]["parameters"].dump())
    tag = env["mac"].native
    if len(tag) != params["icv_len"].native or not 12 <= len(tag) <= 16:
        raise DecryptError("decryption failed")
    aad = b"\x31" + env["auth_attrs"].dump()[1:] if env["auth_attrs"].native else None
    try:
        return AESGCM(cek).decrypt(params["nonce"].native,
                                   eci["encrypted_content"].native + tag, aad)
    except (InvalidTag, ValueError) as exc:
        raise DecryptError("decryption failed") from exc
