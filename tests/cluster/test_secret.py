"""One portal secret for the cluster: ``portal.secret_file`` is read (and
checked: present, 0600, long enough, errors naming the YAML path) instead of
the per-node file; a form signed by one node's app posts fine to another
built from the same file; after a rotation, a form signed with the old
secret is still accepted while ``previous_secret_files`` lists it, and
refused once it is dropped."""
from __future__ import annotations

import os

import pytest

from gateway.config.load import ConfigError
from gateway.config.models import PortalConfig
from gateway.portal.app import build_app, serve
from gateway.portal.service import portal_secrets
from tests.peers.ports import free_port
from tests.portal.conftest import PortalClient


def secret_file(path, text="s3cr3t-" * 8, mode=0o600):
    path.write_text(text + "\n")
    os.chmod(path, mode)
    return path


def test_default_is_the_nodes_own_file(tmp_path):
    secret, previous = portal_secrets(PortalConfig(), tmp_path)
    assert (tmp_path / "portal-secret").read_bytes() == secret and previous == ()
    assert portal_secrets(PortalConfig(), tmp_path)[0] == secret


def test_shared_file_and_previous(tmp_path):
    current = secret_file(tmp_path / "current")
    old = secret_file(tmp_path / "old", "old-secret-" * 4)
    config = PortalConfig(secret_file=current, previous_secret_files=[old])
    assert portal_secrets(config, tmp_path) == (b"s3cr3t-" * 8, (b"old-secret-" * 4,))
    assert not (tmp_path / "portal-secret").exists()


@pytest.mark.parametrize("problem, expected", [
    ("missing", r"portal\.secret_file: cannot read .*openssl rand"),
    ("mode", r"portal\.secret_file: .* readable by others \(mode 0644\); run chmod 600"),
    ("short", r"portal\.secret_file: .* holds 5 bytes, fewer than 32"),
])
def test_bad_secret_file_is_named(tmp_path, problem, expected):
    path = tmp_path / "secret"
    if problem == "mode":
        secret_file(path, mode=0o644)
    elif problem == "short":
        secret_file(path, "short")
    with pytest.raises(ConfigError, match=expected):
        portal_secrets(PortalConfig(secret_file=path), tmp_path)


def test_previous_file_is_named(tmp_path):
    config = PortalConfig(secret_file=secret_file(tmp_path / "s"),
                          previous_secret_files=[tmp_path / "gone"])
    with pytest.raises(ConfigError, match=r"portal\.previous_secret_files\[0\]: cannot read"):
        portal_secrets(config, tmp_path)


async def serve_node(store, config, secret, previous=()):
    port = free_port()
    cfg = config.model_copy(update={"address": f"127.0.0.1:{port}",
                                    "base_url": f"http://127.0.0.1:{port}"})
    runner = await serve(build_app(store, cfg, secret, previous_secrets=previous),
                         "127.0.0.1", port)
    return runner, cfg.base_url


async def post_form_elsewhere(store, config, sign_with, post_to, previous=()) -> int:
    """Render /forgot on a node with ``sign_with``, post it to one with ``post_to``."""
    a, base_a = await serve_node(store, config, sign_with)
    b, base_b = await serve_node(store, config, post_to, previous)
    client = PortalClient(base_a)
    try:
        await client.get("/forgot")
        client.base = base_b          # a load balancer that is not sticky
        status, _ = await client.post("/forgot", {"email": "nobody@mail.example"})
        return status
    finally:
        await client.close()
        await a.cleanup()
        await b.cleanup()


async def test_form_from_one_node_posts_to_another(portal_store, portal_config):
    shared = b"one-secret-for-the-cluster-0123456789"
    assert await post_form_elsewhere(portal_store, portal_config, shared, shared) == 200
    # two nodes each with its own secret: the failure the shared file removes
    assert await post_form_elsewhere(portal_store, portal_config, b"a" * 32, b"b" * 32) == 403


async def test_rotation_grace(portal_store, portal_config):
    old, new = b"old" * 11, b"new" * 11
    assert await post_form_elsewhere(portal_store, portal_config, old, new, (old,)) == 200
    assert await post_form_elsewhere(portal_store, portal_config, old, new) == 403
