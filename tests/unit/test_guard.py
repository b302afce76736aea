"""The guard's own reading of the bytes it is handed: only S/MIME enveloped
data counts as encrypted; signed-only, plain and unreadable headers do not."""
import pytest

from gateway.delivery.guard import is_encrypted


@pytest.mark.parametrize("headers, encrypted", [
    (b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m", True),
    (b'Content-Type: application/x-pkcs7-mime; smime-type="enveloped-data"', True),
    (b"Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data", True),
    (b"Content-Type: application/pkcs7-mime; smime-type=signed-data", False),
    (b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; b="x"', False),
    (b"Content-Type: text/plain", False),
    (b"Subject: no content type at all", False),
    ((b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n"
      b"Content-Type: text/plain"), False),                # a second, conflicting one
])
def test_only_enveloped_data_is_encrypted(headers, encrypted):
    raw = b"From: a@x.test\r\n" + headers + b"\r\n\r\nbody: Content-Type: application/pkcs7-mime\r\n"
    assert is_encrypted(raw) is encrypted


def test_a_header_in_the_body_does_not_count():
    raw = (b"From: a@x.test\r\nSubject: x\r\n\r\n"
           b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\r\n")
    assert is_encrypted(raw) is False
