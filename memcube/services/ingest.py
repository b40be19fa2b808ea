"""Conversations into memories: the reader turns messages into memories, the write pipeline
stores them (merged with what the cube holds), and what the extractor could not use is audited."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from memcube.audit import AuditLog
from memcube.plaintext.repository import PAGE_SIZE
from memcube.reader import FACT_ROLES, REMEMBERED_ROLES, ReadResult, read_messages
from memcube.services.writes import Writes


def add_messages(
    writes: Writes,
    audit: AuditLog,
    messages: Iterable[Any],
    *,
    user_id: str,
    agent_id: str | None,
    session_id: str | None,
    timestamp: datetime | None,
    extractor: Any,
    roles: Sequence[str] | None,
    fact_roles: Sequence[str] | None,
) -> ReadResult:
    """See :meth:`memcube.MemCube.add_messages`."""
    items = read_messages(
        messages,
        user_id=user_id,
        agent_id=agent_id,
        session_id=session_id,
        timestamp=timestamp,
        extractor=extractor,
        roles=REMEMBERED_ROLES if roles is None else tuple(roles),
        fact_roles=FACT_ROLES if fact_roles is None else tuple(fact_roles),
    )
    stored = writes.add_many(
        items, user_id=None, batch_size=PAGE_SIZE, progress=False, on_batch=None, merge=True
    )
    for p in items.problems:
        audit.record(
            "extraction_problem",
            user_id,
            [it.id for it in stored if set(it.provenance.message_ids) & set(p.message_ids)],
            {"extractor": p.extractor, "message": p.message},
        )
    return ReadResult(stored, items.problems)


__all__ = ["add_messages"]
