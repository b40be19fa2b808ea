"""What goes into a memory-aware prompt, and the KV cache that serves its stable part.

For a question from ``user_id``:

1. the **activation block**: :meth:`MemCube.activation_set` (the user's stable block: memories
   of any type by importance and use, in a stored layout that only grows at the end between
   rebuilds) rendered by :func:`memcube.prompting.render_memories`; it opens the system turn
   and is served from a KV cache (:class:`~memcube.activation.store.ActivationStore`), reused,
   extended by appended memories or cut exactly;
2. the **working block**: :meth:`MemCube.memory_block` for the question, minus what the
   activation block already holds, as plain text right after it.

Consecutive questions from one user share the activation block, hence one cache; budgets are
counted with the model's own tokenizer.

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

import hashlib
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memcube.activation.blend import BlendResult, blend
from memcube.activation.chunks import ChunkStore
from memcube.activation.store import DEFAULT_MEMORY_BUDGET, ActivationStore, ids_sha256
from memcube.items import MemoryItem
from memcube.ports import MemoryReader, PendingPayloads
from memcube.prompting import DEFAULT_HEADER, memory_line, render_memories
from memcube.provenance import MemorySource, PayloadSource, text_digest

if TYPE_CHECKING:  # pragma: no cover - typing only
    from memcube.runtime.chat import Prompt
    from memcube.runtime.engine import Runtime

__all__ = [
    "ACTIVATION_HEADER",
    "ActivationMemory",
    "MemoryContext",
    "activation_memory",
    "block_segments",
    "counter_name",
    "live_runtimes",
    "warm",
]

#: Header of the activation block (the working block uses the default header).
ACTIVATION_HEADER = "Long-term memories about the user:"
#: Share of the per-question chunk tokens blend mode recomputes (see ``benchmarks/kv_blend_quality``).
DEFAULT_RECOMPUTE_RATIO = 0.15


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
    working_segments: list[str] = field(default_factory=list)
    """The working block as one segment per line (header first), for blend mode; empty when
    the block cannot be split that way."""

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
        chunks: the :class:`~memcube.activation.chunks.ChunkStore` of per-memory KV chunks
            (blend mode); by default a new one.
    """

    def __init__(
        self,
        cube: MemoryReader,
        runtime: Runtime,
        *,
        memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
        store: ActivationStore | None = None,
        chunks: ChunkStore | None = None,
    ) -> None:
        self.cube = cube
        self.runtime = runtime
        self.store = (
            store
            if store is not None
            else ActivationStore(cube.path, runtime, memory_budget_bytes=memory_budget_bytes)
        )
        self.chunks = chunks if chunks is not None else ChunkStore(cube.path, runtime)

    def context(
        self,
        query: str,
        *,
        user_id: str,
        activation_budget: int = 1024,
        working_budget: int = 512,
    ) -> MemoryContext:
        """Pick the activation block and the question's working memories (the cube decides).
        Caches imported for this model but left for first use are built first."""
        if isinstance(self.cube, PendingPayloads):
            self.cube.rematerialize_pending(self.runtime, user_id=user_id, kind="activation")
        stable = (
            self.cube.activation_set(
                user_id,
                token_budget=activation_budget,
                count_tokens=self.runtime.count_tokens,
                counter=counter_name(self.runtime),
            )
            if activation_budget > 0
            else []
        )
        working = ""
        if query.strip() and working_budget > 0:
            # The memories in the cached prefix are in the prompt already: not repeated.
            working = self.cube.memory_block(
                query,
                user_id=user_id,
                token_budget=working_budget,
                exclude_texts=[it.content for it in stable],
                count_tokens=self.runtime.count_tokens,
            )
        items = list(getattr(working, "items", ()))
        pieces = [DEFAULT_HEADER] + ["\n" + memory_line(it, user_id) for it in items]
        return MemoryContext(
            activation_items=list(stable),
            segments=block_segments(stable),
            working_items=items,
            working_block=str(working),
            working_segments=pieces if items and "".join(pieces) == str(working) else [],
        )

    def blend(
        self,
        prompt: Prompt,
        prefix_cache: Any,
        chunk_items: Sequence[MemoryItem | None],
        *,
        recompute_ratio: float = DEFAULT_RECOMPUTE_RATIO,
    ) -> BlendResult:
        """The approximate cache of ``prompt.prefix_ids`` + its chunks: each chunk's stored KV
        (computed once per memory version, :class:`~memcube.activation.chunks.ChunkStore`)
        composed after the exact ``prefix_cache`` (see :func:`memcube.activation.blend.blend`).
        ``chunk_items`` names the memory of each chunk (``None``: the block header)."""
        chunks = []
        for ids, item in zip(prompt.chunk_ids, chunk_items):
            if item is None:
                name, version = "header", hashlib.sha256(str(ids).encode()).hexdigest()[:16]
            else:
                name, version = item.id, f"{item.version}.{item.content_hash[:16]}"
            chunks.append(self.chunks.get_or_build(name, version, ids))
        return blend(
            self.runtime,
            prefix_cache,
            len(prompt.prefix_ids),
            prompt.chunk_ids,
            chunks,
            recompute_ratio=recompute_ratio,
        )

    def prefix_cache(
        self,
        prefix_ids: Sequence[int],
        *,
        user_id: str,
        item_ids: Sequence[str] = (),
        adapter: str | None = None,
        items: Sequence[MemoryItem] = (),
        token_budget: int | None = None,
    ) -> Any:
        """The stored (read-only) KV cache of ``prefix_ids``; the runtime copies it per use.
        ``items`` (the block's memories) are recorded as the cache's source, so another model
        can rebuild it (:mod:`memcube.interchange.compat`)."""
        source = (
            block_source(self.runtime, user_id, items, prefix_ids, token_budget) if items else None
        )
        return self.store.get_or_build(
            prefix_ids,
            user_id=user_id,
            item_ids=item_ids or [it.id for it in items],
            adapter=adapter,
            source=source,
        ).cache


def block_source(
    runtime: Runtime,
    user_id: str,
    items: Sequence[MemoryItem],
    prefix_ids: Sequence[int],
    token_budget: int | None = None,
) -> PayloadSource:
    """The :class:`~memcube.provenance.PayloadSource` of a block's cache: its memories as they
    are now, the block text, the token ids' hash and the chat template's hash."""
    text = "".join(block_segments(items))
    return PayloadSource(
        user_id=user_id,
        memories=[
            MemorySource(id=it.id, version=it.version, content_sha256=text_digest(it.content))
            for it in items
        ],  # fmt: skip
        text=text,
        text_sha256=text_digest(text),
        token_ids_sha256=ids_sha256(prefix_ids),
        template_hash=runtime.fingerprint.chat_template_hash,
        token_budget=token_budget,
    )


def counter_name(runtime: Runtime) -> str:
    """The name a runtime's token counter gives the layouts it measures (its tokenizer's)."""
    return f"tokenizer:{runtime.fingerprint.digest[:16]}"


def live_runtimes(cube: MemoryReader) -> list[Runtime]:
    """The runtimes this process serves ``cube``'s activation memory with."""
    with _registry_lock:
        entry = _registry.get(id(cube))
        if entry is None or entry[0]() is not cube:
            return []
        return [kv.runtime for kv, _ in entry[1].values()]


def warm(
    cube: MemoryReader,
    runtime: Runtime,
    user_id: str,
    items: Sequence[MemoryItem],
    token_budget: int | None = None,
) -> str | None:
    """Build (or extend) the KV cache of ``user_id``'s block ``items`` for ``runtime`` now, so
    the next call finds it ready (used after a rebuild, and to rebuild an imported block).
    Returns the stored cache's key (``None`` for an empty block)."""
    from memcube.runtime.chat import ChatMessage

    if not items:
        return None
    segments = block_segments(items)
    prompt = runtime.prompt([ChatMessage("user", "?")], activation_segments=segments)
    mem = activation_memory(cube, runtime)
    mem.prefix_cache(prompt.prefix_ids, user_id=user_id, items=items, token_budget=token_budget)
    return mem.store.key_for(prompt.prefix_ids)


# The stores of the process, per cube object and runtime. A cube is referenced weakly: once the
# application drops a cube (closed or not), its entry goes with it, and the stores (which hold
# the runtime and the cube folder, never the cube) are released.
_registry: dict[
    int, tuple[weakref.ref[MemoryReader], dict[int, tuple[ActivationStore, ChunkStore]]]
] = {}
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
        pair = stores.get(id(runtime))
        if pair is None or pair[0].runtime is not runtime:
            pair = stores[id(runtime)] = (
                ActivationStore(cube.path, runtime),
                ChunkStore(cube.path, runtime),
            )
        return ActivationMemory(cube, runtime, store=pair[0], chunks=pair[1])
