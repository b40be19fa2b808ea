"""Dates in memories and queries: a stable written form for indexing, and the periods a query
names explicitly ("in May 2023", "on 8 May 2023", "during 2022", "2023-05-08").

Example:
    >>> from datetime import datetime, timezone
    >>> format_day(datetime(2023, 5, 8, 13, 56, tzinfo=timezone.utc))
    '8 May 2023'
    >>> [(datetime.fromtimestamp(a, timezone.utc).date().isoformat(),
    ...   datetime.fromtimestamp(b, timezone.utc).date().isoformat())
    ...  for a, b in query_periods("What did she do in May 2023?")]
    [('2023-05-01', '2023-06-01')]
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from memcube.items import as_utc

MONTHS = {
    name: i + 1
    for i, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ]
    )
    for name in names
}
_MONTH = r"(january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
_YEAR = r"((?:19|20)\d\d)"
_DAY_MONTH_YEAR = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}\b")
_MONTH_DAY_YEAR = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+{_YEAR}\b")
_MONTH_YEAR = re.compile(rf"\b{_MONTH},?\s+(?:of\s+)?{_YEAR}\b")
_ISO = re.compile(r"\b((?:19|20)\d\d)-(\d\d)-(\d\d)\b")
_YEAR_ONLY = re.compile(rf"\b(?:in|during|of|since|for|throughout)\s+{_YEAR}\b")

#: How far around a named day the period extends (memories are often recorded days later).
DAY_SLACK = timedelta(days=3)


def format_day(value: datetime) -> str:
    """``8 May 2023``: the date form used in index texts (matches how people ask)."""
    v = as_utc(value)
    return f"{v.day} {v.strftime('%B')} {v.year}"


def _ts(y: int, m: int, d: int = 1) -> float:
    return datetime(y, m, d, tzinfo=timezone.utc).timestamp()


def _month_span(y: int, m: int) -> tuple[float, float]:
    end = (y + 1, 1) if m == 12 else (y, m + 1)
    return _ts(y, m), _ts(*end)


def _day_span(y: int, m: int, d: int) -> tuple[float, float] | None:
    try:
        day = datetime(y, m, d, tzinfo=timezone.utc)
    except ValueError:
        return None
    return (day - DAY_SLACK).timestamp(), (day + timedelta(days=1) + DAY_SLACK).timestamp()


def query_periods(query: str) -> list[tuple[float, float]]:
    """Periods ``[start, end)`` (UTC timestamps) that ``query`` names explicitly, most specific
    form first; an empty list when it names none. Relative phrases ("last week") are not
    resolved: they need a reference time that a question rarely carries."""
    q = query.lower()
    spans: list[tuple[float, float]] = []
    taken: list[tuple[int, int]] = []

    def free(m: re.Match[str]) -> bool:
        return all(m.end() <= a or m.start() >= b for a, b in taken)

    for m in _ISO.finditer(q):
        span = _day_span(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if span:
            spans.append(span)
            taken.append(m.span())
    for m in _DAY_MONTH_YEAR.finditer(q):
        if free(m):
            span = _day_span(int(m.group(3)), MONTHS[m.group(2)], int(m.group(1)))
            if span:
                spans.append(span)
                taken.append(m.span())
    for m in _MONTH_DAY_YEAR.finditer(q):
        if free(m):
            span = _day_span(int(m.group(3)), MONTHS[m.group(1)], int(m.group(2)))
            if span:
                spans.append(span)
                taken.append(m.span())
    for m in _MONTH_YEAR.finditer(q):
        if free(m):
            spans.append(_month_span(int(m.group(2)), MONTHS[m.group(1)]))
            taken.append(m.span())
    for m in _YEAR_ONLY.finditer(q):
        if free(m):
            y = int(m.group(1))
            spans.append((_ts(y, 1), _ts(y + 1, 1)))
            taken.append(m.span())
    return spans


_NO_YEAR = r"\b(?!,?\s*(?:of\s+)?\d)"
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?{_MONTH}{_NO_YEAR}")
_MONTH_DAY = re.compile(rf"\b{_MONTH}\s+(\d{{1,2}})(?:st|nd|rd|th)?{_NO_YEAR}")
_IN_MONTH = re.compile(rf"\b(?:in|during|throughout|of|last|this)\s+{_MONTH}{_NO_YEAR}")


def exact_periods(query: str, years: Iterable[int]) -> list[tuple[float, float]]:
    """The periods ``query`` names, without slack: a named day is that day, a month that month.
    A day or month named without a year ("on 12 September", "in February") is taken in each of
    ``years`` (the years the memories searched come from).

    Example:
        >>> [(datetime.fromtimestamp(a, timezone.utc).date().isoformat(),
        ...   datetime.fromtimestamp(b, timezone.utc).date().isoformat())
        ...  for a, b in exact_periods("What did I do on Monday 11 March?", [2024])]
        [('2024-03-11', '2024-03-12')]
    """
    q = query.lower()
    spans: list[tuple[float, float]] = []
    for m in _ISO.finditer(q):
        spans += _exact_day(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    for m in _DAY_MONTH_YEAR.finditer(q):
        spans += _exact_day(int(m.group(3)), MONTHS[m.group(2)], int(m.group(1)))
    for m in _MONTH_DAY_YEAR.finditer(q):
        spans += _exact_day(int(m.group(3)), MONTHS[m.group(1)], int(m.group(2)))
    if not spans:  # "15 March 2024" names a day, not March
        for m in _MONTH_YEAR.finditer(q):
            spans.append(_month_span(int(m.group(2)), MONTHS[m.group(1)]))
    years = sorted(set(years))
    for m in _DAY_MONTH.finditer(q):
        for y in years:
            spans += _exact_day(y, MONTHS[m.group(2)], int(m.group(1)))
    for m in _MONTH_DAY.finditer(q):
        for y in years:
            spans += _exact_day(y, MONTHS[m.group(1)], int(m.group(2)))
    if not spans:
        for m in _IN_MONTH.finditer(q):
            spans += [_month_span(y, MONTHS[m.group(1)]) for y in years]
    return spans


def _exact_day(y: int, m: int, d: int) -> list[tuple[float, float]]:
    try:
        day = datetime(y, m, d, tzinfo=timezone.utc)
    except ValueError:
        return []
    return [(day.timestamp(), (day + timedelta(days=1)).timestamp())]
