"""Forking and cutting transformers KV caches without copying their tensors.

transformers' dynamic layers never write into their tensors: an update concatenates and rebinds
``keys``/``values``. So a stored cache can be shared by any number of generations, each working
on a *fork* (new layer objects over the same tensors), in O(layers) instead of a deep copy of
every tensor (~90 MB at 2,048 tokens for SmolLM2-135M). Sliding-window layers (Gemma-3's
hybrid caches) behave the same way: an update concatenates, keeps the window's tail as a new
tensor and counts the tokens seen in ``cumulative_length``, an integer each fork has its own of.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["cache_prefix", "fork_cache"]

_FORKABLE = ("DynamicLayer", "DynamicSlidingWindowLayer")


def fork_cache(cache: Any) -> Any:
    """A copy of ``cache`` that can be extended without touching ``cache``: dynamic layers
    share their tensors, any other layer kind is deep-copied.

    Example:
        >>> from memcube.runtime import Runtime
        >>> rt = Runtime.shared()
        >>> base = rt.prefill([1, 2, 3])
        >>> grown = rt.prefill([4], fork_cache(base))
        >>> base.get_seq_length(), grown.get_seq_length()
        (3, 4)
    """
    forked = copy.copy(cache)
    forked.layers = [
        copy.copy(layer) if type(layer).__name__ in _FORKABLE else copy.deepcopy(layer)
        for layer in cache.layers
    ]
    return forked


def cache_prefix(cache: Any, length: int) -> Any | None:
    """A fork of ``cache`` cut to its first ``length`` tokens, or ``None`` when the cache cannot
    give them exactly.

    A full-attention layer holds every token and is simply cut. A sliding-window layer (hybrid
    models such as Gemma-3) holds only the last ``sliding_window - 1`` tokens it has seen, and
    the cache of the first ``length`` tokens needs the ``sliding_window - 1`` tokens before
    position ``length``: it is cut when it still holds them (always while the cache is shorter
    than the window), with its ``cumulative_length`` set to ``length``; otherwise ``None``.
    Any other layer kind gives ``None``.
    """
    if not 0 < length <= int(cache.get_seq_length()):
        return None
    cuts: list[tuple[int, int]] = []
    for layer in cache.layers:
        kind = type(layer).__name__
        if not getattr(layer, "is_initialized", False):
            return None
        held = int(layer.keys.shape[-2])
        if kind == "DynamicLayer":
            if held < length:
                return None
            cuts.append((0, length))
        elif kind == "DynamicSlidingWindowLayer":
            seen = int(layer.cumulative_length)
            first_held = seen - held  # absolute position of the oldest token still held
            first_needed = max(0, length - (int(layer.sliding_window) - 1))
            if length > seen or first_needed < first_held:
                return None
            cuts.append((first_needed - first_held, length - first_held))
        else:
            return None
    forked = fork_cache(cache)
    for layer, (begin, end) in zip(forked.layers, cuts):
        layer.keys = layer.keys[..., begin:end, :]
        layer.values = layer.values[..., begin:end, :]
        if type(layer).__name__ == "DynamicSlidingWindowLayer":
            layer.cumulative_length = length
    return forked
