"""phigate: a self-hosted secure mail gateway for dental and medical practices.

Mail clients submit to ``ingress`` (aiosmtpd). At DATA the message is
classified and a per-recipient ``Plan`` is decided by ``policy`` (pure, no
network). The message and its plan are committed to ``queue`` (fsync file and
directory) before the 250 reply. The ``queue.dispatcher`` then runs the
``actions`` (relay, smime, portal; it holds by itself) that hand bytes to
``delivery`` couriers, retrying per recipient. ``app`` is the only module that
wires concrete objects together from the validated ``config``. See
docs/flow.md for the full picture.

Layers, lowest first; a module imports only from its own package or a lower
layer (``tests/unit/test_layering.py`` checks it): ``model`` (pure data) <
``config``, ``audit``, ``metrics``, ``sdnotify``, ``queue.safeio``, ``crlf``, ``malloc``
(infrastructure) < ``policy``, ``crypto``, ``auth``, ``tlsutil``, ``health``,
``delivery`` < ``queue`` < ``portal``, ``direct`` (Direct's spool and MDN
tracking) < ``submission``, ``ingress`` (the commit point and its edges) <
``actions`` < ``supervisor``, ``direct.service`` (Direct's wiring) < ``app`` <
``cli``.
"""
