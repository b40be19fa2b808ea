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
weighted sum (``hit.signals["fused"]``) ranks the memories. The best of them are then re-scored
on absolute scales (:mod:`memcube.plaintext.calibration`): that calibrated relevance in
``[0, 1]`` is the hit's ``score`` and its final order; the per-signal values are in
``hit.signals``.

Where the work happens: a user's records (ids, flat views, index texts, embeddings) are loaded
once into a per-process :class:`~memcube.plaintext.userindex.UserIndex` that holds the BM25
indexes and the embedding matrix, so a search is one query embedding, one small Chroma read and
in-memory arithmetic. The cache is kept exact:

* **this process's writes**: a memory added here is appended to the cached index in place (no
  reload); any other write here (update, delete, merge, import...) discards the index, which is
  reloaded on the next search. A per-user write counter orders a write against a concurrent load,
  so a load that may have missed a write is never trusted.
* **other processes' writes**: every cube (every ``MemCube`` object) publishes a *marker* per user
  it writes to, a fresh random token in a small side collection (``<prefix>_retrieval``), after
  each write (through the cube's :class:`~memcube.outbox.Outbox`: within ``publish_interval``
  seconds, or before the write returns when that is 0). A search reads the markers of the user's other
  writers before anything else and reloads when one differs from those the cache was built
  under, so a cache can be newer than its markers (a harmless extra reload) but never older.
  Each cube ignores its own marker, which is why its own writes never cost it a reload; it
  deletes its markers when closed. A cached index is also reloaded after
  ``max_cache_seconds``, in case a writer died before publishing.
* **readers**: a cube registers as a *reader* of a user (a record in the same side collection)
  before it first loads that user's records, and a writer publishes a marker only for users
  some other cube reads (it looks after its write is stored). So no marker is written when
  nobody else caches the user (e.g. each process serving its own users), and none is missed: a
  reader that registered after the writer looked loads records that already hold the write.

Hits are built from the cached records, which are exactly what Chroma holds, except for usage
counts that another process has flushed since the load (usage is advisory).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from memcube.errors import InvalidInputError, MemCubeError
from memcube.items import MemoryItem, SearchHit
from memcube.outbox import Outbox
from memcube.plaintext.backend import ChromaBackend
from memcube.plaintext.calibration import (
    BIAS,
    WEIGHTS,
    Candidate,
    calibrate,
    content_tokens,
    coverage,
    sigmoid,
)
from memcube.plaintext.embedder import Embedder
from memcube.plaintext.lexical import tokenize
from memcube.plaintext.ranking_profile import Personalization
from memcube.plaintext.records import chroma_part, metadata_to_item, needs_check, record_view
from memcube.plaintext.temporal import exact_periods, format_day, query_periods
from memcube.plaintext.userindex import UserIndex
from memcube.plaintext.wherefilter import matches, scope_owners

log = logging.getLogger(__name__)

#: Metadata key whose text is indexed with a memory (e.g. the turn before it in a conversation).
CONTEXT_KEY = "context"
#: Metadata key naming who said/wrote a memory.
SPEAKER_KEY = "speaker"
#: Metadata key of the date a memory mentions (set by the reader: "last Friday" -> that day).
MENTIONS_KEY = "mentions_time"


def _timestamp(value: Any) -> float:
    """POSIX seconds of an ISO-8601 string; NaN for anything else."""
    if not isinstance(value, str):
        return math.nan
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.nan


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
        max_cached_items: records kept in the per-process cache over all users (least recently
            searched users are dropped first).
        max_cache_seconds: a cached user index is reloaded after this long even if no marker
            changed (covers a writer killed before it published its marker).
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
    max_cached_items: int = 200_000
    max_cache_seconds: float = 60.0
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
        if self.max_cached_items < 1 or self.max_context_chars < 0 or self.max_cache_seconds <= 0:
            raise InvalidInputError(
                "RetrievalConfig needs max_cached_items >= 1, max_context_chars >= 0 and "
                "max_cache_seconds > 0."
            )


@dataclass
class _Entry:
    """A cached index and what it was built under."""

    index: UserIndex
    #: This process's write counter for the user when the index was last known complete.
    local_seq: int
    #: The markers of the user's other writers, read before the records were.
    markers: dict[str, str]
    #: ``time.monotonic()`` when the records were read.
    loaded_at: float


#: A voted memory whose earlier queries match a query this well joins its candidates
#: (see :meth:`Retriever._recall_voted`), at most this many per search.
RECALL_MATCH = 0.4
RECALL_MAX = 10


def _idf_of(index: UserIndex) -> Callable[[str], float]:
    """The IDF of the index's BM25 lexicon (a word it has never seen counts as rarest)."""
    lexicon = index.lexical
    unknown = math.log(1.0 + (lexicon.n_docs + 0.5) / 0.5)
    return lambda term: lexicon.idf(term) or unknown


def _pool(k: int) -> int:
    """How many first-stage hits are calibrated for a search of ``k``."""
    return max(3 * k, 30)


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
        self,
        backend: ChromaBackend,
        embedder: Embedder,
        config: RetrievalConfig | None = None,
        *,
        outbox: Outbox | None = None,
    ) -> None:
        self.backend = backend
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        if not isinstance(self.config, RetrievalConfig):
            raise InvalidInputError("retrieval= takes a memcube.RetrievalConfig.")
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.RLock()
        self._state: Any = None
        #: This cube's name among the writers of the store (see the module docstring).
        self.writer = uuid.uuid4().hex
        self._seq: dict[str, int] = {}  # per user: writes this process made
        self._marked: set[str] = set()  # users this cube has published a marker for
        self._reading: set[str] = set()  # users this cube is registered as a reader of
        self.outbox = outbox or Outbox(interval=0)
        self.outbox.channel("markers", self._publish)

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
    def state_collection(self) -> Any:
        if self._state is None:
            name = self.backend.items.name
            prefix = name[: -len("_items")] if name.endswith("_items") else name
            self._state = self.backend.collection(f"{prefix}_retrieval", cosine=False)
        return self._state

    def _marker_id(self, user_id: str) -> str:
        return f"{self.writer}:{hashlib.sha256(user_id.encode()).hexdigest()[:32]}"

    def _reader_id(self, user_id: str) -> str:
        return f"reader:{self._marker_id(user_id)}"

    def _register_reader(self, user_id: str) -> None:
        """Tell writers elsewhere that this cube caches ``user_id`` (once per user)."""
        with self._lock:
            if user_id in self._reading:
                return
        self.backend.upsert(
            self.state_collection,
            [self._reader_id(user_id)],
            embeddings=None,
            documents=None,
            metadatas=[{"reader_user": user_id, "reader": self.writer}],
        )
        with self._lock:
            self._reading.add(user_id)

    def _publish(self, user_ids: Iterable[str]) -> None:
        """Write new markers for those of these users another cube reads (called by the outbox,
        after the writes it publishes are stored)."""
        wanted = sorted(set(user_ids))
        if not wanted:
            return
        res = self.backend.get(
            self.state_collection, where={"reader_user": {"$in": wanted}}, include=("metadatas",)
        )
        read = {md["reader_user"] for md in res["metadatas"] if md.get("reader") != self.writer}
        ids = [u for u in wanted if u in read]
        if not ids:
            return
        self.backend.upsert(
            self.state_collection,
            [self._marker_id(u) for u in ids],
            embeddings=None,
            documents=None,
            # Not "user_id": single-node Chroma indexes metadata keys across all collections, so a
            # marker lookup by "user_id" walked every memory of the user (measured: 20 ms at 10k).
            metadatas=[
                {"marker_user": u, "writer": self.writer, "token": uuid.uuid4().hex} for u in ids
            ],
        )
        with self._lock:
            self._marked.update(ids)

    def _markers(self, user_id: str) -> dict[str, str]:
        """The current markers of ``user_id``'s other writers."""
        res = self.backend.get(self.state_collection, where={"marker_user": user_id})
        return {
            str(md.get("writer", "")): str(md.get("token"))
            for md in res["metadatas"]
            if md.get("writer") != self.writer
        }

    def _bump(self, user_id: str) -> int:
        seq = self._seq.get(user_id, 0) + 1
        self._seq[user_id] = seq
        return seq

    def invalidate(self, user_ids: set[str] | None = None) -> None:
        """Called by the cube after a write other than a plain insert: these users' cached
        indexes are discarded here and, through a new marker, in every other process.
        ``None`` drops every cached index (it cannot publish markers for users it doesn't know)."""
        with self._lock:
            if user_ids is None:
                for uid in self._cache:
                    self._bump(uid)
                self._cache.clear()
                return
            for uid in user_ids:
                self._bump(uid)
                self._cache.pop(uid, None)
        self.outbox.put("markers", user_ids)

    def added(
        self,
        items: Sequence[MemoryItem],
        views: Sequence[dict[str, Any]],
        documents: Sequence[str],
        embeddings: Sequence[Sequence[float]],
    ) -> None:
        """Called by the cube after it inserted new records (these items, with their
        :func:`~memcube.plaintext.records.record_view`, documents and embeddings): they are
        appended to this process's cached indexes, and other cubes reading these users are told
        through a new marker. A user whose cached index already holds one of the ids
        (an explicit id written again) has that index discarded instead (reloaded when next
        searched)."""
        by_user: dict[str, list[int]] = {}
        for n, it in enumerate(items):
            by_user.setdefault(it.user_id, []).append(n)
        with self._lock:
            for uid, rows in by_user.items():
                seq = self._bump(uid)
                entry = self._cache.get(uid)
                if entry is None or entry.local_seq != seq - 1:
                    continue  # not cached, or a load that may have missed a write: reload
                if any(items[n].id in entry.index.positions for n in rows):
                    del self._cache[uid]
                    continue
                self._append(
                    entry.index,
                    [items[n].id for n in rows],
                    [views[n] for n in rows],
                    [documents[n] for n in rows],
                    np.asarray([embeddings[n] for n in rows], dtype=np.float32),
                )
                entry.local_seq = seq
        self.outbox.put("markers", by_user)

    def usage_updated(self, views: Mapping[str, dict[str, Any]]) -> None:
        """Called by the cube after it rewrote records' usage counts (ids to their new views):
        cached copies are updated in place; nothing else changed."""
        with self._lock:
            for entry in self._cache.values():
                entry.index.replace_metadata(views)

    def close(self) -> None:
        """Withdraw this cube's markers (readers elsewhere reload once, which is harmless) and
        its reader registrations."""
        with self._lock:
            users, self._marked = sorted(self._marked), set()
            readers, self._reading = sorted(self._reading), set()
            self._cache.clear()
        if users or readers:
            try:
                self.backend.delete(
                    self.state_collection,
                    ids=[self._marker_id(u) for u in users] + [self._reader_id(u) for u in readers],
                )
            except MemCubeError:  # a server already gone: the markers are only stale hints
                log.warning("could not withdraw retrieval markers", exc_info=True)

    def _append(
        self,
        index: UserIndex,
        ids: Sequence[str],
        views: Sequence[dict[str, Any]],
        documents: Sequence[str],
        embeddings: np.ndarray,
    ) -> None:
        """Derive what ranking needs from records' views and append it to ``index``."""
        cfg = self.config
        lexical_docs, own_docs, sessions, mentions = [], [], [], []
        for md, doc in zip(views, documents):
            data = json.loads(md["json"])
            meta = data.get("metadata") or {}
            mentions.append(_timestamp(meta.get(MENTIONS_KEY)))
            context = "" if cfg.embed_context else self._context(meta)
            lexical_docs.append(f"{context}\n{doc}" if context else doc)
            speaker = meta.get(SPEAKER_KEY)
            own_docs.append(
                f"{speaker} {data['content']}" if isinstance(speaker, str) else data["content"]
            )
            sessions.append(md.get("session_id") or "")
        index.append(
            ids,
            views,
            lexical_docs,
            own_docs,
            embeddings,
            [float(md.get("time_ts") or 0.0) for md in views],
            sessions,
            mentions,
        )

    def _load(self, user_id: str) -> UserIndex:
        cfg = self.config
        res = self.backend.get(
            self.backend.items,
            where={"user_id": {"$eq": user_id}},
            include=("metadatas", "documents", "embeddings"),
        )
        ids = list(res["ids"])
        index = UserIndex(
            dimension=self.embedder.dimension,
            bm25_k1=cfg.bm25_k1,
            bm25_b=cfg.bm25_b,
            own_lexical=bool(cfg.own_lexical_weight),
        )
        if ids:
            emb = res.get("embeddings")
            self._append(
                index,
                ids,
                [record_view(metadata_to_item(md)) for md in res["metadatas"]],
                [d or "" for d in res["documents"]],
                np.asarray(emb, dtype=np.float32).reshape(len(ids), -1),
            )
        return index

    def _index(self, user_id: str) -> UserIndex:
        self._register_reader(user_id)  # before markers and data: see the module docstring
        markers = self._markers(user_id)
        with self._lock:
            seq = self._seq.get(user_id, 0)
            entry = self._cache.get(user_id)
            if (
                entry is not None
                and entry.local_seq == seq
                and entry.markers == markers
                and time.monotonic() - entry.loaded_at < self.config.max_cache_seconds
            ):
                self._cache.move_to_end(user_id)
                return entry.index
        loaded_at = time.monotonic()
        index = self._load(user_id)
        with self._lock:
            self._cache[user_id] = _Entry(
                index, local_seq=seq, markers=markers, loaded_at=loaded_at
            )
            self._cache.move_to_end(user_id)
            total = sum(len(e.index) for e in self._cache.values())
            while total > self.config.max_cached_items and len(self._cache) > 1:
                _, dropped = self._cache.popitem(last=False)
                total -= len(dropped.index)
        return index

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
                    res = self.backend.get(
                        self.backend.items, where=chroma_part(branch), include=("metadatas",)
                    )
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

    def search(
        self,
        query: str,
        *,
        where: dict[str, Any] | None,
        k: int,
        live_only: bool = False,
        learned: Personalization | None = None,
        trace: list[Candidate] | None = None,
    ) -> list[SearchHit]:
        """The ``k`` best hits for ``query`` among the records ``where`` admits, best first
        (with ``live_only``, expired records are left out before hits are compared). ``learned``
        reweighs the order (see :mod:`memcube.plaintext.ranking_profile`); ``trace`` receives
        every calibrated candidate, best first (what feedback learns from)."""
        owners = self._owners(where) if self.config.hybrid else None
        if owners is None:
            return self._dense_only(query, where=where, k=k)
        indexes = [self._index(owner) for owner in sorted(owners)]
        qv = None
        if self.config.dense_weight:  # embedded outside the lock: the slow part of a search
            qv = np.asarray(self.embedder.embed_query(query), dtype=np.float32)
            qv = qv / max(float(np.linalg.norm(qv)), 1e-12)
        # Under the lock: this process's writes append to these indexes in place.
        with self._lock:
            parts = [
                (index, admitted) for index in indexes if (admitted := index.admit(where)).size
            ]
            if not parts:
                return []
            scores, signals = self._score(query, qv, parts)
            # Row i of the scores is position admitted[i - starts[p]] of part p.
            starts = np.cumsum([0] + [admitted.size for _, admitted in parts])
            tokens = tokenize(query)
            candidates: list[Candidate] = []
            now = time.time()
            for i in (int(x) for x in np.argsort(-scores, kind="stable")):
                if len(candidates) == _pool(k):
                    break
                p = int(np.searchsorted(starts, i, side="right")) - 1
                index, admitted = parts[p]
                pos = int(admitted[i - starts[p]])
                if live_only and float(index.metadatas[pos].get("expires_ts") or math.inf) <= now:
                    continue  # expired: it must not crowd out a live memory
                first = {name: float(v[i]) for name, v in signals.items()}
                if len(signals) > 1:
                    first["fused"] = float(scores[i])
                candidates.append(
                    self._candidate(i, index, pos, tokens, first, dense=qv is not None)
                )
            if learned is not None and learned.words:
                self._recall_voted(learned, tokens, candidates, parts, starts, signals, scores)
            if self.config.time_weight:
                self._exact_time(query, candidates, parts, starts)
            ranked = calibrate(query, candidates, learned)
            if trace is not None:
                trace.extend(ranked)
            ranked = ranked[:k]
            hits = []
            for c in ranked:
                p = int(np.searchsorted(starts, c.key, side="right")) - 1
                index, admitted = parts[p]
                item = metadata_to_item(index.metadatas[int(admitted[c.key - starts[p]])])
                hits.append(SearchHit(item=item, score=c.score, signals=c.signals))
            return hits

    def _recall_voted(
        self,
        learned: Personalization,
        tokens: list[str],
        candidates: list[Candidate],
        parts: list[tuple[UserIndex, np.ndarray]],
        starts: np.ndarray,
        signals: dict[str, np.ndarray],
        scores: np.ndarray,
    ) -> None:
        """The ``feedback`` signal: how well the query matches the earlier queries a memory was
        voted useful for (IDF-weighted share of the query's words among theirs). A voted memory
        matching at least ``RECALL_MATCH`` joins the candidates even when the first stage left
        it out (at most ``RECALL_MAX``): what a user confirmed once is found again for a
        similar question."""
        match: dict[str, float] = {}
        extra: list[tuple[float, int, int]] = []  # (match, part, position)
        have = {c.memory_id for c in candidates}
        for p, (index, admitted) in enumerate(parts):
            idf = _idf_of(index)
            for mid, words in learned.words.items():
                pos = index.positions.get(mid)
                if pos is None:
                    continue
                j = int(np.searchsorted(admitted, pos))
                if j >= admitted.size or int(admitted[j]) != pos:
                    continue
                m = coverage(tokens, words, idf)
                if m <= 0:
                    continue
                match[mid] = m
                if mid not in have and m >= RECALL_MATCH:
                    md = index.metadatas[pos]
                    if float(md.get("expires_ts") or math.inf) > time.time():
                        extra.append((m, p, pos))
        extra.sort(key=lambda e: -e[0])
        dense = any(c.vector is not None for c in candidates)
        for _, p, pos in extra[:RECALL_MAX]:
            index, admitted = parts[p]
            i = int(starts[p]) + int(np.searchsorted(admitted, pos))
            first = {name: float(v[i]) for name, v in signals.items()}
            if len(signals) > 1:
                first["fused"] = float(scores[i])
            candidates.append(self._candidate(i, index, pos, tokens, first, dense=dense))
        for c in candidates:
            if c.memory_id in match:
                c.signals["feedback"] = match[c.memory_id]

    @staticmethod
    def _exact_time(
        query: str,
        candidates: list[Candidate],
        parts: list[tuple[UserIndex, np.ndarray]],
        starts: np.ndarray,
    ) -> None:
        """Time signal of the candidates: 1 when the memory happened or mentions a date in a
        period the query names exactly ("on 15 March": that day), 0.2 when only near it (within
        the first stage's slack of a few days)."""
        mentions = []
        for c in candidates:
            p = int(np.searchsorted(starts, c.key, side="right")) - 1
            index, admitted = parts[p]
            mentions.append(float(index.mention_ts[int(admitted[c.key - starts[p]])]))
        years = {
            datetime.fromtimestamp(t, timezone.utc).year
            for c, m in zip(candidates, mentions)
            for t in (c.when, m)
            if math.isfinite(t) and t > 0
        }
        periods = exact_periods(query, years) if years else []
        for c, said in zip(candidates, mentions):
            near = c.signals.pop("time", 0.0) > 0
            if any(a <= t < b for a, b in periods for t in (c.when, said)):
                c.signals["time"] = 1.0
            elif near:
                c.signals["time"] = 0.2

    def _candidate(
        self,
        key: int,
        index: UserIndex,
        pos: int,
        tokens: list[str],
        signals: dict[str, float],
        *,
        dense: bool,
    ) -> Candidate:
        """The calibration features of record ``pos`` of ``index`` (see
        :mod:`memcube.plaintext.calibration`)."""
        md = index.metadatas[pos]
        data = json.loads(md["json"])
        meta = data.get("metadata") or {}
        content = str(data.get("content", ""))
        speaker = meta.get(SPEAKER_KEY)
        own = content_tokens(f"{speaker} {content}" if isinstance(speaker, str) else content)
        for merged in (data.get("provenance") or {}).get("detail", {}).get("merged", []):
            if isinstance(merged, dict) and isinstance(merged.get("content"), str):
                own |= content_tokens(merged["content"])  # merged wordings stay findable
        context = content_tokens(self._context(meta)) - own
        lexicon = index.lexical
        unknown = math.log(1.0 + (lexicon.n_docs + 0.5) / 0.5)

        def idf(term: str) -> float:
            return lexicon.idf(term) or unknown

        if self.config.lexical_weight or self.config.own_lexical_weight:
            signals["coverage"] = coverage(tokens, own, idf)
            signals["context_coverage"] = coverage(tokens, own | context, idf) - signals["coverage"]
        if not dense:
            signals.pop("dense", None)
        role = meta.get("role")
        return Candidate(
            key=key,
            content=content,
            role=role if isinstance(role, str) else None,
            speaker_key=f"{md.get('user_id')}|{role if role == 'assistant' else 'user'}|"
            f"{speaker if isinstance(speaker, str) else ''}",
            when=float(index.event_ts[pos]),
            vector=index.embeddings[pos] if dense else None,
            signals=signals,
            message_ids=frozenset((data.get("provenance") or {}).get("message_ids") or ()),
            statement=meta.get("statement") if isinstance(meta.get("statement"), str) else None,
            session=md.get("session_id") or None,
            memory_id=index.ids[pos],
        )

    def _score(
        self, query: str, qv: np.ndarray | None, parts: list[tuple[UserIndex, np.ndarray]]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        cfg = self.config
        size = sum(a.size for _, a in parts)
        total = np.zeros(size, dtype=np.float64)
        signals: dict[str, np.ndarray] = {}
        if qv is not None:
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
                said = np.concatenate([e.mention_ts[a] for e, a in parts])
                inside = np.zeros(size, dtype=bool)
                for start, end in periods:
                    inside |= (ts >= start) & (ts < end)
                    inside |= (said >= start) & (said < end)  # NaN (no date) compares False
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

    def _dense_only(self, query: str, *, where: dict[str, Any] | None, k: int) -> list[SearchHit]:
        """Chroma's nearest neighbours under the stored-key part of ``where``; when the clause
        names other keys, the neighbours are checked here and the query widened until ``k``
        pass or Chroma has no more."""
        vector = self.embedder.embed_query(query)
        stored, check = chroma_part(where), needs_check(where)
        n = max(4 * k, 32) if check else k
        while True:
            res = self.backend.query(self.backend.items, vector, n=n, where=stored)
            found = list(zip(res["metadatas"][0], res["distances"][0]))
            hits: list[SearchHit] = []
            for md, dist in found:
                item = metadata_to_item(md)
                if check and not matches(where, record_view(item)):
                    continue
                sim = 1.0 - float(dist)
                score = sigmoid(BIAS + WEIGHTS["dense"] * sim)  # the calibrated scale
                hits.append(SearchHit(item=item, score=score, signals={"dense": sim}))
                if len(hits) == k:
                    return hits
            if len(found) < n:
                return hits
            n *= 4

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
