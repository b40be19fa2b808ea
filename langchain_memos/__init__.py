"""LangChain / LangGraph adapters over the :mod:`memcube` core.

Every class here translates to the cube; scoping, ranking and prompt rendering are decided there.
"""

from langchain_memos._runtime import MissingUserIdError
from langchain_memos.chat_history import MemCubeChatMessageHistory
from langchain_memos.chat_model import ChatMemOS
from langchain_memos.middleware import MemoryMiddleware, MemoryState
from langchain_memos.retriever import MemCubeRetriever
from langchain_memos.store import MemCubeStore
from langchain_memos.tools import (
    DeleteMemoryTool,
    MemoryFeedbackTool,
    SaveMemoryTool,
    SearchMemoriesTool,
    UpdateMemoryTool,
    create_memory_tools,
)

__all__ = [
    "ChatMemOS",
    "DeleteMemoryTool",
    "MemCubeChatMessageHistory",
    "MemCubeRetriever",
    "MemCubeStore",
    "MemoryFeedbackTool",
    "MemoryMiddleware",
    "MemoryState",
    "MissingUserIdError",
    "SaveMemoryTool",
    "SearchMemoriesTool",
    "UpdateMemoryTool",
    "create_memory_tools",
]
