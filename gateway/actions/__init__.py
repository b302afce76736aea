"""Actions carry out one kind of decision (relay, smime, direct, portal, hold)
for a group of recipients of one queued item, after the commit point. The
dispatcher picks the handler from an explicit registry built in ``gateway.app``
and records each recipient's ``Outcome``.
"""
