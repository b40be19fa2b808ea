"""One user's records held in memory for ranking: ids, flat metadata, normalised embeddings, BM25
indexes, event times and session codes.

An index is loaded whole from Chroma and then *grows in place* when this process adds memories
for the user, so a process that writes and searches in turn never reloads what it wrote itself.
Positions are stable: records are only ever appended, and a record's metadata may be replaced
(usage counts) but never moved. Anything else (an update, a delete, another process's write)
makes the owner discard the index and load it again (see :mod:`memcube.plaintext.retrieval`).

Example:
    >>> import numpy as np
    >>> idx = UserIndex(dimension=2, bm25_k1=1.2, bm25_b=0.75, own_lexical=False)
    >>> idx.append(["a"], [{"user_id": "u"}], ["red bike"], ["red bike"],
    ...            np.array([[1.0, 0.0]]), [0.0], [""])
    >>> idx.admit({"user_id": "u"}).tolist(), idx.lexical.n_docs
    ([0], 1)
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from memcube.plaintext.lexical import BM25Index
from memcube.plaintext.wherefilter import matches

#: Where clauses whose admitted positions are remembered per index.
ADMITTED_CACHE = 16


class UserIndex:
    """Everything ranking needs about one user's records; not thread-safe (the retriever
    serialises access with its lock)."""

    def __init__(self, *, dimension: int, bm25_k1: float, bm25_b: float, own_lexical: bool) -> None:
        self.ids: list[str] = []
        self.positions: dict[str, int] = {}
        self.metadatas: list[dict[str, Any]] = []
        self._emb = np.zeros((0, dimension), dtype=np.float32)
        self._ts = np.zeros(0, dtype=np.float64)
        self._mention_ts = np.zeros(0, dtype=np.float64)
        self._sessions = np.zeros(0, dtype=np.int64)
        self._session_codes: dict[str, int] = {}
        self.lexical = BM25Index(k1=bm25_k1, b=bm25_b)
        self.own_lexical = BM25Index(k1=bm25_k1, b=bm25_b) if own_lexical else None
        # key -> (where clause, admitted positions)
        self._admitted: OrderedDict[str, tuple[dict[str, Any] | None, np.ndarray]] = OrderedDict()

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def embeddings(self) -> np.ndarray:
        return self._emb[: len(self.ids)]

    @property
    def event_ts(self) -> np.ndarray:
        return self._ts[: len(self.ids)]

    @property
    def mention_ts(self) -> np.ndarray:
        """When the date a record mentions ("last Friday") falls; NaN when it names none."""
        return self._mention_ts[: len(self.ids)]

    @property
    def sessions(self) -> np.ndarray:
        return self._sessions[: len(self.ids)]

    def append(
        self,
        ids: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
        lexical_docs: Sequence[str],
        own_docs: Sequence[str],
        embeddings: np.ndarray,
        event_ts: Sequence[float],
        sessions: Sequence[str],
        mention_ts: Sequence[float] | None = None,
    ) -> None:
        """Add records at the end. The caller guarantees the ids are new to this index."""
        n, m = len(self.ids), len(ids)
        if not m:
            return
        vecs = np.asarray(embeddings, dtype=np.float32).reshape(m, -1)
        vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        if n + m > self._emb.shape[0]:  # grow by doubling so appending one record is O(1)
            cap = max(n + m, 2 * self._emb.shape[0], 16)
            self._emb = _grown(self._emb, cap)
            self._ts = _grown(self._ts, cap)
            self._mention_ts = _grown(self._mention_ts, cap)
            self._sessions = _grown(self._sessions, cap)
        self._emb[n : n + m] = vecs
        self._ts[n : n + m] = event_ts
        self._mention_ts[n : n + m] = np.nan if mention_ts is None else mention_ts
        codes = self._session_codes
        self._sessions[n : n + m] = [codes.setdefault(s, len(codes)) if s else -1 for s in sessions]
        self.ids.extend(ids)
        self.positions.update((i, n + k) for k, i in enumerate(ids))
        self.metadatas.extend(metadatas)
        self.lexical.add(list(lexical_docs))
        if self.own_lexical is not None:
            self.own_lexical.add(list(own_docs))
        for key, (where, found) in self._admitted.items():
            more = [n + k for k, md in enumerate(metadatas) if matches(where, md)]
            if more:
                self._admitted[key] = (where, np.concatenate([found, np.asarray(more, np.int64)]))

    def replace_metadata(self, updates: Mapping[str, dict[str, Any]]) -> None:
        """Swap in newer metadata of records already held (e.g. usage counts). Remembered
        admitted sets are corrected for the changed records only (a usage flush touches a few
        hundred records; re-filtering a large index would stall the next search)."""
        changed: dict[int, dict[str, Any]] = {}
        for id_, md in updates.items():
            pos = self.positions.get(id_)
            if pos is not None:
                self.metadatas[pos] = md
                changed[pos] = md
        if not changed:
            return
        positions = np.fromiter(changed, dtype=np.int64)
        for key, (where, found) in self._admitted.items():
            keep = np.setdiff1d(found, positions, assume_unique=True)
            now = [pos for pos, md in changed.items() if matches(where, md)]
            self._admitted[key] = (where, np.union1d(keep, np.asarray(now, dtype=np.int64)))

    def admit(self, where: dict[str, Any] | None) -> np.ndarray:
        """Positions of the records ``where`` admits (remembered per clause)."""
        key = json.dumps(where, sort_keys=True, default=str)
        found = self._admitted.get(key)
        if found is None:
            positions = np.fromiter(
                (n for n, md in enumerate(self.metadatas) if matches(where, md)), dtype=np.int64
            )
            found = (where, positions)
            self._admitted[key] = found
            while len(self._admitted) > ADMITTED_CACHE:
                self._admitted.popitem(last=False)
        else:
            self._admitted.move_to_end(key)
        return found[1]


def _grown(array: np.ndarray, capacity: int) -> np.ndarray:
    out = np.zeros((capacity, *array.shape[1:]), dtype=array.dtype)
    out[: array.shape[0]] = array
    return out
