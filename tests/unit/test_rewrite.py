"""Stripping the policy's subject keyword touches the Subject and nothing else."""
from gateway.actions.rewrite import by_subject_variant, strip_subject_keyword
from gateway.model import Action, Decision, Envelope, Plan, Verdict
from gateway.queue.item import QueueItem


def test_only_the_subject_changes():
    raw = (b"From: a@x.example\r\nSubject: Re: results [SECURE] for you\r\nTo: b@y.example\r\n"
           b"\r\nbody keeps Subject: [secure]\r\n")
    out = strip_subject_keyword(raw, "[secure]")
    assert out == raw.replace(b"Re: results [SECURE] for you", b"Re: results for you")


def test_folded_and_encoded_subjects():
    raw = b"Subject: =?utf-8?q?Caf=C3=A9_[secure]?=\n long tail\nX: y\n\nbody\n"
    out = strip_subject_keyword(raw, "[secure]")
    assert out == b"Subject: =?utf-8?q?Caf=C3=A9_long_tail?=\nX: y\n\nbody\n"


def test_no_subject_or_subject_in_body_only_is_untouched():
    raw = b"X: y\r\n\r\nSubject: [secure]\r\n"
    assert strip_subject_keyword(raw, "[secure]") == raw


def test_recipients_grouped_by_what_they_receive():
    raw = b"Subject: hi [secure]\r\n\r\nbody\r\n"
    plan = Plan(Verdict(False), (
        Decision("a@x.example", Action.RELAY, "keyword", options={"strip_subject_keyword":
                                                                   "[secure]"}),
        Decision("b@x.example", Action.RELAY, "internal")))
    item = QueueItem.new("1" * 32, Envelope("s@x.example", ("a@x.example", "b@x.example")), plan)
    groups = {tuple(r.address for r in m): data
              for data, m in by_subject_variant(raw, item.recipients)}
    assert groups == {("a@x.example",): b"Subject: hi\r\n\r\nbody\r\n", ("b@x.example",): raw}
