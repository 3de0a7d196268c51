"""HTTP dates (RFC 9110 section 5.6.7): formatting and parsing, in one place.

Used for ``Date`` on every response (formatted once per second), ``Last-Modified`` of
files, and the conditional headers ``If-Modified-Since``/``If-Range``.
"""

from __future__ import annotations

import calendar
import re
import time
from functools import lru_cache

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_OWS = " \t\r\n"


@lru_cache(maxsize=1024)
def http_date(seconds: int) -> str:
    """IMF-fixdate, e.g. ``Mon, 02 Jan 2023 03:04:05 GMT`` (locale independent)."""
    t = time.gmtime(seconds)
    return (
        f"{_WEEKDAYS[t.tm_wday]}, {t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year:04d} "
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    )


_date_cache: tuple[int, bytes] = (0, b"")


def date_now(now: float | None = None) -> bytes:
    """The ``Date`` header value for now, formatted once per second."""
    global _date_cache
    second = int(time.time() if now is None else now)
    cached_second, text = _date_cache
    if second != cached_second:
        text = http_date(second).encode("ascii")
        _date_cache = (second, text)
    return text


_MONTH = "(" + "|".join(_MONTHS) + ")"
_TIME = r"(\d\d):(\d\d):(\d\d)"
_DATE_FORMATS = (
    # IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    re.compile(
        r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) " + _MONTH + r" (\d{4}) " + _TIME + " GMT"
    ),
    # RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    re.compile(
        r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d\d)-"
        + _MONTH
        + r"-(\d\d) "
        + _TIME
        + " GMT"
    ),
    # asctime: Sun Nov  6 08:49:37 1994
    re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) " + _MONTH + r" ([ \d]\d) " + _TIME + r" (\d{4})"),
)


def parse_http_date(text: str) -> int | None:
    """Unix seconds from the three date formats HTTP allows (as Go's ``http.ParseTime``),
    or None when ``text`` is none of them or not a real date."""
    text = text.strip(_OWS)
    fixdate, rfc850, asctime = _DATE_FORMATS
    if match := fixdate.fullmatch(text):
        day, month, year, hour, minute, second = match.groups()
    elif match := rfc850.fullmatch(text):
        day, month, short_year, hour, minute, second = match.groups()
        year = str(1900 + int(short_year) if int(short_year) >= 69 else 2000 + int(short_year))
    elif match := asctime.fullmatch(text):
        month, day, hour, minute, second, year = match.groups()
    else:
        return None
    fields = (int(year), _MONTHS.index(month) + 1, int(day), int(hour), int(minute), int(second))
    if fields[5] > 59:
        return None  # no leap seconds, as Go
    try:
        # strptime validates day-of-month and ranges; timegm does the arithmetic in UTC.
        time.strptime(" ".join(str(f) for f in fields), "%Y %m %d %H %M %S")
    except ValueError:
        return None
    return calendar.timegm((*fields, 0, 0, 0))
