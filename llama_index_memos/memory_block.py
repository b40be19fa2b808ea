"""``MemCubeMemoryBlock``: MemCube long-term memory as a block of LlamaIndex's ``Memory``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import ConfigDict, Field, PrivateAttr
from llama_index.core.memory.memory import BaseMemoryBlock
from llama_index.core.utils import get_tokenizer

from llama_index_memos._common import (
    check_budget,
    check_cube,
    check_user,
    last_user_text,
    token_counter,
    visible_texts,
)
from memcube import MemCube, MemoryItem
from memcube.items import check_scope_id

DEFAULT_BLOCK_NAME = "long_term_memory"
DEFAULT_BLOCK_DESCRIPTION = "Memories about the user from earlier conversations (MemCube)."


class MemCubeMemoryBlock(BaseMemoryBlock[str]):
    """A memory block for ``Memory.from_defaults(memory_blocks=[...])`` backed by a MemCube.

    * Read (``aget``): the cube's memory block (``cube.memory_block``) for the latest user
      message of the session, within ``token_budget`` tokens, every line naming whose words it
      holds. Memories whose text is already among the session's messages are not repeated.
    * Write (``aput``): the messages ``Memory`` flushes out of its short-term queue are read into
      the cube (``cube.add_messages``) with the session id. ``Memory`` hands messages to blocks
      only when its queue overflows ``token_limit * chat_history_token_ratio``; to have the cube
      learn every turn use :class:`~llama_index_memos.MemCubeMemory` instead.
    * Truncation: ``priority`` defaults to 1, so ``Memory`` may shorten this block when the prompt
      is over its limit; :meth:`atruncate` then drops the least relevant memories first (the
      cube re-renders the shorter list) and removes the block only when nothing fits.

    Example:
        >>> import asyncio, tempfile
        >>> from llama_index.core.llms import ChatMessage
        >>> from memcube import MemCube
        >>> from llama_index_memos import MemCubeMemoryBlock
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> block = MemCubeMemoryBlock(cube=cube, user_id="alice")
        >>> asyncio.run(block.aput([ChatMessage(role="user", content="I'm vegetarian.")]))
        >>> text = asyncio.run(block.aget([ChatMessage(role="user", content="Any dinner ideas?")]))
        >>> "vegetarian" in text
        True
        >>> cube.close()
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    name: str = Field(default=DEFAULT_BLOCK_NAME, description="The name of the memory block.")
    description: str | None = Field(default=DEFAULT_BLOCK_DESCRIPTION)
    priority: int = Field(
        default=1,
        description="Truncation priority (0 = never truncate; higher numbers are truncated last).",
    )
    cube: MemCube = Field(exclude=True, description="The cube holding long-term memory.")
    user_id: str = Field(description="The user every read and write is scoped to.")
    agent_id: str | None = Field(default=None, description="Recorded on every memory written.")
    token_budget: int = Field(default=512, description="Most tokens the block may take.")
    filters: dict[str, Any] | None = Field(default=None, description="Cube filters for recall.")
    memory_types: list[str] | None = Field(default=None, description="Recall only these types.")
    tags: list[str] | None = Field(
        default=None, description="Recall only memories with these tags."
    )
    header: str | None = Field(
        default=None, description="Header line (the cube's default if None)."
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
        description="Passed to cube.add_messages: None (the reader's rules), 'turns', or an LLM "
        "extractor.",
    )
    tokenizer_fn: Callable[[str], list[Any]] = Field(
        default_factory=get_tokenizer, exclude=True, description="Token counter for budgets."
    )

    # The latest rendered block and the memories in it, so atruncate can re-render fewer.
    _last: tuple[str, list[MemoryItem]] | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        # Checked here, not in a pydantic validator, so callers get memcube's typed errors.
        check_cube(data.get("cube"))
        check_user(data.get("user_id"))
        check_scope_id(data.get("agent_id"), "agent_id")
        check_budget(data.get("token_budget", 1), "token_budget")
        check_budget(data.get("priority", 0), "priority", minimum=0)
        super().__init__(**data)

    def _render(self, items: list[MemoryItem], budget: int) -> str:
        """``items`` re-rendered by the cube within ``budget`` (for :meth:`atruncate`)."""
        kwargs: dict[str, Any] = {
            "token_budget": budget,
            "count_tokens": token_counter(self.tokenizer_fn),
            "reader": self.user_id,
        }
        if self.header is not None:
            kwargs["header"] = self.header
        return self.cube.render(items, **kwargs)

    async def _aget(self, messages: list[ChatMessage] | None = None, **block_kwargs: Any) -> str:
        """The cube's memory block for the latest user message in ``messages`` (``""`` if
        none)."""
        messages = list(messages or [])
        query = last_user_text(messages)
        if query is None:
            return ""
        block = await self.cube.amemory_block(
            query,
            user_id=self.user_id,
            token_budget=self.token_budget,
            count_tokens=token_counter(self.tokenizer_fn),
            header=self.header,
            min_score=self.min_score,
            filters=self.filters,
            exclude_texts=visible_texts(messages),
            memory_types=self.memory_types,
            tags=self.tags,
        )
        text = str(block)
        self._last = (text, list(block.items)) if text else None
        return text

    async def _aput(self, messages: list[ChatMessage]) -> None:
        """Read flushed messages into the cube, grouped by the session ``Memory`` stamped on them."""
        groups: dict[str | None, list[ChatMessage]] = {}
        for message in messages:
            sid = message.additional_kwargs.get("session_id")
            groups.setdefault(sid if isinstance(sid, str) and sid else None, []).append(message)
        for session_id, group in groups.items():
            await self.cube.aadd_messages(
                group,
                user_id=self.user_id,
                agent_id=self.agent_id,
                session_id=session_id,
                extractor=self.extractor,
            )

    async def atruncate(self, content: str, tokens_to_truncate: int) -> str | None:
        """Shorten the block by about ``tokens_to_truncate`` tokens, dropping the least relevant
        memories first; ``None`` when no memory fits any more."""
        if tokens_to_truncate <= 0:
            return content
        if self._last is None or self._last[0] != content:
            return None  # not a block this object rendered: remove it whole
        target = len(self.tokenizer_fn(content)) - tokens_to_truncate
        if target <= 0:
            return None
        text = self._render(self._last[1], target)
        return text or None
