"""The chat window of MemCubeMemory.get()/aget() is one chat APIs accept: after the token-limit
trimming its conversation starts at a user message, and it never holds a tool result whose
assistant tool-call message was cut off (OpenAI, Anthropic and Bedrock refuse both)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import ToolCallBlock
from llama_index.core.llms import ChatMessage
from llama_index.core.storage.chat_store import SimpleChatStore

from llama_index_memos import MemCubeMemory
from memcube import InvalidInputError, MemCube


@pytest.fixture
def cube(tmp_path: Path) -> Iterator[MemCube]:
    """One embedded cube: the window rules do not depend on the Chroma backend."""
    opened = MemCube.open(tmp_path / "cube")
    yield opened
    opened.close()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def assistant(text: str, **extra: Any) -> ChatMessage:
    return ChatMessage(role="assistant", content=text, additional_kwargs=extra)


def openai_call(call_id: str, name: str = "get_weather") -> dict[str, Any]:
    """A tool call as LlamaIndex's OpenAI integration keeps it in ``additional_kwargs``."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": '{"city": "Porto"}'},
    }


def tool_result(text: str, call_id: str | None, role: str = "tool") -> ChatMessage:
    extra = {"tool_call_id": call_id} if call_id is not None else {}
    return ChatMessage(role=role, content=text, additional_kwargs=extra)


def words(n: int, word: str = "word") -> str:
    return " ".join([word] * n)


def memory_over(
    cube: MemCube,
    history: list[ChatMessage],
    token_limit: int,
    memory_token_budget: int = 0,
    user_id: str = "ana",
) -> MemCubeMemory:
    """A memory resuming ``history`` from its chat store; one token per word."""
    store = SimpleChatStore(store={"chat_history": list(history)})
    return MemCubeMemory.from_defaults(
        cube=cube,
        user_id=user_id,
        token_limit=token_limit,
        memory_token_budget=memory_token_budget,
        tokenizer_fn=str.split,
        chat_store=store,
    )


async def window(memory: MemCubeMemory, mode: str, **kwargs: Any) -> list[ChatMessage]:
    if mode == "sync":
        return memory.get(**kwargs)
    return await memory.aget(**kwargs)


def roles(messages: list[ChatMessage]) -> list[str]:
    return [m.role.value for m in messages]


def tokens(messages: list[ChatMessage]) -> int:
    return len(" ".join(m.content or "" for m in messages).split())


def check_acceptable(messages: list[ChatMessage]) -> None:
    """What a chat API checks: system messages first, then a user message; every tool result
    answers a call of an earlier assistant message."""
    chat = [m for m in messages if m.role.value != "system"]
    assert not chat or chat[0].role.value == "user", roles(messages)
    assert roles(messages)[: len(messages) - len(chat)] == ["system"] * (len(messages) - len(chat))
    calls: set[str] = set()
    for m in chat:
        for call in m.additional_kwargs.get("tool_calls", []):
            calls.add(call.get("id") or call["toolUseId"])
        calls.update(b.tool_call_id for b in m.blocks if isinstance(b, ToolCallBlock))
        if m.role.value in ("tool", "function"):
            assert m.additional_kwargs.get("tool_call_id") in calls, roles(messages)


# ------------------------------------------------------------------------------ assistant first
async def test_whole_turns_are_dropped_oldest_first(cube: MemCube, mode: str) -> None:
    history = [
        user("where is the museum"),
        assistant(words(6, "north")),
        user("and the station"),
        assistant(words(6, "south")),
        user("thanks a lot"),
        assistant("you are welcome"),
    ]
    memory = memory_over(cube, history, token_limit=20)
    got = await window(memory, mode)
    # Turn one does not fit; trimming it leaves no assistant message in front.
    assert [m.content for m in got] == [m.content for m in history[2:]]
    assert tokens(got) <= 20
    check_acceptable(got)


async def test_a_window_trimmed_to_an_assistant_message_starts_at_its_user_message(
    cube: MemCube, mode: str
) -> None:
    history = [
        user("hello"),
        assistant("hi, how can I help"),
        user(words(30, "question")),  # the current question alone is over the limit
        assistant("short answer"),
    ]
    memory = memory_over(cube, history, token_limit=10)
    got = await window(memory, mode)
    # The old window was the lone assistant reply. The current turn is kept whole instead:
    # the model must see the question it answers; the LLM reports an over-long prompt itself.
    assert roles(got) == ["user", "assistant"]
    assert got[0].content == history[2].content
    check_acceptable(got)


async def test_leading_assistant_messages_are_dropped_even_within_the_limit(
    cube: MemCube, mode: str
) -> None:
    history = [
        ChatMessage(role="system", content="Answer briefly."),
        assistant("Welcome! Ask me anything."),  # a greeting stored before any user turn
        user("what is the capital of Portugal"),
        assistant("Lisbon"),
    ]
    memory = memory_over(cube, history, token_limit=1000)
    got = await window(memory, mode)
    assert [m.content for m in got] == ["Answer briefly.", history[2].content, "Lisbon"]
    check_acceptable(got)
    # Nothing is lost from the buffer: only the window is shaped.
    assert len(memory.get_all()) == 4


async def test_the_memory_block_goes_after_the_system_messages_before_the_user_message(
    cube: MemCube, mode: str
) -> None:
    cube.add("Ana's sister lives in Porto.", user_id="ana")
    history = [
        ChatMessage(role="system", content="Answer briefly."),
        assistant("Welcome back!"),
        user("where does my sister live"),
    ]
    memory = memory_over(cube, history, token_limit=1000, memory_token_budget=50)
    got = await window(memory, mode)
    assert roles(got) == ["system", "system", "user"]
    assert got[0].content == "Answer briefly." and "Porto" in (got[1].content or "")
    check_acceptable(got)


async def test_without_a_user_message_only_system_messages_are_returned(
    cube: MemCube, mode: str
) -> None:
    only_assistant = memory_over(cube, [assistant("Welcome!")], token_limit=100)
    assert await window(only_assistant, mode) == []
    with_system = memory_over(
        cube,
        [ChatMessage(role="system", content="Be kind."), assistant("Welcome!")],
        token_limit=100,
    )
    assert [m.content for m in await window(with_system, mode)] == ["Be kind."]


async def test_an_initial_token_count_over_the_limit_is_refused(cube: MemCube, mode: str) -> None:
    memory = memory_over(cube, [user("hi")], token_limit=10)
    with pytest.raises(InvalidInputError, match="initial_token_count"):
        await window(memory, mode, initial_token_count=11)
    with pytest.raises(ValueError):  # what ChatMemoryBuffer raises, for callers that catch it
        await window(memory, mode, initial_token_count=11)


# ------------------------------------------------------------------------------ tool results
async def test_trimming_never_orphans_a_tool_result(cube: MemCube, mode: str) -> None:
    history = [
        user("hello"),
        assistant("hi"),
        user("what is the weather in Porto"),
        assistant("", tool_calls=[openai_call("call_1")]),
        tool_result(words(40, "sunny"), "call_1"),  # a long tool output
    ]
    memory = memory_over(cube, history, token_limit=45)
    got = await window(memory, mode)
    # Only the tool result fitted, so the old window was that result without its call.
    assert roles(got) == ["user", "assistant", "tool"]
    assert got[1].additional_kwargs["tool_calls"][0]["id"] == "call_1"
    check_acceptable(got)


async def test_a_legacy_function_result_cut_from_its_call_is_dropped(
    cube: MemCube, mode: str
) -> None:
    history = [
        user("convert 10 euros"),
        assistant("", function_call={"name": "convert", "arguments": "{}"}),
        tool_result("11 dollars", None, role="function"),
        assistant("about eleven dollars"),
        user("and 20 euros"),
        assistant("about twenty two dollars"),
    ]
    memory = memory_over(cube, history, token_limit=12)
    got = await window(memory, mode)
    assert [m.content for m in got] == ["and 20 euros", "about twenty two dollars"]
    check_acceptable(got)


async def test_a_tool_result_whose_call_is_not_in_the_buffer_is_never_shown(
    cube: MemCube, mode: str
) -> None:
    history = [
        user("look it up"),
        tool_result("lookup done", "call_gone"),  # its call was lost before the buffer
        assistant("done"),
        user("thanks"),
    ]
    memory = memory_over(cube, history, token_limit=1000)
    got = await window(memory, mode)
    assert [m.content for m in got] == ["look it up", "done", "thanks"]


async def test_tool_calls_and_their_results_stay_together(cube: MemCube, mode: str) -> None:
    history = [
        user("weather in Porto and Lisbon"),
        # LlamaIndex's own ToolCallBlock form, two parallel calls
        ChatMessage(
            role="assistant",
            blocks=[
                ToolCallBlock(tool_call_id="c1", tool_name="weather", tool_kwargs={"city": "P"}),
                ToolCallBlock(tool_call_id="c2", tool_name="weather", tool_kwargs={"city": "L"}),
            ],
        ),
        tool_result("sunny", "c1"),
        tool_result("rainy", "c2"),
        assistant("Porto is sunny, Lisbon rainy."),
        user("and Faro"),
        # the additional_kwargs form (OpenAI integration), and Bedrock's toolUseId key
        assistant("", tool_calls=[openai_call("c3")]),
        tool_result("windy", "c3"),
        assistant("", tool_calls=[{"toolUseId": "c4", "name": "weather", "input": {}}]),
        tool_result("still windy", "c4"),
        assistant("Faro is windy."),
    ]
    memory = memory_over(cube, history, token_limit=1000)
    got = await window(memory, mode)
    assert [m.content for m in got] == [m.content for m in history]
    check_acceptable(got)


async def test_a_function_agent_history_is_windowed_whole_turn_by_turn(
    cube: MemCube, mode: str
) -> None:
    turn = [
        ChatMessage(
            role="assistant",
            blocks=[ToolCallBlock(tool_call_id="x", tool_name="search", tool_kwargs={})],
        ),
        tool_result(words(5, "found"), "x"),
        assistant("here it is"),
    ]
    history = [user("first question"), *turn, user("second question"), *turn]
    memory = memory_over(cube, history, token_limit=14)
    got = await window(memory, mode)
    assert [m.content for m in got] == [m.content for m in history[4:]]
    check_acceptable(got)
