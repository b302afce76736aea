"""Direct Messaging transport state: MDN tracking of sent messages
(``tracking``), its timeout monitor (``monitor``) and the way Direct code puts
new messages (MDNs, DSNs) on the spool (``spool``)."""
