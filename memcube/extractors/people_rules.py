"""Rules for what the speaker says about other people: "my sister Chidinma lives in
Manchester", "my husband works at the council", "my son is 7", "my boss is called Linda".

Such a fact names the person in its ``entity`` (the name when given, else the relation:
``"Chidinma"``, ``"husband"``), so the lifecycle keeps it apart from the speaker's own
residence, employer or age; a name ("my boss is called Linda") is the speaker's fact with the
subject ``"boss's name"``.

Example:
    >>> from memcube.extractors.grammar import Ctx
    >>> ctx = Ctx(lower=False, changed=False, known={}, clause="")
    >>> rule = RULES[0]
    >>> [(c.content, c.subject, c.entity) for c in rule.build(rule.pattern.search(
    ...     "my sister Chidinma lives in Manchester"), ctx)]
    [("{who}'s sister Chidinma lives in Manchester", 'residence', 'Chidinma')]
"""

from __future__ import annotations

import dataclasses
import re

from memcube.extractors.grammar import ADV, Claim, Ctx, Rule, V, employer_claims, job, place, rx
from memcube.extractors.lexicon import RELATION_MODIFIERS, RELATIONS, STOPS_COMMON
from memcube.extractors.text import phrase
from memcube.items import MemoryType

FACT, PROFILE = MemoryType.FACT, MemoryType.PROFILE
_REL = (
    rf"my\s+(?P<rel>(?:(?:{RELATION_MODIFIERS})[- ]?)?(?:{RELATIONS}))"
    r"(?:,?\s+(?P<pname>(?-i:[A-Z][\w'-]+)(?:\s+(?-i:[A-Z][\w'-]+))?),?)?"
)
_ADV_WORDS = frozenset(re.findall(r"[a-z]+", ADV)) | {"who", "that", "and", "also"}


def _person(m: re.Match[str], ctx: Ctx) -> tuple[str, str] | None:
    """``(how the content names them, entity)``: ``("{who}'s sister Chidinma", "Chidinma")``;
    ``None`` when the word after the relation is no name."""
    rel = " ".join(m.group("rel").lower().split())
    name = m.group("pname")
    if name:
        if name.lower() in _ADV_WORDS:
            return None
        return f"{{who}}'s {rel} {name}", name
    return f"{{who}}'s {rel}", rel


def _about(claims: list[Claim], entity: str) -> list[Claim]:
    """The claims as facts about ``entity``, recorded as ``relative_<kind>``."""
    return [
        dataclasses.replace(c, entity=entity, name=f"relative_{c.name}" if c.name else None)
        for c in claims
    ]


def _residence(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    person, town = _person(m, ctx), place(m.group("v"), ctx)
    if person is None or town is None:
        return []
    return [Claim(f"{person[0]} lives in {town}", "residence", town, entity=person[1])]


def _employer(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    person = _person(m, ctx)
    if person is None:
        return []
    return _about(employer_claims(m.group("v"), ctx, who=person[0]), person[1])


def _occupation(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    person = _person(m, ctx)
    if person is None:
        return []
    verb = "works as" if "work" in m.group("verb").lower() else "is"
    return _about(job(m.group("v"), ctx, verb=verb, who=person[0]), person[1])


def _age(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    person, n = _person(m, ctx), int(m.group("n"))
    rest = m.group("rest").strip(" ,.!")
    if person is None or not 0 < n < 120 or (rest and phrase(rest, stops=STOPS_COMMON)):
        return []
    verb = "are" if m.group("verb").lower() == "are" else "is"
    return [Claim(f"{person[0]} {verb} {n} years old", "age", str(n), entity=person[1])]


def _allergy(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    person = _person(m, ctx)
    allergen = phrase(m.group("v"), stops=STOPS_COMMON, max_words=3)
    if person is None or allergen is None:
        return []
    claim = Claim(f"{person[0]} is allergic to {allergen}", f"allergy: {allergen}", "allergic")
    return [dataclasses.replace(claim, entity=person[1])]


def _named(m: re.Match[str], ctx: Ctx) -> list[Claim]:
    rel = " ".join(m.group("rel").lower().split())
    name = phrase(m.group("v"), stops=STOPS_COMMON, max_words=3, proper=not ctx.lower)
    if name is None or not (name[0].isupper() or ctx.lower):
        return []
    return [Claim(f"{{who}}'s {rel} is named {name}", f"{rel}'s name", name)]


_RELATION = rf"my\s+(?P<rel>(?:(?:{RELATION_MODIFIERS})[- ]?)?(?:{RELATIONS}))"

RULES = [
    Rule("relative_residence", rx(rf"{_REL}(?:\s+{ADV}|(?='))(?:lives|is\s+living|'s\s+living|has\s+lived|is\s+based|'s\s+based|resides|now\s+lives)\s+(?:in|near)\s+{V}"), FACT, _residence),
    Rule("relative_residence", rx(rf"{_REL}(?:\s+{ADV}|(?='))(?:moved|has\s+moved|'s\s+moved|is\s+moving|'s\s+moving|relocated|has\s+relocated)\s+(?:back\s+)?to\s+{V}"), FACT, _residence),
    Rule("relative_employer", rx(rf"{_REL}(?:\s+{ADV}|(?='))(?:works|is\s+working|'s\s+working|has\s+worked|has\s+been\s+working)\s+(?:at|for)\s+{V}"), FACT, _employer),
    Rule("relative_occupation", rx(rf"{_REL}(?:\s+{ADV}|(?='))(?P<verb>works\s+as|is\s+working\s+as|is|'s)\s+(?P<v>(?:a|an)\s+.+)"), FACT, _occupation),
    Rule("relative_age", rx(rf"{_REL}(?:\s+|(?='))(?P<verb>is|are|'s|just\s+turned|turned|turns)\s+(?P<n>\d{{1,3}})(?:\s+(?:years?|yrs?)\s+old)?(?P<rest>.*)$"), PROFILE, _age),
    Rule("relative_allergy", rx(rf"{_REL}(?:\s+|(?='))(?:is|'s)\s+{ADV}(?:severely\s+|very\s+)?allergic\s+to\s+{V}"), FACT, _allergy),
    Rule("relative_name", rx(rf"{_RELATION}(?:'s\s+name\s+is|'s\s+name's|\s+is\s+called|\s+is\s+named|'s\s+called)\s+{V}"), PROFILE, _named),
]  # fmt: skip

__all__ = ["RULES"]
