"""Facts told in session 1 (another process) reach the LLM's prompt in session 2, through real
LlamaIndex chat engines, ``Memory`` and a query engine; and never reach another user's prompt."""

from __future__ import annotations

import pytest
from llama_index.core.chat_engine import CondensePlusContextChatEngine, SimpleChatEngine
from llama_index.core.memory import Memory
from llama_index.core.query_engine import RetrieverQueryEngine

from llama_index_memos import MemCubeMemory, MemCubeMemoryBlock, MemCubeRetriever
from tests.llama_index.llms import RecordingLLM
from tests.llama_index.session_one import FACTS, docs_retriever

pytestmark = pytest.mark.slow


@pytest.fixture
def reopened(session_one_cubes, backend, open_cube):
    """The cube session 1 wrote, reopened in this process."""
    path, report = session_one_cubes[backend]
    # Session 1 really stored the facts (through the reader) before its process exited.
    for user, facts in FACTS.items():
        assert facts[0] in report[user]
    return open_cube(path)


def test_simple_chat_engine_remembers_across_processes(reopened) -> None:
    llm = RecordingLLM()
    memory = MemCubeMemory.from_defaults(cube=reopened, user_id="li-simple")
    engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
    engine.chat("What is the name of my pet?")
    prompt = llm.prompts[-1]
    assert "Ramirez" in prompt
    # The question itself is in the buffer, not repeated as a "memory".
    assert prompt.count("What is the name of my pet?") == 1
    assert any("Ramirez" in m.content for m in memory.last_recalled)
    # The second turn of session 2 is learned too.
    assert any(
        i.content == "What is the name of my pet?" and i.session_id == memory.session_id
        for i in reopened.items(user_id="li-simple")
    )
    # Another user asking the same thing gets nothing of li-simple's.
    other = RecordingLLM()
    SimpleChatEngine.from_defaults(
        llm=other, memory=MemCubeMemory.from_defaults(cube=reopened, user_id="li-intruder")
    ).chat("What is the name of my pet?")
    assert "Ramirez" not in other.prompts[-1] and "Galway" not in other.prompts[-1]


async def test_condense_plus_context_engine_remembers_across_processes(reopened) -> None:
    llm = RecordingLLM()
    memory = MemCubeMemory.from_defaults(cube=reopened, user_id="li-condense")
    engine = CondensePlusContextChatEngine.from_defaults(
        retriever=docs_retriever(), llm=llm, memory=memory
    )
    await engine.achat("Which instrument does my daughter play?")
    # The memory reached both the condense prompt and the answer prompt; the documents did too.
    assert len(llm.prompts) == 2
    assert all("cello" in p for p in llm.prompts)
    assert "Lumen 3" in llm.prompts[-1]
    other = RecordingLLM()
    await CondensePlusContextChatEngine.from_defaults(
        retriever=docs_retriever(),
        llm=other,
        memory=MemCubeMemory.from_defaults(cube=reopened, user_id="li-simple"),
    ).achat("Which instrument does my daughter play?")
    assert not any("cello" in p or "Ottilie" in p for p in other.prompts)


def test_memory_with_block_remembers_across_processes(reopened) -> None:
    llm = RecordingLLM()
    block = MemCubeMemoryBlock(cube=reopened, user_id="li-block")
    memory = Memory.from_defaults(memory_blocks=[block])
    SimpleChatEngine.from_defaults(llm=llm, memory=memory).chat("What food do I like best?")
    prompt = llm.prompts[-1]
    assert "<long_term_memory>" in prompt and "feijoada" in prompt
    other = RecordingLLM()
    memory = Memory.from_defaults(
        memory_blocks=[MemCubeMemoryBlock(cube=reopened, user_id="li-condense")]
    )
    SimpleChatEngine.from_defaults(llm=other, memory=memory).chat("What food do I like best?")
    assert "feijoada" not in other.prompts[-1]


async def test_query_engine_over_retriever_across_processes(reopened) -> None:
    llm = RecordingLLM()
    engine = RetrieverQueryEngine.from_args(MemCubeRetriever(reopened, "li-simple"), llm=llm)
    response = engine.query("Where do I work?")
    assert "Galway" in llm.prompts[-1]
    assert any("Galway" in n.text for n in response.source_nodes)
    assert all(n.node.metadata["user_id"] == "li-simple" for n in response.source_nodes)
    other = RecordingLLM()
    engine = RetrieverQueryEngine.from_args(MemCubeRetriever(reopened, "li-block"), llm=other)
    response = await engine.aquery("Where do I work?")
    assert not any("Galway" in p for p in other.prompts)
    assert all(n.node.metadata["user_id"] == "li-block" for n in response.source_nodes)
