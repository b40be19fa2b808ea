"""The pieces rules are made of: :class:`Rule` (a pattern and a builder), :class:`Claim` (what a
rule found in one clause), :class:`Ctx` (what a builder may know about the clause), the regex
fragments for the first person, and the value readers (a place, an organization, a thing).

Example:
    >>> ctx = Ctx(lower=False, changed=False, known={}, clause="")
    >>> place("Lisbon for a job at a robotics startup", ctx), org("Google in Zurich", ctx)
    ('Lisbon', 'Google')
    >>> place("a new flat", ctx) is None   # a residence names a place
    True
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from memcube.extractors.lexicon import (
    STOPS_OCCUPATION,
    STOPS_ORG,
    STOPS_PLACE,
    STOPS_THING,
    is_occupation,
)
from memcube.extractors.text import phrase, strip_article, third_person
from memcube.items import MemoryType

#: "I'm", "I am" (and the common typo "Im").
AM = r"(?:I'm|I\s+am|Im)"
#: "I've", "I have".
HAVE = r"(?:I've|I\s+have|Ive)"
#: Adverbs that may sit between the subject and the verb ("I just moved").
ADV = (
    r"(?:(?:just|recently|finally|now|currently|really|also|actually|still|already|officially|"
    r"basically|mostly|mainly|only|even|definitely|totally|honestly|happily|newly|proudly|"
    r"permanently|gradually|both|all|kind\s+of|sort\s+of)\s+)*"
)
V = r"(?P<v>.+)"


def rx(body: str) -> re.Pattern[str]:
    """A rule's pattern: ``body`` starting at a word, case-insensitive."""
    return re.compile(r"(?<![\w'])" + body, re.I)


@dataclass(frozen=True)
class Ctx:
    """What a builder knows about the clause it reads."""

    #: The whole message is lower-case, so names carry no capital letter.
    lower: bool
    #: The clause marks a change ("anymore", "no longer", "now").
    changed: bool
    #: ``subject -> value`` of the speaker's facts earlier in the same read.
    known: Mapping[str, str]
    #: The clause, without its date phrases.
    clause: str
    #: The clause says how long something has lasted ("since 2019", "for six years").
    lasting: bool = False


@dataclass(frozen=True)
class Claim:
    """One fact a rule read from a clause. ``content`` says ``{who}`` for the speaker."""

    content: str
    subject: str | None
    value: str
    #: Who it is about; ``None``: the speaker.
    entity: str | None = None
    #: Overrides of the rule's memory type and name (a rule may find two kinds of fact).
    memory_type: MemoryType | None = None
    name: str | None = None


Build = Callable[[re.Match[str], Ctx], list[Claim]]


@dataclass(frozen=True)
class Rule:
    """A pattern and what to make of a match (an empty list: the match says nothing)."""

    name: str
    pattern: re.Pattern[str]
    memory_type: MemoryType
    build: Build


_NOT_PLACES = frozenset({"home", "town", "the city", "the area", "the moment", "it"})
_NOT_ORGS = frozenset(
    {"home", "night", "nights", "weekends", "the weekend", "a living", "the moment", "work", "it"}
)


def place(text: str, ctx: Ctx, *, max_words: int = 5) -> str | None:
    """The place ``text`` starts with: a name ("Lisbon", "the Isle of Man"), or ``None``."""
    value = phrase(text, stops=STOPS_PLACE, max_words=max_words, proper=not ctx.lower)
    if value is None or value.lower() in _NOT_PLACES:
        return None
    return third_person(value)


def org(text: str, ctx: Ctx, *, proper: bool = False) -> str | None:
    """The organization ``text`` starts with ("Google", "a bakery near the river")."""
    value = phrase(text, stops=STOPS_ORG, max_words=6, proper=proper and not ctx.lower)
    if value is None or value.lower() in _NOT_ORGS:
        return None
    return third_person(value)


def thing(text: str, *, max_words: int = 6, allow_to: bool = False) -> str | None:
    """The noun phrase ``text`` starts with ("the Berlin marathon", "hiking"), or ``None``."""
    value = phrase(
        text, stops=STOPS_THING, max_words=max_words, allow_starts={"to"} if allow_to else ()
    )
    return None if value is None else third_person(value)


_AT = re.compile(r"\s+(?:at|for|with)\s+(?P<org>.+)$", re.I)
_IN = re.compile(r"\s+in\s+(?P<place>.+)$", re.I)
_AS = re.compile(r"\s+as\s+(?P<occ>.+)$", re.I)


def job(
    rest: str, ctx: Ctx, *, verb: str = "is", need_trade: bool = True, who: str = "{who}"
) -> list[Claim]:
    """An occupation and where it is done, from what follows "I'm" / "I work as": "a nurse in
    Porto" (one fact, with its place), "an accountant at Brennan & Hale" (the occupation and
    the employer). ``verb``: ``"is"`` ("User is a nurse") or ``"works as"``."""
    title = phrase(rest, stops=STOPS_OCCUPATION, max_words=5)
    if title is None:
        return []
    if verb == "is" and not re.match(r"(?:a|an)\s", title, re.I):
        return []
    bare = strip_article(title)
    if need_trade and not is_occupation(bare):
        return []
    after = rest[rest.find(title) + len(title) :] if title in rest else ""
    where = ""
    out: list[Claim] = []
    m_in = _IN.match(after)
    if m_in:
        town = place(m_in.group("place"), ctx)
        where = f" in {town}" if town else ""
    m_at = _AT.match(after)
    if m_at:
        employer = org(m_at.group("org"), ctx)
        if employer:
            out.append(
                Claim(
                    f"{who} works at {employer}",
                    "employer",
                    employer,
                    name="employer",
                    memory_type=MemoryType.FACT,
                )
            )
    content = f"{who} {verb} {third_person(title)}{where}"
    return [Claim(content, "occupation", bare.lower(), name="occupation"), *out]


def employer_claims(
    text: str, ctx: Ctx, *, who: str = "{who}", proper: bool = False
) -> list[Claim]:
    """Reads "Google", "Google as an engineer", "Google in Zurich": the employer (and the occupation
    or place that follow it)."""
    employer = org(text, ctx, proper=proper)
    if employer is None:
        return []
    after = text[len(employer) :] if text.startswith(employer) else ""
    where = ""
    m_in = _IN.match(after)
    if m_in:
        town = place(m_in.group("place"), ctx)
        where = f" in {town}" if town else ""
    out = [Claim(f"{who} works at {employer}{where}", "employer", employer, name="employer")]
    m_as = _AS.match(after)
    if m_as:
        out += job(m_as.group("occ"), ctx, verb="works as", need_trade=False, who=who)[:1]
    return out


__all__ = [
    "ADV",
    "AM",
    "HAVE",
    "V",
    "Build",
    "Claim",
    "Ctx",
    "Rule",
    "employer_claims",
    "job",
    "org",
    "place",
    "rx",
    "thing",
]
