"""CertStore: import formats, best-valid selection, identities, anchors, file modes."""
from __future__ import annotations

import datetime as dt
import stat

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from gateway.crypto.certstore import CertStore, CertStoreError, fingerprint
from tests.crypto.pki import TestPKI, write_der, write_p7, write_p12, write_pem

ADDR = "os@surgery.test"


@pytest.fixture(scope="module")
def pki():
    return TestPKI()


@pytest.fixture
def store(tmp_path):
    return CertStore(tmp_path / "certs")


def imported(store, tmp_path, *issued, for_address=None, name="in.pem"):
    path = write_pem(tmp_path / name, *(i.cert for i in issued))
    return store.import_certificates(path, for_address=for_address)


@pytest.mark.parametrize("fmt", ["pem", "der", "p7b", "p7b-pem"])
def test_import_formats(pki, store, tmp_path, fmt):
    sub = pki.intermediate()
    leaf = pki.leaf(ADDR, issuer=sub)
    path = tmp_path / f"cert.{fmt}"
    if fmt == "pem":
        write_pem(path, leaf.cert, sub.cert)
    elif fmt == "der":
        write_der(path, leaf.cert)
    else:
        write_p7(path, [leaf.cert, sub.cert], pem=fmt == "p7b-pem")
    [record] = store.import_certificates(path)
    assert record.fingerprint == fingerprint(leaf.cert)
    assert record.source == f"import:cert.{fmt}" and record.addresses == (ADDR,)
    assert store.certificate_for(ADDR) == leaf.cert
    if fmt != "der":
        assert store.intermediates() == [sub.cert]


def test_garbage_is_a_clear_error(store, tmp_path):
    (tmp_path / "junk.pem").write_bytes(b"not a certificate")
    with pytest.raises(CertStoreError, match="junk.pem"):
        store.import_certificates(tmp_path / "junk.pem")


def test_expired_is_ignored(pki, store, tmp_path):
    imported(store, tmp_path, pki.leaf(ADDR, expired=True))
    assert store.certificate_for(ADDR) is None
    good = pki.leaf(ADDR)
    imported(store, tmp_path, good, name="good.pem")
    assert store.certificate_for(ADDR) == good.cert


def test_no_eku_accepted_wrong_eku_rejected(pki, store, tmp_path):
    imported(store, tmp_path, pki.leaf(ADDR, eku=[ExtendedKeyUsageOID.SERVER_AUTH]))
    assert store.certificate_for(ADDR) is None
    no_eku = pki.leaf(ADDR, eku=None)
    imported(store, tmp_path, no_eku, name="b.pem")
    assert store.certificate_for(ADDR) == no_eku.cert
    strict = CertStore(store.directory, require_email_protection=True)
    assert strict.certificate_for(ADDR) is None


def test_key_usage_per_purpose(pki, store, tmp_path):
    sign_only = pki.leaf(ADDR, key_usage="sign")
    imported(store, tmp_path, sign_only)
    assert store.certificate_for(ADDR, purpose="encrypt") is None
    assert store.certificate_for(ADDR, purpose="sign") == sign_only.cert


def test_san_mismatch_unless_imported_for_the_address(pki, store, tmp_path):
    other = pki.leaf("someone@else.test")
    imported(store, tmp_path, other)
    assert store.certificate_for(ADDR) is None
    [record] = imported(store, tmp_path, other, for_address="OS@Surgery.test")
    assert record.for_addresses == (ADDR,) and record.source == "import:in.pem"
    assert store.certificate_for(ADDR) == other.cert


def test_san_match_preferred_over_for_binding(pki, store, tmp_path):
    bound = pki.leaf("someone@else.test", key="rsa3072")
    named = pki.leaf(ADDR)
    imported(store, tmp_path, bound, for_address=ADDR)
    imported(store, tmp_path, named, name="n.pem")
    assert store.certificate_for(ADDR) == named.cert


def test_stronger_key_then_later_expiry_preferred(pki, store, tmp_path):
    later = pki.now + dt.timedelta(days=700)
    weak_long = pki.leaf(ADDR, not_after=later)
    strong = pki.leaf(ADDR, key="rsa3072")
    imported(store, tmp_path, weak_long, strong)
    assert store.certificate_for(ADDR) == strong.cert
    strong_long = pki.leaf(ADDR, key="rsa3072", not_after=later)
    imported(store, tmp_path, strong_long, name="c.pem")
    assert store.certificate_for(ADDR) == strong_long.cert


def test_weak_rsa_and_ec_cannot_be_encrypted_to(pki, store, tmp_path):
    imported(store, tmp_path, pki.leaf(ADDR, key="rsa1024"), pki.leaf(ADDR, key="ec256"))
    assert store.certificate_for(ADDR) is None
    assert store.certificate_for(ADDR, purpose="sign") is not None     # the EC one


def test_list_status_and_remove(pki, store, tmp_path):
    soon = pki.leaf(ADDR, not_after=pki.now + dt.timedelta(days=10))
    old = pki.leaf(ADDR, expired=True)
    imported(store, tmp_path, soon, old)
    status = {r.fingerprint: r.status() for r in store.list()}
    assert status == {fingerprint(soon.cert): "expiring", fingerprint(old.cert): "expired"}
    removed = store.remove(fingerprint(old.cert)[:12])
    assert removed.certificate == old.cert
    assert [r.certificate for r in store.list()] == [soon.cert]
    with pytest.raises(KeyError):
        store.remove(fingerprint(old.cert)[:12])


def test_identity_from_p12_per_domain_and_per_address(pki, store, tmp_path):
    sub = pki.intermediate()
    domain_wide = pki.leaf("office@smile.test", issuer=sub)
    personal = pki.leaf("dr.lee@smile.test")
    write_p12(tmp_path / "d.p12", domain_wide, b"secret", chain=[sub.cert])
    store.import_identity(tmp_path / "d.p12", b"secret", "@Smile.test")
    cert_path, key_path = personal.write(tmp_path, "lee")
    store.import_identity(cert_path, None, "dr.lee@smile.test", key_path=key_path)
    assert store.identity_for("dr.lee@smile.test").cert == personal.cert
    other = store.identity_for("hygiene@smile.test")
    assert other.cert == domain_wide.cert and other.chain == (sub.cert,)
    assert store.identity_for("x@elsewhere.test") is None
    assert {i.bound_to for i in store.identities()} == {"@smile.test", "dr.lee@smile.test"}
    for key_file in (store.directory / "identities").glob("*/key.pem"):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((store.directory / "identities").stat().st_mode) == 0o700


def test_identity_errors_do_not_show_the_key(pki, store, tmp_path):
    me = pki.leaf("dr.lee@smile.test")
    write_p12(tmp_path / "me.p12", me, b"right")
    with pytest.raises(CertStoreError) as wrong:
        store.import_identity(tmp_path / "me.p12", b"wrong", "dr.lee@smile.test")
    assert "PRIVATE" not in str(wrong.value)
    stranger = pki.leaf("x@smile.test")
    cert_path, _ = me.write(tmp_path, "me")
    _, other_key = stranger.write(tmp_path, "stranger")
    with pytest.raises(CertStoreError, match="matches none"):
        store.import_identity(cert_path, None, "dr.lee@smile.test", key_path=other_key)


def test_expired_identity_is_not_used_for_signing_but_listed(pki, store, tmp_path):
    old = pki.leaf("dr.lee@smile.test", expired=True)
    write_p12(tmp_path / "old.p12", old, None)
    store.import_identity(tmp_path / "old.p12", None, "dr.lee@smile.test")
    assert store.identity_for("dr.lee@smile.test") is None
    assert [i.cert for i in store.identities()] == [old.cert]


def test_anchors(pki, store, tmp_path):
    [record] = store.add_anchor(write_pem(tmp_path / "root.pem", pki.root.cert))
    assert record.kind == "anchor" and store.trust_anchors() == [pki.root.cert]


def test_a_second_store_on_the_same_directory_sees_changes(pki, store, tmp_path):
    reader = CertStore(store.directory)
    assert reader.certificate_for(ADDR) is None
    leaf = pki.leaf(ADDR)
    imported(store, tmp_path, leaf)
    assert reader.certificate_for(ADDR) == leaf.cert
    store.remove(fingerprint(leaf.cert))
    assert reader.certificate_for(ADDR) is None


def test_fingerprint_prefix_rules(pki, store, tmp_path):
    leaf = pki.leaf(ADDR)
    imported(store, tmp_path, leaf)
    fp = fingerprint(leaf.cert)
    assert store.get(":".join(fp[i:i + 2] for i in range(0, 12, 2)).upper()).certificate == leaf.cert
    with pytest.raises(CertStoreError, match="at least 4"):
        store.get(fp[:3])
    # The same certificate as a recipient and as an identity: the prefix is ambiguous.
    cert_path, key_path = leaf.write(tmp_path, "leaf")
    store.import_identity(cert_path, None, ADDR, key_path=key_path)
    with pytest.raises(CertStoreError, match="ambiguous"):
        store.remove(fp)
    assert store.remove(fp, kind="identity").kind == "identity"
    assert store.identities() == [] and store.certificate_for(ADDR) == leaf.cert
