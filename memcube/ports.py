"""The narrow protocols the cube's parts receive instead of the ``MemCube`` facade.

A part names what it needs from the rest of the cube as one of these :class:`typing.Protocol`
classes; the facade (:class:`memcube.MemCube`), or a service below it, satisfies them
structurally. So parts never import :mod:`memcube.cube`, and a test can hand a part a small
object of its own.

Example:
    >>> from memcube.items import MemoryItem
    >>> class Counter:
    ...     def __init__(self) -> None:
    ...         self.ids: list[str] = []
    ...     def record_usage(self, ids):
    ...         self.ids.extend(ids)
    ...     def flush_usage(self) -> None:
    ...         pass
    >>> isinstance(Counter(), UsageSink)
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from memcube.items import LifecycleState, MemoryItem, MemoryType, Provenance, SearchHit

if TYPE_CHECKING:
    from memcube.config import CubeManifest


@runtime_checkable
class UsageSink(Protocol):
    """Where reads report the memories they used (the scheduler's usage signal)."""

    def record_usage(self, ids: Sequence[str]) -> None:
        """Count ``ids`` as accessed now (buffered; written back later)."""

    def flush_usage(self) -> None:
        """Write buffered counts now (promotions happen when counts are written)."""


class MemorySearcher(Protocol):
    """Scoped search and listing of a user's memories: what the scheduler reads from."""

    def search(
        self,
        query: str,
        *,
        user_id: str,
        k: int = ...,
        filters: dict[str, Any] | None = ...,
        memory_types: Sequence[MemoryType | str] | None = ...,
        tags: Sequence[str] | None = ...,
        agent_id: str | None = ...,
        session_id: str | None = ...,
        time_range: tuple[datetime | None, datetime | None] | None = ...,
        include_archived: bool = ...,
        count_usage: bool = ...,
        include_shared: bool = ...,
    ) -> list[SearchHit]: ...

    def items(
        self,
        *,
        user_id: str | None,
        include_archived: bool = ...,
        filters: dict[str, Any] | None = ...,
        batch_size: int = ...,
        tags: Sequence[str] | None = ...,
        include_shared: bool = ...,
    ) -> Iterator[MemoryItem]: ...


class MemoryReader(MemorySearcher, Protocol):
    """A cube as read by activation and parametric memory: scoped reads plus the cube folder."""

    @property
    def path(self) -> Path: ...

    def get_many(self, ids: Sequence[str], *, user_id: str | None = None) -> list[MemoryItem]: ...

    def activation_set(
        self,
        user_id: str,
        *,
        token_budget: int | None = ...,
        count_tokens: Callable[[str], int] | None = ...,
        counter: str | None = ...,
        rebuild: bool = ...,
        config: Any = ...,
    ) -> list[MemoryItem]: ...

    def working_memory(self, query: str, *, user_id: str, **kwargs: Any) -> list[MemoryItem]: ...

    def memory_block(self, query: str, *, user_id: str, **kwargs: Any) -> str: ...

    def render(self, items: Sequence[MemoryItem], **kwargs: Any) -> str: ...


class DuplicateFinder(Protocol):
    """The stored memories the lifecycle compares a batch with (found through the lookup keys
    of :mod:`memcube.plaintext.records`)."""

    def by_subject(self, scopes: Sequence[str], subjects: Sequence[str]) -> list[MemoryItem]:
        """Memories in these lookup scopes whose subject is one of ``subjects``."""

    def by_hash(self, scopes: Sequence[str], hashes: Sequence[str]) -> list[MemoryItem]:
        """Memories in these lookup scopes whose content hash is one of ``hashes``."""

    def nearest(
        self, scope: str, vectors: Sequence[Sequence[float]]
    ) -> list[tuple[float, MemoryItem] | None]:
        """Per vector, the most similar memory of ``scope`` with its cosine similarity."""


@runtime_checkable
class ExportSource(Protocol):
    """What an export reads: every memory with its versions, the manifest and the cube folder."""

    @property
    def path(self) -> Path: ...

    @property
    def manifest(self) -> CubeManifest: ...

    @property
    def cube_id(self) -> str: ...

    def count(self, *, user_id: str | None = None, include_archived: bool = False) -> int: ...

    def items(
        self, *, user_id: str | None, include_archived: bool = False
    ) -> Iterator[MemoryItem]: ...

    def history(self, id: str, *, user_id: str | None = None) -> list[MemoryItem]: ...


@runtime_checkable
class ImportTarget(Protocol):
    """What an import writes to: reads to plan conflicts, and the writes that apply the plan."""

    @property
    def path(self) -> Path: ...

    @property
    def manifest(self) -> CubeManifest: ...

    def close(self) -> None: ...

    def get_many(self, ids: Sequence[str], *, user_id: str | None = None) -> list[MemoryItem]: ...

    def delete(self, id: str, *, user_id: str | None = None, hard: bool = False) -> None: ...

    def update(
        self,
        id: str,
        *,
        user_id: str | None = ...,
        content: str | None = ...,
        metadata: dict[str, Any] | None = ...,
        tags: Sequence[str] | None = ...,
        importance: float | None = ...,
        memory_type: MemoryType | str | None = ...,
        event_time: datetime | None = ...,
        expires_at: datetime | None = ...,
        state: LifecycleState | str | None = ...,
        provenance: Provenance | dict[str, Any] | None = ...,
    ) -> MemoryItem: ...

    def restore(
        self, records: Sequence[Sequence[MemoryItem]], *, detail: dict[str, Any] | None = None
    ) -> None:
        """Write memories with their versions verbatim (per memory: oldest first, current last)."""


@runtime_checkable
class MarketplaceCube(ExportSource, ImportTarget, Protocol):
    """What the registry marketplace (:mod:`memcube.marketplace`) works on: a cube it exports
    from, imports into, and whose pulled memories it shares read-only with readers."""

    def share(
        self,
        owner: str,
        with_user: str,
        *,
        ids: Sequence[str] | None = ...,
        access: str = ...,
        user_id: str | None = ...,
    ) -> Any: ...


@runtime_checkable
class RankingSource(Protocol):
    """A cube whose ranking profiles (learned from feedback) an export carries."""

    def export_ranking(self, user_id: str | None = None) -> dict[str, Any] | None: ...


@runtime_checkable
class RankingTarget(Protocol):
    """A cube that stores the ranking profiles an import carries."""

    def import_ranking(self, document: Any, *, on_conflict: str = ...) -> list[str]: ...


@runtime_checkable
class PendingPayloads(Protocol):
    """A cube holding caches or adapters imported for its model but not built yet
    (``rematerialize="lazy"``); they are built on first use with that model."""

    def rematerialize_pending(
        self, runtime: Any, *, user_id: str | None = ..., kind: str | None = ...
    ) -> list[Any]: ...


__all__ = [
    "DuplicateFinder",
    "ExportSource",
    "ImportTarget",
    "MarketplaceCube",
    "MemoryReader",
    "MemorySearcher",
    "PendingPayloads",
    "RankingSource",
    "RankingTarget",
    "UsageSink",
]
