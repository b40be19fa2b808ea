"""The async twins of :class:`memcube.MemCube`'s methods: each runs its sync method in a worker
thread (``asyncio.to_thread``), so an event loop is never blocked by Chroma or the embedder."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from memcube.items import MemoryItem, SearchHit
from memcube.prompting import MemoryBlock


class _Sync(Protocol):
    """The sync methods the twins run (the facade's; this mixin's self type). Read-only
    callables, so the facade's precise signatures satisfy them."""

    @property
    def export(self) -> Callable[..., Any]: ...
    @property
    def add(self) -> Callable[..., MemoryItem]: ...
    @property
    def add_many(self) -> Callable[..., list[MemoryItem]]: ...
    @property
    def get(self) -> Callable[..., MemoryItem]: ...
    @property
    def update(self) -> Callable[..., MemoryItem]: ...
    @property
    def delete(self) -> Callable[..., None]: ...
    @property
    def delete_all(self) -> Callable[..., int]: ...
    @property
    def set_expiry(self) -> Callable[..., list[MemoryItem]]: ...
    @property
    def history(self) -> Callable[..., list[MemoryItem]]: ...
    @property
    def search(self) -> Callable[..., list[SearchHit]]: ...
    @property
    def add_messages(self) -> Callable[..., list[MemoryItem]]: ...
    @property
    def working_memory(self) -> Callable[..., list[MemoryItem]]: ...
    @property
    def activation_set(self) -> Callable[..., list[MemoryItem]]: ...
    @property
    def memory_block(self) -> Callable[..., MemoryBlock]: ...
    @property
    def count(self) -> Callable[..., int]: ...
    @property
    def feedback(self) -> Callable[..., MemoryItem]: ...
    @property
    def implicit_feedback(self) -> Callable[..., list[str]]: ...


class AsyncTwins:
    """``a``-prefixed twins of the facade's methods, mixed into :class:`memcube.MemCube`."""

    async def afeedback(self: _Sync, id: str, **kwargs: Any) -> MemoryItem:
        """Async :meth:`feedback`."""
        return await asyncio.to_thread(self.feedback, id, **kwargs)

    async def aimplicit_feedback(
        self: _Sync, answer: str, ids: Sequence[str], **kwargs: Any
    ) -> list[str]:
        """Async :meth:`implicit_feedback`."""
        return await asyncio.to_thread(self.implicit_feedback, answer, ids, **kwargs)

    async def aexport(self: _Sync, path: str | Path, **kwargs: Any) -> Any:
        """Async :meth:`export`."""
        return await asyncio.to_thread(self.export, path, **kwargs)

    async def aadd(self: _Sync, content: str, **kwargs: Any) -> MemoryItem:
        """Async :meth:`add`."""
        return await asyncio.to_thread(self.add, content, **kwargs)

    async def aadd_many(
        self: _Sync, items: Iterable[MemoryItem | dict[str, Any]], **kwargs: Any
    ) -> list[MemoryItem]:
        """Async :meth:`add_many`."""
        return await asyncio.to_thread(self.add_many, list(items), **kwargs)

    async def aget(self: _Sync, id: str, **kwargs: Any) -> MemoryItem:
        """Async :meth:`get`."""
        return await asyncio.to_thread(self.get, id, **kwargs)

    async def aupdate(self: _Sync, id: str, **kwargs: Any) -> MemoryItem:
        """Async :meth:`update`."""
        return await asyncio.to_thread(self.update, id, **kwargs)

    async def adelete(self: _Sync, id: str, **kwargs: Any) -> None:
        """Async :meth:`delete`."""
        await asyncio.to_thread(self.delete, id, **kwargs)

    async def adelete_all(self: _Sync, user_id: str, **kwargs: Any) -> int:
        """Async :meth:`delete_all`."""
        return await asyncio.to_thread(self.delete_all, user_id, **kwargs)

    async def aset_expiry(self: _Sync, ids: Sequence[str], **kwargs: Any) -> list[MemoryItem]:
        """Async :meth:`set_expiry`."""
        return await asyncio.to_thread(self.set_expiry, list(ids), **kwargs)

    async def ahistory(self: _Sync, id: str, **kwargs: Any) -> list[MemoryItem]:
        """Async :meth:`history`."""
        return await asyncio.to_thread(self.history, id, **kwargs)

    async def asearch(self: _Sync, query: str, **kwargs: Any) -> list[SearchHit]:
        """Async :meth:`search`."""
        return await asyncio.to_thread(self.search, query, **kwargs)

    async def aadd_messages(
        self: _Sync, messages: Iterable[Any], **kwargs: Any
    ) -> list[MemoryItem]:
        """Async :meth:`add_messages`."""
        return await asyncio.to_thread(self.add_messages, list(messages), **kwargs)

    async def aworking_memory(self: _Sync, query: str, **kwargs: Any) -> list[MemoryItem]:
        """Async :meth:`working_memory`."""
        return await asyncio.to_thread(self.working_memory, query, **kwargs)

    async def amemory_block(self: _Sync, query: str, **kwargs: Any) -> MemoryBlock:
        """Async :meth:`memory_block`."""
        return await asyncio.to_thread(self.memory_block, query, **kwargs)

    async def aactivation_set(self: _Sync, user_id: str, **kwargs: Any) -> list[MemoryItem]:
        """Async :meth:`activation_set`."""
        return await asyncio.to_thread(self.activation_set, user_id, **kwargs)

    async def acount(self: _Sync, **kwargs: Any) -> int:
        """Async :meth:`count`."""
        return await asyncio.to_thread(self.count, **kwargs)
