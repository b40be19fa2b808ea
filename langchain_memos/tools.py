"""Memory tools over a cube, for one user or for whoever the run is for: search, save, update and
delete memories.

They work inside an agent (``create_agent(model, tools=create_memory_tools(cube))``) and on their
own (``tool.invoke({...})``). The user is either fixed at construction (``user_id=``) or, when it
is not given, read at every call from the LangGraph run through the tool's injected
``ToolRuntime``: the run's context (``context=Ctx(user_id=...)``, attribute or key ``user_id``),
else its config (``{"configurable": {"user_id": ...}}``). So one tool set serves every user of a
multi-user agent. The ``runtime`` argument is injected by LangGraph's ``ToolNode`` and hidden from
the model.

A refused call (unknown id, empty text...) raises a ``ToolException`` chained to the typed
:mod:`memcube.errors` error; by default (``handle_tool_error=True``) the agent's model receives its
message instead of the run failing. A call for no user at all is the developer's mistake, not the
model's: it raises :class:`MissingUserIdError` (an ``InvalidUserIdError``) and the run fails.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import Callable
from typing import Annotated, Any

from langchain.tools import ToolRuntime
from langchain_core.tools import BaseTool, InjectedToolArg, ToolException
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from langchain_memos._runtime import MissingUserIdError, runtime_user_id
from memcube import MemCube
from memcube.errors import InvalidInputError, MemCubeError
from memcube.items import MemoryType, SearchHit, check_scope_id

__all__ = [
    "DeleteMemoryInput",
    "DeleteMemoryTool",
    "MissingUserIdError",
    "SaveMemoryInput",
    "SaveMemoryTool",
    "SearchMemoriesInput",
    "SearchMemoriesTool",
    "UpdateMemoryInput",
    "UpdateMemoryTool",
    "create_memory_tools",
]

_TYPES = ", ".join(t.value for t in MemoryType)


class _ToolInput(BaseModel):
    """What every memory tool's input holds besides the model's arguments: the run's
    ``ToolRuntime``, injected by LangGraph's ``ToolNode`` (``ToolRuntime`` arguments are left out
    of the schema the model sees) and absent when a tool is invoked on its own."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    # ToolRuntime[Any, Any]: pydantic then takes any context and state (no serializer warnings
    # for a dataclass context). InjectedToolArg keeps it out of the model's schema, and
    # SkipJsonSchema out of this model's own JSON schema (a runtime holds callables). The
    # default lets a plain ``tool.invoke({...})`` omit it.
    runtime: Annotated[ToolRuntime[Any, Any] | None, InjectedToolArg(), SkipJsonSchema()] = None


class _MemoryTool(BaseTool):
    """The plumbing the memory tools share: a cube, the user (fixed or read from the run),
    refusals turned into ``ToolException`` and the async path. A tool states its input schema and
    :meth:`_call`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cube: MemCube
    """The cube the tool reads and writes."""
    user_id: str | None = None
    """The user whose memories the tool acts on (the cube enforces the scope); ``None``: the
    user of each run, read from its ``ToolRuntime`` (see :attr:`user_id_key`)."""
    user_id_key: str = "user_id"
    """Attribute (or key) of the run's context, else key of its config's ``configurable``, that
    holds the user id when :attr:`user_id` is ``None``."""
    agent_id: str | None = None
    """Recorded on memories the tool writes."""
    handle_tool_error: bool | str | Callable[[ToolException], str] | None = True

    def __init__(self, **data: Any) -> None:
        check_scope_id(data.get("user_id"), "user_id")
        check_scope_id(data.get("agent_id"), "agent_id")
        key = data.get("user_id_key", "user_id")
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"user_id_key must be a non-empty string, got {key!r}.")
        super().__init__(**data)

    @abstractmethod
    def _call(self, user_id: str, *args: Any, **kwargs: Any) -> str:
        """The tool's one call into the cube for ``user_id``, with the validated tool input;
        returns the reply."""

    def _user(self, runtime: ToolRuntime[Any, Any] | None) -> str:
        """The fixed user, else the one the run carries.

        Raises:
            MissingUserIdError: no fixed user and none in the run.
            InvalidUserIdError: the run's user id is not a valid id.
        """
        if self.user_id is not None:
            return self.user_id
        value = runtime_user_id(runtime, self.user_id_key)
        if value is None:
            key = self.user_id_key
            why = (
                "it was called without a LangGraph ToolRuntime"
                if runtime is None
                else f"the run has no {key!r} in its context or config['configurable']"
            )
            raise MissingUserIdError(
                f"{self.name} has no user: it was created without user_id and {why}. Create the "
                f"tools with create_memory_tools(cube, user_id='...'), or invoke the agent with "
                f"context=...({key}='...') (or config {{'configurable': {{'{key}': '...'}}}})."
            )
        return check_scope_id(value, "user_id", required=True)  # type: ignore[return-value]

    def _run(self, *args: Any, runtime: ToolRuntime[Any, Any] | None = None, **kwargs: Any) -> str:
        # Outside the try: a missing or bad user is the developer's error, not one for the model.
        user = self._user(runtime)
        try:
            return self._call(user, *args, **kwargs)
        except MemCubeError as exc:
            # ToolException is what handle_tool_error turns into a message for the model.
            raise ToolException(str(exc)) from exc

    async def _arun(self, *args: Any, **kwargs: Any) -> str:
        # The cube's async methods are its sync ones in a worker thread; running the whole tool
        # call there is the same, and keeps one code path per tool.
        return await asyncio.to_thread(self._run, *args, **kwargs)


# ---------------------------------------------------------------------------------------- search
class SearchMemoriesInput(_ToolInput):
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

    def _call(self, user_id: str, query: str, k: int = 5) -> str:
        return _format_hits(self.cube.search(query, user_id=user_id, k=k))


# ------------------------------------------------------------------------------------------ save
class SaveMemoryInput(_ToolInput):
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

    def _call(
        self,
        user_id: str,
        content: str,
        memory_type: str = "fact",
        tags: list[str] | None = None,
    ) -> str:
        item = self.cube.add(
            content,
            user_id=user_id,
            agent_id=self.agent_id,
            memory_type=memory_type,
            tags=list(tags or []),
            provenance={"source": "tool", "extractor": self.name},
        )
        return f"Saved memory {item.id}."


# ---------------------------------------------------------------------------------------- update
class UpdateMemoryInput(_ToolInput):
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

    def _call(self, user_id: str, memory_id: str, content: str) -> str:
        item = self.cube.update(memory_id, user_id=user_id, content=content)
        return f"Updated memory {item.id} (now version {item.version})."


# ---------------------------------------------------------------------------------------- delete
class DeleteMemoryInput(_ToolInput):
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

    def _call(self, user_id: str, memory_id: str) -> str:
        self.cube.delete(memory_id, user_id=user_id)
        return f"Deleted memory {memory_id}."


# -------------------------------------------------------------------------------------- feedback
class MemoryFeedbackInput(_ToolInput):
    """Input of :class:`MemoryFeedbackTool`."""

    memory_id: str = Field(description="The id of a memory search_memories returned.")
    useful: bool = Field(description="True if it helped answer, False if it did not.")
    query: str | None = Field(
        default=None, description="The question it was recalled for (default: the last search)."
    )


class MemoryFeedbackTool(_MemoryTool):
    """Tell the cube whether a recalled memory helped (``cube.feedback``): the scheduler's
    importance and the user's learned search ranking follow it.

    Example:
        >>> import tempfile
        >>> from memcube import MemCube
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> item = cube.add("Ana's locker code is 4417", user_id="ana")
        >>> tool = MemoryFeedbackTool(cube=cube, user_id="ana")
        >>> tool.invoke({"memory_id": item.id, "useful": True, "query": "locker code?"})[:14]
        'Noted: memory '
        >>> cube.ranking_profile("ana")["votes"][item.id]
        [1, 0]
        >>> cube.close()
    """

    name: str = "memory_feedback"
    description: str = (
        "Rate a memory that search_memories returned: useful=true if it helped answer the "
        "user, false if it was irrelevant. Future searches rank by it."
    )
    args_schema: type[BaseModel] = MemoryFeedbackInput

    def _call(self, user_id: str, memory_id: str, useful: bool, query: str | None = None) -> str:
        self.cube.feedback(memory_id, useful=useful, user_id=user_id, query=query)
        return f"Noted: memory {memory_id} was {'useful' if useful else 'not useful'}."


_TOOL_CLASSES: dict[str, Callable[..., _MemoryTool]] = {
    "search": SearchMemoriesTool,
    "save": SaveMemoryTool,
    "update": UpdateMemoryTool,
    "delete": DeleteMemoryTool,
    "feedback": MemoryFeedbackTool,
}


def create_memory_tools(
    cube: MemCube,
    *,
    user_id: str | None = None,
    user_id_key: str = "user_id",
    agent_id: str | None = None,
    include: tuple[str, ...] = ("search", "save", "update", "delete"),
    handle_tool_error: bool = True,
) -> list[BaseTool]:
    """LangChain tools over ``cube``, for ``user_id`` or for the user of each run.

    Args:
        user_id: the one user the tools act for. If omitted, every call reads the user from
            the LangGraph run: ``runtime.context.<user_id_key>`` (or ``context[user_id_key]``),
            else ``config["configurable"][user_id_key]``; a call with neither raises
            :class:`MissingUserIdError`.
        user_id_key: where the run carries the user id (when ``user_id`` is omitted).
        agent_id: recorded on memories the tools write.
        include: which tools, any of ``search``, ``save``, ``update``, ``delete`` and
            ``feedback`` (:class:`MemoryFeedbackTool`, not included by default).
        handle_tool_error: return refusals to the model as text (``True``) or raise them.

    Raises:
        InvalidUserIdError: a bad ``user_id`` or ``agent_id``.
        InvalidInputError: an unknown tool in ``include``.

    Example:
        >>> import tempfile
        >>> from langchain_core.messages import AIMessage
        >>> from langgraph.graph import START, MessagesState, StateGraph
        >>> from langgraph.prebuilt import ToolNode
        >>> from memcube import MemCube
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> [t.name for t in create_memory_tools(cube, user_id="alice")]
        ['search_memories', 'save_memory', 'update_memory', 'delete_memory']
        >>> tools = ToolNode(create_memory_tools(cube))  # one tool set; each run names its user
        >>> app = StateGraph(MessagesState).add_node("tools", tools).add_edge(START, "tools")
        >>> app = app.compile()
        >>> call = {"name": "save_memory", "args": {"content": "Likes jazz"}, "id": "1"}
        >>> for user in ("alice", "bob"):
        ...     _ = app.invoke({"messages": [AIMessage("", tool_calls=[call])]},
        ...                    context={"user_id": user})
        >>> cube.count(user_id="alice"), cube.count(user_id="bob")
        (1, 1)
        >>> cube.close()
    """
    check_scope_id(user_id, "user_id")
    unknown = set(include) - set(_TOOL_CLASSES)
    if unknown:
        raise InvalidInputError(
            f"unknown memory tools {sorted(unknown)}; use {sorted(_TOOL_CLASSES)}."
        )
    return [
        _TOOL_CLASSES[name](
            cube=cube,
            user_id=user_id,
            user_id_key=user_id_key,
            agent_id=agent_id,
            handle_tool_error=handle_tool_error,
        )
        for name in include
    ]
