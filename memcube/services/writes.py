"""The write pipeline of new memories, and writes in place.

:meth:`Writes.add_many`: validate every input (nothing is written if one is bad), check who may
replace a caller-chosen id, then per batch embed, let the lifecycle plan insert / merge /
supersede (:func:`memcube.lifecycle.plan_batch`), store the plan in one call per collection, and
audit it. Opt-in redaction (:mod:`memcube.redaction`) applies before anything is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from memcube.audit import AuditLog
from memcube.errors import InvalidInputError
from memcube.items import (
    ADD_FIELDS,
    MemoryItem,
    Provenance,
    WriteOutcome,
    as_utc,
    build_item,
    check_reserved_metadata,
    utcnow,
)
from memcube.lifecycle import LifecycleConfig, plan_batch
from memcube.plaintext.repository import ItemRepository, Replacement

#: ``text -> (redacted text, what was redacted)``, from :func:`memcube.redaction.make_redactor`.
Redact = Callable[[str], tuple[str, dict[str, int]]]
#: ``add_many`` shows a progress bar from this many items on (unless ``progress`` says otherwise).
PROGRESS_THRESHOLD = 500


def expiry(ttl: timedelta | float | int | None, expires_at: datetime | None) -> datetime | None:
    """When a memory given ``ttl`` (from now) or ``expires_at`` expires (``None``: never)."""
    if ttl is not None and expires_at is not None:
        raise InvalidInputError("pass either ttl or expires_at, not both.")
    if ttl is None:
        return None if expires_at is None else as_utc(expires_at)
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    if not seconds > 0:
        raise InvalidInputError(f"ttl must be a positive duration, got {ttl!r}.")
    return utcnow() + timedelta(seconds=seconds)


def redacted(
    redact: Redact | None, content: str, provenance: Provenance
) -> tuple[str, Provenance] | None:
    """``content`` redacted, with ``provenance`` recording what was; ``None`` if nothing was."""
    if redact is None:
        return None
    text, counts = redact(content)
    if not counts:
        return None
    return text, provenance.model_copy(update={"detail": {**provenance.detail, "redacted": counts}})


class Writes:
    """New memories and in-place rewrites of one cube."""

    def __init__(
        self,
        repository: ItemRepository,
        audit: AuditLog,
        lifecycle: LifecycleConfig,
        *,
        redact: Redact | None = None,
    ) -> None:
        self.repository = repository
        self.audit = audit
        self.lifecycle = lifecycle
        self.redact = redact

    # ------------------------------------------------------------------ new memories
    def add_many(
        self,
        items: Iterable[MemoryItem | dict[str, Any]],
        *,
        user_id: str | None,
        batch_size: int,
        progress: bool | None,
        on_batch: Callable[[list[MemoryItem]], None] | None,
        merge: bool | None,
    ) -> list[MemoryItem]:
        """See :meth:`memcube.MemCube.add_many`."""
        prepared: list[MemoryItem] = []
        mergeable: list[bool] = []  # only memories added without an id are merged/superseded
        explicit: list[bool] = []  # the caller chose the id (it may already be stored)
        for x in items:
            prepared.append(self.to_item(x, user_id))
            explicit.append(not (isinstance(x, dict) and x.get("id") is None))
            mergeable.append(merge if merge is not None else not explicit[-1])
        ids = [it.id for it in prepared]
        if len(set(ids)) != len(ids):
            raise InvalidInputError("add_many got the same id twice; ids must be unique.")
        # Ids the caller chose may already be stored: such an add replaces that memory, and only
        # its owner may do that.
        existing = self.repository.get([it.id for it, chosen in zip(prepared, explicit) if chosen])
        for it in prepared:
            old = existing.get(it.id)
            if old is not None and old.user_id != it.user_id:
                raise InvalidInputError(
                    f"memory {it.id!r} belongs to another user; an add cannot take it over."
                )
        generated = {it.id for it, chosen in zip(prepared, explicit) if not chosen}
        show = progress if progress is not None else len(prepared) >= PROGRESS_THRESHOLD
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(prepared), desc="memcube add", unit="item")
        stored: list[MemoryItem] = []
        try:
            for start in range(0, len(prepared), batch_size):
                end = start + batch_size
                batch = self._store_batch(
                    prepared[start:end], mergeable[start:end], existing, generated
                )
                stored.extend(batch)
                if on_batch is not None:
                    on_batch(batch)
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        return stored

    def _store_batch(
        self,
        items: list[MemoryItem],
        mergeable: list[bool],
        existing: dict[str, MemoryItem],
        generated: set[str],
    ) -> list[MemoryItem]:
        """Embed a batch, plan it, store the plan and audit it. ``existing`` holds the stored
        records of ids the caller chose (they are replaced); ids in ``generated`` were made
        here. Returns the stored memory of each input."""
        if not items:
            return []
        _, vectors = self.repository.embed(items)
        with self.repository.lock:
            plan = plan_batch(self.repository, items, vectors, mergeable, self.lifecycle)
            upserts = [(it, v, prev or existing.get(it.id)) for it, v, prev in plan.upserts]
            self.repository.store(
                upserts,
                history=plan.history,
                metadata_updates=plan.metadata_updates,
                fresh=all(prev is None and it.id in generated for it, _, prev in upserts),
            )
        actors = sorted({it.user_id for it in items})
        for event, ids in plan.events.items():
            if ids:
                self.audit.record(
                    "add" if event == "inserted" else event,
                    actors[0] if len(actors) == 1 else None,
                    ids,
                    {"users": actors} if len(actors) > 1 else None,
                )
        return [
            it.with_outcome(WriteOutcome.REPLACED)
            if it.id in existing and it.outcome == WriteOutcome.ADDED
            else it
            for it in plan.results
        ]

    def to_item(self, raw: MemoryItem | dict[str, Any], user_id: str | None) -> MemoryItem:
        """A validated (and, if configured, redacted) memory from an ``add_many`` input."""
        if isinstance(raw, MemoryItem):
            return self._redacted(raw)
        if not isinstance(raw, dict):
            raise InvalidInputError(
                f"add_many takes MemoryItem objects or dicts, got {type(raw).__name__}."
            )
        fields = {k: v for k, v in raw.items() if v is not None}
        unknown = set(fields) - ADD_FIELDS
        if unknown:
            raise InvalidInputError(f"unknown memory fields: {sorted(unknown)}.")
        fields.setdefault("user_id", user_id)
        if fields.get("user_id") is None:
            raise InvalidInputError("every memory needs a user_id (pass user_id=... to add_many).")
        expires = expiry(fields.pop("ttl", None), fields.pop("expires_at", None))
        if expires is not None:
            fields["expires_at"] = expires
        if "tags" in fields:
            if isinstance(fields["tags"], str) or not isinstance(fields["tags"], (list, tuple)):
                raise InvalidInputError("tags must be a list of strings.")
            fields["tags"] = list(fields["tags"])
        if isinstance(fields.get("metadata"), dict):
            check_reserved_metadata(fields["metadata"])
        return self._redacted(build_item(**fields))

    def _redacted(self, item: MemoryItem) -> MemoryItem:
        changed = redacted(self.redact, item.content, item.provenance)
        if changed is None:
            return item
        text, provenance = changed
        return build_item(
            **{**item.model_dump(), "content": text, "content_hash": "", "provenance": provenance}
        )

    def restore(
        self, records: Sequence[Sequence[MemoryItem]], *, detail: dict[str, Any] | None = None
    ) -> None:
        """Write memories with their stored versions verbatim (per memory: oldest first,
        current last), audited as ``import``."""
        with self.repository.lock:
            self.repository.put_history([v for versions in records for v in versions[:-1]])
            self.repository.write([versions[-1] for versions in records])
        if records:
            self.audit.record("import", None, [versions[-1].id for versions in records], detail)

    # ------------------------------------------------------------------ in place
    def set_in_place(
        self, records: Sequence[Replacement], op: str, user_id: str | None, **detail: Any
    ) -> None:
        """Rewrite ``(new, old)`` records in place (bookkeeping, no new version) and audit it."""
        if not records:
            return
        self.repository.rewrite(records)
        self.audit.record(op, user_id, [new.id for new, _ in records], detail or None)


__all__ = ["PROGRESS_THRESHOLD", "Redact", "Writes", "expiry", "redacted"]
