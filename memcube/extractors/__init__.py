"""Extractors: turn conversation turns into memory drafts.

An extractor is any callable ``(turns, context) -> list[dict]``; each dict holds the keyword
arguments of :meth:`memcube.MemCube.add` (``content`` required). ``context`` carries
``user_id``, ``session_id``, ``timestamp`` (the fallback message time), ``roles`` (the speakers
whose turns are remembered) and ``problems`` (a list where an extractor reports what went wrong:
the reader logs each one, records it in the affected turns' provenance and returns it).

* :func:`turn_memories`: no model. Every remembered turn as an ``episodic`` memory with its
  speaker, time and message id (a date the turn mentions goes to ``metadata["mentions_time"]``).
* :func:`rule_facts`: no model, **English only**. First-person statements in the user's turns
  ("I moved to Berlin", "I'm allergic to nuts and I work as a nurse", "I no longer work at
  Google", "my sister Chidinma lives in Manchester") become ``fact`` / ``preference`` /
  ``profile`` memories with a ``subject``, ``value`` and ``entity`` in their metadata, so a later
  value, or an ending, supersedes an earlier one (see :mod:`memcube.lifecycle`). Each clause
  gives its own facts, dated by its own date phrases; questions, hypotheticals, reported speech
  and anything that would not read as a complete sentence give none (the turn itself is kept by
  :func:`turn_memories`). How it reads: :mod:`memcube.extractors.facts`; the rules:
  :mod:`~memcube.extractors.change_rules` (endings and changes),
  :mod:`~memcube.extractors.people_rules` (other people),
  :mod:`~memcube.extractors.self_rules` (home, work, profile, health, diet),
  :mod:`~memcube.extractors.taste_rules` (tastes, pastimes, belongings, "my X is Y").
* :class:`LLMExtractor`: any LangChain chat model (anything with ``.invoke(prompt)`` returning
  an object with ``.content``) or a plain ``str -> str`` callable, asked for JSON that is checked
  against :data:`EXTRACTION_SCHEMA` (:mod:`memcube.extractors.llm`). Malformed output (or a
  failing model) loses nothing: the raw turns are stored as episodic memories and the problem is
  reported.

Relative dates in a statement ("last Friday", "two years ago", "since 2019") are resolved
against the message's time into the memory's ``event_time`` (:mod:`memcube.dates`).

Example:
    >>> from datetime import datetime, timezone
    >>> from memcube.messages import Turn
    >>> ctx = {"timestamp": datetime(2024, 5, 10, tzinfo=timezone.utc)}
    >>> [d["content"] for d in rule_facts([Turn("user", "I no longer work at Google")], ctx)]
    ['User no longer works at Google']
"""

from __future__ import annotations

from memcube.extractors.facts import RULES, Statement, rule_facts, statements
from memcube.extractors.llm import (
    EXTRACTION_SCHEMA,
    PROMPT,
    LLMExtractor,
    SchemaError,
    parse_extraction,
)
from memcube.extractors.turns import (
    FACT_ROLES,
    REMEMBERED_ROLES,
    ExtractionProblem,
    turn_memories,
)

__all__ = [
    "EXTRACTION_SCHEMA",
    "FACT_ROLES",
    "PROMPT",
    "REMEMBERED_ROLES",
    "RULES",
    "ExtractionProblem",
    "LLMExtractor",
    "SchemaError",
    "Statement",
    "parse_extraction",
    "rule_facts",
    "statements",
    "turn_memories",
]
