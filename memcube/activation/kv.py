"""Converting transformers KV caches to plain tensors and back (no pickle, ever).

A :class:`transformers.DynamicCache` becomes ``{"layers.<i>.keys", "layers.<i>.values"}`` tensors
plus a JSON-able description of each layer (full attention, or sliding window with its window and
``cumulative_length``), so hybrid models with sliding-window layers round-trip exactly.

Example:
    >>> from memcube.runtime import Runtime
    >>> rt = Runtime.shared()
    >>> cache = rt.prefill([1, 2, 3])
    >>> tensors, layers = cache_to_tensors(cache)
    >>> restored = tensors_to_cache(rt.model.config, tensors, layers)
    >>> restored.get_seq_length()
    3
"""

from __future__ import annotations

from typing import Any

from memcube.errors import ModelMismatchError

__all__ = ["cache_nbytes", "cache_to_tensors", "layer_info", "tensors_to_cache"]


def layer_info(layer: Any) -> dict[str, Any]:
    """The JSON description of one cache layer (full attention, or its sliding window)."""
    if getattr(layer, "is_sliding", False):
        return {
            "kind": "sliding",
            "sliding_window": int(layer.sliding_window),
            "cumulative_length": int(layer.cumulative_length),
        }
    return {"kind": "full"}


def cache_to_tensors(cache: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Tensors (contiguous copies) and per-layer descriptions of a ``DynamicCache``."""
    tensors: dict[str, Any] = {}
    layers: list[dict[str, Any]] = []
    for i, layer in enumerate(cache.layers):
        if not getattr(layer, "is_initialized", False):
            raise ValueError(f"cache layer {i} is empty; prefill the cache before storing it")
        kind = type(layer).__name__
        if kind not in ("DynamicLayer", "DynamicSlidingWindowLayer"):
            raise ValueError(f"cannot store a {kind} cache layer (only dynamic layers)")
        tensors[f"layers.{i}.keys"] = layer.keys.detach().to("cpu").contiguous().clone()
        tensors[f"layers.{i}.values"] = layer.values.detach().to("cpu").contiguous().clone()
        layers.append(layer_info(layer))
    return tensors, layers


def tensors_to_cache(config: Any, tensors: dict[str, Any], layers: list[dict[str, Any]]) -> Any:
    """Rebuild a ``DynamicCache`` for a model with ``config``; refuses a different layout."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=config)
    # the layers' attributes depend on their kind (full or sliding window): read them dynamically
    model_layers: list[Any] = list(cache.layers)
    if len(model_layers) != len(layers):
        raise ModelMismatchError(
            f"the cache has {len(layers)} layers but the model has {len(model_layers)}; "
            "it was built for another model. Rebuild it for this model."
        )
    for i, (layer, info) in enumerate(zip(model_layers, layers)):
        sliding = bool(getattr(layer, "is_sliding", False))
        if sliding != (info.get("kind") == "sliding") or (
            sliding and int(layer.sliding_window) != int(info.get("sliding_window", -1))
        ):
            raise ModelMismatchError(
                f"cache layer {i} is {info.get('kind')} attention but the model's layer {i} is "
                f"{'sliding' if sliding else 'full'}; the cache was built for another model."
            )
        keys = tensors[f"layers.{i}.keys"]
        values = tensors[f"layers.{i}.values"]
        if keys.shape != values.shape or keys.dim() != 4:
            raise ValueError(f"cache layer {i} has malformed tensors {tuple(keys.shape)}")
        layer.dtype, layer.device = keys.dtype, keys.device
        layer.keys, layer.values = keys, values
        layer.is_initialized = True
        if sliding:
            # the layer holds the last min(seen, window - 1) tokens it has seen
            seen = int(info["cumulative_length"])
            if int(keys.shape[-2]) != min(seen, int(layer.sliding_window) - 1):
                raise ValueError(
                    f"sliding cache layer {i} holds {int(keys.shape[-2])} tokens, which does not "
                    f"fit {seen} tokens seen with window {int(layer.sliding_window)}"
                )
            layer.cumulative_length = seen
            layer._sliding_window_tensor = torch.tensor(layer.sliding_window, dtype=torch.long)
    return cache


def cache_nbytes(cache: Any) -> int:
    """Bytes held by the keys and values of a cache."""
    total = 0
    for layer in cache.layers:
        if getattr(layer, "is_initialized", False):
            total += layer.keys.numel() * layer.keys.element_size()
            total += layer.values.numel() * layer.values.element_size()
    return total
