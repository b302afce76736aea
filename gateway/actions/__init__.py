"""Actions carry out one kind of decision for a group of recipients of one
queued item, after the commit point. The dispatcher picks the handler from an
explicit registry built in ``gateway.app`` (``Gateway.build_handlers``):
``relay`` (``relay.py``, optionally signed), ``smime`` (``smime.py``) and,
when a portal store is configured, ``portal`` (``portal.py``). ``hold`` is
done by the dispatcher itself and ``reject`` at DATA; a decision with no
handler (``direct``, or ``portal`` without a store) takes its fallback or is
held with the reason. The dispatcher records each recipient's ``Outcome``.
"""
