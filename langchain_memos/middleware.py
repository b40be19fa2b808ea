"""``MemoryMiddleware``: long-term memory for ``create_agent``.

Before each model call it asks the cube for the current user's memory block about the latest
user message (``cube.memory_block``: the scheduler's choice, every line naming whose words it
holds) and appends it to the system message. After the agent run it feeds the run's new messages to
the cube's reader (``cube.add_messages``), with ``session_id`` = the LangGraph thread id. It
selects and renders nothing itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Annotated, Any

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ModelRequest,
    ModelResponse,
    PrivateStateAttr,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime
from typing_extensions import NotRequired

from langchain_memos._runtime import runtime_user_id
from memcube import MemCube
from memcube.checks import is_number
from memcube.errors import InvalidInputError, InvalidUserIdError
from memcube.items import MemoryItem, check_scope_id
from memcube.messages import to_turn
from memcube.prompting import MemoryBlock


class MemoryState(AgentState[Any]):
    """Agent state plus how many of the thread's messages were already written to the cube."""

    memcube_written: NotRequired[Annotated[int, PrivateStateAttr]]


def _thread_id() -> str | None:
    try:
        from langgraph.config import get_config

        value = get_config().get("configurable", {}).get("thread_id")
    except RuntimeError:  # not inside a graph run
        return None
    return None if value is None else str(value)


class MemoryMiddleware(AgentMiddleware[MemoryState, Any, Any]):
    """Recall before the model call, write back after the agent run.

    Args:
        cube: the cube; if omitted, the agent's ``store`` must be a
            :class:`~langchain_memos.store.MemCubeStore` and its cube is used.
        user_id_key: attribute (or key) of the runtime context that holds the user id.
        user_id: fixed user id, used when the context has none.
        token_budget: most tokens the recalled block may take in the system message.
        k: how many search candidates the scheduler weighs (default: the cube's
            ``SchedulerConfig.candidates``); it may keep fewer to fit the budget.
        roles: message roles written back; default: the reader's (``"user"`` and
            ``"assistant"``: the assistant's turns are kept so "what did you suggest last
            time?" can be answered, but they are always shown as the assistant's words, rank
            below the user's own for questions about the user, and never become user facts).
        min_score: leave out memories whose search score (calibrated, in ``[0, 1]``) is below
            this.
        recall: on/off for recall.
        write_back: on/off for writing back.
        agent_id: recorded on memories written back.
        implicit_feedback: after each model call, vote ``useful`` for the recalled memories
            the answer visibly used (:meth:`memcube.MemCube.implicit_feedback`: the answer
            holds most of the memory's topic words), so the user's search ranking learns from
            use. Off by default. Explicit votes: :meth:`feedback`.

    Example:
        >>> import tempfile
        >>> from dataclasses import dataclass
        >>> from langchain.agents import create_agent
        >>> from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
        >>> from langchain_core.messages import AIMessage
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> from memcube import MemCube
        >>> from langchain_memos import MemCubeStore
        >>> @dataclass
        ... class Ctx:
        ...     user_id: str
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> model = GenericFakeChatModel(messages=iter([AIMessage("Noted."), AIMessage("Sure.")]))
        >>> agent = create_agent(model, store=MemCubeStore(cube), context_schema=Ctx,
        ...                      middleware=[MemoryMiddleware(cube)], checkpointer=InMemorySaver())
        >>> _ = agent.invoke({"messages": [("user", "I'm vegetarian")]},
        ...                  {"configurable": {"thread_id": "1"}}, context=Ctx(user_id="alice"))
        >>> [it.content for it in cube.items(user_id="alice") if it.session_id == "1"][:1]
        ["I'm vegetarian"]
        >>> cube.close()
    """

    state_schema = MemoryState

    def __init__(
        self,
        cube: MemCube | None = None,
        *,
        user_id_key: str = "user_id",
        user_id: str | None = None,
        token_budget: int = 512,
        k: int | None = None,
        roles: Sequence[str] | None = None,
        recall: bool = True,
        write_back: bool = True,
        agent_id: str | None = None,
        min_score: float | None = None,
        implicit_feedback: bool = False,
    ) -> None:
        super().__init__()
        if cube is not None and not isinstance(cube, MemCube):
            raise InvalidInputError(f"MemoryMiddleware needs a MemCube, got {type(cube).__name__}.")
        if not isinstance(token_budget, int) or token_budget < 1:
            raise InvalidInputError(
                f"token_budget must be a positive integer, got {token_budget!r}."
            )
        if k is not None and (not isinstance(k, int) or k < 1):
            raise InvalidInputError(f"k must be a positive integer, got {k!r}.")
        if min_score is not None and (not is_number(min_score) or not 0 <= min_score <= 1):
            raise InvalidInputError(f"min_score must be a number in [0, 1], got {min_score!r}.")
        check_scope_id(user_id, "user_id")
        self.cube = cube
        self.user_id_key = user_id_key
        self.user_id = user_id
        self.token_budget = token_budget
        self.k = k
        self.roles = tuple(roles) if roles is not None else None
        self.recall = recall
        self.write_back = write_back
        self.agent_id = agent_id
        self.min_score = min_score
        self.implicit_feedback = bool(implicit_feedback)
        self.tools = []

    # ------------------------------------------------------------------ resolution
    def _cube(self, runtime: Runtime[Any] | None) -> MemCube:
        if self.cube is not None:
            return self.cube
        store = getattr(runtime, "store", None)
        cube = getattr(store, "cube", None)
        if isinstance(cube, MemCube):
            return cube
        raise InvalidInputError(
            "MemoryMiddleware has no cube: pass MemoryMiddleware(cube) or give the agent "
            "store=MemCubeStore(cube)."
        )

    def _user(self, runtime: Runtime[Any] | None) -> str:
        value = runtime_user_id(runtime, self.user_id_key)
        value = value if value is not None else self.user_id
        if value is None:
            raise InvalidUserIdError(
                f"MemoryMiddleware needs the user's id: invoke the agent with "
                f"context=...({self.user_id_key}='...') or create MemoryMiddleware(user_id=...)."
            )
        return check_scope_id(value, "user_id", required=True)  # type: ignore[return-value]

    @staticmethod
    def _query(messages: Sequence[BaseMessage]) -> str | None:
        for message in reversed(messages):
            if isinstance(message, HumanMessage):
                text = to_turn(message).content.strip()
                if text:
                    return text
        return None

    # ------------------------------------------------------------------ recall
    @staticmethod
    def _with_block(request: ModelRequest, block: str) -> ModelRequest:
        if not block:
            return request
        current = request.system_message
        if current is None:
            system = SystemMessage(content=block)
        elif isinstance(current.content, str):
            text = f"{current.content}\n\n{block}" if current.content else block
            system = SystemMessage(content=text)
        else:
            system = SystemMessage(content=[*current.content, {"type": "text", "text": block}])
        return request.override(system_message=system)

    def recall_block(self, request: ModelRequest) -> MemoryBlock:
        """The memory block for this model request, as the cube renders it
        (:meth:`memcube.MemCube.memory_block`; ``""`` if recall is off or nothing is relevant)."""
        query = self._query(request.messages)
        if not self.recall or query is None:
            return MemoryBlock("")
        cube = self._cube(request.runtime)
        user = self._user(request.runtime)
        extra: dict[str, Any] = {}
        if self.k is not None:  # only the candidate count changes; the cube's policy stays
            extra["config"] = replace(cube.scheduler_config, candidates=self.k)
        # Turns of this thread already written to the cube are on screen: not recalled again.
        on_screen = [m.text for m in request.messages]
        return cube.memory_block(
            query,
            user_id=user,
            token_budget=self.token_budget,
            exclude_texts=on_screen,
            min_score=self.min_score,
            **extra,
        )

    def recall_for(self, request: ModelRequest) -> list[MemoryItem]:
        """The memories the cube puts in the prompt for this model request."""
        return list(self.recall_block(request).items)

    def wrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]
    ) -> ModelResponse:
        """Append the recalled memory block to the system message, then call the model."""
        block = self.recall_block(request)
        response = handler(self._with_block(request, block))
        self._learn_from_answer(request, block, response)
        return response

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        """Async :meth:`wrap_model_call` (recall runs in a worker thread)."""
        block = await asyncio.to_thread(self.recall_block, request)
        response = await handler(self._with_block(request, block))
        await asyncio.to_thread(self._learn_from_answer, request, block, response)
        return response

    # ------------------------------------------------------------------ feedback
    def _learn_from_answer(self, request: ModelRequest, block: MemoryBlock, response: Any) -> None:
        if not self.implicit_feedback or not block.items:
            return
        messages = getattr(response, "result", None) or [response]
        answer = " ".join(m.text for m in messages if isinstance(m, AIMessage))
        if answer.strip():
            self._cube(request.runtime).implicit_feedback(
                answer,
                [it.id for it in block.items],
                user_id=self._user(request.runtime),
                query=self._query(request.messages),
            )

    def feedback(
        self,
        memory_id: str,
        *,
        useful: bool,
        runtime: Runtime[Any] | None = None,
        user_id: str | None = None,
        query: str | None = None,
    ) -> MemoryItem:
        """Pass a user's vote on a recalled memory (e.g. a thumbs-up on the answer it gave)
        to :meth:`memcube.MemCube.feedback`, for ``user_id`` or the run's user."""
        user = user_id if user_id is not None else self._user(runtime)
        return self._cube(runtime).feedback(memory_id, useful=useful, user_id=user, query=query)

    # ------------------------------------------------------------------ write-back
    @staticmethod
    def _pending(state: MemoryState) -> tuple[Sequence[BaseMessage], int]:
        """The thread's messages and how many of them the cube already has."""
        messages = list(state.get("messages", []))
        done = int(state.get("memcube_written", 0) or 0)
        if done > len(messages):  # the thread was trimmed or summarized: nothing is known new
            done = 0
        return messages, done

    def after_agent(self, state: MemoryState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Write the run's new messages to the cube (through its reader), once each."""
        messages, done = self._pending(state)
        if not self.write_back or done == len(messages):
            return {"memcube_written": len(messages)}
        self._cube(runtime).add_messages(
            messages[done:],
            user_id=self._user(runtime),
            agent_id=self.agent_id,
            session_id=_thread_id(),
            roles=self.roles,
        )
        return {"memcube_written": len(messages)}

    async def aafter_agent(
        self, state: MemoryState, runtime: Runtime[Any]
    ) -> dict[str, Any] | None:
        """Async :meth:`after_agent`."""
        # Read before the first await: the graph's config is bound to this task's context.
        thread = _thread_id()
        messages, done = self._pending(state)
        if not self.write_back or done == len(messages):
            return {"memcube_written": len(messages)}
        await self._cube(runtime).aadd_messages(
            messages[done:],
            user_id=self._user(runtime),
            agent_id=self.agent_id,
            session_id=thread,
            roles=self.roles,
        )
        return {"memcube_written": len(messages)}
