"""The audit log: an append-only record of every operation on a cube.

Audit (:meth:`MemCube.audit`)
    Every operation is recorded as an :class:`AuditEntry` (who, what, when, which items) in the
    cube's ``audit`` collection. Entries are queued when the operation finishes and written in
    the background (see :mod:`memcube.outbox`): entries of writes within
    :attr:`AuditConfig.interval` (2 s), all of an interval in one Chroma call; entries of reads
    (``search``, ``get``...) with the next write or every 64 entries; and everything on
    :meth:`MemCube.flush`, on close and before :meth:`AuditLog.query`. So an add stays one Chroma
    round trip and searching stays as cheap as raw Chroma. A process killed hard loses at most
    the entries not yet written (``MemCube.open(..., publish_interval=0)`` writes the entry of
    each write before the operation returns). See :class:`AuditConfig`.

    Entries are stored in *pages*: one Chroma record per write of the outbox (up to
    :data:`PAGE_ENTRIES` entries as JSON, with the page's first and last time as filterable keys
    and no document). With one record per entry (a search's entry is a record too) a flush of one
    busy client took 47 ms p50 against 21 ms as one page (measured under mixed add/search
    traffic). A query reads the pages of its time range and checks every other condition in
    process.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from memcube.checks import is_int, is_number
from memcube.errors import InvalidInputError
from memcube.items import as_utc, check_scope_id
from memcube.outbox import Outbox
from memcube.plaintext.backend import ChromaBackend

#: The actor recorded for calls made without a user (the application / an administrator).
ADMIN_ACTOR = "*"


@dataclass(frozen=True)
class AuditEntry:
    """One recorded operation."""

    id: str
    time: datetime
    actor: str
    op: str
    item_ids: tuple[str, ...]
    detail: dict[str, Any]


@dataclass
class AuditConfig:
    """Attributes:
    enabled: record anything at all.
    log_reads: record reads (search, get, working memory...), not only writes.
    max_query_chars: how much of a search query is kept in the entry (0: none).
    interval: seconds within which the entries of writes are stored. The cube's
        ``publish_interval`` applies if it is longer, and with ``publish_interval=0`` every
        entry is stored before its operation returns. A process killed hard loses at most this
        much of its trail. Each busy process writes one page per interval,
        and single-node Chroma runs writes one at a time, so a shorter interval delays memory
        writes of every process.
    """

    enabled: bool = True
    log_reads: bool = True
    max_query_chars: int = 200
    interval: float = 2.0

    def validate(self) -> AuditConfig:
        """Check the values; raises InvalidInputError naming the bad field. Returns self."""
        v = self.interval
        if not is_number(v) or not 0 <= v <= 60:
            raise InvalidInputError("AuditConfig.interval must be between 0 and 60 seconds.")
        n = self.max_query_chars
        if not is_int(n) or n < 0:
            raise InvalidInputError("AuditConfig.max_query_chars must be an integer >= 0.")
        return self


#: Most entries stored in one Chroma record.
PAGE_ENTRIES = 256


class AuditLog:
    """Append-only log of operations in the cube's ``audit`` Chroma collection, written through
    the cube's :class:`~memcube.outbox.Outbox`."""

    def __init__(
        self, backend: ChromaBackend, config: AuditConfig | None = None, *, outbox: Outbox
    ) -> None:
        self.backend = backend
        self.config = (config or AuditConfig()).validate()
        self.outbox = outbox
        outbox.channel("audit", self._write, interval=self.config.interval)

    def record(
        self,
        op: str,
        actor: str | None,
        item_ids: Sequence[str] = (),
        detail: dict[str, Any] | None = None,
        *,
        read: bool = False,
    ) -> None:
        """Record one operation (queued; see the module docstring)."""
        cfg = self.config
        if not cfg.enabled or (read and not cfg.log_reads):
            return
        now = time.time()
        entry = {
            "id": f"{now:.6f}-{uuid.uuid4().hex[:12]}",
            "ts": now,
            "actor": ADMIN_ACTOR if actor is None else actor,
            "op": op,
            "ids": list(dict.fromkeys(item_ids)),
            # Serialised now: the caller may change its dict after the operation returns.
            "detail": json.dumps(detail or {}, default=str),
        }
        self.outbox.put("audit", [entry], urgent=not read)

    def _write(self, entries: list[dict[str, Any]]) -> None:
        """Store queued entries as pages (one Chroma call)."""
        pages = [entries[i : i + PAGE_ENTRIES] for i in range(0, len(entries), PAGE_ENTRIES)]
        firsts = [min(e["ts"] for e in page) for page in pages]
        self.backend.upsert(
            self.backend.audit,
            [page[0]["id"] for page in pages],  # a replayed write rewrites the same pages
            embeddings=[[first % 1e6] for first in firsts],
            documents=None,
            metadatas=[
                {"ts": first, "ts_max": max(e["ts"] for e in page), "entries": json.dumps(page)}
                for first, page in zip(firsts, pages)
            ],
        )

    def flush(self) -> None:
        """Write queued entries (and everything else the outbox holds) now."""
        self.outbox.flush()

    def query(
        self,
        *,
        actor: str | None = None,
        op: str | Sequence[str] | None = None,
        item_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Entries matching every given condition, oldest first (the newest ``limit``)."""
        self.flush()
        if actor is not None:
            check_scope_id(actor, "actor")
        ops = None if op is None else {op} if isinstance(op, str) else set(op)
        start = None if since is None else as_utc(since).timestamp()
        end = None if until is None else as_utc(until).timestamp()
        clauses: list[dict[str, Any]] = []
        if (
            start is not None
        ):  # a page overlaps the range; an entry of the earlier layout has "ts" only
            clauses.append({"$or": [{"ts_max": {"$gte": start}}, {"ts": {"$gte": start}}]})
        if end is not None:
            clauses.append({"ts": {"$lte": end}})
        where = None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        res = self.backend.get(self.backend.audit, where=where, include=("metadatas", "documents"))
        out = []
        for rid, md, doc in zip(res["ids"], res["metadatas"], res["documents"]):
            for e in _entries(rid, md, doc):
                if (
                    (actor is not None and e.actor != actor)
                    or (ops is not None and e.op not in ops)
                    or (item_id is not None and item_id not in e.item_ids)
                    or (start is not None and e.time.timestamp() < start)
                    or (end is not None and e.time.timestamp() > end)
                ):
                    continue
                out.append(e)
        out.sort(key=lambda e: (e.time, e.id))
        if limit is not None:
            if limit < 1:
                raise InvalidInputError("limit must be a positive integer.")
            out = out[-limit:]
        return out


def _entries(record_id: str, md: dict[str, Any], document: str | None) -> list[AuditEntry]:
    """The entries of one stored audit record: a page, or one entry of the earlier layout (one
    record per entry, its item ids in the document)."""
    if "entries" in md:
        rows = json.loads(md["entries"])
    else:
        rows = [
            {
                "id": record_id, "ts": md["ts"], "actor": md["actor"], "op": md["op"],
                "ids": [x for x in (document or "").split() if x != "-"],
                "detail": md.get("detail") or "{}",
            }
        ]  # fmt: skip
    return [
        AuditEntry(
            id=r["id"],
            time=datetime.fromtimestamp(r["ts"], timezone.utc),
            actor=r["actor"],
            op=r["op"],
            item_ids=tuple(r["ids"]),
            detail=json.loads(r["detail"]),
        )
        for r in rows
    ]


__all__ = ["ADMIN_ACTOR", "PAGE_ENTRIES", "AuditConfig", "AuditEntry", "AuditLog"]
