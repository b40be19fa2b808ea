"""State changes in place (bookkeeping, not edits, so no new version): freezing, expiry,
feedback votes and the time-based sweep. Each is audited."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from memcube.access import Governance
from memcube.errors import InvalidInputError, ItemNotFoundError
from memcube.items import HIDDEN_STATES, LifecycleState, MemoryItem, utcnow
from memcube.plaintext.records import and_
from memcube.plaintext.repository import ItemRepository, Replacement
from memcube.ports import UsageSink
from memcube.scheduler import (
    NOT_USEFUL_KEY,
    USEFUL_KEY,
    SchedulerConfig,
    demoted_state,
    is_cold,
    should_promote,
)
from memcube.services.reads import Reads
from memcube.services.writes import Writes


class States:
    """In-place state changes of one cube's memories."""

    def __init__(
        self,
        repository: ItemRepository,
        reads: Reads,
        writes: Writes,
        governance: Governance,
        usage: UsageSink,
        scheduler: SchedulerConfig,
    ) -> None:
        self.repository = repository
        self.reads = reads
        self.writes = writes
        self.governance = governance
        self.usage = usage
        self.scheduler = scheduler

    def _writable(self, id: str, user_id: str | None) -> MemoryItem:
        item = self.reads.load(id, user_id)
        self.governance.check_write(item, user_id)
        return item

    def freeze(self, id: str, *, user_id: str | None) -> MemoryItem:
        with self.repository.lock:
            item = self._writable(id, user_id)
            if item.state == LifecycleState.FROZEN:
                return item
            if item.state in HIDDEN_STATES:
                raise InvalidInputError(
                    f"memory {id!r} is {item.state.value}; only live memories freeze."
                )
            detail = {**item.provenance.detail, "state_before_freeze": item.state.value}
            new = item.model_copy(
                update={
                    "state": LifecycleState.FROZEN,
                    "provenance": item.provenance.model_copy(update={"detail": detail}),
                }
            )
            self.writes.set_in_place([(new, item)], "freeze", user_id)
        return new

    def unfreeze(self, id: str, *, user_id: str | None) -> MemoryItem:
        with self.repository.lock:
            item = self._writable(id, user_id)
            if item.state != LifecycleState.FROZEN:
                return item
            detail = dict(item.provenance.detail)
            before = detail.pop("state_before_freeze", LifecycleState.GENERATED.value)
            new = item.model_copy(
                update={
                    "state": LifecycleState(before),
                    "provenance": item.provenance.model_copy(update={"detail": detail}),
                }
            )
            self.writes.set_in_place([(new, item)], "unfreeze", user_id)
        return new

    def set_expiry(
        self, ids: Sequence[str], *, user_id: str, when: datetime | None
    ) -> list[MemoryItem]:
        wanted = list(dict.fromkeys(ids))
        with self.repository.lock:
            found = self.reads.get_many(wanted, user_id)
            if len(found) != len(wanted):
                missing = sorted(set(wanted) - {it.id for it in found})
                raise ItemNotFoundError(f"no memories {missing} for user {user_id!r}.")
            if not found:
                return []
            for it in found:
                self.governance.check_write(it, user_id)
            updated = [it.model_copy(update={"expires_at": when}) for it in found]
            self.repository.rewrite([(it, None) for it in updated])
        self.writes.audit.record(
            "set_expiry", user_id, [it.id for it in updated], {"expires_at": when}
        )
        return updated

    def feedback(self, id: str, *, useful: bool, user_id: str | None) -> MemoryItem:
        cfg = self.scheduler
        with self.repository.lock:
            self.usage.flush_usage()
            item = self._writable(id, user_id)
            key = USEFUL_KEY if useful else NOT_USEFUL_KEY
            md = {**item.metadata, key: int(item.metadata.get(key, 0) or 0) + 1}
            step = cfg.feedback_step if useful else -cfg.feedback_step
            importance = min(1.0, max(0.0, item.importance + step))
            new = item.model_copy(update={"metadata": md, "importance": importance})
            now = utcnow()
            if new.state == LifecycleState.ACTIVATED and is_cold(new, cfg, now):
                new = new.model_copy(update={"state": demoted_state(new)})
            elif should_promote(new, cfg, now):
                new = new.model_copy(update={"state": LifecycleState.ACTIVATED})
            self.writes.set_in_place([(new, item)], "feedback", user_id, useful=useful)
        return new

    def maintain(self, *, user_id: str | None) -> dict[str, list[str]]:
        self.usage.flush_usage()
        now = utcnow()
        cfg = self.scheduler
        expired: list[Replacement] = []
        demoted: list[Replacement] = []
        scope = [{"live_user_id": user_id}] if user_id is not None else [{"live": True}]
        due = and_(*scope, {"expires_ts": {"$lte": now.timestamp()}})
        for it in self.repository.select(due):
            if it.state != LifecycleState.FROZEN:
                expired.append((it.model_copy(update={"state": LifecycleState.EXPIRED}), it))
        active = and_(*scope, {"state": LifecycleState.ACTIVATED.value})
        for it in self.repository.select(active):
            if is_cold(it, cfg, now) and not it.is_expired:
                demoted.append((it.model_copy(update={"state": demoted_state(it)}), it))
        self.writes.set_in_place(expired, "expire", user_id)
        self.writes.set_in_place(demoted, "demote", user_id)
        return {"expired": [n.id for n, _ in expired], "demoted": [n.id for n, _ in demoted]}


__all__ = ["States"]
