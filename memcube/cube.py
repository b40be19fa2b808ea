"""``MemCube``: the one facade. Every read and write of every adapter goes through it, so scoping,
versioning, usage counting and (later) governance live in exactly one place."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydantic import ValidationError

from memcube.config import CubeManifest
from memcube.errors import (
    CubeClosedError,
    CubeLockedError,
    EmbedderMismatchError,
    FrozenItemError,
    InvalidInputError,
    ItemNotFoundError,
    VersionNotFoundError,
)
from memcube.items import (
    HIDDEN_STATES,
    LifecycleState,
    MemoryItem,
    MemoryType,
    Provenance,
    SearchHit,
    as_utc,
    build_item,
    check_scope_id,
    translate_validation_error,
    utcnow,
)
from memcube.plaintext.backend import ChromaBackend
from memcube.plaintext.embedder import (
    DEFAULT_MODEL_ID,
    Embedder,
    check_vectors,
    default_embedder,
)
from memcube.plaintext.records import (
    and_,
    item_to_metadata,
    metadata_to_item,
    translate_filters,
    ts,
)
from memcube.plaintext.retrieval import RetrievalConfig, Retriever
from memcube.scheduler import SchedulerConfig, should_promote

#: Items embedded and written per Chroma call in ``add_many``.
DEFAULT_BATCH_SIZE = 256
#: ``add_many`` shows a progress bar from this many items on (unless ``progress`` says otherwise).
PROGRESS_THRESHOLD = 500
#: Searches buffer access counts in memory and write them back after this many hits.
USAGE_FLUSH_EVERY = 256
LOCK_NAME = ".memcube.lock"

_UPDATABLE = {
    "content",
    "metadata",
    "tags",
    "importance",
    "memory_type",
    "event_time",
    "expires_at",
    "state",
    "agent_id",
    "session_id",
    "provenance",
}


def _history_id(item_id: str, version: int) -> str:
    return f"{item_id}@{version}"


def _expiry(ttl: timedelta | float | int | None, expires_at: datetime | None) -> datetime | None:
    if ttl is not None and expires_at is not None:
        raise InvalidInputError("pass either ttl or expires_at, not both.")
    if ttl is None:
        return None if expires_at is None else as_utc(expires_at)
    seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else float(ttl)
    if not seconds > 0:
        raise InvalidInputError(f"ttl must be a positive duration, got {ttl!r}.")
    return utcnow() + timedelta(seconds=seconds)


class MemCube:
    """A memory cube: plaintext memories in Chroma, plus the folder that holds the manifest,
    KV caches and adapters.

    Example:
        >>> import tempfile
        >>> with MemCube.open(tempfile.mkdtemp()) as cube:
        ...     _ = cube.add("I live in Lisbon", user_id="alice")
        ...     cube.search("where does alice live?", user_id="alice", k=1)[0].item.content
        'I live in Lisbon'
    """

    def __init__(self) -> None:  # use MemCube.open()
        raise TypeError("use MemCube.open(path, ...) to create or open a cube")

    # ------------------------------------------------------------------ lifecycle of the object
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        chroma_url: str | None = None,
        embedder: Embedder | None = None,
        owner: str | None = None,
        retrieval: RetrievalConfig | None = None,
        lock_timeout: float = 0.0,
        scheduler: SchedulerConfig | None = None,
    ) -> MemCube:
        """Create the cube at ``path`` or open the one there.

        Args:
            path: folder for the manifest (``cube.json``), KV caches and adapters; in embedded
                mode also the Chroma database (``path/chroma``).
            chroma_url: ``http://host:port`` of a Chroma server. The memories then live on the
                server; every other line of code is the same.
            embedder: any :class:`~memcube.plaintext.embedder.Embedder`; defaults to the bundled
                MiniLM. A cube refuses an embedder other than the one it was built with.
            owner: recorded in a new cube's manifest.
            retrieval: scoring parameters (see :class:`RetrievalConfig`).
            lock_timeout: seconds to wait for another process's write lock on an embedded cube.
            scheduler: working-memory and activation policies (see
                :class:`~memcube.scheduler.SchedulerConfig`).

        Raises:
            CubeLockedError: another process has this embedded cube open.
            EmbedderMismatchError: ``embedder`` differs from the one the cube was built with.
            CorruptManifestError, UnsupportedVersionError: ``cube.json`` cannot be used.
        """
        self = object.__new__(cls)
        self.path = Path(path).expanduser().resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        self.chroma_url = chroma_url
        self._closed = True
        self._lock = threading.RLock()
        self._file_lock: FileLock | None = None
        if chroma_url is None:
            # Two processes writing one embedded Chroma would corrupt it; refuse the second.
            self._file_lock = FileLock(str(self.path / LOCK_NAME), is_singleton=False)
            try:
                self._file_lock.acquire(timeout=lock_timeout)
            except Timeout:
                raise CubeLockedError(
                    f"{self.path} is open in another process (or another MemCube object). "
                    "Close it there, share one MemCube object, or run a Chroma server and open "
                    "the cube with chroma_url=... from every process."
                ) from None
            creation_lock = None
        else:
            # Server mode: many processes may open this folder at once. The manifest names the
            # server collections, so it is created under a short lock: all of them agree on it.
            creation_lock = FileLock(str(self.path / LOCK_NAME), is_singleton=False)
            try:
                creation_lock.acquire(timeout=max(lock_timeout, 30.0))
            except Timeout:
                raise CubeLockedError(
                    f"{self.path} is held by an embedded MemCube in another process; open it "
                    "with chroma_url=... everywhere, or close the embedded one."
                ) from None
        try:
            manifest = CubeManifest.read(self.path)
            emb = embedder
            if manifest is None:
                emb = emb or default_embedder()
                manifest = CubeManifest(
                    owner=owner, embedder_id=emb.model_id, embedding_dimension=emb.dimension
                )
                manifest.collection_prefix = f"mc_{manifest.cube_id}"
                manifest.write(self.path)
            else:
                if emb is None:
                    if manifest.embedder_id != DEFAULT_MODEL_ID:
                        raise EmbedderMismatchError(
                            f"this cube was built with embedder {manifest.embedder_id!r}; "
                            "pass embedder=... with that model to open it."
                        )
                    emb = default_embedder()
                if emb.model_id != manifest.embedder_id or emb.dimension != manifest.embedding_dimension:
                    raise EmbedderMismatchError(
                        f"this cube was built with {manifest.embedder_id!r} "
                        f"({manifest.embedding_dimension}-d) but was opened with {emb.model_id!r} "
                        f"({emb.dimension}-d). Open it with the original embedder, or export it "
                        "and import it into a new cube to re-embed."
                    )
            self.manifest = manifest
            self.embedder = emb
            self.backend = ChromaBackend(self.path, chroma_url=chroma_url, prefix=manifest.collection_prefix)
            self.retriever = Retriever(self.backend, emb, retrieval)
        except BaseException:
            if self._file_lock is not None:
                self._file_lock.release()
            raise
        finally:
            if creation_lock is not None:
                creation_lock.release()
        self._usage: dict[str, tuple[int, datetime]] = {}
        self._usage_pending = 0
        self.scheduler_config = (scheduler or SchedulerConfig()).validate()
        self._closed = False
        return self

    def close(self) -> None:
        """Flush buffered usage counts and release the client and the lock. Idempotent."""
        if self._closed:
            return
        with self._lock:
            try:
                self.flush_usage()
            finally:
                self._closed = True
                self.backend.close()
                if self._file_lock is not None:
                    self._file_lock.release()

    def __enter__(self) -> MemCube:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.chroma_url or "embedded"
        return f"MemCube(path={str(self.path)!r}, backend={where!r}, cube_id={self.manifest.cube_id!r})"

    @property
    def cube_id(self) -> str:
        return self.manifest.cube_id

    def _check_open(self) -> None:
        if self._closed:
            raise CubeClosedError("this MemCube is closed; open it again with MemCube.open(path).")

    # ------------------------------------------------------------------ writes
    def add(
        self,
        content: str,
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        memory_type: MemoryType | str = MemoryType.LONG_TERM,
        metadata: dict[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        event_time: datetime | None = None,
        importance: float = 0.5,
        ttl: timedelta | float | None = None,
        expires_at: datetime | None = None,
        provenance: Provenance | dict[str, Any] | None = None,
        id: str | None = None,
    ) -> MemoryItem:
        """Store one memory and return it (with its id).

        Raises:
            EmptyContentError, ContentTooLargeError, InvalidMetadataError, InvalidUserIdError:
                the input was rejected and nothing was written.
        """
        fields = dict(
            content=content,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            memory_type=memory_type,
            metadata=metadata,
            tags=tags,
            event_time=event_time,
            importance=importance,
            ttl=ttl,
            expires_at=expires_at,
            provenance=provenance,
            id=id,
        )
        return self.add_many([fields], progress=False)[0]

    def add_many(
        self,
        items: Iterable[MemoryItem | dict[str, Any]],
        *,
        user_id: str | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: bool | None = None,
        on_batch: Callable[[list[MemoryItem]], None] | None = None,
    ) -> list[MemoryItem]:
        """Store many memories with batched embedding.

        ``items`` are :class:`MemoryItem` objects or dicts with the keyword arguments of
        :meth:`add` (``content`` required; ``user_id`` defaults to the ``user_id`` given here).
        Every item is validated before anything is written, so bad input changes nothing. Each
        batch is written in one Chroma call: after a crash, every batch whose call returned is
        stored whole. ``on_batch(items)`` is called after each batch is stored (acknowledged), e.g.
        to checkpoint a long import.
        """
        self._check_open()
        if batch_size < 1:
            raise InvalidInputError("batch_size must be at least 1.")
        prepared = [self._to_item(x, user_id) for x in items]
        ids = [it.id for it in prepared]
        if len(set(ids)) != len(ids):
            raise InvalidInputError("add_many got the same id twice; ids must be unique.")
        show = progress if progress is not None else len(prepared) >= PROGRESS_THRESHOLD
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(prepared), desc="memcube add", unit="item")
        try:
            for start in range(0, len(prepared), batch_size):
                batch = prepared[start : start + batch_size]
                self._write(batch)
                if on_batch is not None:
                    on_batch(batch)
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        return prepared

    def _to_item(self, raw: MemoryItem | dict[str, Any], user_id: str | None) -> MemoryItem:
        if isinstance(raw, MemoryItem):
            return raw
        if not isinstance(raw, dict):
            raise InvalidInputError(
                f"add_many takes MemoryItem objects or dicts, got {type(raw).__name__}."
            )
        fields = {k: v for k, v in raw.items() if v is not None}
        unknown = set(fields) - {
            "content", "user_id", "agent_id", "session_id", "memory_type", "metadata", "tags",
            "event_time", "importance", "ttl", "expires_at", "provenance", "id",
        }  # fmt: skip
        if unknown:
            raise InvalidInputError(f"unknown memory fields: {sorted(unknown)}.")
        fields.setdefault("user_id", user_id)
        if fields.get("user_id") is None:
            raise InvalidInputError("every memory needs a user_id (pass user_id=... to add_many).")
        expires = _expiry(fields.pop("ttl", None), fields.pop("expires_at", None))
        if expires is not None:
            fields["expires_at"] = expires
        if "tags" in fields:
            if isinstance(fields["tags"], str) or not isinstance(fields["tags"], (list, tuple)):
                raise InvalidInputError("tags must be a list of strings.")
            fields["tags"] = list(fields["tags"])
        return build_item(**fields)

    def _write(self, items: Sequence[MemoryItem], previous: Sequence[MemoryItem] | None = None) -> None:
        """Embed and upsert current versions. One Chroma call per batch: all or nothing.
        ``previous`` are the records being replaced (same order), so their stale keys are cleared."""
        if not items:
            return
        texts = [self.retriever.index_text(it) for it in items]
        vectors = self.embedder.embed_documents(texts)
        check_vectors(vectors, self.manifest.embedding_dimension, self.embedder.model_id)
        with self._lock:
            self.backend.upsert(
                self.backend.items,
                [it.id for it in items],
                embeddings=vectors,
                documents=texts,
                metadatas=[
                    item_to_metadata(it, previous[i] if previous else None) for i, it in enumerate(items)
                ],
            )
        self.retriever.invalidate({it.user_id for it in items})

    def update(
        self,
        id: str,
        *,
        user_id: str | None = None,
        content: str | None = None,
        metadata: dict[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        importance: float | None = None,
        memory_type: MemoryType | str | None = None,
        event_time: datetime | None = None,
        expires_at: datetime | None = None,
        state: LifecycleState | str | None = None,
        provenance: Provenance | dict[str, Any] | None = None,
    ) -> MemoryItem:
        """Write a new version of a memory; the previous version stays in :meth:`history`.

        Only the fields passed change. ``metadata`` replaces the metadata dict.

        Raises:
            ItemNotFoundError: no such id (for this user).
            FrozenItemError: the item is frozen.
        """
        changes = {
            k: v
            for k, v in dict(
                content=content,
                metadata=metadata,
                tags=list(tags) if tags is not None else None,
                importance=importance,
                memory_type=memory_type,
                event_time=event_time,
                expires_at=expires_at,
                state=state,
                provenance=provenance,
            ).items()
            if v is not None
        }
        if not changes:
            raise InvalidInputError("update needs at least one field to change.")
        return self._new_version(id, changes, user_id=user_id)

    def _new_version(
        self,
        id: str,
        changes: dict[str, Any],
        *,
        user_id: str | None,
        allow_frozen: bool = False,
        old_state: LifecycleState = LifecycleState.SUPERSEDED,
    ) -> MemoryItem:
        self._check_open()
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise InvalidInputError(f"cannot update fields {sorted(unknown)}.")
        with self._lock:
            current = self.get(id, user_id=user_id)
            if current.state == LifecycleState.FROZEN and not allow_frozen:
                raise FrozenItemError(
                    f"memory {id} is frozen; call cube.unfreeze({id!r}) before updating it."
                )
            data = current.model_dump()
            data.update(changes)
            data["version"] = current.version + 1
            data["updated_at"] = utcnow()
            data["content_hash"] = ""
            try:
                new = MemoryItem.model_validate(data)
            except ValidationError as exc:
                raise translate_validation_error(exc) from None
            # History first: a crash between the two writes leaves an extra copy of the old
            # version in history, never a lost one.
            old = current.model_copy(update={"state": old_state})
            self._put_history([old])
            if new.content != current.content:
                self._write([new], previous=[current])
            else:
                self.backend.update_metadata(
                    self.backend.items, [new.id], [item_to_metadata(new, current)]
                )
                self.retriever.invalidate({new.user_id})
        return new

    def _put_history(self, items: Sequence[MemoryItem]) -> None:
        self.backend.upsert(
            self.backend.history,
            [_history_id(it.id, it.version) for it in items],
            embeddings=None,
            documents=None,
            metadatas=[
                {"json": it.model_dump_json(), "item_id": it.id, "version": it.version, "user_id": it.user_id}
                for it in items
            ],
        )

    def delete(self, id: str, *, user_id: str | None = None, hard: bool = False) -> None:
        """Archive a memory (hidden from search, kept with its history), or purge it with
        ``hard=True`` (the item and every stored version are removed)."""
        self._check_open()
        with self._lock:
            item = self.get(id, user_id=user_id, include_archived=True)
            if hard:
                self.backend.delete(self.backend.history, where={"item_id": item.id})
                self.backend.delete(self.backend.items, ids=[item.id])
                self.retriever.invalidate({item.user_id})
            elif item.state != LifecycleState.ARCHIVED:
                self._new_version(
                    id,
                    {"state": LifecycleState.ARCHIVED},
                    user_id=user_id,
                    allow_frozen=True,
                    old_state=item.state,
                )

    @staticmethod
    def keyed_id(*parts: str) -> str:
        """A deterministic memory id for a composite key, e.g. a LangGraph store's namespace
        labels plus its key: adapters that address memories by key map one key to one memory.

        Example:
            >>> MemCube.keyed_id("alice", "prefs", "theme") == MemCube.keyed_id("alice", "prefs", "theme")
            True
        """
        import json
        import uuid

        if not parts or any(not isinstance(p, str) for p in parts):
            raise InvalidInputError("keyed_id takes one or more strings.")
        return uuid.uuid5(uuid.NAMESPACE_URL, "memcube:" + json.dumps(list(parts))).hex

    def set_expiry(
        self,
        ids: Sequence[str],
        *,
        user_id: str,
        ttl: timedelta | float | None = None,
        expires_at: datetime | None = None,
    ) -> list[MemoryItem]:
        """Set when memories expire, in place (no new version: refreshing a TTL on read is
        bookkeeping, like usage counts, not an edit). ``ttl`` counts from now; with neither
        ``ttl`` nor ``expires_at`` the memories never expire.

        Raises:
            ItemNotFoundError: an id does not exist for ``user_id``; nothing was changed.
        """
        self._check_open()
        check_scope_id(user_id, "user_id", required=True)
        when = _expiry(ttl, expires_at)
        wanted = list(dict.fromkeys(ids))
        with self._lock:
            found = self.get_many(wanted, user_id=user_id)
            if len(found) != len(wanted):
                missing = sorted(set(wanted) - {it.id for it in found})
                raise ItemNotFoundError(f"no memories {missing} for user {user_id!r}.")
            if not found:
                return []
            updated = [it.model_copy(update={"expires_at": when}) for it in found]
            self.backend.update_metadata(
                self.backend.items, [it.id for it in updated], [item_to_metadata(it) for it in updated]
            )
            self.retriever.invalidate({user_id})
        return updated

    # ------------------------------------------------------------------ reads
    def get(self, id: str, *, user_id: str | None = None, include_archived: bool = True) -> MemoryItem:
        """Return the current version of a memory.

        With ``user_id`` the read is scoped: another user's memory is reported as not found.
        """
        self._check_open()
        if not isinstance(id, str) or not id:
            raise InvalidInputError(f"memory ids are non-empty strings, got {id!r}.")
        check_scope_id(user_id, "user_id")
        res = self.backend.get(self.backend.items, ids=[id])
        if not res["ids"]:
            raise ItemNotFoundError(f"no memory with id {id!r}.")
        item = metadata_to_item(res["metadatas"][0])
        if user_id is not None and item.user_id != user_id:
            raise ItemNotFoundError(f"no memory with id {id!r} for user {user_id!r}.")
        if not include_archived and item.state in HIDDEN_STATES:
            raise ItemNotFoundError(f"memory {id!r} is {item.state.value}.")
        return item

    def get_many(self, ids: Sequence[str], *, user_id: str | None = None) -> list[MemoryItem]:
        """Current versions of the ids that exist (and belong to ``user_id``), in the given order."""
        self._check_open()
        check_scope_id(user_id, "user_id")
        if not ids:
            return []
        res = self.backend.get(self.backend.items, ids=list(ids))
        found = {i: metadata_to_item(md) for i, md in zip(res["ids"], res["metadatas"])}
        return [
            found[i] for i in ids if i in found and (user_id is None or found[i].user_id == user_id)
        ]

    def history(self, id: str, *, user_id: str | None = None) -> list[MemoryItem]:
        """Every version of a memory, oldest first, ending with the current one."""
        current = self.get(id, user_id=user_id)
        res = self.backend.get(self.backend.history, where={"item_id": id})
        old = [metadata_to_item(md) for md in res["metadatas"]]
        versions = {it.version: it for it in old if it.version < current.version}
        return [versions[v] for v in sorted(versions)] + [current]

    def get_version(self, id: str, version: int, *, user_id: str | None = None) -> MemoryItem:
        for it in self.history(id, user_id=user_id):
            if it.version == version:
                return it
        raise VersionNotFoundError(f"memory {id!r} has no version {version}.")

    def _where(
        self,
        *,
        user_id: str | None,
        agent_id: str | None = None,
        session_id: str | None = None,
        filters: dict[str, Any] | None = None,
        memory_types: Sequence[MemoryType | str] | None = None,
        tags: Sequence[str] | None = None,
        time_range: tuple[datetime | None, datetime | None] | None = None,
        include_archived: bool = False,
        check_expiry: bool = True,
    ) -> dict[str, Any] | None:
        """The Chroma ``where`` for a read. With ``check_expiry=False`` expired items are not
        excluded here and the caller must drop them (search does, which keeps its filter cheap)."""
        check_scope_id(agent_id, "agent_id")
        check_scope_id(session_id, "session_id")
        clauses: list[dict[str, Any] | None] = []
        if user_id is not None:
            clauses.append({("user_id" if include_archived else "live_user_id"): {"$eq": user_id}})
        elif not include_archived:
            clauses.append({"live": {"$eq": True}})
        if agent_id is not None:
            clauses.append({"agent_id": {"$eq": agent_id}})
        if session_id is not None:
            clauses.append({"session_id": {"$eq": session_id}})
        if not include_archived and check_expiry:
            clauses.append({"expires_ts": {"$gt": utcnow().timestamp()}})
        if memory_types:
            try:
                values = sorted({MemoryType(t).value for t in memory_types})
            except ValueError as exc:
                raise InvalidInputError(f"{exc}; memory types are {[t.value for t in MemoryType]}.") from None
            clauses.append({"memory_type": {"$in": values}})
        for tag in tags or ():
            clauses.append({f"tag:{tag}": {"$eq": True}})
        if time_range is not None:
            start, end = time_range
            if start is not None:
                clauses.append({"time_ts": {"$gte": ts(start)}})
            if end is not None:
                clauses.append({"time_ts": {"$lte": ts(end)}})
        clauses.append(translate_filters(filters))
        return and_(*clauses)

    def search(
        self,
        query: str,
        *,
        user_id: str,
        k: int = 10,
        filters: dict[str, Any] | None = None,
        memory_types: Sequence[MemoryType | str] | None = None,
        tags: Sequence[str] | None = None,
        agent_id: str | None = None,
        session_id: str | None = None,
        time_range: tuple[datetime | None, datetime | None] | None = None,
        include_archived: bool = False,
        count_usage: bool = True,
    ) -> list[SearchHit]:
        """The ``k`` memories of ``user_id`` that best match ``query``, best first.

        Args:
            filters: conditions on header fields or metadata keys, e.g.
                ``{"memory_type": "fact", "year": {"$gte": 2020}}``.
            memory_types: only these kinds of memory.
            tags: only memories carrying every one of these tags.
            time_range: ``(start, end)`` on when the memory happened (``event_time``, falling back
                to when it was recorded); either end may be ``None``.
            include_archived: also return archived, superseded and expired memories.
            count_usage: count the hits as accessed (usage signal of the scheduler). The
                scheduler passes ``False`` and counts only the memories it selects.
        """
        self._check_open()
        check_scope_id(user_id, "user_id", required=True)
        if not isinstance(query, str) or not query.strip():
            raise InvalidInputError("search needs a non-empty query string.")
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}.")
        where = self._where(
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            filters=filters,
            memory_types=memory_types,
            tags=tags,
            time_range=time_range,
            include_archived=include_archived,
            check_expiry=False,
        )
        hits = self.retriever.search(query, where=where, k=k)
        if not include_archived:
            # Expired items are dropped here rather than in the where clause (see _where); the
            # lifecycle sweep archives them, so widening is rarely needed.
            want = k
            while True:
                live = [h for h in hits if not h.item.is_expired]
                if len(live) == len(hits) or len(hits) < want:
                    hits = live[:k]
                    break
                want *= 4
                hits = self.retriever.search(query, where=where, k=want)
        if count_usage:
            self._record_usage([h.item.id for h in hits])
        return hits

    def items(
        self,
        *,
        user_id: str | None,
        include_archived: bool = False,
        filters: dict[str, Any] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        tags: Sequence[str] | None = None,
    ) -> Iterator[MemoryItem]:
        """Iterate over a user's memories (every user's with ``user_id=None``), oldest id first.
        ``tags`` keeps only memories carrying every one of these tags."""
        self._check_open()
        check_scope_id(user_id, "user_id")
        where = self._where(
            user_id=user_id, filters=filters, tags=tags, include_archived=include_archived
        )
        offset = 0
        while True:
            res = self.backend.get(self.backend.items, where=where, limit=batch_size, offset=offset)
            if not res["ids"]:
                return
            for md in res["metadatas"]:
                yield metadata_to_item(md)
            offset += len(res["ids"])

    def __iter__(self) -> Iterator[MemoryItem]:
        return self.items(user_id=None)

    def count(self, *, user_id: str | None = None, include_archived: bool = False) -> int:
        """How many memories there are (for one user, or in the whole cube)."""
        self._check_open()
        check_scope_id(user_id, "user_id")
        if user_id is None and include_archived:
            return self.backend.count(self.backend.items)
        where = self._where(user_id=user_id, include_archived=include_archived)
        return len(self.backend.get(self.backend.items, where=where, include=())["ids"])

    def user_ids(self) -> list[str]:
        """Every user that owns at least one memory in this cube."""
        self._check_open()
        seen: set[str] = set()
        for item in self.items(user_id=None, include_archived=True):
            seen.add(item.user_id)
        return sorted(seen)

    # ------------------------------------------------------------------ interchange (MIP)
    def _restore(self, records: Sequence[Sequence[MemoryItem]]) -> None:
        """Write memories with their stored versions verbatim (``records``: per memory, its
        versions oldest first, current last). Used by :mod:`memcube.interchange`, which
        validates everything first; the current versions are embedded with this cube's embedder."""
        self._check_open()
        with self._lock:
            old = [v for versions in records for v in versions[:-1]]
            for start in range(0, len(old), DEFAULT_BATCH_SIZE):
                self._put_history(old[start : start + DEFAULT_BATCH_SIZE])
            self._write([versions[-1] for versions in records])

    def export(self, path: str | Path, *, user_id: str | None = None, signing_key: Any = None, **kwargs: Any) -> Any:
        """Write this cube (or one user's part) to a MIP archive; see
        :func:`memcube.interchange.export_cube`. Returns an ``ExportReport``."""
        from memcube.interchange import export_cube

        return export_cube(self, path, user_id=user_id, signing_key=signing_key, **kwargs)

    @classmethod
    def import_archive(
        cls,
        path: str | Path,
        into: MemCube | str | Path,
        *,
        on_conflict: str = "skip",
        trusted_keys: Any = None,
        **kwargs: Any,
    ) -> tuple[MemCube, Any]:
        """Import a MIP archive (or a MemOS / LangGraph / mem0 export) into ``into`` and return
        ``(cube, report)``; see :func:`memcube.interchange.import_archive`."""
        from memcube.interchange import import_archive

        return import_archive(path, into, on_conflict=on_conflict, trusted_keys=trusted_keys, **kwargs)  # type: ignore[arg-type]

    async def aexport(self, path: str | Path, **kwargs: Any) -> Any:
        """Async :meth:`export`."""
        return await asyncio.to_thread(self.export, path, **kwargs)

    @classmethod
    async def aimport_archive(cls, path: str | Path, into: MemCube | str | Path, **kwargs: Any) -> tuple[MemCube, Any]:
        """Async :meth:`import_archive`."""
        return await asyncio.to_thread(cls.import_archive, path, into, **kwargs)

    # ------------------------------------------------------------------ the OS parts
    def add_messages(
        self,
        messages: Iterable[Any],
        *,
        user_id: str,
        agent_id: str | None = None,
        session_id: str | None = None,
        timestamp: datetime | None = None,
        extractor: Any = None,
        roles: Sequence[str] | None = None,
    ) -> list[MemoryItem]:
        """Read a conversation into memories through the reader and store them.

        ``messages`` may be LangChain messages, LlamaIndex ``ChatMessage`` objects or
        ``{"role": ..., "content": ...}`` dicts. A message's own time wins over ``timestamp``,
        which defaults to now. ``roles`` names the speakers whose turns are remembered
        (normalized roles such as ``"user"``, ``"assistant"``; default: the reader's).
        """
        from memcube.reader import REMEMBERED_ROLES, read_messages

        self._check_open()
        check_scope_id(user_id, "user_id", required=True)
        items = read_messages(
            messages,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            timestamp=timestamp,
            extractor=extractor,
            roles=REMEMBERED_ROLES if roles is None else tuple(roles),
        )
        return self.add_many(items, progress=False)

    def working_memory(
        self, query: str, *, user_id: str, token_budget: int = 512, **kwargs: Any
    ) -> list[MemoryItem]:
        """The memories the scheduler puts in a prompt about ``query``, within ``token_budget``
        tokens, most useful first. Adapters use this; they select nothing themselves."""
        from memcube.scheduler import working_memory

        return working_memory(self, query, user_id=user_id, token_budget=token_budget, **kwargs)

    def activation_set(self, user_id: str, *, token_budget: int | None = None, **kwargs: Any) -> list[MemoryItem]:
        """The user's stable memory block for a KV-cache prefix: their profile, fact and
        preference memories plus those promoted for frequent use, within ``token_budget`` tokens,
        in a stable order (``created_at``, then ``id``) that changes only when the set changes.
        Policy: :mod:`memcube.scheduler` (:func:`~memcube.scheduler.activation_set`)."""
        from memcube.scheduler import activation_set

        self._check_open()
        check_scope_id(user_id, "user_id", required=True)
        return activation_set(self, user_id, token_budget=token_budget, **kwargs)

    def render(self, items: Sequence[MemoryItem], **kwargs: Any) -> str:
        """Render memories as a prompt block (see :func:`memcube.prompting.render_memories`)."""
        from memcube.prompting import render_memories

        return render_memories(items, **kwargs)

    # ------------------------------------------------------------------ usage accounting
    def _record_usage(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        now = utcnow()
        with self._lock:
            for i in ids:
                n, _ = self._usage.get(i, (0, now))
                self._usage[i] = (n + 1, now)
            self._usage_pending += len(ids)
            if self._usage_pending >= USAGE_FLUSH_EVERY:
                self.flush_usage()

    def flush_usage(self) -> None:
        """Write buffered access counts. Usage is advisory: counts not yet flushed when a
        process dies are lost, memories never are."""
        with self._lock:
            pending, self._usage, self._usage_pending = self._usage, {}, 0
            if not pending:
                return
            res = self.backend.get(self.backend.items, ids=list(pending))
            ids, metas = [], []
            for i, md in zip(res["ids"], res["metadatas"]):
                item = metadata_to_item(md)
                n, last = pending[i]
                item = item.model_copy(
                    update={"access_count": item.access_count + n, "last_accessed_at": last}
                )
                # Scheduler policy: items used often move into activation memory.
                if should_promote(item, self.scheduler_config, last):
                    item = item.model_copy(update={"state": LifecycleState.ACTIVATED})
                ids.append(i)
                metas.append(item_to_metadata(item))
            self.backend.update_metadata(self.backend.items, ids, metas)

    # ------------------------------------------------------------------ async twins
    async def aadd(self, content: str, **kwargs: Any) -> MemoryItem:
        """Async :meth:`add`."""
        return await asyncio.to_thread(self.add, content, **kwargs)

    async def aadd_many(self, items: Iterable[MemoryItem | dict[str, Any]], **kwargs: Any) -> list[MemoryItem]:
        """Async :meth:`add_many`."""
        return await asyncio.to_thread(self.add_many, list(items), **kwargs)

    async def aget(self, id: str, **kwargs: Any) -> MemoryItem:
        """Async :meth:`get`."""
        return await asyncio.to_thread(self.get, id, **kwargs)

    async def aupdate(self, id: str, **kwargs: Any) -> MemoryItem:
        """Async :meth:`update`."""
        return await asyncio.to_thread(self.update, id, **kwargs)

    async def adelete(self, id: str, **kwargs: Any) -> None:
        """Async :meth:`delete`."""
        await asyncio.to_thread(self.delete, id, **kwargs)

    async def ahistory(self, id: str, **kwargs: Any) -> list[MemoryItem]:
        """Async :meth:`history`."""
        return await asyncio.to_thread(self.history, id, **kwargs)

    async def asearch(self, query: str, **kwargs: Any) -> list[SearchHit]:
        """Async :meth:`search`."""
        return await asyncio.to_thread(self.search, query, **kwargs)

    async def aadd_messages(self, messages: Iterable[Any], **kwargs: Any) -> list[MemoryItem]:
        """Async :meth:`add_messages`."""
        return await asyncio.to_thread(self.add_messages, list(messages), **kwargs)

    async def aworking_memory(self, query: str, **kwargs: Any) -> list[MemoryItem]:
        """Async :meth:`working_memory`."""
        return await asyncio.to_thread(self.working_memory, query, **kwargs)

    async def aactivation_set(self, user_id: str, **kwargs: Any) -> list[MemoryItem]:
        """Async :meth:`activation_set`."""
        return await asyncio.to_thread(self.activation_set, user_id, **kwargs)

    async def acount(self, **kwargs: Any) -> int:
        """Async :meth:`count`."""
        return await asyncio.to_thread(self.count, **kwargs)
