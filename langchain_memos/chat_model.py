"""``ChatMemOS``: a LangChain chat model over memcube's local runtime, with activation memory.

The model runs locally (the bundled SmolLM2-135M-Instruct by default, or any local Hugging Face
causal LM). With a ``cube`` and ``user_id``, the user's stable memories open the system prompt,
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

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ToolMessage,
)
from langchain_core.messages import (
    ChatMessage as LCChatMessage,
)
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

from memcube.errors import InvalidInputError
from memcube.runtime import DEFAULT_MODEL_NAME, ChatMessage, GenerationOptions, Runtime, ToolSpec
from memcube.runtime.session import (
    ChatDelta,
    ChatOutput,
    MemoryOptions,
    astream_chat,
    stream_chat,
)

__all__ = ["ChatMemOS"]

_ROLE = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool",
         "function": "tool", "developer": "system"}


def _to_runtime_messages(messages: Sequence[BaseMessage]) -> list[ChatMessage]:
    names_by_call: dict[str, str] = {}
    out: list[ChatMessage] = []
    for m in messages:
        role = m.role if isinstance(m, LCChatMessage) else m.type
        role = _ROLE.get(role, role)
        if role == "assistant" and isinstance(m, AIMessage):
            from memcube.runtime import ToolCall

            calls = [ToolCall(name=c["name"], arguments=dict(c.get("args") or {}),
                              id=c.get("id") or "") for c in m.tool_calls]
            for c in calls:
                names_by_call[c.id] = c.name
            out.append(ChatMessage("assistant", m.text, tool_calls=calls))
        elif role == "tool":
            call_id = getattr(m, "tool_call_id", None)
            name = getattr(m, "name", None) or names_by_call.get(call_id or "")
            content = m.text
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
        specs.append(ToolSpec(fn["name"], fn.get("description", "") or "",
                              fn.get("parameters") or {"type": "object", "properties": {}}))
    return specs


class ChatMemOS(BaseChatModel):
    """A local chat model with MemOS memory: plaintext recall plus KV-cache activation memory.

    Args:
        model: ``"SmolLM2-135M-Instruct"`` (the bundled default) or a local model folder.
        temperature: 0 for greedy decoding.
        max_tokens: most new tokens per call.
        stop: stop sequences.
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

    model: str = Field(default=DEFAULT_MODEL_NAME, alias="model_name")
    temperature: float = 0.0
    max_tokens: int | None = 256
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] | None = Field(default=None, alias="stop_sequences")
    timeout: float | None = None
    max_retries: int = 0
    streaming: bool = False
    cube: Any = None
    user_id: str | None = None
    kv_memory: bool = True
    memory_budget: int = 512
    activation_budget: int = 1024
    adapter: str | None = None

    _rt: Runtime | None = PrivateAttr(default=None)

    # ------------------------------------------------------------------ plumbing
    @property
    def _llm_type(self) -> str:
        return "memos-local"

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "temperature": self.temperature,
                "max_tokens": self.max_tokens, "kv_memory": self.kv_memory}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "memos"
        override = kwargs.get("model")
        params["ls_model_name"] = override if isinstance(override, str) else self.model
        return params

    @property
    def runtime(self) -> Runtime:
        """The shared :class:`memcube.runtime.Runtime` of this model."""
        if self._rt is None:
            self._rt = Runtime.shared(None if self.model == DEFAULT_MODEL_NAME else self.model)
        return self._rt

    def _runtime_for(self, model: str | None) -> Runtime:
        if model is None or model == self.model:
            return self.runtime
        return Runtime.shared(None if model == DEFAULT_MODEL_NAME else model)

    def _call_args(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        stops = list(self.stop or []) + list(stop or [])
        max_tokens = kwargs.pop("max_tokens", None) or self.max_tokens or 256
        options = GenerationOptions(
            max_new_tokens=int(max_tokens),
            temperature=float(kwargs.pop("temperature", self.temperature)),
            top_p=float(kwargs.pop("top_p", self.top_p)),
            seed=kwargs.pop("seed", self.seed),
            stop=stops,
            timeout=kwargs.pop("timeout", self.timeout),
        )
        memory = None
        if self.cube is not None:
            if not self.user_id:
                raise InvalidInputError("ChatMemOS(cube=...) needs user_id: whose memories?")
            memory = MemoryOptions(
                cube=self.cube,
                user_id=self.user_id,
                kv_memory=self.kv_memory,
                activation_budget=self.activation_budget,
                working_budget=self.memory_budget,
            )
        response_format = kwargs.pop("response_format", None)
        return {
            "runtime": self._runtime_for(kwargs.pop("model", None)),
            "options": options,
            "tools": _tool_specs(kwargs.pop("tools", None)),
            "tool_choice": kwargs.pop("tool_choice", None),
            "response_schema": response_format,
            "memory": memory,
            "adapter": kwargs.pop("adapter", self.adapter),
        }

    def _message(self, out: ChatOutput) -> dict[str, Any]:
        r = out.result
        usage = {
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
        }
        calls = [tool_call(name=c.name, args=c.arguments, id=c.id) for c in out.tool_calls]
        bad = [invalid_tool_call(name=b.get("name"), args=b.get("args"), id=b.get("id"),
                                 error=b.get("error")) for b in out.invalid_tool_calls]
        return {"usage": usage, "meta": meta, "calls": calls, "bad": bad}

    # ------------------------------------------------------------------ generation
    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            chunks = list(self._stream(messages, stop=stop, run_manager=run_manager, **kwargs))
            merged = chunks[0]
            for c in chunks[1:]:
                merged += c
            msg = merged.message
            return ChatResult(generations=[ChatGeneration(
                message=AIMessage(content=msg.content, tool_calls=msg.tool_calls,
                                  invalid_tool_calls=msg.invalid_tool_calls,
                                  usage_metadata=msg.usage_metadata,
                                  response_metadata=msg.response_metadata, id=msg.id))])
        args = self._call_args(stop, kwargs)
        out = None
        for delta in stream_chat(messages=_to_runtime_messages(messages), **args):
            if delta.output is not None:
                out = delta.output
        assert out is not None
        parts = self._message(out)
        message = AIMessage(
            content=out.text,
            tool_calls=parts["calls"],
            invalid_tool_calls=parts["bad"],
            usage_metadata=parts["usage"],
            response_metadata=parts["meta"],
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _chunk(self, delta: ChatDelta) -> ChatGenerationChunk:
        if delta.output is None:
            return ChatGenerationChunk(message=AIMessageChunk(content=delta.text))
        parts = self._message(delta.output)
        chunks = [
            tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
            for i, c in enumerate(parts["calls"])
        ]
        message = AIMessageChunk(
            content=delta.text,
            tool_call_chunks=chunks,
            usage_metadata=parts["usage"],
            response_metadata=parts["meta"],
            chunk_position="last",
        )
        if parts["bad"]:
            message.invalid_tool_calls = parts["bad"]
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
        import asyncio

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

        json_schema = convert_to_json_schema(schema) if method == "json_schema" else {
            "type": "object"}
        llm = self.bind(
            response_format=json_schema,
            ls_structured_output_format={"kwargs": {"method": method},
                                         "schema": convert_to_json_schema(schema)},
        )
        parser: Runnable[Any, Any]
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            parser = PydanticOutputParser(pydantic_object=schema)
        else:
            parser = JsonOutputParser()
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=lambda x: parser.invoke(x["raw"]),
                                            parsing_error=lambda _: None)
        return RunnableMap(raw=llm) | parsed
