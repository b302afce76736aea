"""``DirectTrust.validate``: the receiving side's check of a signer (and the
rules discovery applies to candidates), with CRLs and AIA served over HTTP on
loopback (IP-literal URLs: no DNS needed)."""
from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification as v

from gateway.config.models import DirectResolverConfig
from gateway.crypto.discovery import Discoverer, load_anchors
from gateway.crypto.discovery.cache import Bounded
from gateway.crypto.discovery.fetch import Fetcher, FetchError
from gateway.crypto.discovery.resolver import DirectResolver
from tests.crypto.pki import write_pem
from tests.direct.dpki import NOW, ca, crl, der, leaf


@pytest.fixture
def pki(httpd):
    root = ca("Trust Root")
    sub = ca("Trust Sub", root, crl_url=httpd.url("/root.crl"))
    httpd.put("/root.crl", crl(root).public_bytes(Encoding.DER))
    nc_root = ca("NC Root", bc_critical=False)
    nc_sub = ca("NC Sub", nc_root, bc_critical=False)
    httpd.put("/sub.der", der(sub))

    def make(issuer=sub, **kw):
        return leaf(issuer, crl_url=httpd.url("/sub.crl"), aia_url=httpd.url("/sub.der"), **kw)

    return {"root": root, "sub": sub, "nc_root": nc_root, "nc_sub": nc_sub, "make": make}


def trust(anchors, cache_dir=None):
    return Discoverer(DirectResolverConfig(timeout=3), anchors, cache_dir).trust


async def test_signer_rules(pki, httpd):
    make, anchors = pki["make"], [pki["root"].cert]
    signer = make(email="dr.lee@direct.example", key_usage="sign")
    revoked = make(email="dr.lee@direct.example")
    httpd.put("/sub.crl", crl(pki["sub"], [revoked]).public_bytes(Encoding.DER))
    t = trust(anchors)
    ok = await t.validate(signer.cert, "Dr.Lee@Direct.Example", purpose="sign")
    assert (ok.valid, ok.binding, ok.revocation, len(ok.chain)) == (True, "address", "good", 3)
    assert (await t.validate(signer.cert, "dr.lee@direct.example")).reason == \
        "key usage does not allow encryption"
    assert (await t.validate(signer.cert, "other@direct.example", purpose="sign")).reason == \
        "bound to neither the address nor its domain (SAN)"
    assert (await t.validate(revoked.cert, "dr.lee@direct.example", purpose="sign")).reason == \
        "revoked"
    expired = make(email="dr.lee@direct.example", expired=True)
    assert (await t.validate(expired.cert, "dr.lee@direct.example", purpose="sign")).reason == \
        "expired"
    org = make(dns="direct.example")
    verdict = await t.validate(org.cert, "anyone@direct.example", purpose="sign")
    assert (verdict.valid, verdict.binding) == (True, "domain")
    assert not (await trust([]).validate(signer.cert, "dr.lee@direct.example",
                                         purpose="sign")).valid


async def test_intermediates_from_the_message_need_no_aia(pki, httpd):
    lone = leaf(pki["sub"], email="a@direct.example")            # no AIA, no CDP
    t = trust([pki["root"].cert])
    assert (await t.validate(lone.cert, "a@direct.example")).reason == \
        "no path to a Direct trust anchor"
    verdict = await t.validate(lone.cert, "a@direct.example", intermediates=[pki["sub"].cert])
    assert verdict.valid and verdict.reason == "revocation unknown (no current CRL)"
    pinned = await trust([lone.cert]).validate(lone.cert, "a@direct.example")
    assert pinned.valid and len(pinned.chain) == 1               # the anchor itself


async def test_non_critical_basic_constraints(pki):
    nc = leaf(pki["nc_sub"], email="b@direct.example")
    verdict = await trust([pki["nc_root"].cert]).validate(nc.cert, "b@direct.example",
                                                          intermediates=[pki["nc_sub"].cert])
    assert verdict.valid and len(verdict.chain) == 3
    # What the WebPKI CA profile of cryptography.x509.verification says of the same chain:
    webpki = (v.PolicyBuilder().store(v.Store([pki["nc_root"].cert])).time(NOW)
              .extension_policies(ca_policy=v.ExtensionPolicy.webpki_defaults_ca(),
                                  ee_policy=v.ExtensionPolicy.permit_all())
              .build_client_verifier())
    with pytest.raises(v.VerificationError):
        webpki.verify(nc.cert, [pki["nc_sub"].cert])
    # Non-critical is accepted; a CA certificate without cA is still refused.
    fake_ca = leaf(pki["nc_sub"], email="c@direct.example", key_usage=None)
    victim = leaf(fake_ca, email="d@direct.example")
    assert not (await trust([pki["nc_root"].cert]).validate(
        victim.cert, "d@direct.example",
        intermediates=[pki["nc_sub"].cert, fake_ca.cert])).valid


async def test_crl_fetched_once_and_cached_until_next_update(pki, httpd, tmp_path):
    cert = pki["make"](email="e@direct.example")
    httpd.put("/sub.crl", crl(pki["sub"]).public_bytes(Encoding.DER))
    first = await trust([pki["root"].cert], tmp_path).validate(cert.cert, "e@direct.example")
    assert first.valid and first.revocation == "good"
    again = await trust([pki["root"].cert], tmp_path).validate(cert.cert, "e@direct.example")
    assert again.valid and again.revocation == "good"
    assert httpd.hits["/sub.crl"] == 1
    assert list((tmp_path / "crl").glob("*.crl"))


def test_load_anchors_names_the_key(tmp_path, pki):
    good = write_pem(tmp_path / "a.pem", pki["root"].cert, pki["nc_root"].cert)
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    assert len(load_anchors([good])) == 2
    with pytest.raises(ValueError, match=r"direct.anchors\[1\]: .*holds no certificate"):
        load_anchors([good, empty])


def test_memory_caches_are_bounded():
    seen = Bounded(limit=3)
    for i in range(5):
        seen[i] = i
    seen[2] = "again"                     # refreshed: now the newest
    seen[5] = 5
    assert list(seen) == [4, 2, 5]


async def test_large_crl_read_whole_and_oversize_refused(pki, httpd):
    """A CRL far larger than one network read (thousands of entries) is read to
    the end; a body over the limit is refused, not truncated."""
    revoked = pki["make"](email="f@direct.example")
    builder = (x509.CertificateRevocationListBuilder().issuer_name(pki["sub"].cert.subject)
               .last_update(NOW).next_update(NOW + dt.timedelta(days=30)))
    for serial in [*range(1, 8000), revoked.cert.serial_number]:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(NOW).build())
    body = builder.sign(pki["sub"].key, hashes.SHA256()).public_bytes(Encoding.DER)
    assert len(body) > 100_000
    httpd.put("/sub.crl", body)
    verdict = await trust([pki["root"].cert]).validate(revoked.cert, "f@direct.example")
    assert verdict.reason == "revoked"
    fetcher = Fetcher(DirectResolver([], 3), 3)
    assert await fetcher.get(httpd.url("/sub.crl"), limit=len(body)) == body
    with pytest.raises(FetchError, match="too large"):
        await fetcher.get(httpd.url("/sub.crl"), limit=len(body) - 1)
