"""Versions: every change of a memory's content or fields is a new version, and the version it
replaces stays in history (written first, so a crash between the two writes leaves an extra
copy of the old version, never a lost one)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from memcube.access import Governance
from memcube.audit import AuditLog
from memcube.errors import FrozenItemError, InvalidInputError
from memcube.items import (
    HIDDEN_STATES,
    VERSIONED_FIELDS,
    LifecycleState,
    MemoryItem,
    Provenance,
    free_metadata,
    reserved_metadata,
    translate_validation_error,
    utcnow,
)
from memcube.plaintext.repository import PAGE_SIZE, ItemRepository
from memcube.services.reads import Reads
from memcube.services.writes import Redact, redacted


class Versions:
    """New versions, archiving, purging and rollback of one cube's memories."""

    def __init__(
        self,
        repository: ItemRepository,
        reads: Reads,
        governance: Governance,
        audit: AuditLog,
        *,
        redact: Redact | None = None,
    ) -> None:
        self.repository = repository
        self.reads = reads
        self.governance = governance
        self.audit = audit
        self.redact = redact

    def new_version(
        self,
        id: str,
        changes: dict[str, Any],
        *,
        user_id: str | None,
        allow_frozen: bool = False,
        old_state: LifecycleState = LifecycleState.SUPERSEDED,
        op: str = "update",
    ) -> MemoryItem:
        """Write ``changes`` as the next version of ``id``; the current one goes to history
        in ``old_state``."""
        unknown = set(changes) - VERSIONED_FIELDS
        if unknown:
            raise InvalidInputError(f"cannot update fields {sorted(unknown)}.")
        with self.repository.lock:
            current = self.reads.load(id, user_id)
            self.governance.check_write(current, user_id)
            if current.state == LifecycleState.FROZEN and not allow_frozen:
                raise FrozenItemError(
                    f"memory {id} is frozen; call cube.unfreeze({id!r}) before updating it."
                )
            new = self._next(current, changes)
            self.repository.put_history([current.model_copy(update={"state": old_state})])
            if new.content != current.content:
                self.repository.write([new], previous=[current])
            else:
                self.repository.rewrite([(new, current)])
        self.audit.record(op, user_id, [new.id], {"version": new.version})
        return new

    def _next(self, current: MemoryItem, changes: dict[str, Any]) -> MemoryItem:
        changes = dict(changes)
        md = changes.get("metadata")
        if isinstance(md, dict):  # shares and feedback votes survive a metadata rewrite
            changes["metadata"] = {**md, **reserved_metadata(current)}
        if isinstance(changes.get("content"), str):
            prov = changes.get("provenance", current.provenance)
            prov = prov if isinstance(prov, Provenance) else Provenance.model_validate(prov)
            done = redacted(self.redact, changes["content"], prov)
            if done is not None:
                changes["content"], changes["provenance"] = done
        data = current.model_dump()
        data.update(changes)
        data["version"] = current.version + 1
        data["updated_at"] = utcnow()
        data["content_hash"] = ""
        try:
            return MemoryItem.model_validate(data)
        except ValidationError as exc:
            raise translate_validation_error(exc) from None

    def delete(self, id: str, *, user_id: str | None, hard: bool) -> None:
        """Archive a memory (a new version), or purge it with every stored version."""
        with self.repository.lock:
            item = self.reads.load(id, user_id)
            self.governance.check_write(item, user_id)
            if hard:
                self.repository.purge(item)
                self.audit.record("hard_delete", user_id, [item.id], {"owner": item.user_id})
            elif item.state != LifecycleState.ARCHIVED:
                self.new_version(
                    id,
                    {"state": LifecycleState.ARCHIVED},
                    user_id=user_id,
                    allow_frozen=True,
                    old_state=item.state,
                    op="delete",
                )

    def delete_all(self, user_id: str, *, hard: bool) -> int:
        """Archive every memory ``user_id`` owns (not those shared with them), or purge each
        with every stored version (a page per Chroma call); one audit entry for the whole
        operation. Returns how many
        were archived (those already archived stay as they are) or purged.

        Read page by page into one list first (purging while paging would shift the pages),
        then archived a page per Chroma call: history first, then one metadata rewrite, as
        :meth:`delete` does for one memory. Frozen memories are archived too, as by
        :meth:`delete`."""
        owned: dict[str, Any] = {"user_id": {"$eq": user_id}}
        with self.repository.lock:
            items = list(self.repository.select(owned, batch_size=PAGE_SIZE))
            if hard:
                self.repository.purge_many(items)
                done = items
            else:
                done = [it for it in items if it.state != LifecycleState.ARCHIVED]
                for start in range(0, len(done), PAGE_SIZE):
                    page = done[start : start + PAGE_SIZE]
                    archived = [self._next(it, {"state": LifecycleState.ARCHIVED}) for it in page]
                    self.repository.put_history(page)  # each keeps the state it had
                    self.repository.rewrite(list(zip(archived, page)))
        if done:
            self.audit.record(
                "delete_all", user_id, [it.id for it in done], {"hard": hard, "count": len(done)}
            )
        return len(done)

    def rollback(self, id: str, version: int, *, user_id: str | None) -> MemoryItem:
        """Make ``version`` current again, as a new version."""
        with self.repository.lock:
            current = self.reads.load(id, user_id)
            self.governance.check_write(current, user_id)
            if version == current.version:
                raise InvalidInputError(f"memory {id!r} is already at version {version}.")
            target = self.reads.get_version(id, version, user_id)
            state = target.state
            if state in HIDDEN_STATES or state == LifecycleState.FROZEN:
                state = LifecycleState.GENERATED
            detail = {**target.provenance.detail, "rolled_back_from": current.version}
            changes: dict[str, Any] = {f: getattr(target, f) for f in VERSIONED_FIELDS}
            changes.update(
                metadata=free_metadata(target),
                tags=list(target.tags),
                state=state,
                provenance=target.provenance.model_copy(update={"detail": detail}),
            )
            return self.new_version(id, changes, user_id=user_id, op="rollback")


__all__ = ["Versions"]
