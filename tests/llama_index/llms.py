"""Deterministic LlamaIndex LLMs for the adapter tests: they record every prompt they receive.

``RecordingLLM`` is a ``CustomLLM`` (chat goes through LlamaIndex's own ``messages_to_prompt``),
``ScriptedFunctionLLM`` a ``FunctionCallingLLM`` that plays a fixed list of replies, some of which
are tool calls, so a ``FunctionAgent`` runs its real tool loop.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Sequence
from typing import Any

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
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.bridge.pydantic import Field
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection


class RecordingLLM(CustomLLM):
    """Answers every prompt with ``reply`` and keeps the prompts (chat turns arrive rendered by
    LlamaIndex's default ``messages_to_prompt``)."""

    reply: str = "Noted."
    prompts: list[str] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(context_window=4096, num_output=64, model_name="recording-llm")

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        self.prompts.append(prompt)
        return CompletionResponse(text=self.reply)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        self.prompts.append(prompt)

        def gen() -> CompletionResponseGen:
            yield CompletionResponse(text=self.reply, delta=self.reply)

        return gen()


class ScriptedFunctionLLM(FunctionCallingLLM):
    """Plays ``script`` in order: a dict ``{"tool": name, "kwargs": {...}}`` is a tool call, a
    string a final answer. Every list of messages it is given is kept in ``calls``."""

    script: list[Any] = Field(default_factory=list)
    calls: list[list[ChatMessage]] = Field(default_factory=list)

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(
            context_window=4096,
            num_output=64,
            model_name="scripted-function-llm",
            is_chat_model=True,
            is_function_calling_model=True,
        )

    def _next(self, messages: Sequence[ChatMessage]) -> ChatResponse:
        self.calls.append(list(messages))
        if not self.script:
            raise AssertionError("ScriptedFunctionLLM ran out of scripted replies")
        step = self.script.pop(0)
        if isinstance(step, dict):
            block = ToolCallBlock(
                tool_call_id=f"call_{len(self.calls)}",
                tool_name=step["tool"],
                tool_kwargs=step.get("kwargs", {}),
            )
            message = ChatMessage(role=MessageRole.ASSISTANT, blocks=[block])
        else:
            message = ChatMessage(role=MessageRole.ASSISTANT, blocks=[TextBlock(text=str(step))])
        return ChatResponse(message=message)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._next(messages)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._next(messages)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        response = self._next(messages)

        def gen() -> Generator[ChatResponse, None, None]:
            yield ChatResponse(message=response.message, delta=response.message.content or "")

        return gen()

    @llm_chat_callback()
    async def astream_chat(
        self, messages: Sequence[ChatMessage], **kwargs: Any
    ) -> ChatResponseAsyncGen:
        response = self._next(messages)

        async def gen() -> AsyncGenerator[ChatResponse, None]:
            yield ChatResponse(message=response.message, delta=response.message.content or "")

        return gen()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        response = self._next([ChatMessage(role=MessageRole.USER, content=prompt)])
        return CompletionResponse(text=response.message.content or "")

    @llm_completion_callback()
    async def acomplete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponse:
        return self.complete(prompt, formatted=formatted, **kwargs)

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        text = self.complete(prompt, formatted=formatted, **kwargs).text

        def gen() -> CompletionResponseGen:
            yield CompletionResponse(text=text, delta=text)

        return gen()

    @llm_completion_callback()
    async def astream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseAsyncGen:
        text = self.complete(prompt, formatted=formatted, **kwargs).text

        async def gen() -> AsyncGenerator[CompletionResponse, None]:
            yield CompletionResponse(text=text, delta=text)

        return gen()

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        tool_required: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        return {"messages": messages, **kwargs}

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        calls = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
        if not calls and error_on_no_tool_call:
            raise ValueError("the response has no tool call")
        return [
            ToolSelection(
                tool_id=c.tool_call_id or c.tool_name,
                tool_name=c.tool_name,
                tool_kwargs=c.tool_kwargs if isinstance(c.tool_kwargs, dict) else {},
            )
            for c in calls
        ]


def prompt_text(messages: Sequence[ChatMessage]) -> str:
    """Everything a list of messages shows the model, one message a line."""
    return "\n".join(f"{m.role.value}: {m.content or ''}" for m in messages)
