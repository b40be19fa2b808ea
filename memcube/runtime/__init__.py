"""The local transformers runtime shared by every LLM wrapper (LangChain and LlamaIndex).

Model loading (the bundled SmolLM2-135M-Instruct by default, or the bundled Gemma-3-270M as
``"gemma-3-270m"``), model fingerprints, chat rendering,
decoding (greedy, sampled, streaming, stop sequences), tool calls and structured output, and reuse
of activation-memory KV caches.

Example:
    >>> from memcube.runtime import load_model, fingerprint
    >>> model, tokenizer = load_model()
    >>> fingerprint(model, tokenizer).model_id
    'SmolLM2-135M-Instruct'
"""

from memcube.runtime.chat import (
    ChatMessage,
    ParsedOutput,
    Prompt,
    ToolCall,
    ToolSpec,
    build_prompt,
    merge_same_role,
    parse_tool_calls,
    tool_call_schema,
)
from memcube.runtime.engine import (
    AdapterUnavailableError,
    GenerationChunk,
    GenerationOptions,
    GenerationResult,
    Runtime,
)
from memcube.runtime.model import (
    BUNDLED_MODELS,
    DEFAULT_MODEL_NAME,
    GEMMA_MODEL_NAME,
    ModelFingerprint,
    default_model_path,
    fingerprint,
    load_model,
    model_cache_dir,
    model_key,
)

__all__ = [
    "BUNDLED_MODELS",
    "DEFAULT_MODEL_NAME",
    "GEMMA_MODEL_NAME",
    "AdapterUnavailableError",
    "ChatMessage",
    "GenerationChunk",
    "GenerationOptions",
    "GenerationResult",
    "ModelFingerprint",
    "ParsedOutput",
    "Prompt",
    "Runtime",
    "ToolCall",
    "ToolSpec",
    "build_prompt",
    "default_model_path",
    "fingerprint",
    "load_model",
    "merge_same_role",
    "model_cache_dir",
    "model_key",
    "parse_tool_calls",
    "tool_call_schema",
]
