"""The scheduler: decides which memories sit in a prompt (working memory) and which ones form a
user's stable block for KV-cache activation memory.

Every policy here is a field of :class:`SchedulerConfig`; pass one to ``MemCube.open(...,
scheduler=...)`` (the cube's default) or per call (``config=``).

Working memory (:func:`working_memory`)
    The ``candidates`` best search hits for the query are re-scored with a weighted sum of four
    signals, each in ``[0, 1]``:

    * **relevance**: the search score (calibrated, in ``[0, 1]``: see
      :meth:`memcube.MemCube.search`);
    * **recency**: ``0.5 ** (age_days / recency_half_life_days)``, age from when the memory
      happened (``event_time``, falling back to when this version was recorded) to the newest
      candidate's time (so a conversation imported from the past still has recent and old
      parts);
    * **importance**: the item's ``importance`` (which :meth:`MemCube.feedback` nudges);
    * **usage**: ``log1p(access_count + feedback_uses * (useful - not_useful))`` over
      ``log1p(usage_saturation)``, clipped to ``[0, 1]``.

    plus ``type_bonus[memory_type]`` (facts, preferences and profile entries get a small bonus by
    default, so the current fact outranks the chat turn it was read from). Of a fact and the turn it
    was read from, only the better-ranked one is kept (one statement, one line). The best are kept, in
    score order, until ``token_budget`` is used up (tokens of the rendered lines, see
    :mod:`memcube.prompting`). Only the items returned are counted as accessed.

Activation memory (:func:`plan_activation_block`)
    The stable block a KV cache is built from: the user's own current memories of any type,
    chosen by :func:`activation_priority` (importance and use; profile, fact and preference
    memories first) within the block's token budget, so a small user's whole memory fits. The
    block is stored as a layout (ids and versions in order) and between rebuilds only grows at
    the end: new memories are appended, and a member that changes cuts the block there (the
    rest waits for the next rebuild, at :meth:`MemCube.maintain`). Its KV cache is therefore
    reused, extended by the new tail or cut exactly, and never rebuilt while a user waits; with
    ``activation_hysteresis`` a rebuild keeps members unless an outsider clearly beats them.

    *Promotion*: when usage counts are written back (:meth:`MemCube.flush_usage`), an item of
    another type whose ``access_count`` reached ``promote_min_uses`` (useful feedback counts
    ``feedback_uses`` accesses each) within ``promote_window_days`` of its last access moves to
    state ``activated`` (a priority lead at the next rebuild). *Demotion*: an ``activated`` item
    not accessed for ``demote_after_days`` goes back to ``generated`` (``merged`` if it was
    merged) when :meth:`MemCube.maintain` runs; a memory with more "not useful" than "useful"
    votes leaves the block at once (it cuts the block like an edit).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from memcube.checks import is_int
from memcube.errors import InvalidInputError
from memcube.items import LifecycleState, MemoryItem, MemoryType, content_hash, utcnow
from memcube.prompting import (
    DEFAULT_HEADER,
    TokenCounter,
    approx_tokens,
    fit_to_budget,
    memory_line,
)

if TYPE_CHECKING:
    from memcube.ports import MemorySearcher, UsageSink

#: Free-metadata keys where :meth:`MemCube.feedback` counts votes (reserved: ``_mc_`` prefix).
USEFUL_KEY = "_mc_useful"
NOT_USEFUL_KEY = "_mc_not_useful"

_DEFAULT_TYPE_BONUS = {
    MemoryType.FACT.value: 0.08,
    MemoryType.PREFERENCE.value: 0.08,
    MemoryType.PROFILE.value: 0.08,
}


@dataclass
class SchedulerConfig:
    """Every scheduling policy, in one place.

    Attributes:
        candidates: how many search hits are considered for working memory.
        relevance_weight, recency_weight, importance_weight, usage_weight: weights of the four
            working-memory signals (they need not sum to 1).
        recency_half_life_days: age at which the recency signal halves.
        usage_saturation: access count at which the usage signal reaches 1.
        feedback_uses: how many accesses one "useful" vote counts as (a "not useful" vote
            subtracts as many).
        feedback_step: how much one vote moves an item's ``importance`` (up or down).
        type_bonus: added to the score of these memory types (``memory_type`` value -> bonus).
        activation_types: memory types placed first in a user's activation block.
        activation_token_budget: default token budget of the activation block.
        activation_hysteresis: priority lead of the block's members (and promoted items) over
            outsiders when the block is rebuilt, so it does not churn.
        promote_min_uses: accesses (plus weighted useful votes) that promote an item.
        promote_window_days: promotion needs an access within this many days.
        demote_after_days: an activated item not accessed for this long is demoted.

    Example:
        >>> cfg = SchedulerConfig(candidates=30, recency_weight=0.3)
        >>> cfg.validate().candidates
        30
    """

    candidates: int = 20
    relevance_weight: float = 0.6
    recency_weight: float = 0.15
    importance_weight: float = 0.15
    usage_weight: float = 0.1
    recency_half_life_days: float = 30.0
    usage_saturation: int = 20
    feedback_uses: int = 3
    feedback_step: float = 0.1
    type_bonus: Mapping[str, float] = field(default_factory=lambda: dict(_DEFAULT_TYPE_BONUS))
    activation_types: tuple[str, ...] = (
        MemoryType.PROFILE.value,
        MemoryType.FACT.value,
        MemoryType.PREFERENCE.value,
    )
    activation_token_budget: int = 1024
    activation_hysteresis: float = 0.25
    promote_min_uses: int = 5
    promote_window_days: float = 7.0
    demote_after_days: float = 14.0

    def validate(self) -> SchedulerConfig:
        """Check the values; raises InvalidInputError naming the bad field. Returns self."""
        if not isinstance(self.candidates, int) or self.candidates < 1:
            raise InvalidInputError("SchedulerConfig.candidates must be a positive integer.")
        for name in ("relevance_weight", "recency_weight", "importance_weight", "usage_weight"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise InvalidInputError(f"SchedulerConfig.{name} must be a finite number >= 0.")
        for name in ("recency_half_life_days", "promote_window_days", "demote_after_days"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v > 0:
                raise InvalidInputError(f"SchedulerConfig.{name} must be a positive number.")
        if self.usage_saturation < 1 or self.promote_min_uses < 1 or self.feedback_uses < 0:
            raise InvalidInputError(
                "SchedulerConfig.usage_saturation and promote_min_uses must be >= 1, "
                "feedback_uses >= 0."
            )
        if not 0 <= self.feedback_step <= 1:
            raise InvalidInputError("SchedulerConfig.feedback_step must be between 0 and 1.")
        try:
            types = {MemoryType(t).value for t in self.activation_types}
            types |= {MemoryType(t).value for t in self.type_bonus}
        except ValueError as exc:
            raise InvalidInputError(f"SchedulerConfig: {exc}.") from None
        del types
        if not isinstance(self.activation_hysteresis, (int, float)) or not (
            0 <= self.activation_hysteresis <= 1
        ):
            raise InvalidInputError("SchedulerConfig.activation_hysteresis must be in [0, 1].")
        if self.activation_token_budget < 1:
            raise InvalidInputError("SchedulerConfig.activation_token_budget must be >= 1.")
        return self


# ---------------------------------------------------------------------------- signals
def votes(item: MemoryItem) -> tuple[int, int]:
    """``(useful, not_useful)`` feedback votes recorded on an item."""
    md = item.metadata
    return int(md.get(USEFUL_KEY, 0) or 0), int(md.get(NOT_USEFUL_KEY, 0) or 0)


def effective_uses(item: MemoryItem, cfg: SchedulerConfig) -> float:
    """Accesses plus weighted feedback votes (never below zero)."""
    useful, not_useful = votes(item)
    return max(0.0, item.access_count + cfg.feedback_uses * (useful - not_useful))


def usage_signal(item: MemoryItem, cfg: SchedulerConfig) -> float:
    return min(1.0, math.log1p(effective_uses(item, cfg)) / math.log1p(cfg.usage_saturation))


def recency_signal(item: MemoryItem, cfg: SchedulerConfig, now: datetime) -> float:
    when = item.event_time or item.updated_at
    age_days = max(0.0, (now - when).total_seconds() / 86400.0)
    return float(0.5 ** (age_days / cfg.recency_half_life_days))


def score_candidates(
    items: list[MemoryItem],
    relevance: list[float],
    cfg: SchedulerConfig,
    now: datetime | None = None,
) -> list[tuple[float, MemoryItem, dict[str, float]]]:
    """Score candidates by the weighted signals; returns ``(score, item, signals)`` best first
    (ties keep the search order)."""
    if now is None:
        times = [it.event_time or it.updated_at for it in items]
        now = min(max(times), utcnow()) if times else utcnow()
    scored = []
    for pos, (item, rel) in enumerate(zip(items, relevance)):
        signals = {
            "relevance": min(1.0, max(0.0, float(rel))),
            "recency": recency_signal(item, cfg, now),
            "importance": float(item.importance),
            "usage": usage_signal(item, cfg),
        }
        score = (
            cfg.relevance_weight * signals["relevance"]
            + cfg.recency_weight * signals["recency"]
            + cfg.importance_weight * signals["importance"]
            + cfg.usage_weight * signals["usage"]
            + float(cfg.type_bonus.get(item.memory_type.value, 0.0))
        )
        scored.append((score, pos, item, signals))
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [(s, it, sig) for s, _, it, sig in scored]


# ---------------------------------------------------------------------------- working memory
def working_memory(
    searcher: MemorySearcher,
    usage: UsageSink,
    query: str,
    *,
    user_id: str,
    token_budget: int = 512,
    config: SchedulerConfig | None = None,
    count_tokens: TokenCounter = approx_tokens,
    exclude_texts: Iterable[str] = (),
    **search_kwargs: Any,
) -> list[MemoryItem]:
    """The memories for a prompt about ``query``, best first, within ``token_budget`` tokens.

    ``exclude_texts``: texts already in the prompt (the conversation so far). A memory whose
    content is one of them (compared like exact duplicates: case and whitespace folded) is not
    chosen; every turn is written to the cube as it happens, so without this the turns on screen
    would come back as their own best "memories". ``search_kwargs`` go to
    :meth:`MemCube.search` (filters, memory types, session...). Only the items returned count as
    accessed (feeding the usage signal and promotion): they are reported to ``usage``.
    """
    cfg = (config or SchedulerConfig()).validate()
    if not is_int(token_budget) or token_budget < 1:
        raise InvalidInputError(f"token_budget must be a positive integer, got {token_budget!r}.")
    if isinstance(exclude_texts, str):
        raise InvalidInputError("exclude_texts takes a list of texts, not one string.")
    hashes = sorted({content_hash(t) for t in exclude_texts if isinstance(t, str) and t.strip()})
    if hashes:
        unseen = {"content_hash": {"$nin": hashes}}
        filters = search_kwargs.get("filters")
        search_kwargs["filters"] = {"$and": [filters, unseen]} if filters else unseen
    hits = searcher.search(
        query, user_id=user_id, k=cfg.candidates, count_usage=False, **search_kwargs
    )
    scored = score_candidates([h.item for h in hits], [h.score for h in hits], cfg)
    chosen = fit_without_restatements([it for _, it, _ in scored], token_budget, count_tokens,
                                      user_id)  # fmt: skip
    usage.record_usage([it.id for it in chosen])
    return chosen


def _restates(fact: MemoryItem, turn: MemoryItem) -> bool:
    """``fact`` was extracted from ``turn`` (which says it in the user's own words, and more)."""
    if fact.provenance.source != "extraction" or turn.provenance.source != "message":
        return False
    if fact.user_id != turn.user_id:
        return False
    if fact.provenance.message_ids:
        return set(fact.provenance.message_ids) <= set(turn.provenance.message_ids)
    statement = fact.metadata.get("statement")  # rule facts name the sentence they came from
    return isinstance(statement, str) and statement.casefold() in turn.content.casefold()


def fit_without_restatements(
    items: list[MemoryItem], token_budget: int, count_tokens: TokenCounter, reader: str | None
) -> list[MemoryItem]:
    """The best of ``items`` (in order) that fit ``token_budget``, where of a fact and the turn
    it was read from only the better-ranked one is kept: the budget is not spent twice on one
    statement."""
    header = count_tokens(DEFAULT_HEADER)
    kept: list[MemoryItem] = []
    for item in items:
        if any(_restates(item, k) or _restates(k, item) for k in kept):
            continue  # the better-ranked of a fact and its turn speaks for both
        trial = [*kept, item]
        used = header + sum(count_tokens(memory_line(k, reader)) for k in trial)
        if used > token_budget:
            break
        kept = trial
    return kept


# ---------------------------------------------------------------------------- activation memory
def is_cold(item: MemoryItem, cfg: SchedulerConfig, now: datetime) -> bool:
    """An activated item that went cold: not accessed for ``demote_after_days`` or voted down."""
    useful, not_useful = votes(item)
    if not_useful > useful:
        return True
    last = item.last_accessed_at or item.updated_at
    return now - last > timedelta(days=cfg.demote_after_days)


def should_promote(item: MemoryItem, cfg: SchedulerConfig, now: datetime) -> bool:
    """Promotion rule (see the module docstring)."""
    if item.state not in (LifecycleState.GENERATED, LifecycleState.MERGED):
        return False
    if item.memory_type.value in cfg.activation_types:
        return False  # already in the set by type
    if effective_uses(item, cfg) < cfg.promote_min_uses:
        return False
    last = item.last_accessed_at or item.updated_at
    if now - last > timedelta(days=cfg.promote_window_days):
        return False
    return not is_cold(item, cfg, now)


def demoted_state(item: MemoryItem) -> LifecycleState:
    """The state an activated item returns to when it is demoted."""
    return LifecycleState.MERGED if item.provenance.merged_from else LifecycleState.GENERATED


def activation_priority(item: MemoryItem, cfg: SchedulerConfig) -> float:
    """How much an item deserves a place in the activation block: ``importance + usage``
    (each in ``[0, 1]``), plus 1 for the ``activation_types`` (profile, fact, preference: the
    user's standing facts come first) and ``activation_hysteresis`` for promoted items."""
    prio = float(item.importance) + usage_signal(item, cfg)
    if item.memory_type.value in cfg.activation_types:
        prio += 1.0
    if item.state == LifecycleState.ACTIVATED:
        prio += cfg.activation_hysteresis
    return prio


def activation_pool(items: Iterable[MemoryItem]) -> list[MemoryItem]:
    """The items that may sit in an activation block: current, not expired, not voted down."""
    return [
        it
        for it in items
        if it.state not in (LifecycleState.ARCHIVED, LifecycleState.EXPIRED)
        and not it.is_expired
        and votes(it)[1] <= votes(it)[0]
    ]


@dataclass(frozen=True)
class BlockEntry:
    """One memory of a stored activation block layout: its id and the version it showed."""

    id: str
    version: int


@dataclass
class BlockPlan:
    """An activation block: ``items`` in block order, and the ids left out until the next
    rebuild (``pending``: members cut off behind a memory that changed)."""

    items: list[MemoryItem]
    pending: list[BlockEntry]
    rebuilt: bool

    @property
    def entries(self) -> list[BlockEntry]:
        return [BlockEntry(it.id, it.version) for it in self.items]


def plan_activation_block(
    previous: Sequence[BlockEntry] | None,
    pending: Sequence[BlockEntry],
    pool: Sequence[MemoryItem],
    *,
    token_budget: int,
    config: SchedulerConfig,
    count_tokens: TokenCounter = approx_tokens,
    rebuild: bool = False,
) -> BlockPlan:
    """The next activation block of a user, given the stored layout ``previous`` (see the
    module docstring). ``pool`` is :func:`activation_pool` of the user's own memories.

    On a call (``rebuild=False``) the block only ever keeps its valid head and grows at the end:
    the stored layout is kept up to the first member that was deleted, edited or voted down
    (that member and everything after it wait in ``pending``), then memories never seen by the
    layout are appended, the highest :func:`activation_priority` first, while they fit. So its
    KV cache is reused, cut (exactly, no forward pass) or extended by the new tail, never
    rebuilt on the hot path. A rebuild (no layout yet, or ``rebuild=True`` from
    :meth:`MemCube.maintain`) chooses by priority, members ahead by ``activation_hysteresis``,
    and keeps the unchanged members in their old order first.
    """
    cfg = config
    line_cost = {it.id: count_tokens(memory_line(it)) for it in pool}
    budget = token_budget - count_tokens(DEFAULT_HEADER)
    by_id = {it.id: it for it in pool}
    if previous is not None and not rebuild:
        kept: list[MemoryItem] = []
        used = 0
        cut_at = len(previous)
        for pos, entry in enumerate(previous):
            item = by_id.get(entry.id)
            if item is None or item.version != entry.version or used + line_cost[item.id] > budget:
                cut_at = pos
                break
            kept.append(item)
            used += line_cost[item.id]
        known = {e.id for e in (*previous, *pending)}
        waiting = [e for e in previous[cut_at:] if e.id in by_id]
        waiting += [e for e in pending if e.id in by_id and e not in waiting]
        fresh = sorted(
            (it for it in pool if it.id not in known),
            key=lambda it: (-activation_priority(it, cfg), it.created_at, it.id),
        )
        added = []
        for item in fresh:
            if used + line_cost[item.id] <= budget:
                added.append(item)
                used += line_cost[item.id]
        added.sort(key=lambda it: (it.created_at, it.id))
        return BlockPlan(kept + added, waiting, rebuilt=False)
    old = [*(previous or ()), *pending]
    members = {e.id: pos for pos, e in reversed(list(enumerate(old)))}

    def priority(it: MemoryItem) -> float:
        return activation_priority(it, cfg) + (cfg.activation_hysteresis if it.id in members else 0)

    chosen: list[MemoryItem] = []
    used = 0
    for item in sorted(pool, key=lambda it: (-priority(it), it.created_at, it.id)):
        if used + line_cost[item.id] <= budget:
            chosen.append(item)
            used += line_cost[item.id]
    unchanged = {e.id for e in old if (m := by_id.get(e.id)) and m.version == e.version}
    # unchanged members in their old order keep the longest cached head; the rest follow
    chosen.sort(
        key=lambda it: (
            (0, members[it.id], "", "")
            if it.id in unchanged
            else (1, 0, it.created_at.isoformat(), it.id)
        )
    )
    return BlockPlan(chosen, [], rebuilt=True)


__all__ = [
    "NOT_USEFUL_KEY",
    "USEFUL_KEY",
    "BlockEntry",
    "BlockPlan",
    "SchedulerConfig",
    "activation_pool",
    "activation_priority",
    "demoted_state",
    "effective_uses",
    "fit_to_budget",
    "plan_activation_block",
    "is_cold",
    "score_candidates",
    "should_promote",
    "working_memory",
]
