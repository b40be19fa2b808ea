"""``MemCubeChatMessageHistory``: a ``BaseChatMessageHistory`` whose turns are cube memories.

For code still on ``RunnableWithMessageHistory``: each added message goes through the cube's
reader (``cube.add_messages``) under the user and with ``session_id`` = the thread, so the thread
history survives restarts and every turn is also long-term memory the user's other threads can
recall. ``messages`` reads the thread back from the cube: the turns the reader remembered (by
default the user's and the assistant's non-empty turns), in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, HumanMessage, SystemMessage

from memcube import MemCube
from memcube.items import MemoryItem, check_scope_id

_ROLE_TO_MESSAGE = {"user": HumanMessage, "assistant": AIMessage, "system": SystemMessage}


def _to_message(item: MemoryItem) -> BaseMessage:
    role = str(item.metadata.get("role", "user"))
    cls = _ROLE_TO_MESSAGE.get(role)
    # The id of the message the turn came from, so a thread read back keeps its message ids.
    message_id = item.provenance.message_ids[0] if item.provenance.message_ids else None
    if cls is None:
        return ChatMessage(role=role, content=item.content, id=message_id)
    return cls(content=item.content, id=message_id)


class MemCubeChatMessageHistory(BaseChatMessageHistory):
    """One conversation thread kept in a cube.

    Args:
        cube: the open cube.
        user_id: whose thread it is.
        session_id: the thread id.
        roles: roles the reader keeps (default: the reader's, i.e. user and assistant).

    Example:
        >>> import tempfile
        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from memcube import MemCube
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> history = MemCubeChatMessageHistory(cube, user_id="alice", session_id="t1")
        >>> history.add_messages([HumanMessage("I adopted a cat"), AIMessage("Congratulations!")])
        >>> [m.type for m in history.messages]
        ['human', 'ai']
        >>> cube.search("pets", user_id="alice", k=1)[0].item.content
        'I adopted a cat'
        >>> cube.close()
    """

    def __init__(
        self,
        cube: MemCube,
        *,
        user_id: str,
        session_id: str,
        agent_id: str | None = None,
        roles: Sequence[str] | None = None,
    ) -> None:
        check_scope_id(user_id, "user_id", required=True)
        check_scope_id(session_id, "session_id", required=True)
        self.cube = cube
        self.user_id = user_id
        self.session_id = session_id
        self.agent_id = agent_id
        self.roles = tuple(roles) if roles is not None else None

    def _items(self) -> list[MemoryItem]:
        items = [
            it
            for it in self.cube.items(user_id=self.user_id, filters={"session_id": self.session_id})
            if it.provenance.source == "message"
        ]
        items.sort(key=lambda it: (it.event_time or it.created_at, it.created_at))
        return items

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The thread's remembered turns, oldest first."""
        return [_to_message(it) for it in self._items()]

    async def aget_messages(self) -> list[BaseMessage]:
        """Async :attr:`messages`."""
        return await asyncio.to_thread(lambda: self.messages)

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Read ``messages`` into the cube (through the reader)."""
        self.cube.add_messages(
            list(messages),
            user_id=self.user_id,
            agent_id=self.agent_id,
            session_id=self.session_id,
            roles=self.roles,
        )

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Async :meth:`add_messages`."""
        await asyncio.to_thread(self.add_messages, messages)

    def clear(self) -> None:
        """Forget this thread: its turns are archived (hidden everywhere, kept in history)."""
        for item in self._items():
            self.cube.delete(item.id, user_id=self.user_id)

    async def aclear(self) -> None:
        """Async :meth:`clear`."""
        await asyncio.to_thread(self.clear)
