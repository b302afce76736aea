"""S/MIME and certificates.

How crypto fits into phigate: nothing here touches the network or the queue.
``certstore`` keeps partners' certificates, the practice's own identities
(certificate + private key per sender address or ``@domain``) and trust
anchors on disk; ``phigate certs …`` edits it and the daemon answers lookups
from an in-memory index of it that follows those edits.
Actions call into this package after the commit point:

* outbound (``smime_out``): the ``smime`` action signs with the sender's
  identity and encrypts to the recipient's certificate chosen by
  ``CertStore.certificate_for``; ``relay`` with ``sign: true`` signs only.
* inbound (``smime_in``/``verify``/``inbound``, used by ``phigate smime
  open``): decrypt with an identity's key, verify signatures against
  ``CertStore.trust_anchors``, revocation from CRLs the caller or a cache
  directory provides (``revocation``; nothing is fetched).

Certificates enter the store only by ``phigate certs import`` (source
``import:<file>``); there is no discovery in DNS or LDAP. Private keys are
never logged or printed; audit lines carry certificate fingerprints only.
"""
