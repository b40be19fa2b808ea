"""MemCubeMemory: buffer + long-term recall, every write through the cube, scoped to one user."""

from __future__ import annotations

import pytest
from llama_index.core import SummaryIndex
from llama_index.core.chat_engine import ContextChatEngine
from llama_index.core.llms import ChatMessage
from llama_index.core.schema import TextNode

from llama_index_memos import MemCubeMemory
from memcube import (
    ContentTooLargeError,
    InvalidFilterError,
    InvalidInputError,
    InvalidUserIdError,
    MemCube,
    MemoryType,
)
from tests.helpers import snapshot
from tests.llama_index.llms import RecordingLLM


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def assistant(text: str) -> ChatMessage:
    return ChatMessage(role="assistant", content=text)


def test_every_put_is_learned_and_recalled_in_a_new_session(cube: MemCube) -> None:
    first = MemCubeMemory.from_defaults(cube=cube, user_id="ana", agent_id="helper")
    first.put(user("I am allergic to hazelnuts."))
    first.put(assistant("Understood, no hazelnuts."))
    first.put(ChatMessage(role="tool", content="lookup done"))  # not a turn the reader keeps
    stored = list(cube.items(user_id="ana"))
    assert sorted(i.content for i in stored if i.memory_type == MemoryType.EPISODIC) == [
        "I am allergic to hazelnuts.",
        "Understood, no hazelnuts.",
    ]
    # Whatever else the cube's reader extracts from a turn lands in the same scope.
    assert {(i.session_id, i.agent_id) for i in stored} == {(first.session_id, "helper")}
    # The extractor is the reader's choice, passed through unchanged.
    turns_only = MemCubeMemory.from_defaults(cube=cube, user_id="ana-2", extractor="turns")
    turns_only.put(user("I am allergic to hazelnuts."))
    assert [i.content for i in cube.items(user_id="ana-2")] == ["I am allergic to hazelnuts."]

    second = MemCubeMemory.from_defaults(cube=cube, user_id="ana")
    assert second.session_id != first.session_id
    second.put(user("Can you suggest a dessert for me?"))
    messages = second.get()
    assert [m.role.value for m in messages] == ["system", "user"]
    assert "hazelnuts" in messages[0].content
    assert messages[0].content == cube.render(
        second.last_recalled, count_tokens=lambda s: len(second.tokenizer_fn(s))
    )
    # The question is visible in the buffer, so it is not repeated as a memory.
    assert "dessert" not in messages[0].content
    # get(input=...) recalls for the given text (ContextChatEngine / CondensePlusContext style).
    assert "hazelnuts" in second.get(input="Any food allergies?")[0].content


def test_recall_stays_within_budget_and_token_limit(cube: MemCube) -> None:
    cube.add_many(
        [
            {"content": f"Fact {i}: my cousin number {i} lives in city {i}.", "user_id": "bo"}
            for i in range(20)
        ]
    )
    memory = MemCubeMemory.from_defaults(
        cube=cube, user_id="bo", token_limit=200, memory_token_budget=60
    )
    memory.put_messages(
        [
            user(f"Question {i} about where my cousins live, please answer briefly.")
            for i in range(12)
        ]
    )
    messages = memory.get(initial_token_count=20)
    count = memory.tokenizer_fn
    system, window = messages[0], messages[1:]
    assert system.role.value == "system" and 0 < len(count(system.content)) <= 60
    assert 0 < len(window) < 12  # the buffer was trimmed to make room
    assert (
        len(count(system.content)) + len(count(" ".join(m.content for m in window))) + 20 <= 200 + 2
    )
    assert len(memory.get_all()) == 12
    # No room left for memories: the buffer alone is returned.
    assert all(m.role.value == "user" for m in memory.get(initial_token_count=200))
    silent = MemCubeMemory.from_defaults(cube=cube, user_id="bo", memory_token_budget=0)
    silent.put(user("Where does cousin 3 live?"))
    assert [m.role.value for m in silent.get()] == ["user"]


def test_set_learns_only_new_messages(cube: MemCube) -> None:
    memory = MemCubeMemory.from_defaults(
        cube=cube,
        user_id="cy",
        chat_history=[user("My bike is a red Brompton.")],
        extractor="turns",
    )
    assert cube.count(user_id="cy") == 1
    history = memory.get_all() + [assistant("Nice bike!"), user("I ride it to work.")]
    memory.set(history)
    assert cube.count(user_id="cy") == 3
    memory.set(history)  # the same history again: nothing new to learn
    assert cube.count(user_id="cy") == 3
    assert [m.content for m in memory.get_all()] == [m.content for m in history]
    memory.reset()
    assert memory.get_all() == [] and cube.count(user_id="cy") == 3


async def test_async_twins(cube: MemCube) -> None:
    memory = MemCubeMemory.from_defaults(cube=cube, user_id="di", extractor="turns")
    await memory.aput(user("My passport expires in March."))
    await memory.aput_messages([assistant("I'll remind you."), user("Thanks.")])
    assert cube.count(user_id="di") == 3
    assert len(await memory.aget_all()) == 3
    await memory.aset([user("When does my passport expire?")])
    assert cube.count(user_id="di") == 4
    messages = await memory.aget()
    assert messages[0].role.value == "system" and "March" in messages[0].content
    await memory.areset()
    assert await memory.aget_all() == []


def test_scoping_and_filters(cube: MemCube) -> None:
    cube.add("Eve's bank PIN hint is her first cat", user_id="eve", memory_type="fact")
    cube.add("Eve had pasta for lunch", user_id="eve", memory_type="episodic")
    mallory = MemCubeMemory.from_defaults(cube=cube, user_id="mallory")
    assert [m.role.value for m in mallory.get(input="what is the bank PIN hint?")] == []
    only_facts = MemCubeMemory.from_defaults(cube=cube, user_id="eve", memory_types=["fact"])
    block = only_facts.get(input="what did I eat and what is my PIN hint?")[0].content
    assert "PIN" in block and "pasta" not in block
    by_meta = MemCubeMemory.from_defaults(
        cube=cube, user_id="eve", filters={"memory_type": "episodic"}
    )
    block = by_meta.get(input="what did I eat and what is my PIN hint?")[0].content
    assert "pasta" in block and "PIN" not in block
    broken = MemCubeMemory.from_defaults(cube=cube, user_id="eve", filters={"$nope": 1})
    with pytest.raises(InvalidFilterError):
        broken.get(input="anything")


def test_bad_input_is_refused_and_changes_nothing(cube: MemCube) -> None:
    with pytest.raises(InvalidInputError, match="cube="):
        MemCubeMemory.from_defaults(user_id="fay")
    with pytest.raises(InvalidInputError):
        MemCubeMemory.from_defaults(cube="not a cube", user_id="fay")
    with pytest.raises(InvalidUserIdError):
        MemCubeMemory.from_defaults(cube=cube, user_id="")
    with pytest.raises(InvalidUserIdError):
        MemCubeMemory.from_defaults(cube=cube)
    with pytest.raises(InvalidInputError, match="unexpected"):
        MemCubeMemory.from_defaults(cube=cube, user_id="fay", colour="blue")
    with pytest.raises(InvalidInputError):
        MemCubeMemory.from_defaults(cube=cube, user_id="fay", memory_token_budget=-1)
    with pytest.raises(InvalidInputError):
        MemCubeMemory.from_defaults(cube=cube, user_id="fay", token_limit=0)
    memory = MemCubeMemory.from_defaults(cube=cube, user_id="fay")
    memory.put(user("Hello."))
    before = snapshot(cube)
    with pytest.raises(ContentTooLargeError):
        memory.put(user("x" * 40_000))
    with pytest.raises(ContentTooLargeError):
        memory.put_messages([user("fine"), user("y" * 40_000)])
    assert snapshot(cube) == before
    assert [m.content for m in memory.get_all()] == ["Hello."]


def test_context_chat_engine_sees_long_term_memory(cube: MemCube) -> None:
    MemCubeMemory.from_defaults(cube=cube, user_id="gus").put(user("My flat is on the 7th floor."))
    llm = RecordingLLM()
    docs = SummaryIndex([TextNode(text="Deliveries above the 5th floor cost 3 euros extra.")])
    engine = ContextChatEngine.from_defaults(
        retriever=docs.as_retriever(),
        llm=llm,
        memory=MemCubeMemory.from_defaults(cube=cube, user_id="gus"),
    )
    engine.chat("Do I pay extra for deliveries to my floor?")
    assert "7th floor" in llm.prompts[-1] and "3 euros" in llm.prompts[-1]
