"""``MemCubeRetriever``: a LangChain ``BaseRetriever`` over one user's cube memories."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from memcube import MemCube
from memcube.errors import InvalidInputError
from memcube.items import SearchHit

_SEARCH_KWARGS = {"k", "filters", "memory_types", "tags", "agent_id", "session_id", "time_range"}


def hit_to_document(hit: SearchHit) -> Document:
    """A search hit as a LangChain ``Document``: the memory text, with its header in metadata."""
    item = hit.item

    def iso(value: datetime | None) -> str | None:
        return None if value is None else value.isoformat()

    return Document(
        id=item.id,
        page_content=item.content,
        metadata={
            "id": item.id,
            "score": hit.score,
            "memory_type": item.memory_type.value,
            "event_time": iso(item.event_time),
            "created_at": iso(item.created_at),
            "updated_at": iso(item.updated_at),
            "user_id": item.user_id,
            "agent_id": item.agent_id,
            "session_id": item.session_id,
            "version": item.version,
            "tags": list(item.tags),
            "provenance": item.provenance.model_dump(mode="json"),
            "metadata": dict(item.metadata),
        },
    )


class MemCubeRetriever(BaseRetriever):
    """Retrieves one user's memories from a cube, best first.

    Every field can be overridden per call (``retriever.invoke(query, k=2, tags=[...])``).

    Example:
        >>> import tempfile
        >>> from memcube import MemCube
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> _ = cube.add("Alice's sister is called Inês", user_id="alice", memory_type="fact")
        >>> docs = MemCubeRetriever(cube=cube, user_id="alice", k=1).invoke("Alice's family")
        >>> docs[0].page_content, docs[0].metadata["memory_type"]
        ("Alice's sister is called Inês", 'fact')
        >>> cube.close()
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cube: MemCube
    """The cube to search."""
    user_id: str
    """Whose memories are searched (the cube enforces the scope)."""
    k: int = 4
    """How many documents to return."""
    filters: dict[str, Any] | None = None
    """Conditions on header fields or metadata keys (see ``MemCube.search``)."""
    memory_types: list[str] | None = None
    """Only these kinds of memory (``fact``, ``episodic``, ...)."""
    tags: list[str] | None = None
    """Only memories carrying every one of these tags."""
    agent_id: str | None = None
    session_id: str | None = None
    search_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Further keyword arguments for ``MemCube.search`` (e.g. ``time_range``)."""

    def _kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        unknown = set(kwargs) - _SEARCH_KWARGS
        if unknown:
            raise InvalidInputError(
                f"unknown retriever arguments {sorted(unknown)}; use {sorted(_SEARCH_KWARGS)}."
            )
        merged: dict[str, Any] = {
            "k": self.k,
            "filters": self.filters,
            "memory_types": self.memory_types,
            "tags": self.tags,
            "agent_id": self.agent_id,
            "session_id": self.session_id,
            **self.search_kwargs,
            **kwargs,
        }
        return merged

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        hits = self.cube.search(query, user_id=self.user_id, **self._kwargs(kwargs))
        return [hit_to_document(h) for h in hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        hits = await self.cube.asearch(query, user_id=self.user_id, **self._kwargs(kwargs))
        return [hit_to_document(h) for h in hits]
