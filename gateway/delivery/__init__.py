"""Couriers move bytes: to the upstream SMTP provider (``smtp``), into a local
outbox directory when no upstream is configured (``outbox``), or into a
mailbox by IMAP APPEND. They know nothing about PHI or policy; actions decide
what they are given.
"""
