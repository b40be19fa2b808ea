"""The decoding engine: one loaded model, greedy/sampled decoding, streaming, stop sequences,
JSON-schema constrained decoding and reuse of activation (KV) caches.

Example:
    >>> from memcube.runtime import Runtime, GenerationOptions, ChatMessage
    >>> rt = Runtime.shared()                      # bundled SmolLM2-135M-Instruct
    >>> prompt = rt.prompt([ChatMessage("user", "Say hi")])
    >>> result = rt.generate(prompt, GenerationOptions(max_new_tokens=5))
    >>> result.completion_tokens <= 5
    True
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memcube.errors import InvalidInputError, MemCubeError
from memcube.runtime.caches import fork_cache
from memcube.runtime.chat import ChatMessage, Prompt, ToolSpec, build_prompt
from memcube.runtime.model import ModelFingerprint, fingerprint, load_model, model_key

__all__ = [
    "AdapterUnavailableError",
    "GenerationChunk",
    "GenerationOptions",
    "GenerationResult",
    "Runtime",
]


class AdapterUnavailableError(MemCubeError, LookupError):
    """A LoRA adapter was requested but this runtime cannot activate adapters (or that one)."""


@dataclass
class GenerationOptions:
    """How to decode. ``temperature == 0`` is greedy; ``json_schema`` constrains the output."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    stop: Sequence[str] = ()
    seed: int | None = None
    timeout: float | None = None
    json_schema: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise InvalidInputError("max_new_tokens must be a positive integer")
        if self.temperature < 0:
            raise InvalidInputError("temperature must be >= 0")
        if not 0 < self.top_p <= 1:
            raise InvalidInputError("top_p must be in (0, 1]")
        if self.timeout is not None and self.timeout <= 0:
            raise InvalidInputError("timeout must be positive")
        self.stop = tuple(s for s in (self.stop or ()) if s)


@dataclass
class GenerationChunk:
    """A streamed piece of text (``text`` may be empty on the final chunk)."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    result: GenerationResult | None = None  # set on the final chunk only


@dataclass
class GenerationResult:
    """A finished generation with usage counts and timings."""

    text: str
    token_ids: list[int]
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    finish_reason: str  # "stop" (EOS / stop sequence / grammar end) or "length"
    first_token_s: float | None
    total_s: float
    model_name: str

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


_shared: dict[str, Runtime] = {}
_shared_lock = threading.Lock()


class Runtime:
    """A local causal LM with everything the chat wrappers need; thread-safe (one call at a time).

    Args:
        model: a local model folder, a locally cached hub id, ``None`` for the bundled
            SmolLM2-135M-Instruct, or an already loaded ``PreTrainedModel`` (then pass
            ``tokenizer`` too).
        tokenizer: the tokenizer, when ``model`` is a model object.
        name: the model name reported in responses (defaults to the model folder's name).

    Example:
        >>> rt = Runtime.shared()
        >>> rt.name
        'SmolLM2-135M-Instruct'
    """

    def __init__(self, model: Any = None, tokenizer: Any = None, *, name: str | None = None):
        if model is None or isinstance(model, (str, Path)):
            self.model, self.tokenizer = load_model(model)
        else:
            if tokenizer is None:
                raise InvalidInputError("pass the tokenizer together with a model object")
            self.model, self.tokenizer = model, tokenizer
        self.model.eval()  # type: ignore[no-untyped-call]  # transformers leaves eval() unannotated
        self.fingerprint: ModelFingerprint = fingerprint(self.model, self.tokenizer)
        self.name = name or self.fingerprint.model_id
        self.lock = threading.RLock()
        self._eos = self._eos_ids()
        self._grammar_compiler: Any = None
        self._grammar_cache: dict[str, Any] = {}

    @classmethod
    def shared(cls, model: str | Path | None = None) -> Runtime:
        """One runtime per model per process (wrappers share the loaded weights and the lock).

        ``model`` as for the constructor; spellings of one model share a runtime (bundled names
        in any case, ``None`` and the default model's name, a folder and its resolved path).

        Example:
            >>> Runtime.shared("smollm2-135m-instruct") is Runtime.shared()
            True
        """
        key = model_key(model)
        with _shared_lock:
            rt = _shared.get(key)
            if rt is None:
                rt = _shared[key] = cls(model)
            return rt

    # ------------------------------------------------------------------ facts about the model
    @property
    def context_window(self) -> int:
        cfg = self.model.config
        return int(getattr(cfg, "max_position_embeddings", 0) or 2048)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (
            self.tokenizer.eos_token_id,
            getattr(self.model.generation_config, "eos_token_id", None),
        ):
            if isinstance(source, int):
                ids.add(source)
            elif isinstance(source, (list, tuple)):
                ids.update(int(i) for i in source)
        for tok in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"):
            tid = self.tokenizer.convert_tokens_to_ids(tok)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id and tid >= 0:
                ids.add(tid)
        return ids

    # ------------------------------------------------------------------ prompts
    def prompt(
        self,
        messages: Sequence[ChatMessage],
        *,
        activation_segments: Sequence[str] = (),
        system_blocks: Sequence[str] = (),
        tools: Sequence[ToolSpec] = (),
        tool_required: bool = False,
        chunk_segments: Sequence[str] = (),
    ) -> Prompt:
        """Render chat messages with this model's chat template (see :func:`build_prompt`)."""
        return build_prompt(
            self.tokenizer,
            messages,
            activation_segments=activation_segments,
            system_blocks=system_blocks,
            tools=tools,
            tool_required=tool_required,
            chunk_segments=chunk_segments,
        )

    # ------------------------------------------------------------------ adapters (issue 7 hook)
    def _activate_adapter(self, adapter: str | None) -> None:
        """Make ``adapter`` (a resident LoRA adapter key, or None for the base model) active.

        Delegates to the model's :class:`memcube.parametric.AdapterManager` once adapters were
        loaded into it (``cube.parametric.prepare(name, runtime=rt)`` returns the key)."""
        from memcube.parametric.manager import AdapterManager

        manager = AdapterManager.existing(self.model)
        if manager is not None:
            manager.activate(adapter)
            return
        if adapter is not None:
            raise AdapterUnavailableError(
                f"adapter {adapter!r} was requested but no LoRA adapter is loaded on this model; "
                "pass cube=... to the chat wrapper (adapters are stored in the cube), or load it "
                "with cube.parametric.prepare(name, runtime=rt) and pass the returned key."
            )

    # ------------------------------------------------------------------ KV caches
    def prefill(self, ids: Sequence[int], cache: Any = None, *, adapter: str | None = None) -> Any:
        """Run ``ids`` through the model and return the KV cache (extending ``cache`` in place).

        Example:
            >>> Runtime.shared().prefill([1, 2, 3]).get_seq_length()
            3
        """
        import torch
        from transformers import DynamicCache

        with self.lock:
            self._activate_adapter(adapter)
            if cache is None:
                cache = DynamicCache(config=self.model.config)
            if ids:
                with torch.no_grad():
                    self.model(
                        input_ids=torch.tensor([list(ids)], dtype=torch.long),
                        past_key_values=cache,
                        use_cache=True,
                        logits_to_keep=1,
                    )
        return cache

    # ------------------------------------------------------------------ grammar
    def _compiled_grammar(self, schema: dict[str, Any]) -> Any:
        import xgrammar as xgr

        key = json.dumps(schema, sort_keys=True)
        hit = self._grammar_cache.get(key)
        if hit is not None:
            return hit
        if self._grammar_compiler is None:
            info = xgr.TokenizerInfo.from_huggingface(
                self.tokenizer, vocab_size=self.model.config.vocab_size
            )
            self._grammar_compiler = xgr.GrammarCompiler(info)
        try:
            # compile the schema as given: property order guides the model (name before arguments)
            compiled = self._grammar_compiler.compile_json_schema(
                json.dumps(schema), any_whitespace=False
            )
        except Exception as exc:  # xgrammar raises RuntimeError / ValueError subclasses
            raise InvalidInputError(
                f"unsupported JSON schema for constrained decoding: {exc}"
            ) from exc
        if len(self._grammar_cache) > 64:
            self._grammar_cache.clear()
        self._grammar_cache[key] = compiled
        return compiled

    # ------------------------------------------------------------------ decoding
    def generate(
        self,
        prompt: Prompt,
        options: GenerationOptions | None = None,
        *,
        prefix_cache: Any = None,
        adapter: str | None = None,
    ) -> GenerationResult:
        """Generate a completion for ``prompt`` (see :meth:`stream`)."""
        final: GenerationResult | None = None
        for chunk in self.stream(prompt, options, prefix_cache=prefix_cache, adapter=adapter):
            if chunk.result is not None:
                final = chunk.result
        if final is None:  # stream() always ends with a result; never reached
            raise RuntimeError("the generation ended without a result")
        return final

    def stream(
        self,
        prompt: Prompt,
        options: GenerationOptions | None = None,
        *,
        prefix_cache: Any = None,
        adapter: str | None = None,
    ) -> Iterator[GenerationChunk]:
        """Yield text as it is decoded; the last chunk carries the :class:`GenerationResult`.

        ``prefix_cache`` is a KV cache of exactly ``prompt.prefix_ids``; it is copied, never
        modified, and only the suffix tokens are run through the model.
        """
        import torch

        opts = options or GenerationOptions()
        ids = prompt.ids
        if not ids:
            raise InvalidInputError("empty prompt")
        if len(ids) + opts.max_new_tokens > self.context_window:
            if len(ids) >= self.context_window:
                raise InvalidInputError(
                    f"the prompt has {len(ids)} tokens; {self.name} reads at most "
                    f"{self.context_window}. Lower the memory token budget or shorten the chat."
                )
        cached = 0
        if prefix_cache is not None:
            cached = int(prefix_cache.get_seq_length())
            if cached != len(prompt.prefix_ids) or cached >= len(ids):
                raise InvalidInputError(
                    f"the prefix cache covers {cached} tokens but the prompt prefix has "
                    f"{len(prompt.prefix_ids)} (of {len(ids)}); rebuild the cache."
                )
        matcher = bitmask = None
        if opts.json_schema is not None:
            import xgrammar as xgr

            matcher = xgr.GrammarMatcher(self._compiled_grammar(opts.json_schema))
            bitmask = xgr.allocate_token_bitmask(1, self.model.config.vocab_size)
        generator = None
        if opts.temperature > 0:
            generator = torch.Generator().manual_seed(
                opts.seed if opts.seed is not None else int(time.time_ns() % (2**31))
            )
        with self.lock:
            self._activate_adapter(adapter)
            yield from self._decode(ids, cached, prefix_cache, opts, matcher, bitmask, generator)

    def _decode(
        self,
        ids: list[int],
        cached: int,
        prefix_cache: Any,
        opts: GenerationOptions,
        matcher: Any,
        bitmask: Any,
        generator: Any,
    ) -> Iterator[GenerationChunk]:
        import torch
        from transformers import DynamicCache

        start = time.perf_counter()
        deadline = start + opts.timeout if opts.timeout else None
        if prefix_cache is not None:
            cache = fork_cache(prefix_cache)  # the stored cache is never touched
            feed = ids[cached:]
        else:
            cache = DynamicCache(config=self.model.config)
            feed = ids
        out_ids: list[int] = []
        generated = emitted = 0
        text = ""
        first_token_s: float | None = None
        finish = "length"
        hold = max((len(s) for s in opts.stop), default=0)
        with torch.no_grad():
            step_input = torch.tensor([feed], dtype=torch.long)
            for _ in range(opts.max_new_tokens):
                logits = (
                    self.model(
                        input_ids=step_input,
                        past_key_values=cache,
                        use_cache=True,
                        logits_to_keep=1,
                    )
                    .logits[:, -1, :]
                    .float()
                )
                token = self._pick(logits, opts, matcher, bitmask, generator)
                if first_token_s is None:
                    first_token_s = time.perf_counter() - start
                generated += 1
                if matcher is not None:
                    matcher.accept_token(token)
                if token in self._eos:
                    finish = "stop"
                    break
                out_ids.append(token)
                # a flat id list decodes to one string (the stubs also allow a batch's list)
                text = self.tokenizer.decode(out_ids, skip_special_tokens=True)  # type: ignore[assignment]
                cut = _find_stop(text, opts.stop)
                if cut is not None:
                    text = text[:cut]
                    finish = "stop"
                    break
                if matcher is not None and matcher.is_terminated():
                    finish = "stop"
                    break
                if deadline is not None and time.perf_counter() > deadline:
                    raise TimeoutError(
                        f"generation exceeded the {opts.timeout}s timeout after "
                        f"{len(out_ids)} tokens"
                    )
                safe = len(text) - _held_back(text, opts.stop, hold)
                if text.endswith("\ufffd"):  # an incomplete UTF-8 sequence: wait for more
                    safe = min(safe, len(text.rstrip("\ufffd")))
                if safe > emitted:
                    yield GenerationChunk(text=text[emitted:safe], token_ids=[token])
                    emitted = safe
                step_input = torch.tensor([[token]], dtype=torch.long)
        result = GenerationResult(
            text=text,
            token_ids=out_ids,
            prompt_tokens=len(ids),
            completion_tokens=generated,
            cached_tokens=cached,
            finish_reason=finish,
            first_token_s=first_token_s,
            total_s=time.perf_counter() - start,
            model_name=self.name,
        )
        yield GenerationChunk(text=text[emitted:], token_ids=[], result=result)

    def _pick(
        self, logits: Any, opts: GenerationOptions, matcher: Any, bitmask: Any, generator: Any
    ) -> int:
        import torch

        if matcher is not None:
            import xgrammar as xgr

            matcher.fill_next_token_bitmask(bitmask)
            xgr.apply_token_bitmask_inplace(logits, bitmask)
        if opts.temperature <= 0:
            return int(torch.argmax(logits, dim=-1).item())
        scores = logits[0] / opts.temperature
        if opts.top_k and opts.top_k > 0:
            kth = torch.topk(scores, min(opts.top_k, scores.shape[-1])).values[-1]
            scores = scores.masked_fill(scores < kth, float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        if opts.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            keep = torch.cumsum(sorted_p, dim=-1) - sorted_p < opts.top_p
            sorted_p = sorted_p * keep
            probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
            probs = probs / probs.sum()
        return int(torch.multinomial(probs, 1, generator=generator).item())


def _find_stop(text: str, stops: Sequence[str]) -> int | None:
    hits = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(hits) if hits else None


def _held_back(text: str, stops: Sequence[str], hold: int) -> int:
    """How many trailing characters might be the start of a stop sequence."""
    if not hold:
        return 0
    for n in range(min(hold, len(text)), 0, -1):
        tail = text[-n:]
        if any(s.startswith(tail) for s in stops):
            return n
    return 0
