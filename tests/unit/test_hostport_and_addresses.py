"""One rule for host:port (``gateway.config.types``) and one for comparing
addresses (``gateway.model.envelope.address_key``), and the places that use
them agreeing: config values, the portal listener, policy lists, the users
file's allowed senders and certificate bindings."""
from __future__ import annotations

import pytest

from gateway.auth.users import UserDirectory, UserEntry
from gateway.config.types import join_hostport, parse_hostport, split_hostport
from gateway.crypto.certstore import CertStore
from gateway.model.envelope import address_key, domain_of
from gateway.policy.conditions import in_list
from tests.crypto.pki import TestPKI, write_pem


@pytest.mark.parametrize(("text", "parts"), [
    ("127.0.0.1:2587", ("127.0.0.1", 2587)),
    (" localhost:0 ", ("localhost", 0)),
    ("[::1]:2587", ("::1", 2587)),
    ("::1:2587", ("::1", 2587)),          # unbracketed IPv6: the last colon is the port
])
def test_split_hostport(text, parts):
    assert split_hostport(text) == parts


@pytest.mark.parametrize(("text", "error"), [
    ("localhost", "must be HOST:PORT"), (":25", "must be HOST:PORT"),
    ("host:99999", "port must be 0-65535"), ("host:http", "port must be 0-65535"),
])
def test_split_hostport_refuses(text, error):
    with pytest.raises(ValueError, match=error):
        split_hostport(text)


def test_config_values_are_normalised_by_the_same_rule():
    assert parse_hostport(" 127.0.0.1:25 ") == "127.0.0.1:25"
    assert parse_hostport("::1:25") == parse_hostport("[::1]:25") == "[::1]:25"
    assert split_hostport(join_hostport("::1", 25)) == ("::1", 25)


def test_address_key_and_domain():
    assert address_key("  Billing@Smile.Example ") == "billing@smile.example"
    assert domain_of("Dr.Lee@Smile.Example") == "smile.example"
    assert domain_of("") == "" and domain_of("postmaster") == ""


def test_every_address_comparison_ignores_case():
    """The same mailbox written with different case matches in policy lists,
    the users file and certificate bindings alike."""
    assert in_list("billing@lab.example", ["Billing@Lab.Example"])
    assert in_list("Billing@LAB.example", ["lab.example"])
    users = UserDirectory({"desk": UserEntry(password="$argon2id$x",
                                             senders=["Front@Smile.Example", "@Smile.Example"])})
    assert users.may_send_as("desk", "front@smile.example")
    assert users.may_send_as("desk", "Anyone@SMILE.example")
    assert not users.may_send_as("desk", "front@other.example")


def test_certificate_binding_ignores_case(tmp_path):
    pki = TestPKI()
    leaf = pki.leaf("lab@partner.example")
    store = CertStore(tmp_path / "certs")
    store.import_certificates(write_pem(tmp_path / "p.pem", leaf.cert),
                              for_address="Billing@Partner.Example")
    assert store.certificate_for("billing@partner.example") == leaf.cert
    assert store.certificate_for("LAB@partner.EXAMPLE") == leaf.cert
