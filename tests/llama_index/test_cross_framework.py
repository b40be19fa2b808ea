"""One cube, two frameworks: what LlamaIndex writes LangChain finds, and the other way round."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.llms import ChatMessage

from langchain_memos.chat_history import MemCubeChatMessageHistory
from langchain_memos.retriever import MemCubeRetriever as LangChainRetriever
from llama_index_memos import MemCubeMemory
from llama_index_memos import MemCubeRetriever as LlamaIndexRetriever
from memcube import MemCube
from tests.llama_index.llms import RecordingLLM


def test_llama_index_writes_langchain_reads(cube: MemCube) -> None:
    memory = MemCubeMemory.from_defaults(cube=cube, user_id="quinn")
    SimpleChatEngine.from_defaults(llm=RecordingLLM(reply="Good luck!"), memory=memory).chat(
        "My thesis defence is on the 14th of March."
    )
    docs = LangChainRetriever(cube=cube, user_id="quinn", k=2).invoke("when is my defence?")
    assert docs[0].page_content == "My thesis defence is on the 14th of March."
    assert docs[0].metadata["session_id"] == memory.session_id
    assert docs[0].metadata["provenance"]["source"] == "message"
    # Both retrievers are the same cube.search underneath: same memories, same order.
    nodes = LlamaIndexRetriever(cube, "quinn", similarity_top_k=2).retrieve("when is my defence?")
    assert [n.node.node_id for n in nodes] == [d.id for d in docs]
    # The LlamaIndex conversation reads back as a LangChain chat history of the same session.
    history = MemCubeChatMessageHistory(cube, user_id="quinn", session_id=memory.session_id)
    assert [(m.type, m.content) for m in history.messages] == [
        ("human", "My thesis defence is on the 14th of March."),
        ("ai", "Good luck!"),
    ]
    assert LangChainRetriever(cube=cube, user_id="rita", k=2).invoke("when is my defence?") == []


async def test_langchain_writes_llama_index_reads(cube: MemCube) -> None:
    history = MemCubeChatMessageHistory(cube, user_id="sam", session_id="lc-thread-1")
    await history.aadd_messages(
        [HumanMessage("I keep my spare keys with my neighbour Tomasz."), AIMessage("Noted.")]
    )
    nodes = await LlamaIndexRetriever(cube, "sam", similarity_top_k=1).aretrieve(
        "who has my spare keys?"
    )
    assert nodes[0].text == "I keep my spare keys with my neighbour Tomasz."
    assert nodes[0].node.metadata["session_id"] == "lc-thread-1"
    memory = MemCubeMemory.from_defaults(cube=cube, user_id="sam")
    await memory.aput(ChatMessage(role="user", content="Who has my spare keys?"))
    system = (await memory.aget())[0]
    assert system.role.value == "system" and "Tomasz" in system.content
    intruder = MemCubeMemory.from_defaults(cube=cube, user_id="tess")
    await intruder.aput(ChatMessage(role="user", content="Who has my spare keys?"))
    assert [m.role.value for m in await intruder.aget()] == ["user"]
