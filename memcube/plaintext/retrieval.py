"""Ranking: turns a query and a scope into scored hits.

The cube builds the ``where`` clause (scope, lifecycle, expiry, filters); this module decides *how*
to rank what that clause admits. Ranking is hybrid:

* **dense**: cosine similarity between the query embedding and each memory's stored embedding
  (the embedding of :meth:`Retriever.index_text`: the memory with its speaker, date and context);
* **lexical**: Okapi BM25 over the index text *plus the memory's context* (``metadata["context"]``,
  e.g. the previous turn of a conversation: "What did you paint?" makes "A sunset!" findable),
  and optionally a second BM25 over the memory's own words only;
* **session**: memories whose session (``session_id``) holds strong matches get a share of that
  session's best score, so the turns around a match move up together;
* **time**: a boost for memories whose ``event_time`` falls in a period the query names
  ("in May 2023", "on 8 May 2023"...), see :mod:`memcube.plaintext.temporal`.

Each signal is standardised (z-score over the memories the ``where`` clause admits) and the
weighted sum is the hit's ``score``; the per-signal values are in ``hit.signals``.

Where the work happens: a user's records (ids, flat metadata, index texts, embeddings) are loaded
once into a per-process cache that holds the BM25 indexes and the embedding matrix, so a search is
one query embedding plus in-memory arithmetic plus two small Chroma reads:

1. a *version check*: every write through any :class:`~memcube.MemCube` (any process, embedded or
   server) stores a fresh random token for the users it touched in a small side collection
   (``<prefix>_retrieval``); a search compares the user's token with the one its cache was built
   under and reloads on a difference. The token is read *before* the data, so a cache can be too
   new for its token (a harmless extra reload) but never older than it.
2. a *confirmation*: the best candidates are re-read from Chroma by id and the cube's where
   clause is checked again on those fresh records, so a hit is only returned if it is admitted
   *now* (another process may have archived it or changed its sharing), with its current header
   (usage counts, state). Scope clauses (``user_id``, ``live_user_id``, shared ids) are equality
   and membership tests, evaluated exactly.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memcube.errors import InvalidInputError
from memcube.items import MemoryItem, SearchHit
from memcube.plaintext.backend import ChromaBackend
from memcube.plaintext.embedder import Embedder
from memcube.plaintext.lexical import BM25Index, tokenize
from memcube.plaintext.records import metadata_to_item
from memcube.plaintext.temporal import format_day, query_periods
from memcube.plaintext.wherefilter import matches, scope_owners

log = logging.getLogger(__name__)

#: Metadata key whose text is indexed with a memory (e.g. the turn before it in a conversation).
CONTEXT_KEY = "context"
#: Metadata key naming who said/wrote a memory.
SPEAKER_KEY = "speaker"
#: Where clauses whose admitted set is remembered per cached user.
ADMITTED_CACHE = 16


@dataclass
class RetrievalConfig:
    """Scoring parameters for :meth:`memcube.MemCube.search`.

    Every signal is z-scored over the memories the search may return, then combined as a weighted
    sum; a weight of 0 turns a signal off (``lexical_weight=0, own_lexical_weight=0,
    time_weight=0`` is pure dense search).

    Attributes:
        dense_weight: weight of the embedding cosine similarity.
        lexical_weight: weight of BM25 over the index text plus the memory's context.
        own_lexical_weight: weight of BM25 over the memory's own words (and speaker) only; 0
            (the default) skips building that index.
        session_weight: weight of the session signal (the z-scored best fused score within each
            ``session_id``, given to every memory of that session).
        time_weight: boost (in standard deviations) for memories whose ``event_time`` lies in a
            period the query names; 0 disables time handling.
        bm25_k1: BM25 term-frequency saturation.
        bm25_b: BM25 length normalisation.
        index_speaker: put ``metadata["speaker"]`` in the indexed text.
        index_date: put the ``event_time`` date in the indexed text.
        context_key: metadata key whose text (a string) is indexed with the memory; readers put
            the neighbouring turn(s) there (see :func:`memcube.plaintext.context.attach_context`).
            Not part of the memory's content.
        embed_context: also embed the context (by default only BM25 sees it: on LoCoMo the
            embedding of the turn alone fuses better).
        max_context_chars: longest context text indexed.
        confirm_margin: extra candidates confirmed with Chroma beyond ``k``.
        max_cached_items: records kept in the per-process cache over all users (least recently
            searched users are dropped first).
        hybrid: False skips the cache and ranks with Chroma's dense query only.

    Example:
        >>> from memcube import RetrievalConfig
        >>> RetrievalConfig(lexical_weight=1.0, dense_weight=0.0).dense_weight
        0.0
    """

    dense_weight: float = 1.0
    lexical_weight: float = 1.0
    own_lexical_weight: float = 0.0
    session_weight: float = 0.5
    time_weight: float = 0.5
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    index_speaker: bool = True
    index_date: bool = True
    context_key: str = CONTEXT_KEY
    embed_context: bool = False
    max_context_chars: int = 1000
    confirm_margin: int = 10
    max_cached_items: int = 200_000
    hybrid: bool = True

    def __post_init__(self) -> None:
        for name in (
            "dense_weight",
            "lexical_weight",
            "own_lexical_weight",
            "session_weight",
            "time_weight",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not np.isfinite(value) or value < 0:
                raise InvalidInputError(f"RetrievalConfig.{name} must be a finite number >= 0.")
        if self.bm25_k1 <= 0 or not 0 <= self.bm25_b <= 1:
            raise InvalidInputError("RetrievalConfig needs bm25_k1 > 0 and 0 <= bm25_b <= 1.")
        if self.confirm_margin < 0 or self.max_cached_items < 1 or self.max_context_chars < 0:
            raise InvalidInputError(
                "RetrievalConfig needs confirm_margin >= 0, max_cached_items >= 1 and "
                "max_context_chars >= 0."
            )


@dataclass
class _UserIndex:
    """Everything ranking needs about one user's records."""

    token: str | None
    ids: list[str]
    metadatas: list[dict[str, Any]]
    embeddings: np.ndarray
    event_ts: np.ndarray
    sessions: np.ndarray
    lexical: BM25Index
    own_lexical: BM25Index | None
    #: Admitted positions per where clause (the entry is rebuilt on any change of the data).
    admitted: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict)

    def admit(self, where: dict[str, Any] | None) -> np.ndarray:
        key = json.dumps(where, sort_keys=True, default=str)
        found = self.admitted.get(key)
        if found is None:
            found = np.fromiter(
                (n for n, md in enumerate(self.metadatas) if matches(where, md)), dtype=np.int64
            )
            self.admitted[key] = found
            while len(self.admitted) > ADMITTED_CACHE:
                self.admitted.popitem(last=False)
        return found


def _zscore(x: np.ndarray) -> np.ndarray:
    if x.size == 0:
        return x
    std = float(x.std())
    if std < 1e-9:
        return np.zeros_like(x)
    return (x - float(x.mean())) / std


class Retriever:
    """Hybrid (dense + BM25 + time) ranking over a cube's Chroma items collection.

    One per :class:`~memcube.MemCube`; thread-safe.

    Example:
        >>> import tempfile
        >>> from memcube import MemCube
        >>> with MemCube.open(tempfile.mkdtemp()) as cube:
        ...     _ = cube.add("My locker code is 4417", user_id="u")
        ...     _ = cube.add("I enjoy long walks by the sea", user_id="u")
        ...     cube.search("what is the code 4417 for?", user_id="u", k=1)[0].item.content
        'My locker code is 4417'
    """

    def __init__(
        self, backend: ChromaBackend, embedder: Embedder, config: RetrievalConfig | None = None
    ) -> None:
        self.backend = backend
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        if not isinstance(self.config, RetrievalConfig):
            raise InvalidInputError("retrieval= takes a memcube.RetrievalConfig.")
        self._cache: OrderedDict[str, _UserIndex] = OrderedDict()
        self._lock = threading.RLock()
        self._state: Any = None

    # ------------------------------------------------------------------ indexing
    def index_text(self, item: MemoryItem) -> str:
        """The text that is embedded and stored for an item: its content, prefixed with its
        date and speaker when known (``(8 May 2023) Caroline: ...``). Its context (the
        ``metadata[config.context_key]`` string, e.g. the previous turn of a conversation) is
        BM25-indexed with it, and embedded too when ``config.embed_context`` is set."""
        cfg = self.config
        head = []
        if cfg.index_date and item.event_time is not None:
            head.append(f"({format_day(item.event_time)})")
        speaker = item.metadata.get(SPEAKER_KEY)
        if cfg.index_speaker and isinstance(speaker, str) and speaker.strip():
            head.append(f"{speaker.strip()}:")
        text = " ".join([*head, item.content])
        context = self._context(item.metadata)
        if cfg.embed_context and context:
            text = f"{context}\n{text}"
        return text

    def _context(self, metadata: dict[str, Any]) -> str:
        context = metadata.get(self.config.context_key)
        if isinstance(context, str) and self.config.max_context_chars:
            return context.strip()[: self.config.max_context_chars]
        return ""

    # ------------------------------------------------------------------ cache consistency
    @property
    def _state_collection(self) -> Any:
        if self._state is None:
            name = self.backend.items.name
            prefix = name[: -len("_items")] if name.endswith("_items") else name
            self._state = self.backend._collection(f"{prefix}_retrieval", cosine=False)
        return self._state

    def invalidate(self, user_ids: set[str] | None = None) -> None:
        """Called by the cube after every write: drop these users' cached indexes and publish a
        new version token for them, so other processes sharing the store reload too.
        ``None`` drops every cached index (it cannot publish tokens for users it doesn't know)."""
        with self._lock:
            if user_ids is None:
                self._cache.clear()
                return
            for uid in user_ids:
                self._cache.pop(uid, None)
        if not self.config.hybrid or not user_ids:
            return
        ids = sorted(user_ids)
        self.backend.upsert(
            self._state_collection,
            [f"user:{u}" for u in ids],
            embeddings=None,
            documents=None,
            metadatas=[{"user_id": u, "token": uuid.uuid4().hex} for u in ids],
        )

    def _token(self, user_id: str) -> str | None:
        res = self.backend.get(self._state_collection, ids=[f"user:{user_id}"])
        if not res["ids"]:
            return None
        return str(res["metadatas"][0].get("token"))

    def _load(self, user_id: str, token: str | None) -> _UserIndex:
        cfg = self.config
        res = self.backend.get(
            self.backend.items,
            where={"user_id": {"$eq": user_id}},
            include=("metadatas", "documents", "embeddings"),
        )
        ids = list(res["ids"])
        metadatas = list(res["metadatas"] or [])
        documents = [d or "" for d in (res["documents"] or [])]
        emb = res.get("embeddings")
        dim = self.embedder.dimension
        embeddings = (
            np.asarray(emb, dtype=np.float32).reshape(len(ids), -1)
            if ids and emb is not None
            else np.zeros((0, dim), dtype=np.float32)
        )
        if ids:
            norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
            embeddings = embeddings / np.maximum(norms, 1e-12)
        event_ts = np.array([float(md.get("time_ts") or 0.0) for md in metadatas], dtype=np.float64)
        lexical_docs, own_docs, sessions = [], [], []
        for md, doc in zip(metadatas, documents):
            data = json.loads(md["json"])
            meta = data.get("metadata") or {}
            context = "" if cfg.embed_context else self._context(meta)
            lexical_docs.append(f"{context}\n{doc}" if context else doc)
            speaker = meta.get(SPEAKER_KEY)
            own_docs.append(
                f"{speaker} {data['content']}" if isinstance(speaker, str) else data["content"]
            )
            sessions.append(md.get("session_id") or "")
        codes: dict[str, int] = {}
        session_codes = np.array(
            [codes.setdefault(x, len(codes)) if x else -1 for x in sessions], dtype=np.int64
        )
        return _UserIndex(
            token=token,
            ids=ids,
            metadatas=metadatas,
            embeddings=embeddings,
            event_ts=event_ts,
            sessions=session_codes,
            lexical=BM25Index(lexical_docs, k1=cfg.bm25_k1, b=cfg.bm25_b),
            own_lexical=(
                BM25Index(own_docs, k1=cfg.bm25_k1, b=cfg.bm25_b)
                if cfg.own_lexical_weight
                else None
            ),
        )

    def _index(self, user_id: str) -> _UserIndex:
        token = self._token(user_id)
        with self._lock:
            entry = self._cache.get(user_id)
            if entry is not None and entry.token == token:
                self._cache.move_to_end(user_id)
                return entry
        entry = self._load(user_id, token)
        with self._lock:
            self._cache[user_id] = entry
            self._cache.move_to_end(user_id)
            total = sum(len(e.ids) for e in self._cache.values())
            while total > self.config.max_cached_items and len(self._cache) > 1:
                _, dropped = self._cache.popitem(last=False)
                total -= len(dropped.ids)
        return entry

    # ------------------------------------------------------------------ search
    def _owners(self, where: dict[str, Any] | None) -> set[str] | None:
        """The owners whose records ``where`` can admit: read from its scope clauses, and for a
        branch that names no owner (e.g. memories shared item by item) asked of Chroma. ``None``
        when the clause is not bounded by owners at all."""
        found = scope_owners(where)
        if found is not None or not where:
            return found
        if list(where) == ["$or"]:
            owners: set[str] = set()
            for branch in where["$or"]:
                part = scope_owners(branch)
                if part is None:
                    res = self.backend.get(self.backend.items, where=branch, include=("metadatas",))
                    part = {str(md.get("user_id")) for md in res["metadatas"] or []}
                owners |= part
            return owners
        if list(where) == ["$and"]:
            for clause in where["$and"]:
                part = (
                    self._owners(clause) if isinstance(clause, dict) and "$or" in clause else None
                )
                if part is not None:
                    return part
        return None

    def search(self, query: str, *, where: dict[str, Any] | None, k: int) -> list[SearchHit]:
        """The ``k`` best hits for ``query`` among the records ``where`` admits, best first."""
        owners = self._owners(where) if self.config.hybrid else None
        if owners is None:
            return self._dense_only(query, where=where, k=k)
        parts: list[tuple[_UserIndex, np.ndarray]] = []
        for owner in sorted(owners):
            entry = self._index(owner)
            with self._lock:
                admitted = entry.admit(where)
            if admitted.size:
                parts.append((entry, admitted))
        if not parts:
            return []
        scores, signals = self._score(query, parts)
        ids = [entry.ids[int(n)] for entry, admitted in parts for n in admitted]
        order = np.argsort(-scores, kind="stable")
        return self._confirm(order, ids, where, k, scores, signals)

    def _score(
        self, query: str, parts: list[tuple[_UserIndex, np.ndarray]]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        cfg = self.config
        size = sum(a.size for _, a in parts)
        total = np.zeros(size, dtype=np.float64)
        signals: dict[str, np.ndarray] = {}
        if cfg.dense_weight:
            qv = np.asarray(self.embedder.embed_query(query), dtype=np.float32)
            qv = qv / max(float(np.linalg.norm(qv)), 1e-12)
            # einsum, not `@`: a BLAS matrix-vector product wakes OpenBLAS's thread pool, whose
            # spinning threads then slow the next query's embedding forward (measured: search
            # p95 at 4k items 117 ms with `@`, 22 ms single-threaded). This product is small.
            dense = np.concatenate(
                [np.einsum("ij,j->i", e.embeddings[a], qv) for e, a in parts]
            ).astype(np.float64)
            signals["dense"] = dense
            total += cfg.dense_weight * _zscore(dense)
        tokens = tokenize(query)
        if cfg.lexical_weight:
            lex = np.concatenate([e.lexical.scores(tokens)[a] for e, a in parts]).astype(np.float64)
            signals["lexical"] = lex
            total += cfg.lexical_weight * _zscore(lex)
        if cfg.own_lexical_weight:
            own = np.concatenate(
                [
                    e.own_lexical.scores(tokens)[a]
                    if e.own_lexical is not None
                    else np.zeros(a.size)
                    for e, a in parts
                ]
            ).astype(np.float64)
            signals["own_lexical"] = own
            total += cfg.own_lexical_weight * _zscore(own)
        if cfg.session_weight:
            offsets, sessions = 0, []
            for e, a in parts:  # sessions of different owners are different sessions
                codes = e.sessions[a]
                sessions.append(np.where(codes >= 0, codes + offsets, -1))
                offsets += int(e.sessions.max(initial=-1)) + 1
            total += cfg.session_weight * self._session_signal(
                total, np.concatenate(sessions), signals
            )
        if cfg.time_weight:
            periods = query_periods(query)
            if periods:
                ts = np.concatenate([e.event_ts[a] for e, a in parts])
                inside = np.zeros(size, dtype=bool)
                for start, end in periods:
                    inside |= (ts >= start) & (ts < end)
                if inside.any() and not inside.all():
                    signals["time"] = inside.astype(np.float64)
                    total += cfg.time_weight * inside
        return total, signals

    @staticmethod
    def _session_signal(
        total: np.ndarray, sessions: np.ndarray, signals: dict[str, np.ndarray]
    ) -> np.ndarray:
        """Each session's best fused score, z-scored over sessions, given to its memories
        (memories without a session get 0)."""
        has = sessions >= 0
        if not has.any():
            return np.zeros_like(total)
        codes, inverse = np.unique(sessions[has], return_inverse=True)
        if codes.size < 2:
            return np.zeros_like(total)
        best = np.full(codes.size, -np.inf)
        np.maximum.at(best, inverse, total[has])
        out = np.zeros_like(total)
        out[has] = _zscore(best)[inverse]
        signals["session"] = out
        return out

    def _confirm(
        self,
        order: np.ndarray,
        ids: list[str],
        where: dict[str, Any] | None,
        k: int,
        scores: np.ndarray,
        signals: dict[str, np.ndarray],
    ) -> list[SearchHit]:
        """Re-read the best candidates from Chroma under ``where``; refill if some dropped out."""
        hits: list[SearchHit] = []
        start = 0
        batch = k + self.config.confirm_margin
        while len(hits) < k and start < order.size:
            chunk = [int(i) for i in order[start : start + batch]]
            start += len(chunk)
            # By id only: Chroma evaluates a where clause over the whole collection even when ids
            # are given (~50 ms at 10k records), so the fresh records are checked here instead.
            res = self.backend.get(self.backend.items, ids=[ids[i] for i in chunk])
            fresh = {
                i: md for i, md in zip(res["ids"], res["metadatas"]) if matches(where, md)
            }
            for i in chunk:
                md = fresh.get(ids[i])
                if md is None:
                    continue
                hits.append(
                    SearchHit(
                        item=metadata_to_item(md),
                        score=float(scores[i]),
                        signals={name: float(v[i]) for name, v in signals.items()},
                    )
                )
                if len(hits) == k:
                    break
            batch = max(batch, 2 * k)
        return hits

    def _dense_only(self, query: str, *, where: dict[str, Any] | None, k: int) -> list[SearchHit]:
        vector = self.embedder.embed_query(query)
        res = self.backend.query(self.backend.items, vector, n=k, where=where)
        hits: list[SearchHit] = []
        for md, dist in zip(res["metadatas"][0], res["distances"][0]):
            sim = 1.0 - float(dist)
            hits.append(SearchHit(item=metadata_to_item(md), score=sim, signals={"dense": sim}))
        return hits

    def cached_users(self) -> list[str]:
        """Users whose index is cached in this process (most recently searched last)."""
        with self._lock:
            return list(self._cache)

    def warm(self, user_ids: Iterable[str]) -> None:
        """Build (or refresh) the cached indexes of these users now instead of on first search."""
        for uid in user_ids:
            self._index(uid)


def dialog_ids(hits: Sequence[SearchHit]) -> list[str]:
    """The provenance message ids of hits, in rank order, without repeats (what a benchmark or a
    citation counts)."""
    out: dict[str, None] = {}
    for h in hits:
        for mid in h.item.provenance.message_ids:
            out.setdefault(mid, None)
    return list(out)
