"""Forking and cutting transformers KV caches without copying their tensors.

transformers' dynamic layers never write into their tensors: an update concatenates and rebinds
``keys``/``values``. So a stored cache can be shared by any number of generations, each working
on a *fork* (new layer objects over the same tensors), in O(layers) instead of a deep copy of
every tensor (~90 MB at 2,048 tokens for SmolLM2-135M).
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
    give them exactly (a sliding-window layer has already dropped some of them)."""
    if not 0 < length <= int(cache.get_seq_length()):
        return None
    if any(type(layer).__name__ != "DynamicLayer" for layer in cache.layers):
        return None
    forked = fork_cache(cache)
    for layer in forked.layers:
        layer.keys = layer.keys[..., :length, :]
        layer.values = layer.values[..., :length, :]
    return forked
