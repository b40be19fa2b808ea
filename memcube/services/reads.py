"""Scoped reads: by id, by relevance, and listings. Access control decides what a user may see;
every read is audited (as a read, see :class:`~memcube.audit.AuditConfig`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from memcube.access import Governance
from memcube.audit import AuditLog
from memcube.errors import InvalidInputError, ItemNotFoundError, VersionNotFoundError
from memcube.items import HIDDEN_STATES, MemoryItem, MemoryType, SearchHit, check_scope_id
from memcube.plaintext.repository import PAGE_SIZE, ItemRepository
from memcube.plaintext.retrieval import Retriever
from memcube.plaintext.where import build_where
from memcube.ports import UsageSink
from memcube.services.ranking_store import RankingProfiles


class Reads:
    """The read operations of one cube."""

    def __init__(
        self,
        repository: ItemRepository,
        retriever: Retriever,
        governance: Governance,
        audit: AuditLog,
        usage: UsageSink,
        profiles: RankingProfiles | None = None,
    ) -> None:
        self.repository = repository
        self.retriever = retriever
        self.governance = governance
        self.audit = audit
        self.usage = usage
        #: Per-user ranking learned from feedback (``None``: the static ranker).
        self.profiles = profiles

    # ------------------------------------------------------------------ by id
    def load(self, id: str, user_id: str | None) -> MemoryItem:
        """The current version of ``id`` if ``user_id`` may read it, else ItemNotFoundError.
        Not audited: callers record their own operation."""
        if not isinstance(id, str) or not id:
            raise InvalidInputError(f"memory ids are non-empty strings, got {id!r}.")
        check_scope_id(user_id, "user_id")
        item = self.repository.get_one(id)
        if item is None:
            raise ItemNotFoundError(f"no memory with id {id!r}.")
        if not self.governance.can_read(item, user_id):
            raise ItemNotFoundError(f"no memory with id {id!r} for user {user_id!r}.")
        return item

    def get(self, id: str, user_id: str | None, *, include_archived: bool) -> MemoryItem:
        item = self.load(id, user_id)
        if not include_archived and item.state in HIDDEN_STATES:
            raise ItemNotFoundError(f"memory {id!r} is {item.state.value}.")
        self.audit.record("get", user_id, [id], read=True)
        return item

    def get_many(self, ids: Sequence[str], user_id: str | None) -> list[MemoryItem]:
        check_scope_id(user_id, "user_id")
        if not ids:
            return []
        found = self.repository.get(list(ids))
        out = [found[i] for i in ids if i in found and self.governance.can_read(found[i], user_id)]
        self.audit.record("get_many", user_id, [it.id for it in out], read=True)
        return out

    def history(self, id: str, user_id: str | None) -> list[MemoryItem]:
        """Every version, oldest first, ending with the current one."""
        current = self.load(id, user_id)
        self.audit.record("history", user_id, [id], read=True)
        old = self.repository.old_versions(id)
        versions = {it.version: it for it in old if it.version < current.version}
        return [versions[v] for v in sorted(versions)] + [current]

    def get_version(self, id: str, version: int, user_id: str | None) -> MemoryItem:
        for it in self.history(id, user_id):
            if it.version == version:
                return it
        raise VersionNotFoundError(f"memory {id!r} has no version {version}.")

    # ------------------------------------------------------------------ by relevance
    def where(
        self,
        *,
        user_id: str | None,
        include_archived: bool = False,
        include_shared: bool = False,
        **conditions: Any,
    ) -> dict[str, Any] | None:
        """The clause of what ``user_id`` may read under ``conditions`` (see
        :func:`~memcube.plaintext.where.build_where`)."""
        scope = None
        if user_id is not None:
            # Access control decides what the user may read (own memories, plus shared ones).
            scope = self.governance.scope_clause(
                user_id, include_archived=include_archived, include_shared=include_shared
            )
        return build_where(scope=scope, include_archived=include_archived, **conditions)

    def search(
        self,
        query: str,
        *,
        user_id: str,
        k: int,
        filters: dict[str, Any] | None = None,
        memory_types: Sequence[MemoryType | str] | None = None,
        tags: Sequence[str] | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        time_range: tuple[datetime | None, datetime | None] | None = None,
        include_archived: bool = False,
        count_usage: bool = True,
        include_shared: bool = True,
        min_score: float | None = None,
    ) -> list[SearchHit]:
        where = self.where(
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            filters=filters,
            memory_types=memory_types,
            tags=tags,
            time_range=time_range,
            include_archived=include_archived,
            check_expiry=False,
            include_shared=include_shared,
        )
        live_only = not include_archived
        learned = self.profiles.personalization(user_id) if self.profiles is not None else None
        hits = self.retriever.search(query, where=where, k=k, live_only=live_only, learned=learned)
        if not include_archived:
            # Expired items are dropped here rather than in the where clause (it stays cheap);
            # the lifecycle sweep archives them, so widening is rarely needed.
            want = k
            while True:
                live = [h for h in hits if not h.item.is_expired]
                if len(live) == len(hits) or len(hits) < want:
                    hits = live[:k]
                    break
                want *= 4
                hits = self.retriever.search(
                    query, where=where, k=want, live_only=live_only, learned=learned
                )
        if min_score is not None:
            hits = [h for h in hits if h.score >= min_score]
        if count_usage:
            self.usage.record_usage([h.item.id for h in hits])
        if self.profiles is not None:  # what a later bare feedback vote is about
            self.profiles.note_search(user_id, query, [h.item.id for h in hits])
        cfg = self.audit.config
        self.audit.record(
            "search",
            user_id,
            [h.item.id for h in hits],
            {"query": query[: cfg.max_query_chars]} if cfg.max_query_chars else None,
            read=True,
        )
        return hits

    # ------------------------------------------------------------------ listings
    def items(
        self,
        *,
        user_id: str | None,
        include_archived: bool,
        filters: dict[str, Any] | None,
        batch_size: int,
        tags: Sequence[str] | None,
        include_shared: bool,
    ) -> Iterator[MemoryItem]:
        where = self.where(
            user_id=user_id,
            filters=filters,
            tags=tags,
            include_archived=include_archived,
            include_shared=include_shared,
        )
        self.audit.record("items", user_id, (), read=True)
        yield from self.repository.select(where, batch_size=batch_size)

    def count(self, *, user_id: str | None, include_archived: bool, include_shared: bool) -> int:
        if user_id is None and include_archived:
            return self.repository.count(None)
        where = self.where(
            user_id=user_id, include_archived=include_archived, include_shared=include_shared
        )
        return self.repository.count(where)

    def user_ids(self) -> list[str]:
        """Every user that owns at least one memory."""
        every = self.items(
            user_id=None,
            include_archived=True,
            filters=None,
            batch_size=PAGE_SIZE,
            tags=None,
            include_shared=False,
        )
        return sorted({it.user_id for it in every})


__all__ = ["Reads"]
