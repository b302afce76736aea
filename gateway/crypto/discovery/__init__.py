"""Direct certificate discovery (DNS CERT, LDAP via SRV) and Direct trust.

Public API (kept stable; the ``direct`` action, the Direct MX listener and
``phigate certs discover`` build on it):

* ``Discoverer(direct.resolver, anchors, cache_dir|None)`` (the daemon and
  the CLI share ``<state_dir>/direct/cache``);
  ``await discoverer.discover(address, use_cache=True) -> DiscoveryResult``
  with ``chosen`` (every valid certificate, ``x509.Certificate``) and
  ``candidates`` (``Candidate``: source, location, sha256, verdict, reason);
  ``temporary_failure`` is true when nothing was chosen because a lookup
  failed (retry later) rather than because nothing usable is published.
  Never raises.
* ``discoverer.trust`` (``DirectTrust``): ``await trust.validate(cert,
  address, purpose="sign"|"encrypt", intermediates=…) -> TrustVerdict``
  (valid, reason, binding, chain, revocation), for the receiving side.
* ``load_anchors(paths)``: the certificates of ``direct.anchors``.

Order of the modules: ``resolver`` (DNS through the configured
nameservers) → ``fetch`` (HTTP to the addresses it gives) → ``cache`` →
``crls`` → ``trust`` → ``anchors`` → ``ldap`` → ``discoverer``. All network names go
through ``resolver``; nothing here uses getaddrinfo.
"""
from gateway.crypto.discovery.anchors import AnchorError, load_anchors
from gateway.crypto.discovery.discoverer import Candidate, Discoverer, DiscoveryResult, sha256
from gateway.crypto.discovery.trust import DirectTrust, TrustVerdict, binding

__all__ = ["AnchorError", "Candidate", "DirectTrust", "Discoverer", "DiscoveryResult",
           "TrustVerdict", "binding", "load_anchors", "sha256"]
