"""Lifecycle: what happens to a memory between being written and being forgotten.

States (:class:`~memcube.items.LifecycleState`): ``generated`` (new) -> ``activated`` (promoted
into activation memory by the scheduler) -> ``merged`` (a duplicate was folded into it) ->
``archived`` (deleted softly) -> ``frozen`` (pinned: refuses updates), plus ``expired`` (its TTL
ran out) and ``superseded`` (an older value of a fact). Archived, expired and superseded memories
are hidden from search and listings unless ``include_archived=True``.

At add time (:func:`plan_batch`, configured by :class:`LifecycleConfig`), for memories added
without an explicit id whose type is in ``merge_types`` (facts, preferences and profile entries
by default; chat turns and documents are stored as they come):

* **Conflicts**: a memory whose metadata names a ``subject`` (e.g. ``"residence"``; stored
  lower-case) about an ``entity`` (default ``"user"``) supersedes the user's current memory with
  the same subject and entity when its ``value`` differs: the new content becomes a new version of
  that memory and the old version stays in :meth:`~memcube.MemCube.history` marked
  ``superseded``, with its times. A value older than the current one (by ``event_time``) is stored
  as a separate, already ``superseded`` memory; a frozen current value is never replaced (the
  newcomer is stored beside it and the conflict noted in its provenance).
* **Exact duplicates** (same user, type and content hash) and **near-duplicates** (cosine
  similarity >= ``near_duplicate_threshold`` *and* nothing new: no topic word, number, date,
  weekday or name the existing memory lacks, see :func:`memcube.plaintext.lexical.adds_nothing`)
  are merged into the existing memory: it keeps its content and gains the newcomer's message
  ids, id (``provenance.merged_from``) and a record of it (``provenance.detail["merged"]``, the
  last ``max_merge_records``, whose wording stays searchable); its state becomes ``merged``.
  Embeddings alone cannot tell "Monday" from "Tuesday" (cosine 0.99), so a memory that differs
  in such a token is always stored as its own memory.

Every add reports what it did on the item it returns (:attr:`~memcube.items.MemoryItem.outcome`,
a :class:`~memcube.items.WriteOutcome`): ``added``, ``merged`` (the existing memory is
returned), ``superseded`` (the new version is returned) or ``outdated``.

All checks of a batch take at most three Chroma calls, and none when the batch has no candidate
(bulk ingestion of chat turns pays nothing). They find stored memories through lookup keys that
only visible memories of a deduplicated type carry (:func:`memcube.plaintext.records.lookup_keys`):
memories stored while their type was not in ``merge_types`` are not merged with later ones. Nothing is deleted: every decision keeps both sides.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from memcube.errors import InvalidInputError
from memcube.items import (
    LifecycleState,
    MemoryItem,
    MemoryType,
    Provenance,
    WriteOutcome,
    reserved_metadata,
    utcnow,
)
from memcube.plaintext.lexical import adds_nothing
from memcube.plaintext.records import lookup_scope

if TYPE_CHECKING:
    from memcube.ports import DuplicateFinder

log = logging.getLogger(__name__)

SUBJECT_KEY = "subject"
VALUE_KEY = "value"
ENTITY_KEY = "entity"
DEFAULT_ENTITY = "user"


@dataclass
class LifecycleConfig:
    """Add-time lifecycle policies.

    Attributes:
        merge_types: memory types that are deduplicated and superseded at add time.
        exact_duplicates: merge memories with the same content hash.
        near_duplicate_threshold: cosine similarity from which two memories are the same
            (``None`` turns near-duplicate merging off).
        supersede: let a new value of a subject supersede the current one.
        max_merge_records: how many merged newcomers are described in ``provenance.detail``.

    Example:
        >>> LifecycleConfig(merge_types=("fact",), near_duplicate_threshold=0.95).validate().merge_types
        ('fact',)
    """

    merge_types: tuple[str, ...] = (
        MemoryType.FACT.value,
        MemoryType.PREFERENCE.value,
        MemoryType.PROFILE.value,
    )
    exact_duplicates: bool = True
    near_duplicate_threshold: float | None = 0.93
    supersede: bool = True
    max_merge_records: int = 20

    @property
    def types(self) -> frozenset[str]:
        """The values of ``merge_types`` (raises InvalidInputError for an unknown type)."""
        try:
            return frozenset(MemoryType(t).value for t in self.merge_types)
        except ValueError as exc:
            raise InvalidInputError(f"LifecycleConfig.merge_types: {exc}.") from None

    def validate(self) -> LifecycleConfig:
        """Check the values; raises InvalidInputError naming the bad field. Returns self."""
        _ = self.types
        t = self.near_duplicate_threshold
        if t is not None and not 0 < t <= 1:
            raise InvalidInputError("LifecycleConfig.near_duplicate_threshold must be in (0, 1].")
        if self.max_merge_records < 0:
            raise InvalidInputError("LifecycleConfig.max_merge_records must be >= 0.")
        return self


def _norm(value: Any) -> str:
    return " ".join(str(value).split()).casefold()


def subject_key(item: MemoryItem) -> tuple[str, str, str] | None:
    subject = item.metadata.get(SUBJECT_KEY)
    if not isinstance(subject, str) or not subject.strip():
        return None
    entity = item.metadata.get(ENTITY_KEY) or DEFAULT_ENTITY
    return (item.user_id, _norm(subject), _norm(entity))


def _value(item: MemoryItem) -> str:
    v = item.metadata.get(VALUE_KEY)
    return _norm(v) if v is not None else item.content_hash


def _when(item: MemoryItem) -> datetime:
    return item.event_time or item.created_at


def _rebuild(item: MemoryItem, **changes: Any) -> MemoryItem:
    data = item.model_dump()
    data.update(changes)
    data["content_hash"] = ""
    return MemoryItem.model_validate(data)


def merge_into(
    target: MemoryItem, incoming: MemoryItem, cfg: LifecycleConfig, how: str
) -> MemoryItem:
    """``target`` with ``incoming`` folded in (content kept, provenance of both)."""
    prov = target.provenance
    detail = dict(prov.detail)
    record: dict[str, Any] = {
        "id": incoming.id,
        "how": how,
        "at": utcnow().isoformat(),
        "source": incoming.provenance.source,
        "message_ids": list(incoming.provenance.message_ids),
    }
    if incoming.event_time is not None:
        record["event_time"] = incoming.event_time.isoformat()
    if incoming.content != target.content:
        record["content"] = incoming.content
    records = [*detail.get("merged", []), record]
    detail["merged"] = records[-cfg.max_merge_records :] if cfg.max_merge_records else []
    detail["merge_count"] = int(detail.get("merge_count", 0)) + 1
    new_prov = Provenance(
        source=prov.source,
        extractor=prov.extractor,
        message_ids=list(dict.fromkeys([*prov.message_ids, *incoming.provenance.message_ids])),
        merged_from=[*prov.merged_from, incoming.id],
        detail=detail,
    )
    state = target.state
    if state == LifecycleState.GENERATED:
        state = LifecycleState.MERGED
    return target.model_copy(
        update={
            "provenance": new_prov,
            "state": state,
            "importance": max(target.importance, incoming.importance),
            "tags": list(dict.fromkeys([*target.tags, *incoming.tags])),
        }
    )


@dataclass
class _Pending:
    item: MemoryItem
    vector: list[float] | None  # None: content unchanged, metadata-only write
    previous: MemoryItem | None  # the stored record being replaced, if any


@dataclass
class BatchPlan:
    """What to write for one batch: history versions, item upserts, metadata-only updates, and
    the stored memory each input ended up as."""

    history: list[MemoryItem]
    upserts: list[tuple[MemoryItem, list[float], MemoryItem | None]]
    metadata_updates: list[tuple[MemoryItem, MemoryItem]]
    results: list[MemoryItem]
    events: dict[str, list[str]]


def plan_batch(
    finder: DuplicateFinder,
    items: Sequence[MemoryItem],
    vectors: Sequence[Sequence[float]],
    mergeable: Sequence[bool],
    cfg: LifecycleConfig,
) -> BatchPlan:
    """Decide insert / merge / supersede for each item of a batch (see the module docstring).
    ``finder`` looks up the stored memories the batch may merge with or supersede."""
    types = cfg.types
    events: dict[str, list[str]] = {"inserted": [], "merged": [], "superseded": []}
    candidates = [i for i, it in enumerate(items) if mergeable[i] and it.memory_type.value in types]
    if not candidates:  # fast path: turns, documents, explicit ids
        events["inserted"] = [it.id for it in items]
        return BatchPlan(
            history=[],
            upserts=[(it, list(v), None) for it, v in zip(items, vectors)],
            metadata_updates=[],
            results=[it.with_outcome(WriteOutcome.ADDED) for it in items],
            events=events,
        )
    # The stored memories these can merge with: visible ones of the same owners and types, found
    # through the lookup keys (memcube.plaintext.records.lookup_keys).
    users = sorted({items[i].user_id for i in candidates})
    # A subject's current value may be held by any deduplicated type; a duplicate has the same type.
    owned = [lookup_scope(u, t) for u in users for t in sorted(types)]
    same_type = sorted(
        {lookup_scope(items[i].user_id, items[i].memory_type.value) for i in candidates}
    )

    # Stored counterparts: current memories with the same subjects, and with the same hashes.
    stored_by_key: dict[tuple[str, str, str], MemoryItem] = {}
    raw_subjects = [items[i].metadata[SUBJECT_KEY] for i in candidates if subject_key(items[i])]
    subjects = sorted({*raw_subjects, *(_norm(x) for x in raw_subjects)})
    if cfg.supersede and subjects:
        for it in finder.by_subject(owned, subjects):
            key = subject_key(it)
            if key and it.memory_type.value in types:
                old = stored_by_key.get(key)
                if old is None or _when(it) >= _when(old):
                    stored_by_key[key] = it
    stored_by_hash: dict[tuple[str, str, str], MemoryItem] = {}
    if cfg.exact_duplicates:
        hashes = sorted({items[i].content_hash for i in candidates})
        for it in finder.by_hash(same_type, hashes):
            stored_by_hash.setdefault((it.user_id, it.memory_type.value, it.content_hash), it)
    near: dict[int, tuple[float, MemoryItem]] = {}
    if cfg.near_duplicate_threshold is not None:
        groups: dict[tuple[str, str], list[int]] = {}
        for i in candidates:
            groups.setdefault((items[i].user_id, items[i].memory_type.value), []).append(i)
        for (user, mtype), idx in groups.items():
            found = finder.nearest(lookup_scope(user, mtype), [vectors[i] for i in idx])
            for i, hit in zip(idx, found):
                if hit is not None:
                    near[i] = hit

    pending: dict[str, _Pending] = {}
    history: list[MemoryItem] = []
    final_id: list[str] = []
    outcomes: list[WriteOutcome] = []
    by_key: dict[tuple[str, str, str], str] = {}  # key -> id of the current (pending) memory
    by_hash: dict[tuple[str, str, str], str] = {}
    batch_vectors: dict[str, np.ndarray] = {}

    def current(item: MemoryItem) -> MemoryItem:
        """The pending version of ``item`` if this batch changed it already."""
        return pending[item.id].item if item.id in pending else item

    def put(item: MemoryItem, vector: list[float] | None, previous: MemoryItem | None) -> None:
        prev = pending.get(item.id)
        if prev is not None:  # already pending: keep what it replaces and a vector if needed
            previous = prev.previous
            if vector is None:
                vector = prev.vector
        pending[item.id] = _Pending(item, vector, previous)

    def do_merge(target: MemoryItem, incoming: MemoryItem, how: str) -> str:
        merged = merge_into(target, incoming, cfg, how)
        put(merged, None, None if target.id in pending else target)
        events["merged"].append(merged.id)
        return merged.id

    for i, item in enumerate(items):
        vec = list(vectors[i])
        if i not in candidates:
            put(item, vec, None)
            events["inserted"].append(item.id)
            final_id.append(item.id)
            outcomes.append(WriteOutcome.ADDED)
            continue
        key = subject_key(item) if cfg.supersede else None
        if key is not None:
            norm_md = dict(item.metadata)
            norm_md[SUBJECT_KEY] = key[1]
            item = _rebuild(item, metadata=norm_md)
            existing_id = by_key.get(key)
            existing = (
                pending[existing_id].item if existing_id in pending else stored_by_key.get(key)
            )
            if existing is not None:
                existing = current(existing)
                if _value(existing) == _value(item):
                    final_id.append(do_merge(existing, item, "same value"))
                    outcomes.append(WriteOutcome.MERGED)
                    continue
                if existing.state == LifecycleState.FROZEN:
                    detail = {**item.provenance.detail, "conflicts_with": existing.id}
                    prov = item.provenance.model_copy(update={"detail": detail})
                    item = item.model_copy(update={"provenance": prov})
                    log.warning("memory %s is frozen; new value stored beside it", existing.id)
                elif (
                    item.event_time is not None
                    and existing.event_time is not None
                    and (item.event_time < existing.event_time)
                ):
                    md = {**item.metadata, "superseded_by": existing.id}
                    item = _rebuild(item, metadata=md, state=LifecycleState.SUPERSEDED)
                    put(item, vec, None)
                    events["inserted"].append(item.id)
                    final_id.append(item.id)
                    outcomes.append(WriteOutcome.OUTDATED)
                    continue
                else:
                    history.append(existing.model_copy(update={"state": LifecycleState.SUPERSEDED}))
                    detail = {
                        **item.provenance.detail,
                        "supersedes": {
                            "version": existing.version,
                            "content": existing.content,
                            "value": existing.metadata.get(VALUE_KEY),
                        },
                    }
                    new = _rebuild(
                        item,
                        id=existing.id,
                        version=existing.version + 1,
                        created_at=existing.created_at,
                        updated_at=utcnow(),
                        state=LifecycleState.GENERATED,
                        access_count=existing.access_count,
                        last_accessed_at=existing.last_accessed_at,
                        metadata={**item.metadata, **reserved_metadata(existing)},
                        provenance=item.provenance.model_copy(update={"detail": detail}),
                    )
                    stored_prev = None if existing.id in pending else existing
                    put(new, vec, stored_prev)
                    events["superseded"].append(existing.id)
                    by_key[key] = new.id
                    batch_vectors[new.id] = _unit(vec)
                    final_id.append(new.id)
                    outcomes.append(WriteOutcome.SUPERSEDED)
                    continue
        hkey = (item.user_id, item.memory_type.value, item.content_hash)
        if cfg.exact_duplicates:
            target_id = by_hash.get(hkey)
            stored = stored_by_hash.get(hkey)
            target = pending[target_id].item if target_id in pending else stored
            if target is not None and _compatible(target, item):
                target = current(target)
                final_id.append(do_merge(target, item, "exact duplicate"))
                outcomes.append(WriteOutcome.MERGED)
                continue
        if cfg.near_duplicate_threshold is not None:
            best: tuple[float, MemoryItem] | None = near.get(i)
            u = _unit(vec)
            for mid, v in batch_vectors.items():
                other = pending[mid].item
                if other.user_id == item.user_id and other.memory_type == item.memory_type:
                    sim = float(np.dot(u, v))
                    if best is None or sim > best[0]:
                        best = (sim, other)
            if best is not None and best[0] >= cfg.near_duplicate_threshold:
                target = current(best[1])
                if (
                    target.state not in (LifecycleState.SUPERSEDED, LifecycleState.ARCHIVED)
                    and _compatible(target, item)
                    and adds_nothing(item.content, target.content)
                ):
                    final_id.append(do_merge(target, item, f"near duplicate ({best[0]:.3f})"))
                    outcomes.append(WriteOutcome.MERGED)
                    continue
        put(item, vec, None)
        events["inserted"].append(item.id)
        by_hash.setdefault(hkey, item.id)
        if key is not None:
            by_key[key] = item.id
        batch_vectors[item.id] = _unit(vec)
        final_id.append(item.id)
        outcomes.append(WriteOutcome.ADDED)

    upserts = [(p.item, p.vector, p.previous) for p in pending.values() if p.vector is not None]
    meta = [(p.item, p.previous) for p in pending.values() if p.vector is None and p.previous]
    return BatchPlan(
        history=history,
        upserts=upserts,
        metadata_updates=meta,
        results=[pending[i].item.with_outcome(o) for i, o in zip(final_id, outcomes)],
        events=events,
    )


def _compatible(a: MemoryItem, b: MemoryItem) -> bool:
    """Two memories may be merged unless they name different subjects or values."""
    ka, kb = subject_key(a), subject_key(b)
    if ka is None or kb is None:
        return ka is None and kb is None or a.content_hash == b.content_hash
    return ka == kb and _value(a) == _value(b)


def _unit(vec: Sequence[float]) -> np.ndarray:
    v = np.asarray(vec, dtype=np.float32)
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


__all__ = [
    "BatchPlan",
    "LifecycleConfig",
    "merge_into",
    "plan_batch",
    "subject_key",
]
