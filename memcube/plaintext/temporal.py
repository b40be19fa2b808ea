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
