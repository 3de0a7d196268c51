"""Validators and precondition evaluation (RFC 9110 13.2.2 as Go's ServeContent does it)."""

from __future__ import annotations

import calendar
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caddytw.handlers.file_server.conditional import (
    Conditions,
    Verdict,
    base36,
    evaluate,
    make_etag,
    range_allowed,
    scan_etag,
)
from caddytw.http.dates import http_date, parse_http_date

MTIME = calendar.timegm((2023, 1, 2, 3, 4, 5, 0, 0, 0))  # what Caddy answered "rnu8itc" for
ETAG = make_etag(MTIME, 12)
LM = "Mon, 02 Jan 2023 03:04:05 GMT"


def test_etag_is_caddys():
    assert ETAG == '"rnu8itc"'  # observed from caddy 2.6.2 for a 12-byte file, same mtime
    assert make_etag(int("tp9qyl", 36), 13) == '"tp9qyld"'
    assert make_etag(0, 0) == '"00"'


@given(st.integers(-(10**15), 10**15))
def test_base36_round_trips(value):
    assert int(base36(value), 36) == value


@given(st.integers(-2208988800, 253402300799))
def test_http_date_round_trips_and_matches_email_utils(seconds):
    text = http_date(seconds)
    assert parse_http_date(text) == seconds
    if seconds >= 0:
        assert text == formatdate(seconds, usegmt=True)


@pytest.mark.parametrize(
    "text",
    [
        "Mon, 02 Jan 2023 03:04:05 GMT",
        "Monday, 02-Jan-23 03:04:05 GMT",
        "Mon Jan  2 03:04:05 2023",
        "  Mon, 02 Jan 2023 03:04:05 GMT ",
    ],
)
def test_three_http_date_formats(text):
    assert parse_http_date(text) == MTIME


@pytest.mark.parametrize(
    "text",
    [
        "",
        "garbage",
        "Mon, 31 Feb 2023 03:04:05 GMT",
        "Mon, 02 Jan 2023 03:04:05 UTC",
        "Mon, 02 Jan 2023 25:04:05 GMT",
        "Mon, 02 Jan 2023 03:04:60 GMT",
        "2023-01-02T03:04:05Z",
        "Mon, 2 Jan 2023 03:04:05 GMT",
    ],
)
def test_bad_dates(text):
    assert parse_http_date(text) is None


@given(st.text(max_size=40))
def test_parse_http_date_never_raises(text):
    parse_http_date(text)


def test_scan_etag():
    assert scan_etag('"a", "b"') == ('"a"', ', "b"')
    assert scan_etag(' W/"x"') == ('W/"x"', "")
    assert scan_etag("x") == ("", "")
    assert scan_etag('"unterminated') == ("", "")
    assert scan_etag('"bad space"') == ("", "")


def run(method="GET", **headers):
    return evaluate(method, Conditions(**headers), ETAG, MTIME)


@pytest.mark.parametrize(
    ("method", "headers", "verdict"),
    [
        # Each line was checked against caddy 2.6.2 with curl.
        ("GET", {}, Verdict.PROCEED),
        ("GET", {"if_none_match": ETAG}, Verdict.NOT_MODIFIED),
        ("GET", {"if_none_match": "W/" + ETAG}, Verdict.NOT_MODIFIED),
        ("GET", {"if_none_match": "*"}, Verdict.NOT_MODIFIED),
        ("GET", {"if_none_match": '"x", ' + ETAG}, Verdict.NOT_MODIFIED),
        ("GET", {"if_none_match": '"x"', "if_modified_since": LM}, Verdict.PROCEED),
        ("GET", {"if_modified_since": LM}, Verdict.NOT_MODIFIED),
        ("GET", {"if_modified_since": "Mon, 02 Jan 2023 03:04:04 GMT"}, Verdict.PROCEED),
        ("GET", {"if_modified_since": "garbage"}, Verdict.PROCEED),
        ("GET", {"if_match": '"x"'}, Verdict.PRECONDITION_FAILED),
        ("GET", {"if_match": ETAG}, Verdict.PROCEED),
        ("GET", {"if_match": "*"}, Verdict.PROCEED),
        ("GET", {"if_match": "W/" + ETAG}, Verdict.PRECONDITION_FAILED),
        (
            "GET",
            {"if_unmodified_since": "Mon, 02 Jan 2023 03:04:04 GMT"},
            Verdict.PRECONDITION_FAILED,
        ),
        ("GET", {"if_unmodified_since": LM}, Verdict.PROCEED),
        (
            "GET",
            {"if_match": ETAG, "if_unmodified_since": "Mon, 02 Jan 2000 03:04:04 GMT"},
            Verdict.PROCEED,
        ),  # If-Match present: If-Unmodified-Since is ignored
        ("POST", {"if_none_match": ETAG}, Verdict.PRECONDITION_FAILED),
        ("POST", {"if_modified_since": LM}, Verdict.PROCEED),
        ("HEAD", {"if_none_match": ETAG}, Verdict.NOT_MODIFIED),
    ],
)
def test_precondition_table(method, headers, verdict):
    assert run(method, **headers) is verdict


def test_no_modification_time_ignores_date_conditions():
    assert evaluate("GET", Conditions(if_modified_since=LM), ETAG, None) is Verdict.PROCEED
    assert evaluate("GET", Conditions(if_unmodified_since=LM), ETAG, None) is Verdict.PROCEED


YEAR_9999 = 253402300799


@given(st.integers(1, YEAR_9999), st.integers(0, 2**40), st.integers(0, YEAR_9999))
def test_if_modified_since_is_a_date_comparison(mtime, size, since):
    etag = make_etag(mtime, size)
    verdict = evaluate("GET", Conditions(if_modified_since=http_date(since)), etag, mtime)
    assert verdict is (Verdict.NOT_MODIFIED if mtime <= since else Verdict.PROCEED)


@pytest.mark.parametrize(
    ("method", "if_range", "allowed"),
    [
        ("GET", None, True),
        ("GET", ETAG, True),
        ("GET", '"x"', False),
        ("GET", "W/" + ETAG, False),
        ("GET", LM, True),
        ("GET", "Mon, 02 Jan 2023 03:04:06 GMT", False),
        ("GET", "garbage", False),
        ("POST", '"x"', True),
    ],
)
def test_if_range(method, if_range, allowed):
    assert range_allowed(method, if_range, ETAG, MTIME) is allowed
