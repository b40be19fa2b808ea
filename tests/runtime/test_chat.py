"""Chat rendering, tool schemas in the prompt and tool-call parsing: deterministic, no decoding."""

from __future__ import annotations

import json

import pytest

from memcube.errors import InvalidInputError
from memcube.runtime import (
    ChatMessage,
    Runtime,
    ToolCall,
    ToolSpec,
    build_prompt,
    merge_same_role,
    parse_tool_calls,
    tool_call_schema,
)

WEATHER = ToolSpec(
    "get_weather",
    "Weather in a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
NOARGS = ToolSpec("magic_function_no_args", "Returns a magic number.")


def test_consecutive_same_role_messages_are_merged() -> None:
    merged = merge_same_role(
        [
            ChatMessage("system", "a"),
            ChatMessage("system", "b"),
            ChatMessage("user", "hi"),
            ChatMessage("user", "there"),
            ChatMessage("assistant", "x", tool_calls=[ToolCall("get_weather", {"city": "P"})]),
            ChatMessage("assistant", "y"),
            ChatMessage("tool", "r1", tool_call_id="1"),
            ChatMessage("tool", "r2", tool_call_id="2"),
        ]
    )
    assert [(m.role, m.content) for m in merged] == [
        ("system", "a\n\nb"),
        ("user", "hi\n\nthere"),
        ("assistant", "x"),
        ("assistant", "y"),
        ("tool", "r1"),
        ("tool", "r2"),
    ]


def test_bad_messages_are_refused() -> None:
    with pytest.raises(InvalidInputError):
        ChatMessage("wizard", "hi")
    with pytest.raises(InvalidInputError):
        ToolSpec("bad name with spaces")


def test_prompt_ids_are_prefix_then_suffix_tokenized_separately(runtime: Runtime) -> None:
    tok = runtime.tokenizer
    segments = ["Long-term memories about the user:", "\n- likes tea", "\n- lives in Lyon"]
    prompt = build_prompt(
        tok,
        [ChatMessage("system", "Be brief."), ChatMessage("user", "Where do I live?")],
        activation_segments=segments,
        system_blocks=["Relevant: went to Paris"],
    )
    head = "<|im_start|>system\n"
    assert prompt.text.startswith(head + "".join(segments) + "\n\nRelevant: went to Paris")
    assert "Be brief." in prompt.text
    assert prompt.prefix_text == head + "".join(segments)
    expected = []
    for part in (head, *segments):
        expected += tok(part, add_special_tokens=False)["input_ids"]
    assert prompt.prefix_ids == expected
    suffix = prompt.text[len(prompt.prefix_text) :]
    assert prompt.suffix_ids == tok(suffix, add_special_tokens=False)["input_ids"]
    assert prompt.ids == prompt.prefix_ids + prompt.suffix_ids
    assert tok.decode(prompt.ids) == prompt.text
    # appending an item appends ids: the old prefix is a prefix of the new one
    longer = build_prompt(
        tok,
        [ChatMessage("user", "Where do I live?")],
        activation_segments=[*segments, "\n- has a cat"],
    )
    assert longer.prefix_ids[: len(prompt.prefix_ids)] == prompt.prefix_ids


def test_no_memory_means_no_prefix_and_the_template_default_system(runtime: Runtime) -> None:
    prompt = runtime.prompt([ChatMessage("user", "Hi")])
    assert prompt.prefix_ids == []
    assert prompt.text.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_tools_are_rendered_into_the_system_turn_and_calls_into_history(
    runtime: Runtime,
) -> None:
    prompt = runtime.prompt(
        [
            ChatMessage("user", "Weather in Paris?"),
            ChatMessage("assistant", "", tool_calls=[ToolCall("get_weather", {"city": "Paris"})]),
            ChatMessage("tool", "sunny", tool_call_id="c1", name="get_weather"),
        ],
        tools=[WEATHER],
    )
    system = prompt.text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nYou can call the following tools:")
    assert json.dumps(WEATHER.as_dict()) in system
    assert '{"name": "get_weather", "arguments": {"city": "Paris"}}' in prompt.text
    assert "Result of tool get_weather:\nsunny" in prompt.text


def test_parse_valid_calls_fenced_and_multiple() -> None:
    out = parse_tool_calls('{"name": "get_weather", "arguments": {"city": "Paris"}}', [WEATHER])
    assert [(c.name, c.arguments) for c in out.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert out.content == "" and not out.invalid_tool_calls
    fenced = parse_tool_calls(
        '```json\n[{"name": "get_weather", "arguments": {"city": "A"}},'
        ' {"name": "magic_function_no_args", "arguments": {}}]\n```',
        [WEATHER, NOARGS],
    )
    assert [c.name for c in fenced.tool_calls] == ["get_weather", "magic_function_no_args"]
    assert len({c.id for c in fenced.tool_calls}) == 2
    as_string = parse_tool_calls(
        '{"name": "get_weather", "arguments": "{\\"city\\": \\"B\\"}"}', [WEATHER]
    )
    assert as_string.tool_calls[0].arguments == {"city": "B"}


def test_parse_reports_invalid_calls_clearly() -> None:
    unknown = parse_tool_calls('{"name": "launch", "arguments": {}}', [WEATHER])
    assert not unknown.tool_calls
    assert (
        unknown.invalid_tool_calls[0]["error"] == "unknown tool 'launch'; bound tools: get_weather"
    )
    broken = parse_tool_calls('{"name": "get_weather", "arguments": {"city": ', [WEATHER])
    assert broken.invalid_tool_calls[0]["error"] == "output is not valid JSON"
    bad_args = parse_tool_calls('{"name": "get_weather", "arguments": [1]}', [WEATHER])
    assert bad_args.invalid_tool_calls[0]["error"] == "arguments must be a JSON object"
    text = parse_tool_calls("It is sunny in Paris.", [WEATHER])
    assert text.content == "It is sunny in Paris." and not text.tool_calls
    assert not text.invalid_tool_calls


def test_tool_call_schema_accepts_exactly_the_bound_calls() -> None:
    one = tool_call_schema([WEATHER])
    assert one["properties"]["name"] == {"type": "string", "enum": ["get_weather"]}
    assert one["properties"]["arguments"]["additionalProperties"] is False
    both = tool_call_schema([WEATHER, NOARGS])
    assert [o["properties"]["name"]["enum"] for o in both["anyOf"]] == [
        ["get_weather"],
        ["magic_function_no_args"],
    ]
    with pytest.raises(InvalidInputError):
        tool_call_schema([])
