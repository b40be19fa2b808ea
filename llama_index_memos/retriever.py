"""``MemCubeRetriever``: a LlamaIndex ``BaseRetriever`` over a user's memories in a MemCube."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
from llama_index.core.tools import RetrieverTool
from llama_index.core.vector_stores.types import MetadataFilters

from llama_index_memos._common import (
    check_budget,
    check_cube,
    check_user,
    translate_metadata_filters,
)
from memcube import MemCube, MemoryType, SearchHit
from memcube.errors import InvalidInputError
from memcube.items import check_scope_id

#: Node metadata keys shown to the LLM next to a memory's text: when it happened, as the cube's
#: own prompt block shows it. Everything else is hidden from the LLM and from embedding, but stays
#: on the node for code and citations.
LLM_VISIBLE_METADATA = ("event_time",)

DEFAULT_TOOL_NAME = "search_memories"
DEFAULT_TOOL_DESCRIPTION = (
    "Search the user's long-term memories (facts, preferences and past conversations). "
    "Input: what to look for, in natural language."
)


def hit_to_node(hit: SearchHit) -> NodeWithScore:
    """A search hit as a ``NodeWithScore``: the node id is the memory id, its text the memory's
    content, and its metadata the memory header (id, type, times, scope, provenance, score).
    ``event_time`` (when the remembered thing happened) is present only when the memory has one;
    ``created_at`` (when it was recorded) always is."""
    item = hit.item
    metadata: dict[str, Any] = {
        "memory_id": item.id,
        "memory_type": item.memory_type.value,
        "created_at": item.created_at.isoformat(),
        "user_id": item.user_id,
        "version": item.version,
        "state": item.state.value,
        "provenance": item.provenance.model_dump(mode="json"),
        "score": hit.score,
        "signals": dict(hit.signals),
    }
    if item.event_time is not None:
        metadata["event_time"] = item.event_time.isoformat()
    for key in ("agent_id", "session_id"):
        value = getattr(item, key)
        if value is not None:
            metadata[key] = value
    if item.tags:
        metadata["tags"] = list(item.tags)
    if item.metadata:
        metadata["metadata"] = dict(item.metadata)
    hidden = [k for k in metadata if k not in LLM_VISIBLE_METADATA]
    node = TextNode(
        id_=item.id,
        text=item.content,
        metadata=metadata,
        excluded_llm_metadata_keys=hidden,
        excluded_embed_metadata_keys=list(metadata),
    )
    return NodeWithScore(node=node, score=hit.score)


class MemCubeRetriever(BaseRetriever):
    """Retrieve one user's memories from a MemCube as ``NodeWithScore`` (best first).

    Works wherever LlamaIndex takes a retriever: ``RetrieverQueryEngine.from_args(retriever)``,
    ``ContextChatEngine`` / ``CondensePlusContextChatEngine``, or as an agent tool
    (:meth:`as_tool`). Ranking, scoping and filtering are the cube's (``cube.search``).

    Args:
        cube: the open :class:`~memcube.MemCube`.
        user_id: whose memories are searched (required; nobody else's are ever returned).
        similarity_top_k: how many memories to return.
        filters: cube filter dict (``{"memory_type": "fact", "city": "Paris"}``) or LlamaIndex
            ``MetadataFilters`` on the same keys.
        memory_types, tags, agent_id, session_id, time_range, include_archived: as in
            :meth:`memcube.MemCube.search`.

    Example:
        >>> import tempfile
        >>> from memcube import MemCube
        >>> from llama_index_memos import MemCubeRetriever
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> _ = cube.add("Alice's dentist is Dr. Silva", user_id="alice", memory_type="fact")
        >>> nodes = MemCubeRetriever(cube=cube, user_id="alice").retrieve("who is my dentist?")
        >>> nodes[0].node.metadata["memory_type"], nodes[0].text
        ('fact', "Alice's dentist is Dr. Silva")
        >>> cube.close()
    """

    def __init__(
        self,
        cube: MemCube,
        user_id: str,
        *,
        similarity_top_k: int = 5,
        filters: dict[str, Any] | MetadataFilters | None = None,
        memory_types: Sequence[MemoryType | str] | None = None,
        tags: Sequence[str] | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        time_range: tuple[datetime | None, datetime | None] | None = None,
        include_archived: bool = False,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ) -> None:
        self.cube = check_cube(cube)
        self.user_id = check_user(user_id)
        self.similarity_top_k = check_budget(similarity_top_k, "similarity_top_k")
        self.filters = translate_metadata_filters(filters)
        self.memory_types = list(memory_types) if memory_types is not None else None
        self.tags = list(tags) if tags is not None else None
        self.agent_id = check_scope_id(agent_id, "agent_id")
        self.session_id = check_scope_id(session_id, "session_id")
        self.time_range = time_range
        self.include_archived = include_archived
        super().__init__(callback_manager=callback_manager, verbose=verbose)

    def _search_kwargs(self, query_bundle: QueryBundle) -> dict[str, Any]:
        if not isinstance(query_bundle.query_str, str) or not query_bundle.query_str.strip():
            raise InvalidInputError("MemCubeRetriever needs a non-empty query.")
        return dict(
            user_id=self.user_id,
            k=self.similarity_top_k,
            filters=self.filters,
            memory_types=self.memory_types,
            tags=self.tags,
            agent_id=self.agent_id,
            session_id=self.session_id,
            time_range=self.time_range,
            include_archived=self.include_archived,
        )

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.cube.search(query_bundle.query_str, **self._search_kwargs(query_bundle))
        return [hit_to_node(h) for h in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = await self.cube.asearch(query_bundle.query_str, **self._search_kwargs(query_bundle))
        return [hit_to_node(h) for h in hits]

    def as_tool(
        self, name: str = DEFAULT_TOOL_NAME, description: str = DEFAULT_TOOL_DESCRIPTION
    ) -> RetrieverTool:
        """This retriever as an agent tool (``FunctionAgent(tools=[retriever.as_tool()])``)."""
        return RetrieverTool.from_defaults(retriever=self, name=name, description=description)
