"""Decoding with the bundled model: greedy, sampled, streaming, stops, grammar, adapters."""

from __future__ import annotations

import json

import pytest

from memcube.errors import InvalidInputError
from memcube.parametric.store import AdapterNotFoundError
from memcube.runtime import (
    AdapterUnavailableError,
    ChatMessage,
    GenerationOptions,
    Runtime,
    ToolSpec,
    parse_tool_calls,
    tool_call_schema,
)
from memcube.runtime.session import chat

pytestmark = pytest.mark.slow

QUESTION = [ChatMessage("user", "What is the capital of France?")]


def test_greedy_is_deterministic_and_streaming_matches(runtime: Runtime) -> None:
    prompt = runtime.prompt(QUESTION)
    opts = GenerationOptions(max_new_tokens=10)
    first = runtime.generate(prompt, opts)
    second = runtime.generate(prompt, opts)
    assert first.token_ids == second.token_ids and first.text
    chunks = list(runtime.stream(prompt, opts))
    assert chunks[-1].result is not None
    assert "".join(c.text for c in chunks) == first.text
    assert len([c for c in chunks if c.text]) >= 2  # token by token, not one blob
    assert first.prompt_tokens == len(prompt.ids)
    assert 1 <= first.completion_tokens <= 10
    assert first.finish_reason in ("stop", "length")
    assert first.model_name == "SmolLM2-135M-Instruct"


def test_max_tokens_and_stop_sequences(runtime: Runtime) -> None:
    prompt = runtime.prompt(QUESTION)
    capped = runtime.generate(prompt, GenerationOptions(max_new_tokens=3))
    assert capped.completion_tokens == 3 and capped.finish_reason == "length"
    full = runtime.generate(prompt, GenerationOptions(max_new_tokens=10))
    word = full.text.split()[2]  # stop at the third word
    stopped = runtime.generate(prompt, GenerationOptions(max_new_tokens=10, stop=[word]))
    assert word not in stopped.text and stopped.finish_reason == "stop"
    assert full.text.startswith(stopped.text)
    streamed = "".join(
        c.text for c in runtime.stream(prompt, GenerationOptions(max_new_tokens=10, stop=[word]))
    )
    assert streamed == stopped.text  # the stop text is never streamed out


def test_sampling_is_reproducible_with_a_seed(runtime: Runtime) -> None:
    prompt = runtime.prompt(QUESTION)
    opts = GenerationOptions(max_new_tokens=8, temperature=1.0, top_p=0.95, seed=7)
    assert runtime.generate(prompt, opts).token_ids == runtime.generate(prompt, opts).token_ids


def test_forced_tool_call_is_valid_by_construction(runtime: Runtime) -> None:
    weather = ToolSpec(
        "get_weather",
        "Weather in a city.",
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    out = chat(
        runtime,
        [ChatMessage("user", "What's the weather in Paris?")],
        options=GenerationOptions(max_new_tokens=40),
        tools=[weather],
        tool_choice="any",
    )
    assert out.text == ""
    assert [c.name for c in out.tool_calls] == ["get_weather"]
    assert isinstance(out.tool_calls[0].arguments["city"], str)
    parsed = parse_tool_calls(out.result.text, [weather])
    assert parsed.tool_calls[0].arguments == out.tool_calls[0].arguments


def test_json_schema_output_parses(runtime: Runtime) -> None:
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string", "maxLength": 20}},
        "required": ["answer"],
    }
    out = chat(
        runtime, QUESTION, options=GenerationOptions(max_new_tokens=30), response_schema=schema
    )
    assert isinstance(json.loads(out.text)["answer"], str)
    assert tool_call_schema  # same module as the tool grammar


def test_bad_options_and_adapters_are_refused(runtime: Runtime) -> None:
    with pytest.raises(InvalidInputError):
        GenerationOptions(max_new_tokens=0)
    with pytest.raises(InvalidInputError):
        GenerationOptions(temperature=-1)
    # Which error depends on whether an earlier test in this process attached an adapter
    # manager to the shared model: "no adapters here" or "no adapter by that name".
    with pytest.raises((AdapterUnavailableError, AdapterNotFoundError), match="adapter"):
        runtime.generate(
            runtime.prompt(QUESTION), GenerationOptions(max_new_tokens=2), adapter="alice"
        )
    with pytest.raises(InvalidInputError):
        chat(runtime, QUESTION, tools=[ToolSpec("a")], tool_choice="b")


def test_timeout_raises(runtime: Runtime) -> None:
    with pytest.raises(TimeoutError):
        runtime.generate(
            runtime.prompt(QUESTION), GenerationOptions(max_new_tokens=50, timeout=1e-6)
        )
