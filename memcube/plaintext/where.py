"""The ``where`` clause of a read, over record views (:func:`memcube.plaintext.records.record_view`).

Chroma runs the part of a clause on keys it stores (:func:`~memcube.plaintext.records.chroma_part`)
and the rest is checked in process; callers need not care which part is which.

Example:
    >>> build_where(scope={"live_user_id": {"$eq": "ana"}}, memory_types=["fact"], check_expiry=False)
    {'$and': [{'live_user_id': {'$eq': 'ana'}}, {'memory_type': {'$in': ['fact']}}]}
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from memcube.errors import InvalidInputError
from memcube.items import MemoryType, check_scope_id, utcnow
from memcube.plaintext.records import and_, translate_filters, ts


def build_where(
    *,
    scope: dict[str, Any] | None,
    agent_id: str | None = None,
    session_id: str | None = None,
    filters: dict[str, Any] | None = None,
    memory_types: Sequence[MemoryType | str] | None = None,
    tags: Sequence[str] | None = None,
    time_range: tuple[datetime | None, datetime | None] | None = None,
    include_archived: bool = False,
    check_expiry: bool = True,
) -> dict[str, Any] | None:
    """The clause of the memories a read admits.

    Args:
        scope: the clause of the memories the reader may see (from access control), or
            ``None`` for the application (every user's memories).
        check_expiry: with ``False`` expired memories are not excluded here and the caller must
            drop them (search does, which keeps its filter cheap).
        The other arguments are those of :meth:`memcube.MemCube.search`.
    """
    check_scope_id(agent_id, "agent_id")
    check_scope_id(session_id, "session_id")
    clauses: list[dict[str, Any] | None] = []
    if scope is not None:
        clauses.append(scope)
    elif not include_archived:
        clauses.append({"live": {"$eq": True}})
    if agent_id is not None:
        clauses.append({"agent_id": {"$eq": agent_id}})
    if session_id is not None:
        clauses.append({"session_id": {"$eq": session_id}})
    if not include_archived and check_expiry:
        clauses.append({"expires_ts": {"$gt": utcnow().timestamp()}})
    if memory_types:
        try:
            values = sorted({MemoryType(t).value for t in memory_types})
        except ValueError as exc:
            kinds = [t.value for t in MemoryType]
            raise InvalidInputError(f"{exc}; memory types are {kinds}.") from None
        clauses.append({"memory_type": {"$in": values}})
    for tag in tags or ():
        clauses.append({f"tag:{tag}": {"$eq": True}})
    if time_range is not None:
        start, end = time_range
        if start is not None:
            clauses.append({"time_ts": {"$gte": ts(start)}})
        if end is not None:
            clauses.append({"time_ts": {"$lte": ts(end)}})
    clauses.append(translate_filters(filters))
    return and_(*clauses)


__all__ = ["build_where"]
