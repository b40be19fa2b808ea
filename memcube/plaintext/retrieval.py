"""Ranking: turns a query and a scope into scored hits.

The cube builds the ``where`` clause (scope, lifecycle, filters); this module decides *how* to
rank what that clause admits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from memcube.items import MemoryItem, SearchHit
from memcube.plaintext.backend import ChromaBackend
from memcube.plaintext.embedder import Embedder
from memcube.plaintext.records import metadata_to_item


@dataclass
class RetrievalConfig:
    """Scoring parameters for :meth:`memcube.MemCube.search`.

    Attributes:
        candidate_multiplier: how many dense candidates to fetch per requested hit.
        min_candidates: the least number of dense candidates fetched.
    """

    candidate_multiplier: int = 4
    min_candidates: int = 40


class Retriever:
    def __init__(self, backend: ChromaBackend, embedder: Embedder, config: RetrievalConfig | None = None):
        self.backend = backend
        self.embedder = embedder
        self.config = config or RetrievalConfig()

    def index_text(self, item: MemoryItem) -> str:
        """The text that is embedded for an item."""
        return item.content

    def invalidate(self, user_ids: set[str] | None = None) -> None:
        """Called after writes; rankers that cache per-user state drop it here."""

    def search(self, query: str, *, where: dict[str, Any] | None, k: int) -> list[SearchHit]:
        vector = self.embedder.embed_query(query)
        res = self.backend.query(self.backend.items, vector, n=k, where=where)
        hits: list[SearchHit] = []
        for md, dist in zip(res["metadatas"][0], res["distances"][0]):
            sim = 1.0 - float(dist)
            hits.append(SearchHit(item=metadata_to_item(md), score=sim, signals={"dense": sim}))
        return hits
