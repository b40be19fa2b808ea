"""Chat rendering, tool schemas in the prompt, and tool-call parsing (framework-free).

Every wrapper converts its own messages into :class:`ChatMessage` and lets this module decide how
they become token ids: consecutive same-role turns are merged, the system turn is assembled
(activation-memory block first, then per-question memories, the caller's system text and the
tool instructions), and the chat template renders it. When an activation block is present the
prompt is split into a *prefix* (everything up to the end of the block, the part an activation
KV cache covers) and a *suffix*; both are tokenized separately and concatenated, with the prefix
itself tokenized segment by segment, so appending memories only appends token ids.

Example:
    >>> from memcube.runtime.chat import ChatMessage, merge_same_role
    >>> merged = merge_same_role([ChatMessage("user", "hi"), ChatMessage("user", "there")])
    >>> [(m.role, m.content) for m in merged]
    [('user', 'hi\\n\\nthere')]
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from memcube.errors import InvalidInputError

__all__ = [
    "ChatMessage",
    "ParsedOutput",
    "Prompt",
    "ToolCall",
    "ToolSpec",
    "build_prompt",
    "merge_same_role",
    "parse_tool_calls",
    "render_tool_instructions",
    "tool_call_schema",
]

ROLES = ("system", "user", "assistant", "tool")
_JOIN = "\n\n"


@dataclass
class ToolCall:
    """One call of a tool by the model."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:16]}")


@dataclass
class ChatMessage:
    """A chat turn in the runtime's own, framework-free shape."""

    role: str
    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_call_id: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise InvalidInputError(f"unknown chat role {self.role!r}; expected one of {ROLES}")
        if not isinstance(self.content, str):
            raise InvalidInputError("chat message content must be text")


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call: name, description and a JSON schema of its arguments."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})

    def __post_init__(self) -> None:
        if not self.name or not re.fullmatch(r"[A-Za-z0-9_.\-]{1,128}", self.name):
            raise InvalidInputError(f"invalid tool name {self.name!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "parameters": self.parameters}


@dataclass
class Prompt:
    """Token ids of a rendered prompt: ``prefix_ids`` (covered by an activation cache) + suffix."""

    prefix_ids: list[int]
    suffix_ids: list[int]
    text: str
    prefix_text: str = ""
    chunk_ids: list[list[int]] = field(default_factory=list)
    """Token ids of each chunk segment, between the prefix and the suffix (blend mode)."""

    @property
    def ids(self) -> list[int]:
        return self.prefix_ids + [i for chunk in self.chunk_ids for i in chunk] + self.suffix_ids

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class ParsedOutput:
    """What the model produced: plain text, valid tool calls, or calls that failed to parse."""

    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    invalid_tool_calls: list[dict[str, Any]] = field(default_factory=list)


def merge_same_role(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """Merge consecutive turns of the same role (tool results are never merged)."""
    out: list[ChatMessage] = []
    for m in messages:
        prev = out[-1] if out else None
        if (
            prev is not None
            and prev.role == m.role
            and (
                m.role in ("system", "user")
                or (m.role == "assistant" and not prev.tool_calls and not m.tool_calls)
            )
        ):
            prev.content = _JOIN.join(p for p in (prev.content, m.content) if p)
            continue
        out.append(ChatMessage(m.role, m.content, list(m.tool_calls), m.tool_call_id, m.name))
    return out


def render_tool_instructions(tools: Sequence[ToolSpec], *, required: bool) -> str:
    """Tool schemas as text for the system turn (for templates without native tool support)."""
    lines = ["You can call the following tools:"]
    lines += [json.dumps(t.as_dict(), ensure_ascii=False) for t in tools]
    call = '{"name": "<tool name>", "arguments": {<arguments>}}'
    if required:
        lines.append(f"Call exactly one tool now. Reply with only a JSON object: {call}")
    else:
        lines.append(
            f"To call a tool, reply with only a JSON object: {call}. "
            "Otherwise answer the user in plain text."
        )
    return "\n".join(lines)


def tool_call_schema(tools: Sequence[ToolSpec]) -> dict[str, Any]:
    """JSON schema that exactly the valid calls of ``tools`` satisfy (for constrained decoding)."""
    if not tools:
        raise InvalidInputError("tool_call_schema needs at least one tool")
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"type": "string", "enum": [t.name]},
                "arguments": _closed(t.parameters),
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    schema = dict(schema) if schema else {}
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    if schema.get("type") == "object" and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    return schema


def _messages_for_template(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    rendered: list[dict[str, str]] = []
    for m in messages:
        if m.role == "assistant" and m.tool_calls:
            calls = "\n".join(
                json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False)
                for c in m.tool_calls
            )
            content = _JOIN.join(p for p in (m.content, calls) if p)
            rendered.append({"role": "assistant", "content": content})
        elif m.role == "tool":
            label = f"Result of tool {m.name}" if m.name else "Tool result"
            rendered.append({"role": "user", "content": f"{label}:\n{m.content}"})
        else:
            rendered.append({"role": m.role, "content": m.content})
    # tool results become user turns: merge again so the template sees alternating roles
    merged: list[dict[str, str]] = []
    for r in rendered:
        if merged and merged[-1]["role"] == r["role"] and r["role"] in ("user", "system"):
            merged[-1]["content"] = _JOIN.join(
                p for p in (merged[-1]["content"], r["content"]) if p
            )
        else:
            merged.append(dict(r))
    return merged


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def build_prompt(
    tokenizer: Any,
    messages: Sequence[ChatMessage],
    *,
    activation_segments: Sequence[str] = (),
    system_blocks: Sequence[str] = (),
    tools: Sequence[ToolSpec] = (),
    tool_required: bool = False,
    chunk_segments: Sequence[str] = (),
) -> Prompt:
    """Render ``messages`` with the chat template into a :class:`Prompt`.

    ``activation_segments`` concatenate to the activation-memory block, which opens the system
    turn; ``system_blocks`` (per-question memories) follow it, then the callers' own system text,
    then tool instructions. The prefix (template head + activation block) is tokenized segment by
    segment and the rest separately, so the ids are identical whether or not a cache is used.
    ``chunk_segments`` (blend mode) concatenate to a block placed right after the activation
    block, before ``system_blocks``; each is tokenized on its own into :attr:`Prompt.chunk_ids`
    (so a segment's ids are the same in every prompt, and its KV chunk can be reused), and the
    prefix is then at least the template head.
    """
    if not messages:
        raise InvalidInputError("at least one chat message is required")
    merged = merge_same_role(messages)
    block = "".join(activation_segments)
    chunked = "".join(chunk_segments)
    caller_system = [m.content for m in merged if m.role == "system" and m.content]
    parts = [block] if block else []
    parts += [chunked] if chunked else []
    parts += [b for b in system_blocks if b]
    parts += caller_system
    if tools:
        parts.append(render_tool_instructions(tools, required=tool_required))
    rest = [m for m in merged if m.role != "system"]
    if not rest:
        raise InvalidInputError("the conversation needs at least one non-system message")
    conversation = _messages_for_template(rest)
    if parts:
        conversation = [{"role": "system", "content": _JOIN.join(parts)}, *conversation]
    text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    if not block and not chunked:
        return Prompt(prefix_ids=[], suffix_ids=_encode(tokenizer, text), text=text)
    at = text.find(block or chunked)
    if at < 0:
        raise InvalidInputError("the chat template did not render the memory block verbatim")
    head, rest = text[:at], text[at + len(block) :]
    prefix_ids: list[int] = []
    for segment in (head, *activation_segments):
        prefix_ids += _encode(tokenizer, segment)
    chunk_ids: list[list[int]] = []
    if chunked:
        lead = _JOIN if block else ""
        if not rest.startswith(lead + chunked):
            raise InvalidInputError("the chat template did not render the memory chunks verbatim")
        rest = rest[len(lead + chunked) :]
        pieces = list(chunk_segments)
        pieces[0] = lead + pieces[0]
        chunk_ids = [_encode(tokenizer, piece) for piece in pieces if piece]
    suffix_ids = _encode(tokenizer, rest)
    if not suffix_ids:  # a cache must never cover the whole input
        raise InvalidInputError("the prompt has no tokens after the memory block")
    return Prompt(prefix_ids, suffix_ids, text, prefix_text=head + block, chunk_ids=chunk_ids)


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


def _json_objects(text: str) -> list[Any]:
    """Top-level JSON values found in ``text`` (objects/arrays), in order."""
    decoder = json.JSONDecoder()
    found, i = [], 0
    while i < len(text):
        if text[i] in "{[":
            try:
                value, end = decoder.raw_decode(text, i)
            except json.JSONDecodeError:
                i += 1
                continue
            found.append(value)
            i = end
        else:
            i += 1
    return found


def parse_tool_calls(text: str, tools: Sequence[ToolSpec]) -> ParsedOutput:
    """Read tool calls (``{"name": ..., "arguments": {...}}``) from model output.

    Text that does not try to call a tool is returned as content. Text that tries (it starts
    with ``{``/``[`` or a fenced JSON block) but does not name a bound tool with object arguments
    is reported in ``invalid_tool_calls`` with the reason.

    Example:
        >>> out = parse_tool_calls('{"name": "add", "arguments": {"a": 1}}', [ToolSpec("add")])
        >>> out.tool_calls[0].name, out.tool_calls[0].arguments
        ('add', {'a': 1})
        >>> parse_tool_calls('{"name": "nope", "arguments": {}}', [ToolSpec("add")]).invalid_tool_calls[0]["error"]
        "unknown tool 'nope'; bound tools: add"
    """
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    body = fenced.group(1) if fenced else stripped
    if not tools or not body or body[0] not in "{[":
        return ParsedOutput(content=text)
    names = {t.name for t in tools}
    values = _json_objects(body)
    candidates: list[Any] = []
    for v in values:
        candidates.extend(v if isinstance(v, list) else [v])
    if not candidates:
        return ParsedOutput(
            content="",
            invalid_tool_calls=[
                {
                    "name": None,
                    "args": body,
                    "id": None,
                    "error": "output is not valid JSON",
                    "type": "invalid_tool_call",
                }
            ],
        )
    result = ParsedOutput(content="")
    for c in candidates:
        raw = json.dumps(c, ensure_ascii=False) if not isinstance(c, str) else c
        err = None
        if not isinstance(c, dict):
            err = "a tool call must be a JSON object"
        else:
            name = c.get("name")
            args = c.get("arguments", c.get("parameters", {}))
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    err = "arguments are not valid JSON"
            if err is None and name not in names:
                err = f"unknown tool {name!r}; bound tools: {', '.join(sorted(names))}"
            elif err is None and isinstance(args, dict):
                result.tool_calls.append(ToolCall(name=str(name), arguments=dict(args)))
                continue
            elif err is None:
                err = "arguments must be a JSON object"
        result.invalid_tool_calls.append(
            {
                "name": c.get("name") if isinstance(c, dict) else None,
                "args": raw,
                "id": None,
                "error": err,
                "type": "invalid_tool_call",
            }
        )
    return result
