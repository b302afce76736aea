"""gateway.crlf: finding and fixing bare CR/LF, against the regular-expression definition."""
import random

from gateway.crlf import BARE_EOL, has_bare_eol, to_crlf


def test_bare_line_ends_found_exactly_where_the_definition_finds_them():
    rng = random.Random(20261205)
    for _ in range(20000):
        data = bytes(rng.choice(b"a.\r\n") for _ in range(rng.randint(0, 16)))
        assert has_bare_eol(data) == (BARE_EOL.search(data) is not None), data
        fixed = to_crlf(data)
        assert not has_bare_eol(fixed)
        assert fixed.replace(b"\r\n", b"") == data.replace(b"\r\n", b"").translate(None, b"\r\n")


def test_clean_data_is_returned_as_is():
    data = b"Subject: x\r\n\r\nbody\r\n"
    assert to_crlf(data) is data
