"""The adapters pass feedback through to the cube: explicit votes and implicit ones (answer
overlap), from the LangChain tools and middleware and the LlamaIndex memory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from llama_index.core.llms import ChatMessage

from langchain_memos import MemoryMiddleware, create_memory_tools
from llama_index_memos import MemCubeMemory
from memcube import MemCube
from memcube.scheduler import NOT_USEFUL_KEY


@dataclass
class Ctx:
    user_id: str


def _cube(path: Path) -> tuple[MemCube, str, str]:
    cube = MemCube.open(path)
    cello = cube.add("I play the cello in a community orchestra", user_id="ann")
    walks = cube.add("I enjoy long walks by the sea", user_id="ann")
    return cube, cello.id, walks.id


def test_langchain_feedback_tool(tmp_path: Path) -> None:
    cube, cello, walks = _cube(tmp_path / "c")
    with cube:
        made = create_memory_tools(cube, user_id="ann", include=("search", "feedback"))
        tools = {t.name: t for t in made}
        assert set(tools) == {"search_memories", "memory_feedback"}
        out = tools["memory_feedback"].invoke(
            {"memory_id": walks, "useful": False, "query": "Which instrument do I play?"}
        )
        assert "not useful" in out
        profile = cube.ranking_profile("ann")
        assert profile["votes"] == {walks: [0, 1]}
        assert cube.get(walks).metadata[NOT_USEFUL_KEY] == 1  # and the scheduler's tally


def test_langchain_middleware_implicit_and_explicit(tmp_path: Path) -> None:
    cube, cello, walks = _cube(tmp_path / "c")
    with cube:
        middleware = MemoryMiddleware(cube, write_back=False, implicit_feedback=True)
        model = GenericFakeChatModel(
            messages=iter([AIMessage("You play the cello, in a community orchestra.")])
        )
        agent = create_agent(model, context_schema=Ctx, middleware=[middleware])
        agent.invoke({"messages": [("user", "Which instrument do I play?")]}, context=Ctx("ann"))
        votes = cube.ranking_profile("ann")["votes"]
        assert votes.get(cello) == [1, 0] and walks not in votes  # only what the answer used
        middleware.feedback(walks, useful=True, user_id="ann", query="What do I do outdoors?")
        assert cube.ranking_profile("ann")["votes"][walks] == [1, 0]


def test_llama_index_memory_implicit_and_explicit(tmp_path: Path) -> None:
    cube, cello, walks = _cube(tmp_path / "c")
    with cube:
        memory = MemCubeMemory.from_defaults(cube=cube, user_id="ann", implicit_feedback=True)
        memory.put(ChatMessage(role="user", content="Which instrument do I play?"))
        memory.get()
        assert cello in [it.id for it in memory.last_recalled]
        memory.put(ChatMessage(role="assistant", content="You play the cello in an orchestra."))
        profile = cube.ranking_profile("ann")
        assert profile["votes"].get(cello) == [1, 0]
        assert "play" in profile["words"][cello]  # stemmed query words
        memory.feedback(walks, useful=False)
        assert cube.ranking_profile("ann")["votes"][walks] == [0, 1]
        quiet = MemCubeMemory.from_defaults(cube=cube, user_id="ann")  # off by default
        quiet.put(ChatMessage(role="user", content="Which instrument do I play?"))
        quiet.get()
        quiet.put(ChatMessage(role="assistant", content="You play the cello in an orchestra."))
        assert cube.ranking_profile("ann")["votes"][cello] == [1, 0]
