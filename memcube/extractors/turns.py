"""Turns as memories (no model), and the vocabulary every extractor shares: the default roles
and :class:`ExtractionProblem`.

Example:
    >>> from datetime import datetime, timezone
    >>> from memcube.messages import Turn
    >>> ctx = {"timestamp": datetime(2024, 5, 10, tzinfo=timezone.utc)}
    >>> [d["metadata"]["mentions_phrase"] for d in turn_memories([Turn("user", "We met last Friday")], ctx)]
    ['last Friday']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memcube.dates import find_dates
from memcube.items import MemoryType, Provenance
from memcube.messages import Turn

#: Roles whose turns are remembered by default.
REMEMBERED_ROLES = ("user", "assistant")
#: Roles whose first-person statements become facts and preferences, by default.
FACT_ROLES = ("user",)


@dataclass(frozen=True)
class ExtractionProblem:
    """Something an extractor could not use. The turns it concerns were still stored."""

    extractor: str
    message: str
    output: str | None = None
    message_ids: tuple[str, ...] = ()


def turn_memories(turns: Sequence[Turn], context: dict[str, Any]) -> list[dict[str, Any]]:
    """One episodic memory per remembered turn."""
    out = []
    for turn in turns:
        if turn.role not in context.get("roles", REMEMBERED_ROLES) or not turn.content.strip():
            continue
        when = turn.timestamp or context["timestamp"]
        md: dict[str, Any] = {"role": turn.role, **({"speaker": turn.name} if turn.name else {})}
        dates = find_dates(turn.content, when)
        if dates:
            md["mentions_time"] = dates[0].when.isoformat()
            md["mentions_phrase"] = dates[0].phrase
        out.append(
            {
                "content": turn.content,
                "memory_type": MemoryType.EPISODIC,
                "event_time": when,
                "metadata": md,
                "provenance": Provenance(
                    source="message",
                    extractor="turns",
                    message_ids=[turn.id] if turn.id else [],
                ),
            }
        )
    return out


__all__ = ["FACT_ROLES", "REMEMBERED_ROLES", "ExtractionProblem", "turn_memories"]
