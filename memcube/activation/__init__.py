"""Activation memory: KV caches of memory text, injected as a prompt prefix.

Example:
    >>> from memcube.activation import block_segments, ActivationStore, ActivationMemory
    >>> block_segments([])
    []
"""

from memcube.activation.blend import BlendResult, ChunkKV, check_blend_support
from memcube.activation.chunks import (
    Chunk,
    ChunkManifest,
    ChunkNotFoundError,
    ChunkStore,
)
from memcube.activation.kv import cache_nbytes, cache_to_tensors, tensors_to_cache
from memcube.activation.memory import (
    ACTIVATION_HEADER,
    ActivationMemory,
    MemoryContext,
    activation_memory,
    block_segments,
)
from memcube.activation.store import (
    FORMAT_VERSION,
    ActivationStore,
    CacheEntry,
    CacheManifest,
    CorruptCacheError,
    ids_sha256,
)

__all__ = [
    "ACTIVATION_HEADER",
    "FORMAT_VERSION",
    "ActivationMemory",
    "ActivationStore",
    "BlendResult",
    "CacheEntry",
    "CacheManifest",
    "Chunk",
    "ChunkKV",
    "ChunkManifest",
    "ChunkNotFoundError",
    "ChunkStore",
    "CorruptCacheError",
    "MemoryContext",
    "activation_memory",
    "block_segments",
    "cache_nbytes",
    "cache_to_tensors",
    "check_blend_support",
    "ids_sha256",
    "tensors_to_cache",
]
