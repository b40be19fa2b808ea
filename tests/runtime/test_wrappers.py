"""ChatMemOS (LangChain) and MemOSLLM (LlamaIndex) over the shared runtime, offline."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.tools import tool
from llama_index.core.base.llms.types import ChatMessage as LIChatMessage

from langchain_memos import ChatMemOS
from llama_index_memos import MemOSLLM
from memcube import MemCube

pytestmark = pytest.mark.slow


def _fill(cube: MemCube) -> None:
    cube.add("The user's name is Alice.", user_id="alice", memory_type="fact")
    cube.add("Alice has a cat named Miso.", user_id="alice", memory_type="fact")
    cube.add("Alice visited Kyoto in May.", user_id="alice", memory_type="episodic")


def test_chat_memos_kv_memory_is_token_identical(cube: MemCube) -> None:
    _fill(cube)
    question = [HumanMessage("What is my cat called?")]
    plain = ChatMemOS(cube=cube, user_id="alice", kv_memory=False, max_tokens=12).invoke(question)
    cached = ChatMemOS(cube=cube, user_id="alice", kv_memory=True, max_tokens=12).invoke(question)
    assert cached.content == plain.content
    assert cached.usage_metadata["input_tokens"] == plain.usage_metadata["input_tokens"]
    assert cached.usage_metadata["input_token_details"]["cache_read"] > 0
    assert plain.usage_metadata["input_token_details"]["cache_read"] == 0
    assert cached.response_metadata["model_name"] == "SmolLM2-135M-Instruct"
    assert len(cached.response_metadata["memory_item_ids"]) == 3  # all of a small user's memory
    details = cached.response_metadata["kv_memory"]
    assert details["mode"] == "exact" and plain.response_metadata["kv_memory"]["mode"] == "text"
    assert details["cached_tokens"] == cached.usage_metadata["input_token_details"]["cache_read"]
    assert (
        details["cached_tokens"] + details["computed_tokens"]
        == cached.usage_metadata["input_tokens"]
    )
    # blend: the per-question memories come from KV chunks too (a tight stable block here)
    blend = ChatMemOS(
        cube=cube, user_id="alice", kv_memory="blend", activation_budget=20, max_tokens=12
    ).invoke(question)
    assert blend.response_metadata["kv_memory"]["mode"] == "blend"
    assert blend.response_metadata["working_memory_ids"]
    assert blend.usage_metadata["input_token_details"]["cache_read"] > 0
    with pytest.raises(ValueError, match="kv_memory"):
        ChatMemOS(cube=cube, user_id="alice", kv_memory="fast")


async def test_chat_memos_streams_and_calls_tools() -> None:
    @tool
    def get_weather(city: str) -> str:
        """Get the weather in a city."""
        return "sunny"

    llm = ChatMemOS(max_tokens=40)
    chunks = [c async for c in llm.astream("Name a fruit.", max_tokens=6)]
    assert all(isinstance(c, AIMessageChunk) for c in chunks) and len(chunks) >= 2
    assert chunks[-1].chunk_position == "last" and chunks[-1].usage_metadata
    message = llm.bind_tools([get_weather], tool_choice="get_weather").invoke(
        "What's the weather in Paris?"
    )
    assert isinstance(message, AIMessage)
    assert message.tool_calls[0]["name"] == "get_weather"
    assert set(message.tool_calls[0]["args"]) == {"city"}
    # the call and its result go back into the prompt for the next turn
    follow = llm.invoke(
        [
            HumanMessage("What's the weather in Paris?"),
            message,
            get_weather.invoke(message.tool_calls[0]),
        ],
        max_tokens=8,
    )
    assert isinstance(follow.content, str) and follow.content


def test_memos_llm_metadata_and_kv_identity(cube: MemCube) -> None:
    _fill(cube)
    llm = MemOSLLM(max_tokens=12, cube=cube, user_id="alice", kv_memory=True)
    meta = llm.metadata
    assert meta.is_chat_model and meta.is_function_calling_model
    assert meta.context_window == 8192 and meta.model_name == "SmolLM2-135M-Instruct"
    question = [LIChatMessage(role="user", content="What is my name?")]
    cached = llm.chat(question)
    plain = MemOSLLM(max_tokens=12, cube=cube, user_id="alice", kv_memory=False).chat(question)
    assert cached.message.content == plain.message.content
    assert cached.additional_kwargs["usage"]["cached_tokens"] > 0
    assert cached.additional_kwargs["kv_memory"]["mode"] == "exact"
    assert (
        cached.additional_kwargs["kv_memory"]["cached_tokens"]
        == cached.additional_kwargs["usage"]["cached_tokens"]
    )
    assert plain.additional_kwargs["kv_memory"]["mode"] == "text"
    streamed = list(llm.stream_chat(question))
    assert "".join(r.delta for r in streamed) == cached.message.content
    assert llm.complete("Say hi").text


async def test_memos_llm_in_a_simple_chat_engine() -> None:
    from llama_index.core.chat_engine import SimpleChatEngine

    engine = SimpleChatEngine.from_defaults(llm=MemOSLLM(max_tokens=10))
    reply = engine.chat("Hello! What is two plus two?")
    assert str(reply).strip()
    areply = await engine.achat("And three plus three?")
    assert str(areply).strip()
    assert len(engine.chat_history) == 4


async def test_memos_llm_drives_a_function_agent_with_a_tool() -> None:
    from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
    from llama_index.core.tools import FunctionTool

    calls: list[str] = []

    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        calls.append(city)
        return f"It is sunny in {city}."

    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(get_weather)],
        llm=MemOSLLM(max_tokens=40),
        initial_tool_choice="get_weather",
        early_stopping_method="generate",
        timeout=None,
    )
    handler = agent.run("What's the weather in Paris?", max_iterations=3)
    results = [ev async for ev in handler.stream_events() if isinstance(ev, ToolCallResult)]
    output = await handler
    assert calls and results[0].tool_name == "get_weather"
    assert "sunny" in results[0].tool_output.content
    assert str(output.response.content or "").strip()
