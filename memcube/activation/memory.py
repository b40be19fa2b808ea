"""What goes into a memory-aware prompt, and the KV cache that serves its stable part.

For a question from ``user_id``:

1. the **activation block**: :meth:`MemCube.activation_set` (the user's stable memories, in a
   stable order) rendered by :func:`memcube.prompting.render_memories`; it opens the system turn
   and is served from a KV cache (:class:`~memcube.activation.store.ActivationStore`);
2. the **working block**: :meth:`MemCube.memory_block` for the question, minus what the
   activation block already holds, as plain text right after it.

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
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memcube.activation.store import DEFAULT_MEMORY_BUDGET, ActivationStore
from memcube.items import MemoryItem
from memcube.ports import MemoryReader
from memcube.prompting import render_memories

if TYPE_CHECKING:  # pragma: no cover - typing only
    from memcube.runtime.engine import Runtime

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
        segments.append(full[len(rendered) :])
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
        cube: the cube (a :class:`memcube.ports.MemoryReader`, e.g. a :class:`memcube.MemCube`);
            caches live in ``cube.path / "activation"``.
        runtime: the :class:`memcube.runtime.Runtime` whose model reads the prompts.
        memory_budget_bytes: in-memory LRU tier size (when ``store`` is not given).
        store: the :class:`ActivationStore` to use (it must belong to ``cube.path`` and
            ``runtime``); by default a new one.
    """

    def __init__(
        self,
        cube: MemoryReader,
        runtime: Runtime,
        *,
        memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
        store: ActivationStore | None = None,
    ) -> None:
        self.cube = cube
        self.runtime = runtime
        self.store = (
            store
            if store is not None
            else ActivationStore(cube.path, runtime, memory_budget_bytes=memory_budget_bytes)
        )

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
        working = ""
        if query.strip() and working_budget > 0:
            # The memories in the cached prefix are in the prompt already: not repeated.
            working = self.cube.memory_block(
                query,
                user_id=user_id,
                token_budget=working_budget,
                exclude_texts=[it.content for it in stable],
            )
        return MemoryContext(
            activation_items=list(stable),
            segments=block_segments(stable),
            working_items=list(getattr(working, "items", ())),
            working_block=str(working),
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


# The stores of the process, per cube object and runtime. A cube is referenced weakly: once the
# application drops a cube (closed or not), its entry goes with it, and the stores (which hold
# the runtime and the cube folder, never the cube) are released.
_registry: dict[int, tuple[weakref.ref[MemoryReader], dict[int, ActivationStore]]] = {}
_registry_lock = threading.RLock()  # re-entrant: a weakref callback may run under it


def _forgetter(key: int) -> Callable[[weakref.ref[MemoryReader]], None]:
    """The weakref callback that drops the entry of a collected cube."""

    def forget(ref: weakref.ref[MemoryReader]) -> None:
        with _registry_lock:
            entry = _registry.get(key)
            if entry is not None and entry[0] is ref:
                del _registry[key]

    return forget


def activation_memory(cube: MemoryReader, runtime: Runtime) -> ActivationMemory:
    """The :class:`ActivationMemory` of ``cube`` for ``runtime``'s model.

    Calls for the same cube object and runtime share one :class:`ActivationStore` (so its
    in-memory tier and statistics) for as long as the cube object lives; the cube itself is
    not kept alive by this. A cube that cannot be weakly referenced gets a new store each time.
    """
    key = id(cube)
    with _registry_lock:
        entry = _registry.get(key)
        if entry is None or entry[0]() is not cube:
            try:
                ref: weakref.ref[MemoryReader] = weakref.ref(cube, _forgetter(key))
            except TypeError:  # not weakly referenceable: nothing to share safely
                return ActivationMemory(cube, runtime)
            entry = _registry[key] = (ref, {})
        stores = entry[1]
        store = stores.get(id(runtime))
        if store is None or store.runtime is not runtime:
            store = stores[id(runtime)] = ActivationStore(cube.path, runtime)
        return ActivationMemory(cube, runtime, store=store)
