"""One chat call end to end: memory selection, prompt, activation cache, decoding, tool parsing.

Both LLM wrappers (``langchain_memos.ChatMemOS`` and ``llama_index_memos.MemOSLLM``) translate
their messages into :class:`~memcube.runtime.chat.ChatMessage` and call :func:`chat` /
:func:`stream_chat` / :func:`achat` / :func:`astream_chat`; everything else happens here.

Example:
    >>> from memcube.runtime import Runtime, GenerationOptions, ChatMessage
    >>> from memcube.runtime.session import chat
    >>> out = chat(Runtime.shared(), [ChatMessage("user", "Hi!")],
    ...            options=GenerationOptions(max_new_tokens=4))
    >>> out.result.completion_tokens <= 4
    True
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from memcube.errors import InvalidInputError
from memcube.ports import PendingPayloads
from memcube.runtime.chat import (
    ChatMessage,
    Prompt,
    ToolCall,
    ToolSpec,
    parse_tool_calls,
    tool_call_schema,
)
from memcube.runtime.engine import GenerationOptions, GenerationResult, Runtime

__all__ = [
    "KV_MODES",
    "ChatDelta",
    "ChatOutput",
    "MemoryOptions",
    "achat",
    "astream_chat",
    "chat",
    "stream_chat",
]


#: The ways memories can reach the model (``kv_memory=`` values besides True and False).
KV_MODES = ("text", "exact", "blend")


@dataclass
class MemoryOptions:
    """Where memories come from and how they are served.

    Attributes:
        cube: the :class:`memcube.MemCube`.
        user_id: whose memories.
        kv_memory: how memories reach the model: ``True`` (or ``"exact"``) serves the stable
            activation block from its KV cache, token-for-token the same as text; ``False`` (or
            ``"text"``) reads everything as text; ``"blend"`` also serves the per-question
            memories from their own KV chunks (approximate, see :mod:`memcube.activation.blend`).
        activation_budget: token budget of the activation block (the user's stable memories).
        working_budget: token budget of the per-question working memories.
    """

    cube: Any
    user_id: str
    kv_memory: bool | str = True
    activation_budget: int = 1024
    working_budget: int = 512

    def __post_init__(self) -> None:
        if not self.user_id or not isinstance(self.user_id, str):
            raise InvalidInputError("a cube needs a user_id: whose memories should be used?")
        if self.kv_memory not in (True, False, *KV_MODES):
            raise InvalidInputError(
                f"kv_memory takes True, False or one of {', '.join(map(repr, KV_MODES))}, "
                f"got {self.kv_memory!r}."
            )
        if self.activation_budget < 0 or self.working_budget < 0:
            raise InvalidInputError("memory token budgets must be >= 0")

    @property
    def mode(self) -> str:
        """``"text"``, ``"exact"`` or ``"blend"``."""
        if isinstance(self.kv_memory, str):
            return self.kv_memory
        return "exact" if self.kv_memory else "text"


@dataclass
class ChatOutput:
    """A finished chat call."""

    text: str
    result: GenerationResult
    tool_calls: list[ToolCall] = field(default_factory=list)
    invalid_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    memory_item_ids: list[str] = field(default_factory=list)
    working_item_ids: list[str] = field(default_factory=list)
    memory_mode: str | None = None

    @property
    def kv_memory(self) -> dict[str, Any] | None:
        """How the memories reached the model: ``mode`` (``"text"``: read as text, ``"exact"``:
        the stable block from its KV cache, ``"blend"``: the per-question memories from their
        KV chunks too), ``cached_tokens`` (prompt tokens served from KV, not computed) and
        ``computed_tokens``; ``None`` for a call without a cube."""
        if self.memory_mode is None:
            return None
        r = self.result
        return {
            "mode": self.memory_mode,
            "cached_tokens": r.cached_tokens,
            "computed_tokens": r.prompt_tokens - r.cached_tokens,
        }


@dataclass
class ChatDelta:
    """A streamed piece of text; the final delta carries ``output``."""

    text: str
    output: ChatOutput | None = None


def _tool_mode(tools: Sequence[ToolSpec], tool_choice: Any) -> tuple[list[ToolSpec], bool]:
    """Tools to render and whether a call is forced (constrained decoding)."""
    tools = list(tools)
    if not tools or tool_choice in (None, "auto", False):
        return tools, False
    if tool_choice == "none":
        return [], False
    if tool_choice in ("any", "required", True):
        return tools, True
    if isinstance(tool_choice, dict):  # {"type": "function", "function": {"name": ...}}
        tool_choice = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
    if isinstance(tool_choice, str):
        chosen = [t for t in tools if t.name == tool_choice]
        if not chosen:
            raise InvalidInputError(
                f"tool_choice {tool_choice!r} is not a bound tool ({[t.name for t in tools]})"
            )
        return chosen, True
    raise InvalidInputError(f"unsupported tool_choice {tool_choice!r}")


def _adapter_key(runtime: Runtime, memory: MemoryOptions | None, adapter: str | None) -> str | None:
    """The resident key of the LoRA adapter a call uses: the call's (or wrapper's) adapter, else
    the user's default adapter in the cube (``cube.parametric``); ``None`` is the base model.
    Without a cube, ``adapter`` must already be a key loaded on the runtime's model."""
    if memory is None:
        return adapter
    if isinstance(memory.cube, PendingPayloads):  # adapters imported for first use: train now
        memory.cube.rematerialize_pending(runtime, user_id=memory.user_id, kind="adapters")
    parametric = memory.cube.parametric
    name = parametric.resolve(adapter, user_id=memory.user_id)
    return None if name is None else parametric.prepare(name, runtime=runtime)


def _last_user_text(messages: Sequence[ChatMessage]) -> str:
    for m in reversed(messages):
        if m.role == "user" and m.content.strip():
            return m.content
    return ""


def stream_chat(
    runtime: Runtime,
    messages: Sequence[ChatMessage],
    *,
    options: GenerationOptions | None = None,
    tools: Sequence[ToolSpec] = (),
    tool_choice: Any = None,
    response_schema: dict[str, Any] | None = None,
    memory: MemoryOptions | None = None,
    adapter: str | None = None,
) -> Iterator[ChatDelta]:
    """Run one chat call, yielding text as it is decoded.

    With ``memory``, the user's activation block opens the system turn (from a KV cache when
    ``memory.kv_memory``) and the question's working memories follow as text. With tools the
    output is buffered until it is known whether it is a call; a forced call (``tool_choice``
    ``"any"``/``"required"``/a tool name) and ``response_schema`` use constrained decoding.
    """
    opts = replace(options) if options is not None else GenerationOptions()
    rendered_tools, forced = _tool_mode(tools, tool_choice)
    schema_block = ""
    if response_schema is not None:
        opts.json_schema = response_schema
        schema_block = (
            "Reply with only a JSON object that follows this JSON schema:\n"
            + json.dumps(response_schema, ensure_ascii=False)
        )
    elif forced:
        opts.json_schema = tool_call_schema(rendered_tools)
    segments: list[str] = []
    chunk_segments: list[str] = []
    working_items: list[Any] = []
    blocks: list[str] = []
    item_ids: list[str] = []
    activation_items: list[Any] = []
    working_ids: list[str] = []
    mem = None
    if memory is not None:
        from memcube.activation.memory import activation_memory

        if memory.mode == "blend":
            from memcube.activation.blend import check_blend_support

            # refused before any memory is read or chunk computed, whether or not this
            # question would have had chunks to blend
            check_blend_support(runtime)
        mem = activation_memory(memory.cube, runtime)
        ctx = mem.context(
            _last_user_text(messages),
            user_id=memory.user_id,
            activation_budget=memory.activation_budget,
            working_budget=memory.working_budget,
        )
        segments, item_ids = ctx.segments, ctx.item_ids
        activation_items = ctx.activation_items
        working_items = ctx.working_items
        working_ids = [it.id for it in working_items]
        if memory.mode == "blend" and ctx.working_segments:
            chunk_segments = ctx.working_segments
        elif ctx.working_block:
            blocks.append(ctx.working_block)
    if schema_block:
        blocks.append(schema_block)
    adapter = _adapter_key(runtime, memory, adapter)
    if adapter is not None and chunk_segments:  # chunks hold the base model's KV: text instead
        blocks.insert(0, "".join(chunk_segments))
        chunk_segments = []
    prompt = runtime.prompt(
        messages,
        activation_segments=segments,
        system_blocks=blocks,
        tools=rendered_tools,
        tool_required=forced,
        chunk_segments=chunk_segments,
    )
    prefix_cache = None
    mode = None if memory is None else "text"
    recomputed = 0
    if mem is not None and memory is not None and memory.mode != "text" and prompt.prefix_ids:
        prefix_cache = mem.prefix_cache(
            prompt.prefix_ids,
            user_id=memory.user_id,
            adapter=adapter,
            items=activation_items,
            token_budget=memory.activation_budget,
        )
        mode = "exact"
        if prompt.chunk_ids:
            blended = mem.blend(prompt, prefix_cache, [None, *working_items])
            prefix_cache, recomputed, mode = blended.cache, blended.computed_tokens, "blend"
            prompt = Prompt(
                prefix_ids=prompt.ids[: blended.total_tokens],
                suffix_ids=prompt.suffix_ids,
                text=prompt.text,
                prefix_text=prompt.prefix_text,
            )
    buffer = bool(rendered_tools)
    for chunk in runtime.stream(prompt, opts, prefix_cache=prefix_cache, adapter=adapter):
        if chunk.result is None:
            if not buffer and chunk.text:
                yield ChatDelta(chunk.text)
            continue
        # blend: recomputed chunk tokens were computed, not read from the cache
        result = replace(chunk.result, cached_tokens=chunk.result.cached_tokens - recomputed)
        out = ChatOutput(
            text=result.text,
            result=result,
            memory_item_ids=item_ids,
            working_item_ids=working_ids,
            memory_mode=mode,
        )
        if rendered_tools and response_schema is None:
            parsed = parse_tool_calls(result.text, rendered_tools)
            out.text = parsed.content
            out.tool_calls, out.invalid_tool_calls = parsed.tool_calls, parsed.invalid_tool_calls
        yield ChatDelta(out.text if buffer else chunk.text, output=out)


def chat(runtime: Runtime, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatOutput:
    """Run one chat call to the end (arguments as :func:`stream_chat`)."""
    final = None
    for delta in stream_chat(runtime, messages, **kwargs):
        if delta.output is not None:
            final = delta.output
    if final is None:  # stream_chat() always ends with an output; never reached
        raise RuntimeError("the chat call ended without an output")
    return final


async def achat(runtime: Runtime, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatOutput:
    """Async :func:`chat` (decoding runs in a worker thread)."""
    return await asyncio.to_thread(chat, runtime, messages, **kwargs)


async def astream_chat(
    runtime: Runtime, messages: Sequence[ChatMessage], **kwargs: Any
) -> AsyncIterator[ChatDelta]:
    """Async :func:`stream_chat`: decoding runs in a worker thread, deltas arrive in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancelled = threading.Event()

    def work() -> None:
        try:
            for delta in stream_chat(runtime, messages, **kwargs):
                if cancelled.is_set():
                    break
                loop.call_soon_threadsafe(queue.put_nowait, ("delta", delta))
        except BaseException as exc:  # handed to the consumer
            loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
        else:
            loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

    thread = threading.Thread(target=work, name="memcube-generate", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "delta":
                yield value
            elif kind == "error":
                raise value
            else:
                break
    finally:
        cancelled.set()
