"""The reader: turns conversations into memories.

The default extractor needs no LLM: every user and assistant turn is kept as an episodic memory
with its speaker, time and message id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from memcube.items import MemoryItem, MemoryType, Provenance, as_utc, build_item, utcnow
from memcube.messages import Turn, to_turn

#: Roles whose turns are remembered by default.
REMEMBERED_ROLES = ("user", "assistant")

Extractor = Callable[[Sequence[Turn], dict[str, Any]], list[dict[str, Any]]]


def turn_memories(turns: Sequence[Turn], context: dict[str, Any]) -> list[dict[str, Any]]:
    """Default extractor: one episodic memory per remembered turn."""
    out = []
    for turn in turns:
        if turn.role not in context.get("roles", REMEMBERED_ROLES) or not turn.content.strip():
            continue
        out.append(
            {
                "content": turn.content,
                "memory_type": MemoryType.EPISODIC,
                "event_time": turn.timestamp or context["timestamp"],
                "metadata": {"role": turn.role, **({"speaker": turn.name} if turn.name else {})},
                "provenance": Provenance(
                    source="message",
                    extractor="turns",
                    message_ids=[turn.id] if turn.id else [],
                ),
            }
        )
    return out


def read_messages(
    messages: Iterable[Any],
    *,
    user_id: str,
    agent_id: str | None = None,
    session_id: str | None = None,
    timestamp: datetime | None = None,
    extractor: Extractor | None = None,
    roles: Sequence[str] = REMEMBERED_ROLES,
) -> list[MemoryItem]:
    """Normalize messages and run the extractor; returns validated, unsaved items."""
    turns = [to_turn(m) for m in messages]
    context = {
        "user_id": user_id,
        "session_id": session_id,
        "timestamp": as_utc(timestamp) if timestamp else utcnow(),
        "roles": tuple(roles),
    }
    drafts = (extractor or turn_memories)(turns, context)
    items = []
    for d in drafts:
        fields = {"user_id": user_id, "agent_id": agent_id, "session_id": session_id, **d}
        items.append(build_item(**fields))
    return items
