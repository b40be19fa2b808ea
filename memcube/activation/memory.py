"""What goes into a memory-aware prompt, and the KV cache that serves its stable part.

For a question from ``user_id``:

1. the **activation block**: :meth:`MemCube.activation_set` (the user's stable memories, in a
   stable order) rendered by :func:`memcube.prompting.render_memories`; it opens the system turn
   and is served from a KV cache (:class:`~memcube.activation.store.ActivationStore`);
2. the **working block**: :meth:`MemCube.working_memory` for the question, minus what the
   activation block already holds, rendered as plain text right after it.

Consecutive questions from one user share the activation block, hence one cache.

Example:
    >>> import tempfile
    >>> from memcube import MemCube
    >>> from memcube.runtime import Runtime
    >>> cube = MemCube.open(tempfile.mkdtemp())
    >>> _ = cube.add("The user is vegetarian.", user_id="alice", memory_type="preference")
    >>> mem = ActivationMemory(cube, Runtime.shared())
    >>> ctx = mem.context("What should I cook?", user_id="alice")
    >>> "vegetarian" in "".join(ctx.segments)
    True
    >>> cube.close()
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memcube.activation.store import DEFAULT_MEMORY_BUDGET, ActivationStore
from memcube.items import MemoryItem
from memcube.prompting import render_memories

__all__ = [
    "ACTIVATION_HEADER",
    "ActivationMemory",
    "MemoryContext",
    "activation_memory",
    "block_segments",
]

#: Header of the activation block (the working block uses the default header).
ACTIVATION_HEADER = "Long-term memories about the user:"


def block_segments(items: Sequence[MemoryItem], header: str = ACTIVATION_HEADER) -> list[str]:
    """The activation block as segments whose concatenation is ``render_memories(items)``.

    Segment ``k`` is what item ``k`` adds to the rendering of the items before it, so a block
    that grows by appended items grows by appended segments (and appended token ids).

    Example:
        >>> from memcube.items import MemoryItem
        >>> segs = block_segments([MemoryItem(content="a", user_id="u"),
        ...                        MemoryItem(content="b", user_id="u")])
        >>> len(segs), segs[1].startswith("\\n- ")
        (2, True)
    """
    segments: list[str] = []
    rendered = ""
    for k in range(1, len(items) + 1):
        full = render_memories(items[:k], header=header)
        if not full.startswith(rendered):  # the renderer is not append-only: one segment
            return [render_memories(items, header=header)] if items else []
        segments.append(full[len(rendered):])
        rendered = full
    return segments


@dataclass
class MemoryContext:
    """The memory parts of one prompt."""

    activation_items: list[MemoryItem] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    working_items: list[MemoryItem] = field(default_factory=list)
    working_block: str = ""

    @property
    def item_ids(self) -> list[str]:
        return [it.id for it in self.activation_items]


class ActivationMemory:
    """Activation memory of one cube for one runtime (model).

    Args:
        cube: the :class:`memcube.MemCube`; caches live in ``cube.path / "activation"``.
        runtime: the :class:`memcube.runtime.Runtime` whose model reads the prompts.
        memory_budget_bytes: in-memory LRU tier size.
    """

    def __init__(self, cube: Any, runtime: Any, *,
                 memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET) -> None:
        self.cube = cube
        self.runtime = runtime
        self.store = ActivationStore(cube.path, runtime, memory_budget_bytes=memory_budget_bytes)

    def context(
        self,
        query: str,
        *,
        user_id: str,
        activation_budget: int = 1024,
        working_budget: int = 512,
    ) -> MemoryContext:
        """Pick the activation block and the question's working memories (the cube decides)."""
        stable = self.cube.activation_set(user_id, token_budget=activation_budget)
        held = {it.id for it in stable}
        working: list[MemoryItem] = []
        if query.strip() and working_budget > 0:
            working = [
                it
                for it in self.cube.working_memory(query, user_id=user_id,
                                                   token_budget=working_budget)
                if it.id not in held
            ]
        return MemoryContext(
            activation_items=list(stable),
            segments=block_segments(stable),
            working_items=working,
            working_block=self.cube.render(working) if working else "",
        )

    def prefix_cache(
        self,
        prefix_ids: Sequence[int],
        *,
        user_id: str,
        item_ids: Sequence[str] = (),
        adapter: str | None = None,
    ) -> Any:
        """The stored (read-only) KV cache of ``prefix_ids``; the runtime copies it per use."""
        return self.store.get_or_build(
            prefix_ids, user_id=user_id, item_ids=item_ids, adapter=adapter
        ).cache


_registry: dict[tuple[str, int], ActivationMemory] = {}
_registry_lock = threading.Lock()


def activation_memory(cube: Any, runtime: Any) -> ActivationMemory:
    """The process-wide :class:`ActivationMemory` of ``cube`` for ``runtime``'s model."""
    key = (str(cube.path), id(runtime))
    with _registry_lock:
        mem = _registry.get(key)
        if mem is None or mem.cube is not cube or mem.runtime is not runtime:
            mem = _registry[key] = ActivationMemory(cube, runtime)
        return mem
