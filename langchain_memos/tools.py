"""Memory tools bound to a cube and a user: search, save, update and delete memories.

They work inside an agent (``create_agent(model, tools=create_memory_tools(cube, user_id=...))``)
and on their own (``tool.invoke({...})``). A refused call (unknown id, empty text...) raises a
``ToolException`` chained to the typed :mod:`memcube.errors` error; by default
(``handle_tool_error=True``) the agent's model receives its message instead of the run failing.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Callable
from typing import Any

from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, ConfigDict, Field

from memcube import MemCube
from memcube.errors import InvalidInputError, MemCubeError
from memcube.items import MemoryType, SearchHit, check_scope_id

_TYPES = ", ".join(t.value for t in MemoryType)


class _MemoryTool(BaseTool):
    """The plumbing the memory tools share: a cube and a user, refusals turned into
    ``ToolException`` and the async path. A tool states its input schema and :meth:`_call`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cube: MemCube
    """The cube the tool reads and writes."""
    user_id: str
    """The user whose memories the tool acts on (the cube enforces the scope)."""
    agent_id: str | None = None
    """Recorded on memories the tool writes."""
    handle_tool_error: bool | str | Callable[[ToolException], str] | None = True

    @abstractmethod
    def _call(self, *args: Any, **kwargs: Any) -> str:
        """The tool's one call into the cube, with the validated tool input; returns the reply."""

    def _run(self, *args: Any, **kwargs: Any) -> str:
        try:
            return self._call(*args, **kwargs)
        except MemCubeError as exc:
            # ToolException is what handle_tool_error turns into a message for the model.
            raise ToolException(str(exc)) from exc

    async def _arun(self, *args: Any, **kwargs: Any) -> str:
        # The cube's async methods are its sync ones in a worker thread; running the whole tool
        # call there is the same, and keeps one code path per tool.
        return await asyncio.to_thread(self._run, *args, **kwargs)


# ---------------------------------------------------------------------------------------- search
class SearchMemoriesInput(BaseModel):
    """Input of :class:`SearchMemoriesTool`."""

    query: str = Field(description="What to look for, in plain words.")
    k: int = Field(default=5, ge=1, le=50, description="How many memories to return.")


def _format_hits(hits: list[SearchHit]) -> str:
    if not hits:
        return "No matching memories."
    lines = []
    for h in hits:
        when = (h.item.event_time or h.item.created_at).date().isoformat()
        lines.append(f"[{h.item.id}] ({when}) {h.item.content}")
    return "\n".join(lines)


class SearchMemoriesTool(_MemoryTool):
    """Search the user's long-term memories by meaning.

    Example:
        >>> import tempfile
        >>> from memcube import MemCube
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> _ = cube.add("Alice is allergic to peanuts", user_id="alice")
        >>> tool = SearchMemoriesTool(cube=cube, user_id="alice")
        >>> "peanuts" in tool.invoke({"query": "allergies"})
        True
        >>> cube.close()
    """

    name: str = "search_memories"
    description: str = (
        "Search the user's long-term memories (facts, preferences, past conversations). "
        "Returns one memory per line as '[id] (date) text'."
    )
    args_schema: type[BaseModel] = SearchMemoriesInput

    def _call(self, query: str, k: int = 5) -> str:
        return _format_hits(self.cube.search(query, user_id=self.user_id, k=k))


# ------------------------------------------------------------------------------------------ save
class SaveMemoryInput(BaseModel):
    """Input of :class:`SaveMemoryTool`."""

    content: str = Field(description="The fact, preference or event to remember, as one sentence.")
    memory_type: str = Field(default="fact", description=f"One of: {_TYPES}.")
    tags: list[str] = Field(default_factory=list, description="Optional labels.")


class SaveMemoryTool(_MemoryTool):
    """Save a new long-term memory for the user.

    Example:
        >>> import tempfile
        >>> from memcube import MemCube
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> SaveMemoryTool(cube=cube, user_id="alice").invoke({"content": "Likes jazz"})[:12]
        'Saved memory'
        >>> cube.count(user_id="alice")
        1
        >>> cube.close()
    """

    name: str = "save_memory"
    description: str = (
        "Save something worth remembering about the user for future conversations. "
        "Returns the new memory's id."
    )
    args_schema: type[BaseModel] = SaveMemoryInput

    def _call(self, content: str, memory_type: str = "fact", tags: list[str] | None = None) -> str:
        item = self.cube.add(
            content,
            user_id=self.user_id,
            agent_id=self.agent_id,
            memory_type=memory_type,
            tags=list(tags or []),
            provenance={"source": "tool", "extractor": self.name},
        )
        return f"Saved memory {item.id}."


# ---------------------------------------------------------------------------------------- update
class UpdateMemoryInput(BaseModel):
    """Input of :class:`UpdateMemoryTool`."""

    memory_id: str = Field(description="The id of the memory to change (from search_memories).")
    content: str = Field(description="The corrected text of the memory.")


class UpdateMemoryTool(_MemoryTool):
    """Correct a memory; the cube keeps the previous version in its history.

    Example:
        >>> import tempfile
        >>> from memcube import MemCube
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> item = cube.add("Lives in Porto", user_id="alice")
        >>> UpdateMemoryTool(cube=cube, user_id="alice").invoke(
        ...     {"memory_id": item.id, "content": "Lives in Lisbon"})[:14]
        'Updated memory'
        >>> cube.get(item.id).content
        'Lives in Lisbon'
        >>> cube.close()
    """

    name: str = "update_memory"
    description: str = "Replace the text of one of the user's memories (old version is kept)."
    args_schema: type[BaseModel] = UpdateMemoryInput

    def _call(self, memory_id: str, content: str) -> str:
        item = self.cube.update(memory_id, user_id=self.user_id, content=content)
        return f"Updated memory {item.id} (now version {item.version})."


# ---------------------------------------------------------------------------------------- delete
class DeleteMemoryInput(BaseModel):
    """Input of :class:`DeleteMemoryTool`."""

    memory_id: str = Field(description="The id of the memory to forget (from search_memories).")


class DeleteMemoryTool(_MemoryTool):
    """Forget a memory (archived: hidden from search, kept in the cube's history).

    Example:
        >>> import tempfile
        >>> from memcube import MemCube
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> item = cube.add("Old phone number 555-0100", user_id="alice")
        >>> DeleteMemoryTool(cube=cube, user_id="alice").invoke({"memory_id": item.id})[:14]
        'Deleted memory'
        >>> cube.count(user_id="alice")
        0
        >>> cube.close()
    """

    name: str = "delete_memory"
    description: str = "Forget one of the user's memories that is wrong or no longer wanted."
    args_schema: type[BaseModel] = DeleteMemoryInput

    def _call(self, memory_id: str) -> str:
        self.cube.delete(memory_id, user_id=self.user_id)
        return f"Deleted memory {memory_id}."


_TOOL_CLASSES: dict[str, Callable[..., _MemoryTool]] = {
    "search": SearchMemoriesTool,
    "save": SaveMemoryTool,
    "update": UpdateMemoryTool,
    "delete": DeleteMemoryTool,
}


def create_memory_tools(
    cube: MemCube,
    *,
    user_id: str,
    agent_id: str | None = None,
    include: tuple[str, ...] = ("search", "save", "update", "delete"),
    handle_tool_error: bool = True,
) -> list[BaseTool]:
    """LangChain tools bound to ``cube`` and ``user_id``.

    Args:
        include: which tools, any of ``search``, ``save``, ``update``, ``delete``.
        handle_tool_error: return refusals to the model as text (``True``) or raise them.

    Example:
        >>> import tempfile
        >>> from memcube import MemCube
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> [t.name for t in create_memory_tools(cube, user_id="alice")]
        ['search_memories', 'save_memory', 'update_memory', 'delete_memory']
        >>> cube.close()
    """
    check_scope_id(user_id, "user_id", required=True)
    unknown = set(include) - set(_TOOL_CLASSES)
    if unknown:
        raise InvalidInputError(
            f"unknown memory tools {sorted(unknown)}; use {sorted(_TOOL_CLASSES)}."
        )
    return [
        _TOOL_CLASSES[name](
            cube=cube, user_id=user_id, agent_id=agent_id, handle_tool_error=handle_tool_error
        )
        for name in include
    ]
