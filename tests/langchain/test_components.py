"""MemCubeRetriever, the memory tools and MemCubeChatMessageHistory on a real cube."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory
from langchain_core.tools import ToolException

from langchain_memos import (
    MemCubeChatMessageHistory,
    MemCubeRetriever,
    create_memory_tools,
)
from memcube.errors import InvalidInputError, InvalidUserIdError, ItemNotFoundError


# ---------------------------------------------------------------------------------- retriever
async def test_retriever_documents_carry_the_header(cube) -> None:
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    fact = cube.add(
        "Alice ran the Lisbon marathon",
        user_id="alice",
        memory_type="episodic",
        event_time=when,
        tags=["sport"],
        metadata={"city": "Lisbon"},
        provenance={"source": "import", "message_ids": ["D1:3"]},
    )
    cube.add("Alice dislikes running in the rain", user_id="alice", memory_type="preference")
    cube.add("Bob ran the Porto marathon", user_id="bob")
    retriever = MemCubeRetriever(cube=cube, user_id="alice", k=5)
    docs = retriever.invoke("marathon race")
    assert [d.metadata["user_id"] for d in docs] == ["alice", "alice"]
    top = docs[0]
    assert top.page_content == fact.content and top.id == fact.id
    md = top.metadata
    assert md["id"] == fact.id and md["memory_type"] == "episodic"
    assert md["event_time"] == when.isoformat()
    assert md["provenance"]["message_ids"] == ["D1:3"] and md["provenance"]["source"] == "import"
    assert md["tags"] == ["sport"] and md["metadata"] == {"city": "Lisbon"}
    assert md["score"] >= docs[1].metadata["score"]
    # per-call overrides and the async path
    assert [d.page_content for d in retriever.invoke("marathon", memory_types=["preference"])] == [
        "Alice dislikes running in the rain"
    ]
    assert len(await retriever.ainvoke("marathon", k=1)) == 1
    filtered = MemCubeRetriever(cube=cube, user_id="alice", filters={"city": "Lisbon"})
    assert [d.id for d in await filtered.ainvoke("anything")] == [fact.id]
    assert MemCubeRetriever(cube=cube, user_id="carol").invoke("marathon") == []
    with pytest.raises(InvalidInputError):
        retriever.invoke("marathon", nonsense=1)


# ---------------------------------------------------------------------------------- tools
async def test_memory_tools_round_trip_and_scoping(cube) -> None:
    search, save, update, delete = create_memory_tools(cube, user_id="alice")
    saved = save.invoke({"content": "Alice's bike is a green Brompton", "tags": ["bike"]})
    memory_id = saved.split()[-1].rstrip(".")
    item = cube.get(memory_id, user_id="alice")
    assert item.memory_type.value == "fact" and item.tags == ["bike"]
    assert item.provenance.source == "tool"
    found = await search.ainvoke({"query": "what bicycle does she ride?", "k": 1})
    assert f"[{memory_id}]" in found and "Brompton" in found
    assert "Version 2" in update.invoke(
        {"memory_id": memory_id, "content": "Alice's bike is a red Brompton"}
    ).replace("version", "Version")
    assert cube.get(memory_id).content == "Alice's bike is a red Brompton"
    await delete.ainvoke({"memory_id": memory_id})
    assert search.invoke({"query": "bike"}) == "No matching memories."

    # Bob's tools cannot see or touch Alice's memories
    other = cube.add("Alice's PIN hint: birthday", user_id="alice")
    bob_search, _, bob_update, bob_delete = create_memory_tools(cube, user_id="bob")
    assert "PIN" not in bob_search.invoke({"query": "PIN hint"})
    message = bob_delete.invoke({"memory_id": other.id})  # returned to the model as text
    assert "no memory" in message.lower()
    assert cube.get(other.id).state.value != "archived"
    result = bob_update.invoke(
        {
            "type": "tool_call",
            "id": "c1",
            "name": "update_memory",
            "args": {"memory_id": other.id, "content": "hacked"},
        }
    )
    assert isinstance(result, ToolMessage) and result.status == "error"
    assert cube.get(other.id).content == "Alice's PIN hint: birthday"


def test_memory_tools_raise_typed_errors_when_asked(cube) -> None:
    (save, update) = create_memory_tools(
        cube, user_id="alice", include=("save", "update"), handle_tool_error=False
    )
    with pytest.raises(ToolException) as info:
        update.invoke({"memory_id": "missing", "content": "x"})
    assert isinstance(info.value.__cause__, ItemNotFoundError)
    with pytest.raises(ToolException) as info:
        save.invoke({"content": "   "})
    assert isinstance(info.value.__cause__, InvalidInputError)
    with pytest.raises(InvalidUserIdError):
        create_memory_tools(cube, user_id="")
    with pytest.raises(InvalidInputError):
        create_memory_tools(cube, user_id="alice", include=("search", "drop_table"))
    assert cube.count() == 0


# ---------------------------------------------------------------------------------- history
async def test_chat_history_persists_and_feeds_the_reader(open_cube, tmp_path) -> None:
    path = tmp_path / "history-cube"
    cube = open_cube(path)
    history = MemCubeChatMessageHistory(cube, user_id="alice", session_id="s1")
    history.add_messages(
        [
            SystemMessage("You are terse."),
            HumanMessage("My cat Miso is twelve years old"),
            AIMessage("Noted: Miso, 12."),
        ]
    )
    await history.aadd_messages([HumanMessage("She likes tuna")])
    assert [(m.type, m.content) for m in history.messages] == [
        ("human", "My cat Miso is twelve years old"),
        ("ai", "Noted: Miso, 12."),
        ("human", "She likes tuna"),
    ]
    other = MemCubeChatMessageHistory(cube, user_id="alice", session_id="s2")
    assert other.messages == []
    # every turn is also long-term memory the user's other threads can recall
    assert cube.search("tuna fish", user_id="alice", k=1)[0].item.content == "She likes tuna"
    cube.close()

    cube = open_cube(path)
    history = MemCubeChatMessageHistory(cube, user_id="alice", session_id="s1")
    assert len(await history.aget_messages()) == 3
    assert MemCubeChatMessageHistory(cube, user_id="bob", session_id="s1").messages == []
    await history.aclear()
    assert history.messages == []
    assert cube.count(user_id="alice") == 0


def test_chat_history_with_runnable_with_message_history(cube) -> None:
    seen: list[list[str]] = []

    def bot(messages):
        seen.append([m.content for m in messages])
        return AIMessage(f"You said {len(messages)} things so far.")

    chain = RunnableWithMessageHistory(
        RunnableLambda(bot),
        lambda session_id: MemCubeChatMessageHistory(cube, user_id="alice", session_id=session_id),
    )
    config = {"configurable": {"session_id": "rw1"}}
    chain.invoke([HumanMessage("I grow tomatoes")], config)
    chain.invoke([HumanMessage("and basil")], config)
    assert seen[-1] == ["I grow tomatoes", "You said 1 things so far.", "and basil"]
    only_user = MemCubeChatMessageHistory(cube, user_id="alice", session_id="u", roles=["user"])
    only_user.add_messages([HumanMessage("hello"), AIMessage("hi")])
    assert [m.type for m in only_user.messages] == ["human"]
    with pytest.raises(InvalidUserIdError):
        MemCubeChatMessageHistory(cube, user_id="alice", session_id="")
