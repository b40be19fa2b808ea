"""The one reader and writer of a cube's item and history collections.

Every write goes through :class:`ItemRepository`, and the repository itself tells the
:class:`~memcube.plaintext.retrieval.Retriever` about it (grow the cached indexes after plain
inserts, discard them after anything else), so no write path can leave search results stale.

Records are stored in the layout of :mod:`memcube.plaintext.records`. Old versions live in the
history collection under ``<item id>@<version>``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from memcube.items import MemoryItem
from memcube.plaintext.backend import ChromaBackend
from memcube.plaintext.embedder import Embedder, check_vectors
from memcube.plaintext.records import (
    LOOKUP_HASH,
    LOOKUP_SCOPE,
    LOOKUP_SUBJECT,
    chroma_part,
    item_to_metadata,
    metadata_to_item,
    needs_check,
    record_view,
)
from memcube.plaintext.retrieval import Retriever
from memcube.plaintext.wherefilter import matches

#: Records read or written per Chroma call when a caller hands over many at once.
PAGE_SIZE = 256
#: Id of the record (in the retrieval side collection) saying the items use the current layout.
RECORD_LAYOUT_ID = "record-layout:2"

#: ``(new, previous)``: a record and the stored one it replaces (``None`` for a new record).
Replacement = tuple[MemoryItem, MemoryItem | None]


def history_id(item_id: str, version: int) -> str:
    """The history record id of one version of a memory."""
    return f"{item_id}@{version}"


class ItemRepository:
    """Items and their history in Chroma, kept consistent with the retriever's caches.

    Args:
        backend: the cube's Chroma collections.
        retriever: told about every write.
        embedder: embeds the index text of written items.
        dimension: the cube's embedding dimension (vectors of another size are refused).
        merge_types: memory types that carry the lifecycle's lookup keys.

    ``lock`` serializes read-modify-write sequences of the services above (an ``RLock``).
    """

    def __init__(
        self,
        backend: ChromaBackend,
        retriever: Retriever,
        embedder: Embedder,
        *,
        dimension: int,
        merge_types: frozenset[str],
    ) -> None:
        self.backend = backend
        self.retriever = retriever
        self.embedder = embedder
        self.dimension = dimension
        self.merge_types = merge_types
        self.lock = threading.RLock()

    # ------------------------------------------------------------------ reads
    def metadata(
        self,
        item: MemoryItem,
        previous: MemoryItem | None = None,
        *,
        view: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The Chroma metadata of ``item`` (replacing ``previous``)."""
        return item_to_metadata(item, previous, merge_types=self.merge_types, view=view)

    def get(self, ids: Sequence[str]) -> dict[str, MemoryItem]:
        """The stored records of these ids (those that exist), read by id, in pages."""
        found: dict[str, MemoryItem] = {}
        for start in range(0, len(ids), PAGE_SIZE):
            res = self.backend.get(self.backend.items, ids=list(ids[start : start + PAGE_SIZE]))
            found.update((i, metadata_to_item(md)) for i, md in zip(res["ids"], res["metadatas"]))
        return found

    def get_one(self, id: str) -> MemoryItem | None:
        """The stored record of ``id``, or ``None``."""
        res = self.backend.get(self.backend.items, ids=[id])
        return metadata_to_item(res["metadatas"][0]) if res["ids"] else None

    def select(
        self, where: dict[str, Any] | None, *, batch_size: int = PAGE_SIZE
    ) -> Iterator[MemoryItem]:
        """The stored memories ``where`` admits, page by page: Chroma runs the part of the clause
        on keys it holds, and the rest is checked here on each record's view."""
        stored, check = chroma_part(where), needs_check(where)
        offset = 0
        while True:
            res = self.backend.get(
                self.backend.items, where=stored, limit=batch_size, offset=offset
            )
            if not res["ids"]:
                return
            for md in res["metadatas"]:
                item = metadata_to_item(md)
                if not check or matches(where, record_view(item)):
                    yield item
            offset += len(res["ids"])

    def count(self, where: dict[str, Any] | None) -> int:
        """How many stored memories ``where`` admits."""
        if where is None:
            return self.backend.count(self.backend.items)
        if needs_check(where):
            return sum(1 for _ in self.select(where))
        return len(self.backend.get(self.backend.items, where=where, include=())["ids"])

    def old_versions(self, id: str) -> list[MemoryItem]:
        """The versions of ``id`` kept in history (any order; may hold stray copies)."""
        res = self.backend.get(self.backend.history, where={"item_id": id})
        return [metadata_to_item(md) for md in res["metadatas"]]

    # ------------------------------------------------------------------ duplicate lookups
    def by_subject(self, scopes: Sequence[str], subjects: Sequence[str]) -> list[MemoryItem]:
        """Memories in these lookup scopes whose subject is one of ``subjects``."""
        where = {
            "$and": [
                {LOOKUP_SCOPE: {"$in": list(scopes)}},
                {LOOKUP_SUBJECT: {"$in": list(subjects)}},
            ]
        }
        res = self.backend.get(self.backend.items, where=where)
        return [metadata_to_item(md) for md in res["metadatas"]]

    def by_hash(self, scopes: Sequence[str], hashes: Sequence[str]) -> list[MemoryItem]:
        """Memories in these lookup scopes whose content hash is one of ``hashes``."""
        where = {
            "$and": [{LOOKUP_SCOPE: {"$in": list(scopes)}}, {LOOKUP_HASH: {"$in": list(hashes)}}]
        }
        res = self.backend.get(self.backend.items, where=where)
        return [metadata_to_item(md) for md in res["metadatas"]]

    def nearest(
        self, scope: str, vectors: Sequence[Sequence[float]]
    ) -> list[tuple[float, MemoryItem] | None]:
        """Per vector, the most similar memory of ``scope`` and its cosine similarity."""
        res = self.backend.query_many(self.backend.items, vectors, n=1, where={LOOKUP_SCOPE: scope})
        return [
            (1.0 - float(dists[0]), metadata_to_item(mds[0])) if mds else None
            for mds, dists in zip(res["metadatas"], res["distances"])
        ]

    # ------------------------------------------------------------------ writes
    def embed(self, items: Sequence[MemoryItem]) -> tuple[list[str], list[list[float]]]:
        """The index texts of ``items`` and their embeddings (checked against the cube's)."""
        texts = [self.retriever.index_text(it) for it in items]
        vectors = self.embedder.embed_documents(texts)
        check_vectors(vectors, self.dimension, self.embedder.model_id)
        return texts, [list(v) for v in vectors]

    def store(
        self,
        upserts: Sequence[tuple[MemoryItem, Sequence[float], MemoryItem | None]],
        *,
        history: Sequence[MemoryItem] = (),
        metadata_updates: Sequence[tuple[MemoryItem, MemoryItem]] = (),
        fresh: bool = False,
    ) -> None:
        """Write a batch: ``history`` versions first (a crash after it leaves an extra copy of
        an old version, never a lost one), then the item records ``(item, vector, replaced)``
        in one Chroma call, then metadata-only rewrites ``(new, old)``. ``fresh``: every item
        id was generated for this batch, so nothing is stored under it yet and a Chroma add
        (cheaper than an upsert) is enough."""
        with self.lock:
            if history:
                self.put_history(history)
            views = [record_view(it) for it, _, _ in upserts]
            documents = [self.retriever.index_text(it) for it, _, _ in upserts]
            if upserts:
                write = self.backend.add if fresh else self.backend.upsert
                write(
                    self.backend.items,
                    [it.id for it, _, _ in upserts],
                    embeddings=[list(v) for _, v, _ in upserts],
                    documents=documents,
                    metadatas=[
                        self.metadata(it, prev, view=v) for (it, _, prev), v in zip(upserts, views)
                    ],
                )
            if metadata_updates:
                self.backend.update_metadata(
                    self.backend.items,
                    [it.id for it, _ in metadata_updates],
                    [self.metadata(it, prev) for it, prev in metadata_updates],
                )
            replaced = any(prev is not None for _, _, prev in upserts)
            if history or metadata_updates or replaced:
                users = {it.user_id for it, _, _ in upserts} | {
                    it.user_id for it, _ in metadata_updates
                }
                self.retriever.invalidate(users | {it.user_id for it in history})
            elif upserts:  # only new records: the cached indexes grow instead of reloading
                self.retriever.added(
                    [it for it, _, _ in upserts], views, documents, [v for _, v, _ in upserts]
                )

    def write(
        self, items: Sequence[MemoryItem], previous: Sequence[MemoryItem] | None = None
    ) -> None:
        """Embed and upsert current versions, one Chroma call (all or nothing). ``previous`` are
        the records being replaced (same order), so their stale keys are cleared."""
        if not items:
            return
        texts, vectors = self.embed(items)
        prev: list[MemoryItem | None] = list(previous) if previous else [None] * len(items)
        with self.lock:
            self.backend.upsert(
                self.backend.items,
                [it.id for it in items],
                embeddings=vectors,
                documents=texts,
                metadatas=[self.metadata(it, p) for it, p in zip(items, prev)],
            )
        self.retriever.invalidate({it.user_id for it in items})

    def rewrite(self, records: Sequence[Replacement]) -> None:
        """Rewrite records' metadata in place (same content, so no re-embedding)."""
        if not records:
            return
        with self.lock:
            self.backend.update_metadata(
                self.backend.items,
                [new.id for new, _ in records],
                [self.metadata(new, old) for new, old in records],
            )
        self.retriever.invalidate({new.user_id for new, _ in records})

    def put_history(self, items: Sequence[MemoryItem]) -> None:
        """Keep these versions in history (idempotent: keyed by id and version)."""
        for start in range(0, len(items), PAGE_SIZE):
            page = items[start : start + PAGE_SIZE]
            self.backend.upsert(
                self.backend.history,
                [history_id(it.id, it.version) for it in page],
                embeddings=None,
                documents=None,
                metadatas=[
                    {
                        "json": it.model_dump_json(),
                        "item_id": it.id,
                        "version": it.version,
                        "user_id": it.user_id,
                    }
                    for it in page
                ],
            )

    def purge(self, item: MemoryItem) -> None:
        """Remove a memory and every stored version of it."""
        with self.lock:
            self.backend.delete(self.backend.history, where={"item_id": item.id})
            self.backend.delete(self.backend.items, ids=[item.id])
        self.retriever.invalidate({item.user_id})

    def purge_many(self, items: Sequence[MemoryItem]) -> None:
        """Remove memories and every stored version of them, a page per Chroma call."""
        with self.lock:
            for start in range(0, len(items), PAGE_SIZE):
                ids = [it.id for it in items[start : start + PAGE_SIZE]]
                self.backend.delete(self.backend.history, where={"item_id": {"$in": ids}})
                self.backend.delete(self.backend.items, ids=ids)
        if items:
            self.retriever.invalidate({it.user_id for it in items})

    def count_usage(
        self,
        pending: Mapping[str, tuple[int, datetime]],
        promote: Callable[[MemoryItem, datetime], MemoryItem],
    ) -> None:
        """Add access counts (id to ``(uses, last access)``) to the stored records. ``promote``
        may change an item's state as its count grows (the scheduler's policy). Only the keys
        that changed are written: Chroma merges, and every key it rewrites costs."""
        with self.lock:  # the read-modify-write must not interleave with new versions
            res = self.backend.get(self.backend.items, ids=list(pending))
            ids, changes, views = [], [], []
            for i, md in zip(res["ids"], res["metadatas"]):
                old = metadata_to_item(md)
                n, last = pending[i]
                item = old.model_copy(
                    update={"access_count": old.access_count + n, "last_accessed_at": last}
                )
                item = promote(item, last)
                view = record_view(item)
                new = self.metadata(item, old, view=view)
                ids.append(i)
                changes.append({k: v for k, v in new.items() if md.get(k) != v})
                views.append(view)
            self.backend.update_metadata(self.backend.items, ids, changes)
            self.retriever.usage_updated(dict(zip(ids, views)))

    # ------------------------------------------------------------------ layout upgrade
    def upgrade_records(self) -> None:
        """Bring records of the earlier layout (every view key stored in Chroma) to the current
        one (:mod:`memcube.plaintext.records`), once per cube: they gain the lifecycle's lookup
        keys, so duplicates of them are still found, and lose the keys Chroma no longer needs.
        Idempotent, so processes opening the cube at once may both run it."""
        state = self.retriever.state_collection
        if self.backend.get(state, ids=[RECORD_LAYOUT_ID])["ids"]:
            return
        offset = 0
        while True:
            res = self.backend.get(self.backend.items, limit=PAGE_SIZE, offset=offset)
            if not res["ids"]:
                break
            ids, changes = [], []
            for id_, md in zip(res["ids"], res["metadatas"]):
                new = self.metadata(metadata_to_item(md))
                change = {**{k: None for k in md if k not in new}, **new}
                if any(md.get(k) != v for k, v in change.items()):
                    ids.append(id_)
                    changes.append(change)
            self.backend.update_metadata(self.backend.items, ids, changes)
            offset += len(res["ids"])
        self.backend.upsert(
            state,
            [RECORD_LAYOUT_ID],
            embeddings=None,
            documents=None,
            metadatas=[{"record_layout": 2}],
        )


__all__ = ["PAGE_SIZE", "RECORD_LAYOUT_ID", "ItemRepository", "Replacement", "history_id"]
