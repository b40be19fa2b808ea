"""``MemCubeMemory``: a LlamaIndex ``BaseMemory`` with a short-term buffer and MemCube long-term
memory, for agents (``FunctionAgent``, ``AgentWorkflow``) and chat engines (``SimpleChatEngine``,
``ContextChatEngine``, ``CondensePlusContextChatEngine``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any
from uuid import uuid4

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr
from llama_index.core.llms.llm import LLM
from llama_index.core.memory import ChatMemoryBuffer
from llama_index.core.memory.types import DEFAULT_CHAT_STORE_KEY, BaseMemory
from llama_index.core.storage.chat_store import BaseChatStore

from llama_index_memos._common import (
    INSTRUCTION_ROLES,
    chat_window,
    check_budget,
    check_cube,
    check_user,
    last_user_text,
    message_text,
    messages_token_counter,
    token_counter,
    visible_texts,
)
from memcube import MemCube, MemoryItem
from memcube.errors import InvalidInputError
from memcube.items import check_scope_id

#: Default number of tokens the long-term memory block may take in the prompt.
DEFAULT_MEMORY_TOKEN_BUDGET = 512


def _key(message: ChatMessage) -> tuple[str, str]:
    return (str(getattr(message.role, "value", message.role)), message_text(message))


class MemCubeMemory(BaseMemory):
    """Chat memory whose long-term part is a :class:`~memcube.MemCube`.

    * Short term: a token-limited chat buffer (LlamaIndex's ``ChatMemoryBuffer`` over any
      ``BaseChatStore``), trimmed at conversation-turn boundaries: the window :meth:`get`
      returns always starts its conversation at a user message and never holds a tool result
      without the assistant message that made the call.
    * Long term: every message put into the memory is also written to the cube through its
      reader (``cube.add_messages``), so the cube learns every turn, not only what overflows.
      What a turn becomes (the turn itself, extracted facts and preferences) is the reader's
      decision; ``extractor`` is handed to it unchanged.
    * ``get(input)`` returns the buffer, preceded by one system message holding the cube's memory
      block for the latest user message (``cube.memory_block``: the scheduler's choice within
      ``memory_token_budget`` tokens, every line naming whose words it holds, so the assistant's
      earlier statements and other users' shared memories are never shown as the user's own).
      Memories whose text is already in the returned buffer are not repeated.

    Every read and write is scoped to ``user_id``.

    Example:
        >>> import tempfile
        >>> from llama_index.core.llms import ChatMessage
        >>> from memcube import MemCube
        >>> from llama_index_memos import MemCubeMemory
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> memory = MemCubeMemory.from_defaults(cube=cube, user_id="alice")
        >>> memory.put(ChatMessage(role="user", content="My sister Ana lives in Porto."))
        >>> later = MemCubeMemory.from_defaults(cube=cube, user_id="alice")  # a new session
        >>> later.put(ChatMessage(role="user", content="Where does my sister live?"))
        >>> "Porto" in later.get()[0].content
        True
        >>> cube.close()
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    cube: MemCube = Field(exclude=True, description="The cube holding long-term memory.")
    user_id: str = Field(description="The user every read and write is scoped to.")
    agent_id: str | None = Field(default=None, description="Recorded on every memory written.")
    session_id: str = Field(
        default_factory=lambda: uuid4().hex,
        description="Recorded on every memory written (one per conversation).",
    )
    memory_token_budget: int = Field(
        default=DEFAULT_MEMORY_TOKEN_BUDGET,
        description="Most tokens the long-term memory system message may take (0: no recall).",
    )
    filters: dict[str, Any] | None = Field(
        default=None, description="Cube filters applied to recall (see MemCube.search)."
    )
    memory_types: list[str] | None = Field(
        default=None, description="Recall only these memory types (see MemoryType)."
    )
    tags: list[str] | None = Field(
        default=None, description="Recall only memories with these tags."
    )
    header: str | None = Field(
        default=None, description="Header line of the memory block (the cube's default if None)."
    )
    min_score: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Recall only memories whose search score (calibrated, 0-1) is at least this.",
    )
    extractor: Any = Field(
        default=None,
        exclude=True,
        description="How the cube's reader turns messages into memories (see "
        "MemCube.add_messages): None for its default rules, 'turns', or an LLM extractor.",
    )
    short_term: ChatMemoryBuffer = Field(description="The token-limited short-term buffer.")
    implicit_feedback: bool = Field(
        default=False,
        description="Vote 'useful' for the recalled memories an assistant answer visibly uses "
        "(MemCube.implicit_feedback), so the user's search ranking learns from use.",
    )

    _last_recalled: list[MemoryItem] = PrivateAttr(default_factory=list)
    _last_query: str | None = PrivateAttr(default=None)

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serializes this class under."""
        return "MemCubeMemory"

    def __init__(self, **data: Any) -> None:
        check_cube(data.get("cube"))
        check_user(data.get("user_id"))
        check_scope_id(data.get("agent_id"), "agent_id")
        if "session_id" in data:
            check_scope_id(data["session_id"], "session_id", required=True)
        check_budget(data.get("memory_token_budget", 0), "memory_token_budget", minimum=0)
        super().__init__(**data)

    @classmethod
    def from_defaults(
        cls,
        cube: MemCube | None = None,
        user_id: str | None = None,
        chat_history: list[ChatMessage] | None = None,
        token_limit: int | None = None,
        llm: LLM | None = None,
        *,
        agent_id: str | None = None,
        session_id: str | None = None,
        memory_token_budget: int = DEFAULT_MEMORY_TOKEN_BUDGET,
        filters: dict[str, Any] | None = None,
        memory_types: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        header: str | None = None,
        min_score: float | None = None,
        extractor: Any = None,
        tokenizer_fn: Callable[[str], list[Any]] | None = None,
        chat_store: BaseChatStore | None = None,
        chat_store_key: str = DEFAULT_CHAT_STORE_KEY,
        implicit_feedback: bool = False,
        **kwargs: Any,
    ) -> MemCubeMemory:
        """Create the memory.

        Args:
            cube: the open :class:`~memcube.MemCube` (required).
            user_id: the user whose memories are read and written (required).
            chat_history: messages to start the short-term buffer with. They are new to this
                memory, so they are also written to the cube (see :meth:`set`). To resume a
                conversation without writing it again, pass the ``chat_store`` that holds it.
            token_limit: short-term buffer size in tokens (memory block included); defaults to
                ¾ of ``llm``'s context window, or 3000 (as ``ChatMemoryBuffer``).
            llm: used only to size ``token_limit``.
            agent_id, session_id: recorded on every memory written.
            memory_token_budget: most tokens the long-term memory message may take.
            filters, memory_types, tags: narrow recall (as in :meth:`memcube.MemCube.search`).
            header: header line of the memory block.
            min_score: recall only memories whose search score (calibrated, in ``[0, 1]``) is
                at least this.
            extractor: passed to ``cube.add_messages`` (the reader's default if None).
            tokenizer_fn: token counter for the buffer and the budget (LlamaIndex's default).
            chat_store, chat_store_key: where the short-term buffer lives.
            implicit_feedback: assistant answers vote for the recalled memories they use
                (see :meth:`memcube.MemCube.implicit_feedback`); explicit votes: :meth:`feedback`.

        Raises:
            InvalidInputError: missing cube or user, bad budget or unknown keyword arguments.
        """
        if kwargs:
            raise InvalidInputError(f"unexpected arguments for MemCubeMemory: {sorted(kwargs)}.")
        if cube is None:
            raise InvalidInputError(
                "MemCubeMemory needs cube=MemCube.open(path); construct it with "
                "MemCubeMemory.from_defaults(cube=..., user_id=...) and pass it as memory=."
            )
        if token_limit is not None:
            check_budget(token_limit, "token_limit")
        short_term = ChatMemoryBuffer.from_defaults(
            llm=llm,
            token_limit=token_limit,
            tokenizer_fn=tokenizer_fn,
            chat_store=chat_store,
            chat_store_key=chat_store_key,
        )
        fields: dict[str, Any] = dict(
            cube=cube,
            user_id=user_id,
            agent_id=agent_id,
            memory_token_budget=memory_token_budget,
            filters=filters,
            memory_types=list(memory_types) if memory_types is not None else None,
            tags=list(tags) if tags is not None else None,
            header=header,
            min_score=min_score,
            extractor=extractor,
            short_term=short_term,
            implicit_feedback=bool(implicit_feedback),
        )
        if session_id is not None:
            fields["session_id"] = session_id
        memory = cls(**fields)
        if chat_history:
            memory.set(chat_history)
        return memory

    # ------------------------------------------------------------------ what chat engines read
    @property
    def tokenizer_fn(self) -> Callable[[str], list[Any]]:
        """The buffer's tokenizer (chat engines use it to count their prefix messages)."""
        return self.short_term.tokenizer_fn

    @property
    def token_limit(self) -> int:
        """Token limit of everything :meth:`get` returns (memory block plus buffer)."""
        return self.short_term.token_limit

    @property
    def last_recalled(self) -> list[MemoryItem]:
        """The memories put in the prompt by the latest :meth:`get` (for inspection and citing)."""
        return list(self._last_recalled)

    # ------------------------------------------------------------------ reads
    def _recall(self, query: str | None, visible: list[ChatMessage], budget: int) -> str:
        """The cube's memory block for ``query`` (:meth:`memcube.MemCube.memory_block`)."""
        self._last_recalled = []
        self._last_query = query
        if not query or not query.strip() or budget <= 0:
            return ""
        block = self.cube.memory_block(
            query,
            user_id=self.user_id,
            token_budget=budget,
            count_tokens=token_counter(self.tokenizer_fn),
            header=self.header,
            min_score=self.min_score,
            filters=self.filters,
            exclude_texts=visible_texts(visible),
            memory_types=self.memory_types,
            tags=self.tags,
        )
        self._last_recalled = list(block.items)
        return str(block)

    def _window(self, history: list[ChatMessage], initial_token_count: int) -> list[ChatMessage]:
        """The part of ``history`` shown with ``initial_token_count`` tokens already taken (see
        :func:`llama_index_memos._common.chat_window` for the rules)."""
        return chat_window(
            history,
            self.token_limit - initial_token_count,
            messages_token_counter(self.tokenizer_fn),
        )

    def get(
        self, input: str | None = None, initial_token_count: int = 0, **kwargs: Any
    ) -> list[ChatMessage]:
        """The short-term buffer, preceded by a system message with the relevant long-term
        memories for ``input`` (or, without ``input``, for the latest user message).

        ``initial_token_count`` is what the caller's own prefix messages take; memory block and
        buffer together stay within ``token_limit`` minus that.

        The window is what chat APIs (OpenAI, Anthropic, Bedrock...) accept:

        * system (and developer) messages come first, then the memory block, then the
          conversation, which starts at a user message: the oldest turns are dropped whole, and
          an assistant message or tool result left at the front by trimming is dropped too;
        * a tool result (role ``tool``/``function``) is shown only with the assistant message
          that made its call (``ToolCallBlock`` or ``additional_kwargs["tool_calls"]``, matched
          on ``additional_kwargs["tool_call_id"]``);
        * the latest user message and everything after it are always shown, even if they alone
          exceed the limit (as LlamaIndex's ``Memory`` keeps one whole turn), so the model never
          answers a question it cannot see; an over-long prompt then fails at the LLM;
        * with no user message in the buffer, only its system messages are returned.

        Raises:
            InvalidInputError: ``initial_token_count`` exceeds ``token_limit`` (a ``ValueError``,
                as ``ChatMemoryBuffer`` raises).
        """
        if initial_token_count > self.token_limit:
            raise InvalidInputError(
                f"initial_token_count ({initial_token_count}) exceeds the memory's token_limit "
                f"({self.token_limit}); create the memory with a larger token_limit."
            )
        history = self.short_term.get_all()
        budget = min(self.memory_token_budget, self.token_limit - initial_token_count)
        # The smallest window the buffer can shrink to: what is surely visible in the prompt.
        visible = self._window(history, initial_token_count + max(budget, 0))
        query = input if isinstance(input, str) and input.strip() else last_user_text(visible)
        if query is None:
            query = last_user_text(history)
        block = self._recall(query, visible, budget)
        if not block:
            return self._window(history, initial_token_count)
        used = len(self.tokenizer_fn(block))  # can exceed the budget by a newline token or so
        window = self._window(history, min(initial_token_count + used, self.token_limit))
        at = 0
        while at < len(window) and window[at].role in INSTRUCTION_ROLES:
            at += 1
        return [*window[:at], ChatMessage(role=MessageRole.SYSTEM, content=block), *window[at:]]

    async def aget(
        self, input: str | None = None, initial_token_count: int = 0, **kwargs: Any
    ) -> list[ChatMessage]:
        """Async :meth:`get` (the same window rules)."""
        return await asyncio.to_thread(
            self.get, input=input, initial_token_count=initial_token_count, **kwargs
        )

    def get_all(self) -> list[ChatMessage]:
        """Every message in the short-term buffer (no memory block)."""
        return self.short_term.get_all()

    async def aget_all(self) -> list[ChatMessage]:
        """Async :meth:`get_all`."""
        return await self.short_term.aget_all()

    # ------------------------------------------------------------------ writes
    def _write_kwargs(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "agent_id": self.agent_id,
            "session_id": self.session_id,
            "extractor": self.extractor,
        }

    def put(self, message: ChatMessage) -> None:
        """Add a message to the buffer and write it to the cube (through the cube's reader)."""
        self.put_messages([message])

    async def aput(self, message: ChatMessage) -> None:
        """Async :meth:`put`."""
        await self.aput_messages([message])

    def put_messages(self, messages: list[ChatMessage]) -> None:
        """Add messages to the buffer and write them to the cube in one batch.

        The cube is written first: a message it rejects (typed error) changes nothing.
        """
        messages = list(messages)
        if messages:
            self.cube.add_messages(messages, **self._write_kwargs())
        for message in messages:
            self.short_term.put(message)
        self._learn_from_answers(messages)

    # ------------------------------------------------------------------ feedback
    def feedback(self, memory_id: str, *, useful: bool, query: str | None = None) -> MemoryItem:
        """Pass the user's vote on a recalled memory to :meth:`memcube.MemCube.feedback`
        (``query`` defaults to the one the latest :meth:`get` recalled for)."""
        return self.cube.feedback(
            memory_id, useful=useful, user_id=self.user_id, query=query or self._last_query
        )

    def _learn_from_answers(self, messages: list[ChatMessage]) -> None:
        """Implicit feedback (when enabled): an assistant answer votes for the recalled
        memories it visibly used."""
        if not self.implicit_feedback or not self._last_recalled:
            return
        answer = " ".join(
            m.content or "" for m in messages if m.role == MessageRole.ASSISTANT
        ).strip()
        if answer:
            self.cube.implicit_feedback(
                answer,
                [it.id for it in self._last_recalled],
                user_id=self.user_id,
                query=self._last_query,
            )

    async def aput_messages(self, messages: list[ChatMessage]) -> None:
        """Async :meth:`put_messages`."""
        messages = list(messages)
        if messages:
            await self.cube.aadd_messages(messages, **self._write_kwargs())
        for message in messages:
            await self.short_term.aput(message)
        await asyncio.to_thread(self._learn_from_answers, messages)

    def _unseen(self, messages: list[ChatMessage], current: list[ChatMessage]) -> list[ChatMessage]:
        """Messages of ``messages`` that are not already in ``current`` (same role and text)."""
        seen = Counter(_key(m) for m in current)
        new = []
        for m in messages:
            k = _key(m)
            if seen[k] > 0:
                seen[k] -= 1
            else:
                new.append(m)
        return new

    def set(self, messages: list[ChatMessage]) -> None:
        """Replace the short-term buffer with ``messages``.

        Messages that were not already in the buffer are written to the cube, so history handed
        in by a caller (``chat(..., chat_history=...)``, ``agent.run(..., chat_history=...)``) is
        learned once; messages already in the buffer are not written again.
        """
        messages = list(messages)
        new = self._unseen(messages, self.short_term.get_all())
        if new:
            self.cube.add_messages(new, **self._write_kwargs())
        self.short_term.set(messages)

    async def aset(self, messages: list[ChatMessage]) -> None:
        """Async :meth:`set`."""
        messages = list(messages)
        new = self._unseen(messages, await self.short_term.aget_all())
        if new:
            await self.cube.aadd_messages(new, **self._write_kwargs())
        await self.short_term.aset(messages)

    def reset(self) -> None:
        """Clear the short-term buffer. Long-term memories stay in the cube (delete them there)."""
        self._last_recalled = []
        self.short_term.reset()

    async def areset(self) -> None:
        """Async :meth:`reset`."""
        self._last_recalled = []
        await self.short_term.areset()
