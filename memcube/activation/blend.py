"""Blending stored per-memory KV chunks after an exact prefix cache (CacheBlend / KVLink style).

:func:`blend` composes one KV cache for ``prefix tokens + chunk_1 tokens + ... + chunk_n tokens``
from an exact cache of the prefix and each memory's standalone :class:`~memcube.activation.
chunks.Chunk`, without running the model over most of the chunk tokens:

1. **Position re-encoding.** A chunk's keys were computed at positions ``origin + t``; placed at
   ``start + t`` they are rotated by the model's own rotary embedding (its ``inv_freq`` and
   attention scaling) by the offset ``start - origin``. Rotations compose exactly, so the keys
   equal what the model would compute at the new positions *for the same hidden states*;
   values carry no position and are unchanged. Only rotary embeddings whose frequencies do not
   depend on the sequence length (``default``, ``linear``, ``llama3``), applied to every layer
   alike on the full head dimension, are supported; others are refused with
   :class:`~memcube.errors.UnsupportedRopeError`.
2. **Selective recomputation.** What re-encoding cannot fix is that a chunk never attended to
   the prefix or to the chunks before it. A share ``recompute_ratio`` of the chunk tokens is
   recomputed through every layer with full attention over the composed cache at their true
   positions. They are chosen as CacheBlend does: layer 0 is exact for every token (its keys
   and values depend on the token and position only), so one layer is run over all chunk tokens
   with full attention, and the tokens whose layer-1 keys and values deviate most from the
   stored ones are picked; the first ``recompute_first`` tokens of every chunk are always
   picked (within the budget), where the missing context hurts most.

   The recomputation is one forward pass over the selected tokens appended to the composed
   cache, with explicit ``position_ids`` and a 4D attention mask: a selected token attends to
   the composed entries before its position *except* those of selected tokens, whose fresh
   versions it sees among the appended ones instead. So at every layer each selected token sees
   exactly the cache "with the selected tokens' entries replaced by fresh ones"; afterwards the
   fresh keys and values are written to their positions and the appended copies are cut off.
   With ``recompute_ratio=1.0`` this is a full prefill of the chunk tokens after the prefix.

The prefix cache and the chunks are never modified: the composed cache has tensors of its own.
The result is approximate for ``0 < recompute_ratio < 1``; ``benchmarks/kv_blend_quality.py``
measures how close it is to a full prefill. Measured with SmolLM2-135M on 12 LoCoMo questions
(~1,950 prefix + ~990 memory tokens in 21 one-turn chunks, chunks computed with no lead-in):
at ``recompute_ratio=0.15`` teacher-forced greedy agreement 0.84 and mean KL 0.14 nats over 16
answer tokens, the first answer token the same in 5 of 12 questions, 8.0x faster to the first
token than a full prefill. That misses the 0.90 / 0.10 quality bar: keep blending opt-in.

Example:
    >>> import tempfile
    >>> from memcube.activation.chunks import ChunkStore
    >>> from memcube.runtime import Runtime
    >>> rt = Runtime.shared()
    >>> prefix = rt.tokenizer("<|im_start|>system\\nMemories:")["input_ids"]
    >>> memory = rt.tokenizer("\\n- Alice likes tea.")["input_ids"]
    >>> chunk = ChunkStore(tempfile.mkdtemp(), rt).get_or_build("m1", "v1", memory)
    >>> out = blend(rt, rt.prefill(prefix), len(prefix), [memory], [chunk], recompute_ratio=0.5)
    >>> out.cache.get_seq_length() == len(prefix) + len(memory), out.computed_tokens
    (True, 3)
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from memcube.activation.kv import tensors_to_cache
from memcube.errors import InvalidInputError, UnsupportedRopeError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from memcube.runtime.engine import Runtime

__all__ = ["BlendResult", "ChunkKV", "blend", "check_blend_support", "rerotate_keys"]

#: model types whose attention applies the rotary embedding Llama's way (rotate-half, whole
#: head dimension, one rotary module for every layer)
SUPPORTED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
#: rotary types whose frequencies are fixed (do not depend on the sequence length)
SUPPORTED_ROPE_TYPES = frozenset({"default", "linear", "llama3"})


class ChunkKV(Protocol):
    """What :func:`blend` needs of a chunk (a :class:`~memcube.activation.chunks.Chunk`)."""

    @property
    def token_ids(self) -> Sequence[int]: ...

    @property
    def keys(self) -> Sequence[Any]: ...

    @property
    def values(self) -> Sequence[Any]: ...

    @property
    def position_origin(self) -> int: ...


@dataclass
class BlendResult:
    """A composed cache of ``prefix_len + sum(len(chunk))`` tokens, owned by the caller.

    ``cached_tokens`` were served from KV (prefix and chunk tokens not recomputed),
    ``computed_tokens`` were run through every layer, ``probed_tokens`` through the first layer
    only (to choose what to recompute). ``recomputed_positions`` are absolute positions.
    """

    cache: Any
    cached_tokens: int
    computed_tokens: int
    probed_tokens: int
    recomputed_positions: list[int] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.cached_tokens + self.computed_tokens


class _Captured(Exception):
    """Stops a decoder layer once its fresh keys and values were captured."""


class _Layer0View:
    """A stand-in cache for one decoder layer: serves the composed keys/values (or captures the
    fresh ones and stops the layer)."""

    def __init__(self, keys: Any = None, values: Any = None) -> None:
        self.keys, self.values = keys, values
        self.fresh: tuple[Any, Any] | None = None

    def update(self, key_states: Any, value_states: Any, layer_idx: int, *a: Any, **k: Any) -> Any:
        if self.keys is None:
            self.fresh = (key_states, value_states)
            raise _Captured
        return self.keys, self.values


def check_blend_support(runtime: Runtime) -> Any:
    """The model's rotary embedding module, or :class:`UnsupportedRopeError` if its positions
    cannot be re-encoded exactly."""
    model = runtime.model
    config = model.config
    model_type = str(getattr(config, "model_type", ""))
    instead = "use kv_memory=True (exact prefix caching) or kv_memory='text' for it"
    layer_types = getattr(config, "layer_types", None) or []
    if any(t != "full_attention" for t in layer_types) or getattr(
        config, "use_sliding_window", False
    ):
        # hybrid models (Gemma-3: sliding-window layers between full ones) keep only a window
        # of keys in most layers, so a chunk's keys cannot be placed after an arbitrary prefix
        raise UnsupportedRopeError(
            f"KV blending needs full attention in every layer, but {runtime.name} "
            f"({model_type}) mixes sliding-window and full attention layers; {instead}"
        )
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedRopeError(
            f"KV blending supports {sorted(SUPPORTED_MODEL_TYPES)} models, not {model_type!r}; "
            f"{instead}"
        )
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    rope_type = "default"
    if isinstance(params, dict):
        if any(isinstance(v, dict) for v in params.values()):
            raise UnsupportedRopeError("KV blending does not support a rotary embedding per layer")
        rope_type = str(params.get("rope_type", params.get("type", "default")))
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise UnsupportedRopeError(
            f"KV blending cannot re-encode {rope_type!r} rotary positions exactly "
            f"(supported: {sorted(SUPPORTED_ROPE_TYPES)})"
        )
    partial = getattr(config, "partial_rotary_factor", None)
    if partial not in (None, 1, 1.0):
        raise UnsupportedRopeError("KV blending does not support a partial rotary embedding")
    base = getattr(model, "base_model", None)
    rotary = getattr(base, "rotary_emb", None)
    if rotary is None or getattr(rotary, "inv_freq", None) is None:
        raise UnsupportedRopeError("the model has no rotary embedding module KV blending can use")
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // (
        config.num_attention_heads
    )
    if 2 * int(rotary.inv_freq.shape[-1]) != int(head_dim):
        raise UnsupportedRopeError("the rotary embedding does not cover the whole head dimension")
    return rotary


def _attention_mask(allowed: Any, model: Any, dtype: Any) -> Any:
    """A prepared 4D mask (``[1, 1, queries, keys]``) in the form the attention code expects:
    booleans for SDPA, additive floats for eager attention."""
    import torch

    impl = str(getattr(model.config, "_attn_implementation", "sdpa") or "sdpa")
    mask = allowed[None, None]
    if impl == "sdpa":
        return mask
    if impl == "eager":
        blocked = torch.finfo(dtype).min
        return torch.zeros(mask.shape, dtype=dtype).masked_fill(~mask, blocked)
    raise UnsupportedRopeError(
        f"KV blending needs 'sdpa' or 'eager' attention (a custom mask), not {impl!r}"
    )


def _rotate_half(x: Any) -> Any:
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _delta_rotation(rotary: Any, origins: Any, targets: Any, like: Any) -> tuple[Any, Any]:
    """cos/sin (``[1, 1, n, head_dim]``) that move keys from ``origins`` to ``targets``, built
    from the model's own cos/sin at both positions: R(target) R(origin)^-1, exact up to float
    rounding, with the attention scaling divided out once."""
    cos_o, sin_o = rotary(like, origins[None, :])
    cos_t, sin_t = rotary(like, targets[None, :])
    scale = float(getattr(rotary, "attention_scaling", 1.0) or 1.0)
    cos = cos_t * cos_o + sin_t * sin_o
    sin = sin_t * cos_o - cos_t * sin_o
    if scale != 1.0:
        cos, sin = cos / (scale * scale), sin / (scale * scale)
    return cos[:, None], sin[:, None]


def rerotate_keys(runtime: Runtime, keys: Any, origin: int, target: int) -> Any:
    """Keys (``[batch, kv_heads, n, head_dim]``) computed at positions ``origin + t``,
    re-encoded as if at ``target + t``; a new tensor."""
    import torch

    rotary = check_blend_support(runtime)
    n = int(keys.shape[-2])
    origins = torch.arange(origin, origin + n, dtype=torch.long)
    targets = torch.arange(target, target + n, dtype=torch.long)
    with torch.no_grad():
        cos, sin = _delta_rotation(rotary, origins, targets, keys)
        return keys * cos + _rotate_half(keys) * sin


def blend(
    runtime: Runtime,
    prefix_cache: Any,
    prefix_len: int,
    chunk_token_ids: Sequence[Sequence[int]],
    chunks: Sequence[ChunkKV],
    *,
    recompute_ratio: float = 0.15,
    recompute_first: int = 1,
) -> BlendResult:
    """Compose a cache of the prefix followed by ``chunks`` (see the module docstring).

    Args:
        runtime: the runtime whose model computed ``prefix_cache`` and the chunks.
        prefix_cache: an exact ``DynamicCache`` of the prefix's ``prefix_len`` tokens; read only.
        prefix_len: its token count.
        chunk_token_ids: each chunk's token ids, in prompt order (must equal the chunks' own).
        chunks: the chunks' stored KV (:class:`~memcube.activation.chunks.Chunk`), same order.
        recompute_ratio: share of the chunk tokens recomputed with full attention, in [0, 1].
        recompute_first: the first tokens of every chunk always recomputed (within the share).

    Returns:
        a :class:`BlendResult` whose cache covers exactly ``prefix_len + sum(chunk lengths)``
        tokens; run the rest of the prompt on it as on any prefix cache (it is the caller's).

    Raises:
        InvalidInputError: lengths or token ids do not match, or a bad ratio.
        UnsupportedRopeError: the model's positions cannot be re-encoded.
    """
    import torch

    start = time.perf_counter()
    if not 0.0 <= float(recompute_ratio) <= 1.0 or math.isnan(float(recompute_ratio)):
        raise InvalidInputError("recompute_ratio must be in [0, 1]")
    if recompute_first < 0:
        raise InvalidInputError("recompute_first must be >= 0")
    rotary = check_blend_support(runtime)
    model = runtime.model
    config = model.config
    n_layers = int(config.num_hidden_layers)
    if len(chunk_token_ids) != len(chunks):
        raise InvalidInputError("pass one token-id list per chunk")
    if prefix_cache is None or int(prefix_cache.get_seq_length()) != int(prefix_len):
        raise InvalidInputError(
            f"the prefix cache covers {0 if prefix_cache is None else prefix_cache.get_seq_length()}"
            f" tokens, not prefix_len={prefix_len}"
        )
    prefix_layers = list(prefix_cache.layers)
    if len(prefix_layers) != n_layers or any(
        getattr(layer, "is_sliding", False) for layer in prefix_layers
    ):
        raise InvalidInputError("the prefix cache does not have this model's full-attention layout")
    ids: list[int] = []
    origins: list[int] = []
    firsts: list[int] = []
    for given, chunk in zip(chunk_token_ids, chunks):
        own = [int(i) for i in chunk.token_ids]
        if [int(i) for i in given] != own or not own:
            raise InvalidInputError("a chunk's token ids differ from the ids given for it")
        if len(chunk.keys) != n_layers or len(chunk.values) != n_layers:
            raise InvalidInputError("a chunk has another layer count than the model")
        firsts.extend(range(len(ids), len(ids) + min(recompute_first, len(own))))
        origins.extend(range(chunk.position_origin, chunk.position_origin + len(own)))
        ids.extend(own)
    n = len(ids)
    total = prefix_len + n
    result_timings: dict[str, float] = {}

    with runtime.lock, torch.no_grad():
        # make sure the base model is active (prefill of no tokens only activates it)
        runtime.prefill(())
        cache = _compose(config, rotary, prefix_layers, chunks, origins, prefix_len, n)
        result_timings["compose_s"] = time.perf_counter() - start
        budget = min(n, int(round(float(recompute_ratio) * n)))
        if budget == 0 or n == 0:
            selected: list[int] = []
            probed = 0
        elif budget >= n:
            selected = list(range(n))
            probed = 0
        else:
            t0 = time.perf_counter()
            scores = _deviation(model, rotary, cache, ids, prefix_len)
            if firsts:
                scores[torch.tensor(firsts, dtype=torch.long)] = float("inf")
            selected = sorted(int(i) for i in torch.topk(scores, budget).indices.tolist())
            probed = n
            result_timings["probe_s"] = time.perf_counter() - t0
        if selected:
            t0 = time.perf_counter()
            _recompute(model, cache, ids, prefix_len, selected)
            result_timings["recompute_s"] = time.perf_counter() - t0
    if int(cache.get_seq_length()) != total:  # pragma: no cover - guarded by construction
        raise RuntimeError("the blended cache has the wrong length")
    result_timings["total_s"] = time.perf_counter() - start
    return BlendResult(
        cache=cache,
        cached_tokens=total - len(selected),
        computed_tokens=len(selected),
        probed_tokens=probed,
        recomputed_positions=[prefix_len + i for i in selected],
        timings=result_timings,
    )


def _compose(
    config: Any,
    rotary: Any,
    prefix_layers: list[Any],
    chunks: Sequence[ChunkKV],
    origins: list[int],
    prefix_len: int,
    n: int,
) -> Any:
    import torch

    tensors: dict[str, Any] = {}
    if n:
        like = chunks[0].keys[0]
        cos, sin = _delta_rotation(
            rotary,
            torch.tensor(origins, dtype=torch.long, device=like.device),
            torch.arange(prefix_len, prefix_len + n, dtype=torch.long, device=like.device),
            like,
        )
    for i, layer in enumerate(prefix_layers):
        if n:
            keys = torch.cat([c.keys[i] for c in chunks], dim=2)
            keys = keys * cos + _rotate_half(keys) * sin  # a new tensor: chunks untouched
            values = torch.cat([c.values[i] for c in chunks], dim=2)
            # torch.cat copies: the composed tensors share no storage with the prefix cache
            tensors[f"layers.{i}.keys"] = torch.cat([layer.keys, keys.to(layer.keys.dtype)], 2)
            tensors[f"layers.{i}.values"] = torch.cat([layer.values, values], 2)
        else:
            tensors[f"layers.{i}.keys"] = layer.keys.clone()
            tensors[f"layers.{i}.values"] = layer.values.clone()
    return tensors_to_cache(config, tensors, [{"kind": "full"}] * len(prefix_layers))


def _deviation(model: Any, rotary: Any, cache: Any, ids: list[int], prefix_len: int) -> Any:
    """Per chunk token: how far its stored layer-1 keys and values are from fresh ones."""
    import torch

    base = model.base_model
    layers = base.layers
    n = len(ids)
    total = prefix_len + n
    positions = torch.arange(prefix_len, total, dtype=torch.long)
    hidden = base.embed_tokens(torch.tensor([ids], dtype=torch.long))
    position_embeddings = rotary(hidden, positions[None, :])
    mask = _attention_mask(torch.arange(total)[None, :] <= positions[:, None], model, hidden.dtype)
    first = cache.layers[0]
    hidden = layers[0](
        hidden,
        attention_mask=mask,
        position_ids=positions[None, :],
        past_key_values=_Layer0View(first.keys, first.values),
        use_cache=True,
        position_embeddings=position_embeddings,
    )
    if isinstance(hidden, tuple):
        hidden = hidden[0]
    capture = _Layer0View()
    try:
        layers[1](
            hidden,
            attention_mask=mask,
            position_ids=positions[None, :],
            past_key_values=capture,
            use_cache=True,
            position_embeddings=position_embeddings,
        )
    except _Captured:
        pass
    if capture.fresh is None:  # pragma: no cover - a layer that never updates its cache
        raise UnsupportedRopeError("could not read the model's layer-1 keys and values")
    fresh_k, fresh_v = capture.fresh
    stored_k = cache.layers[1].keys[:, :, prefix_len:]
    stored_v = cache.layers[1].values[:, :, prefix_len:]
    dk = ((fresh_k - stored_k) ** 2).sum(dim=(0, 1, 3)) / (stored_k**2).sum(dim=(0, 1, 3)).mean()
    dv = ((fresh_v - stored_v) ** 2).sum(dim=(0, 1, 3)) / (stored_v**2).sum(dim=(0, 1, 3)).mean()
    return (dk + dv).float()


def _recompute(
    model: Any, cache: Any, ids: list[int], prefix_len: int, selected: list[int]
) -> None:
    """Recompute the selected chunk tokens through every layer and write them into ``cache``."""
    import torch

    total = prefix_len + len(ids)
    sel = torch.tensor(selected, dtype=torch.long) + prefix_len
    s = int(sel.shape[0])
    keep = torch.ones(total, dtype=torch.bool)
    keep[sel] = False  # a selected token sees its fresh twin, never the stale entry
    composed = (torch.arange(total)[None, :] <= sel[:, None]) & keep[None, :]
    appended = torch.ones(s, s, dtype=torch.bool).tril()
    dtype = cache.layers[0].keys.dtype
    mask = _attention_mask(torch.cat([composed, appended], dim=1), model, dtype)
    model(
        input_ids=torch.tensor([[ids[i] for i in selected]], dtype=torch.long),
        position_ids=sel[None, :],
        attention_mask=mask,
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    for layer in cache.layers:
        keys, values = layer.keys, layer.values  # new tensors (update concatenated them)
        keys[:, :, sel] = keys[:, :, total:].clone()
        values[:, :, sel] = values[:, :, total:].clone()
        layer.keys, layer.values = keys[:, :, :total], values[:, :, :total]
