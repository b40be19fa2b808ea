"""MemCubeMemoryBlock inside LlamaIndex's ``Memory``: flushed messages are learned, recall is
rendered by the cube, truncation drops the least relevant memories first."""

from __future__ import annotations

import pytest
from llama_index.core.llms import ChatMessage
from llama_index.core.memory import Memory

from llama_index_memos import MemCubeMemoryBlock
from memcube import InvalidInputError, InvalidUserIdError, MemCube, MemoryType


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


async def test_flushed_messages_are_learned_with_the_session(cube: MemCube) -> None:
    block = MemCubeMemoryBlock(cube=cube, user_id="hal", agent_id="concierge")
    memory = Memory.from_defaults(session_id="s-1", token_limit=60, memory_blocks=[block])
    turns = [
        "I always book aisle seats on long flights.",
        "My loyalty number starts with 88.",
        "I prefer hotels with a gym.",
        "Next month I fly to Osaka.",
    ]
    for text in turns:
        await memory.aput(user(text))
        await memory.aput(ChatMessage(role="assistant", content="Got it."))
    stored = list(cube.items(user_id="hal"))
    # Memory hands a block only what overflows its queue: the oldest turns, not the newest.
    contents = {i.content for i in stored if i.memory_type == MemoryType.EPISODIC}
    assert turns[0] in contents and turns[-1] not in contents
    assert {(i.session_id, i.agent_id) for i in stored} == {("s-1", "concierge")}
    # A new session's Memory gets the flushed facts back as a memory block.
    later = Memory.from_defaults(session_id="s-2", memory_blocks=[block])
    await later.aput(user("Which seat should I pick for the Osaka flight?"))
    messages = await later.aget()
    assert messages[0].role.value == "system"
    assert "<long_term_memory>" in messages[0].content and "aisle" in messages[0].content
    # ... and another user's block gets nothing.
    intruder = Memory.from_defaults(
        session_id="s-3", memory_blocks=[MemCubeMemoryBlock(cube=cube, user_id="ivy")]
    )
    await intruder.aput(user("Which seat should I pick for the Osaka flight?"))
    assert [m.role.value for m in await intruder.aget()] == ["user"]


async def test_aget_renders_working_memory_and_skips_visible_text(cube: MemCube) -> None:
    cube.add("Jo's daughter is called Mia", user_id="jo", memory_type="fact")
    cube.add("What is my daughter's name?", user_id="jo")
    block = MemCubeMemoryBlock(cube=cube, user_id="jo")
    text = await block.aget([user("What is my daughter's name?")], session_id="x")
    assert "Mia" in text and "What is my daughter's name?" not in text
    assert (
        text.splitlines()[0]
        == cube.render(cube.working_memory("daughter", user_id="jo")).splitlines()[0]
    )
    assert await block.aget([]) == ""
    assert await block.aget([ChatMessage(role="assistant", content="Hello")]) == ""


async def test_atruncate_drops_least_relevant_first(cube: MemCube) -> None:
    cube.add_many(
        [
            {"content": "Kim's car is a blue Volvo estate", "user_id": "kim"},
            {"content": "Kim's car insurance renews in May", "user_id": "kim"},
            {"content": "Kim parks the car at the station garage", "user_id": "kim"},
            {"content": "Kim likes jazz records", "user_id": "kim"},
        ]
    )
    block = MemCubeMemoryBlock(cube=cube, user_id="kim", priority=2)
    text = await block.aget([user("Tell me about my car")])
    lines = text.splitlines()
    assert len(lines) == 5
    shorter = await block.atruncate(text, 12)
    assert shorter is not None and shorter.splitlines() == lines[: len(shorter.splitlines())]
    assert 2 <= len(shorter.splitlines()) < 5
    assert await block.atruncate(text, 0) == text
    assert await block.atruncate(text, 10_000) is None
    assert await block.atruncate("some other text", 1) is None


async def test_memory_truncates_the_block_before_dropping_it(cube: MemCube) -> None:
    cube.add_many(
        [
            {
                "content": f"Lee's plant number {i} is a fern that needs water every {i} days",
                "user_id": "lee",
            }
            for i in range(1, 9)
        ]
    )
    block = MemCubeMemoryBlock(cube=cube, user_id="lee", token_budget=400)
    full = await block.aget([user("How often do I water my ferns?")])
    full_lines = len(full.splitlines())
    assert full_lines == 9
    tokens = len(block.tokenizer_fn(full))
    # A Memory whose limit leaves room for about half of the block.
    memory = Memory.from_defaults(
        session_id="t", token_limit=tokens // 2 + 30, memory_blocks=[block], token_flush_size=1000
    )
    await memory.aput(user("How often do I water my ferns?"))
    messages = await memory.aget()
    content = messages[0].content
    kept = [ln for ln in content.splitlines() if ln.startswith("- [")]
    assert 1 <= len(kept) < 8
    # A priority-0 block is never truncated.
    fixed = MemCubeMemoryBlock(cube=cube, user_id="lee", name="fixed", priority=0, token_budget=400)
    memory = Memory.from_defaults(
        session_id="u", token_limit=tokens // 2 + 30, memory_blocks=[fixed], token_flush_size=1000
    )
    await memory.aput(user("How often do I water my ferns?"))
    content = (await memory.aget())[0].content
    assert len([ln for ln in content.splitlines() if ln.startswith("- [")]) == 8


def test_bad_configuration_is_refused(cube: MemCube) -> None:
    with pytest.raises(InvalidUserIdError):
        MemCubeMemoryBlock(cube=cube, user_id="")
    with pytest.raises(InvalidInputError):
        MemCubeMemoryBlock(cube=object(), user_id="x")
    with pytest.raises(InvalidInputError):
        MemCubeMemoryBlock(cube=cube, user_id="x", priority=-1)
    with pytest.raises(InvalidInputError):
        MemCubeMemoryBlock(cube=cube, user_id="x", token_budget=0)
