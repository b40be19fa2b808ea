"""The rule reader (no model, English only): first-person statements in the user's turns become
``fact`` / ``preference`` / ``profile`` memories.

How a message is read:

1. It is split into sentences; questions are skipped.
2. Each sentence is split into clauses where a new subject starts ("..., and I", " but my",
   ";", dashes); "Sam and I" stays one subject.
3. A clause that is a condition, wish or plan ("if", "I'd", "might", "thinking of") or reports
   what someone says ("my friend says I'm...") states nothing.
4. The date phrases of the clause ("last spring", "since 2019", "for six years") are taken out;
   they date only that clause's facts (``event_time``; a duration dates when it began).
5. The first rule (:data:`RULES`, in order: endings, other people, the speaker's life, tastes)
   whose pattern matches after nothing but discourse markers ("Oh, and", "So") and whose value
   is a complete noun phrase gives the clause's facts. A fact whose content would not be a
   complete sentence is dropped: the verbatim turn is stored anyway (``turn_memories``).

Every fact carries ``metadata`` ``subject`` (what it is about: ``residence``, ``employer``,
``allergy: peanuts``...), ``value``, ``entity`` (who: the speaker, or the other person a fact is
about) and ``statement`` (the sentence), so that a later value, or an ending ("I no longer work
at Google": same subject, value ``not Google``), supersedes it through :mod:`memcube.lifecycle`.

Example:
    >>> from datetime import datetime, timezone
    >>> ref = datetime(2024, 5, 10, 12, 0, tzinfo=timezone.utc)
    >>> [(s.content, s.subject) for s in statements(
    ...     "I'm allergic to peanuts and I work as a nurse in Porto.", ref)]
    [('{who} is allergic to peanuts', 'allergy: peanuts'), ('{who} works as a nurse in Porto', 'occupation')]
    >>> [(s.content, s.event_time.date().isoformat()) for s in statements(
    ...     "I moved to Lisbon last spring for a job at a robotics startup", ref)]
    [('{who} lives in Lisbon', '2023-03-01'), ('{who} works at a robotics startup', '2023-03-01')]
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memcube.dates import find_dates, find_durations
from memcube.extractors.change_rules import RULES as CHANGE_RULES
from memcube.extractors.grammar import Claim, Ctx, Rule
from memcube.extractors.people_rules import RULES as PEOPLE_RULES
from memcube.extractors.self_rules import RULES as SELF_RULES
from memcube.extractors.taste_rules import RULES as TASTE_RULES
from memcube.extractors.text import (
    clauses,
    complete,
    is_hypothetical,
    is_question,
    is_reported,
    lead_in_only,
    remove_spans,
    says_no_longer,
    sentences,
)
from memcube.extractors.turns import FACT_ROLES
from memcube.items import MemoryType, Provenance
from memcube.messages import Turn

#: Every rule, in the order they are tried on a clause.
RULES: list[Rule] = [
    *CHANGE_RULES,
    *PEOPLE_RULES,
    *SELF_RULES[:-2],
    *TASTE_RULES,
    *SELF_RULES[-2:],  # "I'm a <trade>", "I'm <Name>": after "I'm a big fan of"
]
_LEAD = re.compile(
    r"^(?:(?:oh|ah|so|well|and|also|plus|but|btw|anyway|anyways|actually|yeah|yes|yep|ok|okay|"
    r"hey|hi|hello|um|uh|erm|hmm|lol|haha|honestly|now|then|besides|basically|finally|recently|"
    r"lately|sadly|luckily|unfortunately|fortunately|officially|meanwhile|update|fyi|ps|"
    r"these\s+days|nowadays|by\s+the\s+way|for\s+the\s+record|fun\s+fact|guess\s+what|"
    r"you\s+know|big\s+news|good\s+news|great\s+news)\b[,!:]?\s+)+",
    re.I,
)


#: A compound subject with the speaker: "My partner and I", "Sam and I".
_COMPOUND = re.compile(
    r"^(?:(?:[Mm]y\s+[\w-]+(?:\s+[A-Z][\w'-]+)?|[A-Z][\w'-]+)\s+and\s+(?:I|me)"
    r"|[Mm]e\s+and\s+(?:my\s+[\w-]+|[A-Z][\w'-]+))\b"
)


@dataclass(frozen=True)
class Statement:
    """A fact read from a message. ``content`` says ``{who}`` for the speaker. It unpacks as
    ``(rule, content, subject, value, event_time, sentence)``."""

    rule: Rule
    content: str
    subject: str | None
    value: str
    event_time: datetime | None
    sentence: str
    #: Who it is about; ``None``: the speaker.
    entity: str | None
    #: The rule's name as recorded in provenance (``rules:<name>``).
    name: str
    memory_type: MemoryType

    def __iter__(self) -> Iterator[Any]:
        return iter(
            (self.rule, self.content, self.subject, self.value, self.event_time, self.sentence)
        )


def _read_clause(
    clause: str, sentence: str, ref: datetime, lower: bool, known: Mapping[str, str]
) -> list[Statement]:
    if is_hypothetical(clause) or is_reported(clause):
        return []
    dates = find_dates(clause, ref)
    durations = find_durations(clause, ref)
    spans = [(d.start, d.end) for d in [*dates, *durations]]
    bare = _LEAD.sub("", remove_spans(clause, spans)).strip(" ,")
    when = durations[0].when if durations else (dates[0].when if dates else None)
    lasting = bool(durations) or bool(re.search(r"\bsince\b", clause, re.I))
    ctx = Ctx(
        lower=lower, changed=says_no_longer(clause), known=known, clause=bare, lasting=lasting
    )
    claims, rule = _first_claims(bare, ctx)
    together = _COMPOUND.match(bare)
    if not claims and together:  # "My partner and I moved to Rotterdam": as "we moved..."
        claims, rule = _first_claims("we" + bare[together.end() :], ctx)
    if rule is None:
        return []
    return [
        Statement(
            rule=rule,
            content=c.content,
            subject=c.subject,
            value=c.value,
            event_time=when,
            sentence=sentence,
            entity=c.entity,
            name=c.name or rule.name,
            memory_type=c.memory_type or rule.memory_type,
        )
        for c in claims
    ]


def _first_claims(text: str, ctx: Ctx) -> tuple[list[Claim], Rule | None]:
    """The facts of the first rule that finds complete ones in ``text``."""
    for rule in RULES:
        m = rule.pattern.search(text)
        if m is None or not lead_in_only(text[: m.start()]):
            continue
        claims = [c for c in rule.build(m, ctx) if complete(c.content)]
        if claims:
            return claims, rule
    return [], None


def statements(
    text: str, ref: datetime, *, known: Mapping[str, str] | None = None
) -> list[Statement]:
    """The facts ``text`` states in the first person, dates resolved against ``ref`` (the
    message time). ``known``: ``subject -> value`` the speaker stated before,
    which tells "I left X" apart (a band, a town or an employer). Used by :func:`rule_facts`."""
    lower = not any(ch.isupper() for ch in text)
    seen = dict(known or {})
    out: list[Statement] = []
    for sentence in sentences(text):
        if is_question(sentence):
            continue
        for clause in clauses(sentence):
            found = _read_clause(clause, sentence, ref, lower, seen)
            for st in found:
                if st.entity is None and st.subject:
                    seen[st.subject.casefold()] = st.value
            out += found
    return out


def rule_facts(turns: Sequence[Turn], context: dict[str, Any]) -> list[dict[str, Any]]:
    """First-person facts and preferences of the ``fact_roles`` turns (default:
    ``("user",)``), as fact / preference / profile drafts."""
    fact_roles = context.get("fact_roles", FACT_ROLES)
    out: list[dict[str, Any]] = []
    known: dict[str, dict[str, str]] = {}
    for turn in turns:
        if turn.role not in fact_roles or not turn.content.strip():
            continue
        when = turn.timestamp or context["timestamp"]
        who = turn.name or "User"
        speaker = turn.name or "user"
        mine = known.setdefault(speaker, {})
        for st in statements(turn.content, when, known=mine):
            md: dict[str, Any] = {
                "value": st.value,
                "entity": st.entity or speaker,
                "statement": st.sentence,
            }
            if st.subject is not None:
                md["subject"] = st.subject
                if st.entity is None:
                    mine[st.subject.casefold()] = st.value
            out.append(
                {
                    "content": st.content.replace("{who}", who),
                    "memory_type": st.memory_type,
                    "event_time": st.event_time or when,
                    "importance": 0.7,
                    "metadata": md,
                    "provenance": Provenance(
                        source="extraction",
                        extractor=f"rules:{st.name}",
                        message_ids=[turn.id] if turn.id else [],
                    ),
                }
            )
    return out


__all__ = ["RULES", "Statement", "rule_facts", "statements"]
