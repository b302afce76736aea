"""The leak check the notice, DSN and log tests share (``tests/leaks.py``)."""
from tests.leaks import shown_tokens


def test_a_token_a_reader_sees_is_shown():
    assert shown_tokens("DOB 03/14/1982", ["1982"]) == ["1982"]
    assert shown_tokens("Chart 448812.", ["448812"]) == ["448812"]
    assert shown_tokens("two crowns", ["crown"]) == ["crown"]
    assert shown_tokens(b"Dear JANE,", ["jane"]) == ["jane"]


def test_a_token_inside_a_random_run_is_not():
    assert shown_tokens("<20261205.39.14222941982289583745@localhost>", ["1982"]) == []
    assert shown_tokens("boundary=_phigate_dsn_ec8379d0e4ff75f3", ["d0e4"]) == []
