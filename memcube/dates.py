"""Relative and absolute date expressions in text, resolved against the time a message was sent.

Understood (case-insensitive): ``today``, ``yesterday``, ``the day before yesterday``,
``tonight``/``this morning``/``this afternoon``/``this evening``, ``last night``,
``N days/weeks/months/years ago`` (digits or number words, ``a``/``an``/``a couple of``/``a few``),
``last week/month/year``, ``last weekend``, ``last <weekday>``, ``on <weekday>`` (the most recent
one before the reference day), ``in``/``since``/``last <month>`` (the most recent such month, this
year's if it has begun; ``last May`` said in May is last year's), ``<month> <year>``, ``in``/``since <year>``, seasons (``last spring``,
``this summer``, ``in the autumn``, ``winter 2021``: a season resolves to its first day, spring
being March, summer June, autumn September and winter December) and explicit dates
(``May 7, 2023``, ``7 May 2023``, ``2023-05-07``). Future expressions (``tomorrow``,
``next week``, ``next summer``) resolve too, forward. English only.

:func:`find_durations` finds how long a state has lasted (``for six years``, ``for the past
two months``) and resolves it to when it began.

Example:
    >>> from datetime import datetime, timezone
    >>> ref = datetime(2024, 5, 10, 12, 0, tzinfo=timezone.utc)   # a Friday
    >>> resolve_date("I moved two years ago", ref).when.date().isoformat()
    '2022-05-10'
    >>> resolve_date("We met last Friday", ref).when.date().isoformat()
    '2024-05-03'
    >>> resolve_date("I moved to Lisbon last spring", ref).when.date().isoformat()
    '2023-03-01'
    >>> resolve_date("I live in NYC since 2019", ref).when.date().isoformat()
    '2019-01-01'
    >>> find_durations("I've been vegan for six years", ref)[0].when.date().isoformat()
    '2018-05-10'
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from dateutil import parser as date_parser
from dateutil.relativedelta import relativedelta

from memcube.items import as_utc

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
MONTHS = [
    "january", "february", "march", "april", "may", "june", "july", "august", "september",
    "october", "november", "december",
]  # fmt: skip
NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a couple of": 2, "a few": 3,
    "couple of": 2, "few": 3, "several": 3,
}  # fmt: skip
_NUM = r"(\d+|a couple of|couple of|a few|few|several|an|a|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)"
_UNIT = r"(day|week|month|year)s?"
_WD = "|".join(WEEKDAYS)
_MON = "|".join(MONTHS) + r"|jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
_SEASON = r"spring|summer|autumn|fall|winter"
#: The month each season starts in (meteorological seasons, northern hemisphere).
SEASON_MONTH = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
_YEAR = r"((?:19|20)\d{2})"

_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(rf"\b{_NUM}\s+{_UNIT}\s+ago\b", re.I), "ago"),
    (re.compile(rf"\bin\s+{_NUM}\s+{_UNIT}\b", re.I), "in_n"),
    (re.compile(r"\bthe\s+day\s+before\s+yesterday\b", re.I), "d-2"),
    (re.compile(r"\byesterday\b", re.I), "d-1"),
    (re.compile(r"\blast\s+night\b", re.I), "d-1"),
    (re.compile(r"\btomorrow\b", re.I), "d+1"),
    (re.compile(r"\b(?:today|tonight|this\s+(?:morning|afternoon|evening))\b", re.I), "d0"),
    (re.compile(r"\blast\s+weekend\b", re.I), "last_weekend"),
    (re.compile(r"\b(last|next|this)\s+(week|month|year)\b", re.I), "rel_unit"),
    (re.compile(rf"\b(last|next|this|on|past)\s+({_WD})\b", re.I), "weekday"),
    (
        re.compile(
            rf"\b(?:(?:on|in)\s+)?(?:(\d{{1,2}})(?:st|nd|rd|th)?\s+({_MON})\.?,?\s+(\d{{4}})"
            rf"|({_MON})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}}))\b",
            re.I,
        ),
        "explicit",
    ),
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"), "iso"),
    (re.compile(rf"\b(?:(?:in|since|from)\s+)?({_MON})\.?,?\s+(?:of\s+)?{_YEAR}\b", re.I), "month_year"),
    (re.compile(rf"\b(?:(?:in|since|from)\s+)?(?:the\s+)?({_SEASON})\s+(?:of\s+)?{_YEAR}\b", re.I), "season_year"),
    (re.compile(rf"\b(last|this|next|past|(?:in|since|during)\s+the)\s+({_SEASON})\b", re.I), "season"),
    (re.compile(rf"\b(?:in|last|since)\s+({_MON})\b(?!\s+\d)", re.I), "month"),
    (re.compile(rf"\b(?:in|since)\s+{_YEAR}\b", re.I), "year"),
]  # fmt: skip

_DURATION = re.compile(
    rf"\bfor\s+(?:the\s+(?:past|last)\s+)?"
    rf"(?:(?:over|almost|nearly|about|around|roughly|more\s+than|at\s+least)\s+)?"
    rf"{_NUM}\s+{_UNIT}(?:\s+now)?\b",
    re.I,
)


@dataclass(frozen=True)
class ResolvedDate:
    """A date expression found in a text: what it said, and when that was."""

    phrase: str
    when: datetime
    start: int
    end: int


def _count(word: str) -> int:
    word = word.lower()
    return int(word) if word.isdigit() else NUMBER_WORDS[word]


def _month_index(name: str) -> int:
    name = name.lower().rstrip(".")
    for i, m in enumerate(MONTHS):
        if m.startswith(name[:3]):
            return i + 1
    raise ValueError(name)


def _resolve(kind: str, m: re.Match[str], ref: datetime) -> datetime | None:
    day = ref.replace(hour=12, minute=0, second=0, microsecond=0)
    if kind == "ago" or kind == "in_n":
        n = _count(m.group(1))
        unit = m.group(2).lower() + "s"
        delta = relativedelta(**{unit: n})
        shifted: datetime = day - delta if kind == "ago" else day + delta
        return shifted
    if kind.startswith("d"):
        return day + timedelta(days=int(kind[1:]))
    if kind == "last_weekend":
        back = (ref.weekday() - 5) % 7 or 7  # the most recent Saturday before today
        return day - timedelta(days=back)
    if kind == "rel_unit":
        which, unit = m.group(1).lower(), m.group(2).lower()
        sign = {"last": -1, "next": 1, "this": 0}[which]
        moved: datetime = day + relativedelta(**{unit + "s": sign})
        return moved
    if kind == "weekday":
        which, wd = m.group(1).lower(), WEEKDAYS.index(m.group(2).lower())
        if which == "next":
            ahead = (wd - ref.weekday()) % 7 or 7
            return day + timedelta(days=ahead)
        if which == "this":
            return day + timedelta(days=wd - ref.weekday())
        back = (ref.weekday() - wd) % 7 or 7
        return day - timedelta(days=back)
    if kind == "explicit":
        d, mon, y = (
            (m.group(1), m.group(2), m.group(3))
            if m.group(1)
            else (m.group(5), m.group(4), m.group(6))
        )
        try:
            return day.replace(year=int(y), month=_month_index(mon), day=int(d))
        except ValueError:
            return None
    if kind == "iso":
        try:
            return day.replace(year=int(m.group(1)), month=int(m.group(2)), day=int(m.group(3)))
        except ValueError:
            return None
    if kind == "month":
        month = _month_index(m.group(1))
        year = ref.year if month <= ref.month else ref.year - 1
        if month == ref.month and m.group(0).lower().startswith("last"):
            year -= 1  # "last May", said in May
        return day.replace(year=year, month=month, day=1)
    if kind == "year":
        return day.replace(year=int(m.group(1)), month=1, day=1)
    if kind == "month_year":
        return day.replace(year=int(m.group(2)), month=_month_index(m.group(1)), day=1)
    if kind == "season_year":
        return day.replace(year=int(m.group(2)), month=SEASON_MONTH[m.group(1).lower()], day=1)
    if kind == "season":
        return _season(m.group(1).lower().split()[0], SEASON_MONTH[m.group(2).lower()], day)
    return None


def _season(which: str, month: int, day: datetime) -> datetime:
    """The first day of a season named relative to ``day``: ``this`` (the nearest one),
    ``next`` (the next one to start), ``last``/``past``/``in``/``since``/``during`` (the most
    recent one; ``last`` skips the season ``day`` is in)."""
    starts = [
        day.replace(year=day.year + dy, month=month, day=1) for dy in (-2, -1, 0, 1)
    ]  # fmt: skip
    current = max(s for s in starts if s <= day) if any(s <= day for s in starts) else starts[0]
    if which == "next":
        return min(s for s in starts if s > day)
    if which == "this":
        return min(starts, key=lambda s: abs((s - day).days))
    in_it = (day - current).days < 92  # ``day`` falls in that season
    if which == "last" and in_it:
        return current.replace(year=current.year - 1)
    return current


def find_dates(text: str, ref: datetime) -> list[ResolvedDate]:
    """Every date expression in ``text``, resolved against ``ref`` (the message time), in text
    order. Overlapping matches keep the first rule's."""
    ref = as_utc(ref)
    found: list[ResolvedDate] = []
    taken: list[tuple[int, int]] = []
    for regex, kind in _RULES:
        for m in regex.finditer(text):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            when = _resolve(kind, m, ref)
            if when is not None:
                found.append(ResolvedDate(m.group(0), when, m.start(), m.end()))
                taken.append((m.start(), m.end()))
    return sorted(found, key=lambda r: r.start)


def find_durations(text: str, ref: datetime) -> list[ResolvedDate]:
    """How long something has lasted up to ``ref`` (``for six years``, ``for the past two
    months``), each resolved to when it began, in text order."""
    ref = as_utc(ref)
    day = ref.replace(hour=12, minute=0, second=0, microsecond=0)
    out = []
    for m in _DURATION.finditer(text):
        delta = relativedelta(**{m.group(2).lower() + "s": _count(m.group(1))})
        out.append(ResolvedDate(m.group(0), day - delta, m.start(), m.end()))
    return out


def resolve_date(text: str, ref: datetime) -> ResolvedDate | None:
    """The first date expression in ``text`` resolved against ``ref``, or ``None``."""
    found = find_dates(text, ref)
    return found[0] if found else None


def parse_when(value: str, ref: datetime) -> datetime | None:
    """A date phrase (relative or absolute, e.g. from an LLM extractor) as a datetime:
    relative phrases resolve against ``ref``; anything else goes through ``dateutil``."""
    hit = resolve_date(value, ref)
    if hit is not None:
        return hit.when
    try:
        parsed = date_parser.parse(value, default=as_utc(ref).replace(tzinfo=None))
    except (ValueError, OverflowError):
        return None
    return as_utc(parsed)


__all__ = ["ResolvedDate", "find_dates", "find_durations", "parse_when", "resolve_date"]
