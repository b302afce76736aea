"""Direct certificate discovery against real servers on loopback: NSD (CERT,
SRV, A), three slapd servers, an HTTP server for CRLs, AIA and certificate
URLs. Every case asserts the exact set of certificates chosen."""
from __future__ import annotations

import dns.flags
import dns.message
import dns.query
import pytest

from gateway.crypto.discovery import Discoverer
from tests.direct.world import ZONE, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with build_world(tmp_path_factory.mktemp("direct-world")) as built:
        yield built


def chosen(result) -> set[str]:
    return {c.sha256 for c in result.candidates if c.verdict == "valid"}


async def discover(world, address, **kw):
    result = await Discoverer(world.resolver(), world.anchors, None).discover(address, **kw)
    from gateway.crypto.discovery import sha256
    assert {sha256(c) for c in result.chosen} == chosen(result)
    return result


CASES = [f"d1@dns-addr.{ZONE}", f"d2@dns-dom.{ZONE}", f"d3@mixed.{ZONE}", f"d5@stop.{ZONE}",
         f"d6@ldap-addr.{ZONE}", f"d7@ldap-dom.{ZONE}", f"d8@ldap-stop.{ZONE}",
         f"d9@srv.{ZONE}", f"d10@nothing.{ZONE}", f"d11@aia-broken.{ZONE}",
         f"d12@nc.{ZONE}", f"d13@big.{ZONE}", f"d14@url.{ZONE}", f"d15@pgp.{ZONE}",
         f"d16@url-broken.{ZONE}", f"d17@srv2.{ZONE}"]


@pytest.mark.parametrize("address", CASES)
async def test_exact_set_chosen(world, address):
    result = await discover(world, address)
    assert chosen(result) == world.expect[address], [c.to_json() for c in result.candidates]


async def test_address_bound_in_dns_wins_over_domain_bound(world):
    result = await discover(world, f"d1@dns-addr.{ZONE}")
    assert [c.source for c in result.candidates] == ["DNS address-bound"]
    assert result.candidates[0].reason.startswith("address-bound")


async def test_domain_bound_in_dns_after_an_empty_address_name(world):
    result = await discover(world, f"d2@dns-dom.{ZONE}")
    assert [(c.source, c.verdict) for c in result.candidates] == [
        ("DNS address-bound", "none"), ("DNS domain-bound", "valid")]
    assert result.candidates[1].reason.startswith("domain-bound")


async def test_each_invalid_certificate_says_why(world):
    result = await discover(world, f"d3@mixed.{ZONE}")
    reasons = {world.names[c.sha256]: c.reason for c in result.candidates
               if c.verdict == "invalid"}
    assert reasons == {"expired": "expired", "revoked": "revoked",
                       "untrusted": "no path to a Direct trust anchor",
                       "other address": "bound to neither the address nor its domain (SAN)",
                       "rsa1024": "RSA key of 1024 bits (at least 2048 required)",
                       "sign-only": "key usage does not allow encryption"}


async def test_stop_rule_no_fallback_after_invalid_address_bound(world):
    result = await discover(world, f"d5@stop.{ZONE}")
    assert result.chosen == []
    assert [(c.source, c.verdict, c.reason) for c in result.candidates] == [
        ("DNS address-bound", "invalid", "expired")]


async def test_ldap_searches_every_naming_context(world):
    result = await discover(world, f"d6@ldap-addr.{ZONE}")
    found = [c for c in result.candidates if c.verdict == "valid"]
    assert len(found) == 1 and found[0].source.startswith("LDAP ldap-a.dd.test:")
    assert found[0].location.startswith(f"mail=d6@ldap-addr.{ZONE} under dc=one,dc=test, dc=two")


async def test_ldap_stop_rule_address_entry_before_domain_entry(world):
    result = await discover(world, f"d8@ldap-stop.{ZONE}")
    ldap = [c for c in result.candidates if c.source.startswith("LDAP")]
    assert [(c.verdict, c.reason) for c in ldap] == [("invalid", "expired")]
    assert ldap[0].location.startswith(f"mail=d8@ldap-stop.{ZONE} ")


async def test_srv_priority_then_weight_skipping_dead_targets(world):
    result = await discover(world, f"d9@srv.{ZONE}")
    ldap = [(c.source.split(":")[0], c.verdict) for c in result.candidates
            if c.source.startswith("LDAP")]
    assert ldap == [("LDAP down.dd.test", "error"), ("LDAP nohost.dd.test", "error"),
                    ("LDAP ldap-c.dd.test", "valid")]
    reasons = [c.reason for c in result.candidates if c.verdict == "error"]
    assert reasons == ["LDAP server unreachable", "host does not resolve"]


async def test_server_without_the_entry_passes_on_to_the_next(world):
    result = await discover(world, f"d17@srv2.{ZONE}")
    ldap = [(c.source.split(":")[0], c.verdict, c.reason) for c in result.candidates
            if c.source.startswith("LDAP")]
    assert ldap[0] == ("LDAP ldap-b.dd.test", "none", "no entry with a certificate")
    assert ldap[1][:2] == ("LDAP ldap-c.dd.test", "valid") and len(ldap) == 2


async def test_nothing_published_anywhere(world):
    result = await discover(world, f"d10@nothing.{ZONE}")
    assert result.chosen == [] and not result.temporary_failure
    assert [(c.source, c.verdict) for c in result.candidates] == [
        ("DNS address-bound", "none"), ("DNS domain-bound", "none"), ("LDAP", "none")]


async def test_records_without_certificates_still_block_the_domain_name(world):
    pgp = await discover(world, f"d15@pgp.{ZONE}")
    assert [(c.source, c.verdict, c.reason) for c in pgp.candidates] == [
        ("DNS address-bound", "none", "CERT type 3 ignored"),
        ("LDAP", "none", "no SRV records")]
    assert not pgp.temporary_failure
    dead = await discover(world, f"d16@url-broken.{ZONE}")
    assert [(c.source, c.verdict) for c in dead.candidates] == [("DNS address-bound", "error")]
    assert dead.candidates[0].reason.endswith("/gone.der: HTTP 404")
    assert dead.temporary_failure


async def test_intermediate_only_by_aia_and_crls_fetched(world):
    before = (world.httpd.hits["/sub.der"], world.httpd.hits["/sub.crl"])
    result = await discover(world, f"d2@dns-dom.{ZONE}")
    assert result.chosen
    assert all(a.subject != result.chosen[0].issuer for a in world.anchors)
    assert world.httpd.hits["/sub.der"] > before[0]
    assert world.httpd.hits["/sub.crl"] > before[1]


async def test_non_critical_basic_constraints_are_accepted(world):
    result = await discover(world, f"d12@nc.{ZONE}")
    assert len(result.chosen) == 1
    assert world.httpd.hits["/ncsub.p7c"] >= 1
    assert "revocation unknown" in result.candidates[0].reason   # no CDP: soft-fail, said so


async def test_truncated_udp_answer_is_retried_over_tcp(world):
    query = dns.message.make_query(f"d13.big.{ZONE}.", "CERT", use_edns=0, payload=1232)
    udp = dns.query.udp(query, "127.0.0.1", port=world.nsd.port, timeout=5)
    assert udp.flags & dns.flags.TC
    result = await discover(world, f"d13@big.{ZONE}")
    assert len(result.chosen) == 3


async def test_cache_keeps_lookups_and_negative_answers(world, tmp_path):
    disc = Discoverer(world.resolver(), world.anchors, tmp_path)
    for address in (f"d1@dns-addr.{ZONE}", f"d10@nothing.{ZONE}"):
        first = await disc.discover(address)
        again = await disc.discover(address)
        fresh = await disc.discover(address, use_cache=False)
        assert (first.cached, again.cached, fresh.cached) == (False, True, False)
        assert chosen(again) == chosen(first) == world.expect[address]
    restarted = Discoverer(world.resolver(), world.anchors, tmp_path)
    result = await restarted.discover(f"d1@dns-addr.{ZONE}")
    assert result.cached and chosen(result) == world.expect[f"d1@dns-addr.{ZONE}"]


async def test_dns_failure_ends_with_nothing_and_no_exception(world):
    from gateway.config.models import DirectResolverConfig
    from tests.peers.nsd import free_udp_tcp_port
    dead = DirectResolverConfig(nameservers=[f"127.0.0.1:{free_udp_tcp_port()}"], timeout=2)
    result = await Discoverer(dead, world.anchors, None).discover(f"d1@dns-addr.{ZONE}")
    assert result.chosen == []
    assert [(c.source, c.verdict) for c in result.candidates] == [("DNS address-bound", "error")]
    assert result.temporary_failure
    too_long = await Discoverer(dead, world.anchors, None).discover("a@" + "x" * 64 + ".test")
    assert [(c.verdict, c.reason) for c in too_long.candidates] == [
        ("error", "not a valid DNS name")]


async def test_no_anchors_nothing_trusted(world):
    result = await Discoverer(world.resolver(), [], None).discover(f"d1@dns-addr.{ZONE}")
    assert result.chosen == []
    assert result.candidates[0].reason == "no path to a Direct trust anchor"
