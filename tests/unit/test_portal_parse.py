"""What the portal action takes out of a message for the patient's WebMail: a part in an
unknown charset or a tree the parser cannot walk is still shown, never an exception
(an exception here would shunt the item and the patient would get nothing)."""
from gateway.actions.portal import parse_for_portal

HEAD = (b"From: Front Desk <desk@practice.example>\r\nTo: pat@mail.example\r\n"
        b"Subject: Your results\r\nMIME-Version: 1.0\r\n")


def test_unknown_charset_is_shown_best_effort():
    raw = HEAD + (b"Content-Type: text/plain; charset=x-no-such-charset\r\n"
                  b"Content-Transfer-Encoding: 8bit\r\n\r\nPlease call us about the crown.\r\n")
    deposit = parse_for_portal("q1", "pat@mail.example", raw)
    assert "Please call us about the crown." in deposit.body_text
    assert deposit.attachments == []


def test_unknown_charset_in_the_html_alternative():
    raw = HEAD + (b'Content-Type: multipart/alternative; boundary="b"\r\n\r\n'
                  b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nplain words\r\n"
                  b"--b\r\nContent-Type: text/html; charset=bogus-8\r\n\r\n<p>html words</p>\r\n"
                  b"--b--\r\n")
    deposit = parse_for_portal("q2", "pat@mail.example", raw)
    assert "plain words" in deposit.body_text
    assert "html words" in deposit.body_html


def test_well_formed_message_is_unchanged():
    raw = HEAD + (b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
                  b"--m\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee attached.\r\n"
                  b"--m\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; "
                  b'filename="x.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n'
                  b"--m--\r\n")
    deposit = parse_for_portal("q3", "pat@mail.example", raw)
    assert deposit.body_text.strip() == "See attached."
    assert [(a.filename, a.content_type, a.data) for a in deposit.attachments] == [
        ("x.pdf", "application/pdf", b"%PDF-")]
