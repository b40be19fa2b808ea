"""The reader: turns conversations into memories.

The default extractor (:func:`default_extractor`) needs no LLM: every remembered turn (the user's
and the assistant's, by default) is kept as an ``episodic`` memory with its speaker, time and
message id, and first-person statements in the user's turns ("I moved to Berlin", "I'm allergic
to nuts", "I prefer tea") also become ``fact`` / ``preference`` / ``profile`` memories (see
:mod:`memcube.extractors`). Pass ``extractor=LLMExtractor(model)`` to use a language model.

Times: a message's own time (``timestamp`` in a dict, LangChain ``additional_kwargs`` /
``response_metadata``, LlamaIndex ``additional_kwargs``) wins over the ``timestamp`` argument,
which defaults to now. A turn's ``event_time`` is when it was said; a date the turn mentions
("last Friday") is resolved against that time and kept in ``metadata["mentions_time"]``, and an
extracted fact's ``event_time`` is that resolved date.

Problems (malformed LLM output, a failing model) never lose a turn: the raw turns are stored,
each problem is logged as a warning, recorded in the affected memories' provenance
(``provenance.detail["extraction_problem"]``) and in the audit log, and returned in
:attr:`ReadResult.problems`.

Example:
    >>> result = read_messages(
    ...     [{"role": "user", "content": "I live in Oslo"}, {"role": "assistant", "content": "Nice!"}],
    ...     user_id="ann",
    ... )
    >>> [(item.memory_type.value, item.content) for item in result]
    [('episodic', 'I live in Oslo'), ('episodic', 'Nice!'), ('fact', 'User lives in Oslo')]
    >>> result.problems
    []
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from memcube.extractors import (
    FACT_ROLES,
    REMEMBERED_ROLES,
    ExtractionProblem,
    LLMExtractor,
    rule_facts,
    turn_memories,
)
from memcube.items import MemoryItem, Provenance, as_utc, build_item, utcnow
from memcube.messages import Turn, to_turn
from memcube.plaintext.context import attach_context

log = logging.getLogger(__name__)

Extractor = Callable[[Sequence[Turn], dict[str, Any]], list[dict[str, Any]]]


class ReadResult(list[MemoryItem]):
    """The memories a read produced (a plain list), plus :attr:`problems`: what the extractor
    could not use (the raw turns were stored regardless)."""

    problems: list[ExtractionProblem]

    def __init__(
        self, items: Iterable[MemoryItem] = (), problems: Iterable[ExtractionProblem] = ()
    ) -> None:
        super().__init__(items)
        self.problems = list(problems)


def default_extractor(turns: Sequence[Turn], context: dict[str, Any]) -> list[dict[str, Any]]:
    """Every remembered turn as an episodic memory, plus first-person facts and preferences."""
    return turn_memories(turns, context) + rule_facts(turns, context)


def _positional_arity(fn: Any) -> int | None:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))


def _as_extractor(extractor: Any) -> Extractor:
    if extractor is None:
        return default_extractor
    if isinstance(extractor, str) and extractor == "turns":
        return turn_memories
    if isinstance(extractor, LLMExtractor):
        return extractor
    if hasattr(extractor, "invoke"):  # a chat model given directly
        return LLMExtractor(extractor)
    if callable(extractor):
        if _positional_arity(extractor) == 1:  # a plain ``str -> str`` model
            return LLMExtractor(extractor)
        return extractor  # type: ignore[no-any-return]
    raise TypeError(
        "extractor must be None (rules), 'turns', an LLMExtractor, a chat model, a str -> str "
        "callable, or a callable (turns, context) -> list[dict]."
    )


def _with_turn_context(drafts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each turn memory the turn before it as retrieval context (see
    :mod:`memcube.plaintext.context`): "A sunset!" is found from "What did you paint?"."""
    turn_idx = [
        i
        for i, d in enumerate(drafts)
        if isinstance(d, dict)
        and str(getattr(d.get("memory_type"), "value", d.get("memory_type"))) == "episodic"
    ]
    for i, draft in zip(turn_idx, attach_context([drafts[i] for i in turn_idx])):
        drafts[i] = draft  # type: ignore[assignment]
    return drafts


def read_messages(
    messages: Iterable[Any],
    *,
    user_id: str,
    agent_id: str | None = None,
    session_id: str | None = None,
    timestamp: datetime | None = None,
    extractor: Any = None,
    roles: Sequence[str] = REMEMBERED_ROLES,
    fact_roles: Sequence[str] = FACT_ROLES,
) -> ReadResult:
    """Normalize messages and run the extractor; returns validated, unsaved items and the
    problems the extractor reported."""
    turns = [to_turn(m) for m in messages]
    context: dict[str, Any] = {
        "user_id": user_id,
        "session_id": session_id,
        "timestamp": as_utc(timestamp) if timestamp else utcnow(),
        "roles": tuple(roles),
        "fact_roles": tuple(fact_roles),
        "problems": [],
    }
    drafts = _with_turn_context(_as_extractor(extractor)(turns, context))
    problems: list[ExtractionProblem] = list(context["problems"])
    flagged = {mid: p for p in problems for mid in p.message_ids}
    items = []
    for d in drafts:
        fields = {"user_id": user_id, "agent_id": agent_id, "session_id": session_id, **d}
        prov = fields.get("provenance")
        if isinstance(prov, Provenance) and prov.source == "message":
            hit = next((flagged[m] for m in prov.message_ids if m in flagged), None)
            if hit is None and problems and not prov.message_ids:
                hit = problems[0]
            if hit is not None:
                fields["provenance"] = prov.model_copy(
                    update={"detail": {**prov.detail, "extraction_problem": hit.message}}
                )
        items.append(build_item(**fields))
    for p in problems:
        log.warning("extractor %s: %s (the raw turns were stored)", p.extractor, p.message)
    return ReadResult(items, problems)


__all__ = [
    "FACT_ROLES",
    "REMEMBERED_ROLES",
    "ReadResult",
    "default_extractor",
    "read_messages",
    "turn_memories",
]
