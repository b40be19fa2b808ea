"""Stored layouts of activation blocks: which memories, in which order, each user's KV-cached
block holds.

The choice is the scheduler's (:func:`memcube.scheduler.plan_activation_block`); this module
keeps its result between calls and processes, in ``<cube>/activation_layouts/<key>.json`` (one
file per user, token budget and token counter, written atomically; JSON only). Because text and
KV calls read the same layout, ``kv_memory=True`` and ``False`` always show the model the same
block.

Example:
    >>> import tempfile
    >>> from memcube import MemCube
    >>> from memcube.scheduler import SchedulerConfig
    >>> cube = MemCube.open(tempfile.mkdtemp())
    >>> a = cube.add("I live in Porto.", user_id="ann")
    >>> layouts = BlockLayouts(cube.path)
    >>> [it.id for it in layouts.block(cube, "ann", token_budget=256, config=SchedulerConfig())] == [a.id]
    True
    >>> b = cube.add("My sister is called Rita.", user_id="ann")
    >>> [it.id for it in layouts.block(cube, "ann", token_budget=256, config=SchedulerConfig())] == [a.id, b.id]
    True
    >>> cube.close()
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memcube.atomic import atomic_write_text
from memcube.items import MemoryItem, utcnow
from memcube.ports import MemorySearcher
from memcube.prompting import TokenCounter, approx_tokens
from memcube.scheduler import (
    BlockEntry,
    BlockPlan,
    SchedulerConfig,
    activation_pool,
    plan_activation_block,
)

__all__ = ["APPROX_COUNTER", "BlockLayouts", "StoredLayout"]

FORMAT_VERSION = 1
#: The name of the cube's own token estimate (about four characters a token).
APPROX_COUNTER = "approx"
_MAX_LAYOUT_BYTES = 8 * 1024 * 1024


@dataclass
class StoredLayout:
    """One stored layout (what a file holds)."""

    user_id: str
    token_budget: int
    counter: str
    entries: list[BlockEntry]
    pending: list[BlockEntry]
    rebuild_due: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "user_id": self.user_id,
                "token_budget": self.token_budget,
                "counter": self.counter,
                "entries": [[e.id, e.version] for e in self.entries],
                "pending": [[e.id, e.version] for e in self.pending],
                "rebuild_due": self.rebuild_due,
                "updated_at": utcnow().isoformat(),
            }
        )

    @classmethod
    def from_json(cls, text: str) -> StoredLayout | None:
        """The layout in ``text``, or ``None`` when it is not a readable layout (it is then
        rebuilt: a layout is a cache of a decision, never the only copy of anything)."""
        try:
            data: Any = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
                return None
            return cls(
                user_id=str(data["user_id"]),
                token_budget=int(data["token_budget"]),
                counter=str(data["counter"]),
                entries=[BlockEntry(str(i), int(v)) for i, v in data["entries"]],
                pending=[BlockEntry(str(i), int(v)) for i, v in data["pending"]],
                rebuild_due=bool(data.get("rebuild_due", False)),
            )
        except (ValueError, KeyError, TypeError):
            return None


class BlockLayouts:
    """The stored activation block layouts of one cube (folder ``root/activation_layouts``).

    Args:
        root: the cube folder.
    """

    def __init__(self, root: str | Path) -> None:
        self.folder = Path(root) / "activation_layouts"
        self._lock = threading.Lock()

    def _path(self, user_id: str, token_budget: int, counter: str) -> Path:
        raw = f"{user_id}\0{token_budget}\0{counter}".encode()
        return self.folder / f"{hashlib.sha256(raw).hexdigest()[:32]}.json"

    def _read(self, path: Path) -> StoredLayout | None:
        try:
            if path.stat().st_size > _MAX_LAYOUT_BYTES:
                return None
            return StoredLayout.from_json(path.read_text(encoding="utf-8"))
        except OSError:
            return None

    def block(
        self,
        searcher: MemorySearcher,
        user_id: str,
        *,
        token_budget: int,
        config: SchedulerConfig,
        count_tokens: TokenCounter = approx_tokens,
        counter: str = APPROX_COUNTER,
        rebuild: bool = False,
    ) -> list[MemoryItem]:
        """The user's activation block for ``token_budget`` tokens counted by ``count_tokens``
        (named ``counter``: layouts measured by different counters are kept apart), updating
        the stored layout (see :func:`~memcube.scheduler.plan_activation_block`)."""
        path = self._path(user_id, token_budget, counter)
        with self._lock:
            stored = self._read(path)
            pool = activation_pool(searcher.items(user_id=user_id))
            plan: BlockPlan = plan_activation_block(
                stored.entries if stored is not None else None,
                stored.pending if stored is not None else (),
                pool,
                token_budget=token_budget,
                config=config,
                count_tokens=count_tokens,
                rebuild=rebuild or (stored is not None and stored.rebuild_due),
            )
            layout = StoredLayout(user_id, token_budget, counter, plan.entries, plan.pending)
            if stored is None or (stored.entries, stored.pending, stored.rebuild_due) != (
                layout.entries,
                layout.pending,
                False,
            ):
                atomic_write_text(path, layout.to_json())
            return plan.items

    def adopt(
        self, user_id: str, *, token_budget: int, counter: str, entries: list[BlockEntry]
    ) -> None:
        """Store ``entries`` as the user's block for this budget and counter (an imported
        block rebuilt for this cube's model), replacing what was stored."""
        layout = StoredLayout(user_id, token_budget, counter, list(entries), [])
        with self._lock:
            atomic_write_text(self._path(user_id, token_budget, counter), layout.to_json())

    def layouts(self, user_id: str | None = None) -> list[StoredLayout]:
        """The readable stored layouts (of one user, or all)."""
        if not self.folder.is_dir():
            return []
        found = [self._read(p) for p in sorted(self.folder.glob("*.json"))]
        return [x for x in found if x is not None and (user_id is None or x.user_id == user_id)]

    def rebuild(
        self,
        searcher: MemorySearcher,
        user_id: str | None,
        *,
        config: SchedulerConfig,
        counters: Mapping[str, TokenCounter] | None = None,
    ) -> list[StoredLayout]:
        """Rebuild the stored layouts of ``user_id`` (every user's with ``None``): the batched
        removals, reorders and evictions the hot path leaves out. A layout measured by a token
        counter not in ``counters`` (a model not loaded in this process) is marked due and
        rebuilt by its next call. Returns the layouts rebuilt now."""
        known: dict[str, TokenCounter] = {APPROX_COUNTER: approx_tokens, **(counters or {})}
        done = []
        for layout in self.layouts(user_id):
            count = known.get(layout.counter)
            if count is None:
                layout.rebuild_due = True
                with self._lock:
                    atomic_write_text(
                        self._path(layout.user_id, layout.token_budget, layout.counter),
                        layout.to_json(),
                    )
                continue
            items = self.block(
                searcher,
                layout.user_id,
                token_budget=layout.token_budget,
                config=config,
                count_tokens=count,
                counter=layout.counter,
                rebuild=True,
            )
            layout.entries = [BlockEntry(it.id, it.version) for it in items]
            layout.pending = []
            done.append(layout)
        return done
