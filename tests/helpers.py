"""Small test utilities shared by test modules."""

from __future__ import annotations

import hashlib
import math

from memcube import MemCube


class HashEmbedder:
    """A deterministic bag-of-words embedder (hashed tokens), for tests that need a second,
    different embedder. Real enough to rank exact word overlap first."""

    model_id = "test/hash-embedder-64"
    dimension = 64

    def _vec(self, text: str) -> list[float]:
        v = [0.0] * self.dimension
        for tok in text.lower().split():
            h = int(hashlib.md5(tok.strip(".,!?").encode()).hexdigest(), 16)
            v[h % self.dimension] += 1.0
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        return [x / norm for x in v]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vec(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vec(text)


def snapshot(cube: MemCube) -> list[str]:
    """Every stored item (all users, all states) as JSON, sorted: equal snapshots = unchanged cube."""
    return sorted(i.model_dump_json() for i in cube.items(user_id=None, include_archived=True))
