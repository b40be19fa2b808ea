"""``MemCube``: the one facade. Every read and write of every adapter goes through it, so scoping,
versioning, usage counting and (later) governance live in exactly one place."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydantic import ValidationError

from memcube.config import MANIFEST_NAME, CubeManifest
from memcube.errors import (
    AccessDeniedError,
    CubeClosedError,
    CubeLockedError,
    EmbedderMismatchError,
    FrozenItemError,
    InvalidInputError,
    ItemNotFoundError,
    VersionNotFoundError,
)
from memcube.governance import (
    AuditConfig,
    AuditEntry,
    AuditLog,
    Governance,
    Grant,
    check_reserved_metadata,
    reserved_metadata,
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
    is_encodable,
    translate_validation_error,
    utcnow,
)
from memcube.lifecycle import LifecycleConfig, plan_batch
from memcube.outbox import Outbox
from memcube.plaintext.backend import ChromaBackend
from memcube.plaintext.embedder import (
    DEFAULT_MODEL_ID,
    Embedder,
    check_vectors,
    default_embedder,
)
from memcube.plaintext.records import (
    and_,
    chroma_part,
    item_to_metadata,
    metadata_to_item,
    needs_check,
    record_view,
    translate_filters,
    ts,
)
from memcube.plaintext.retrieval import RetrievalConfig, Retriever
from memcube.plaintext.wherefilter import matches
from memcube.redaction import RedactorLike, make_redactor
from memcube.scheduler import SchedulerConfig, should_promote

log = logging.getLogger(__name__)

#: Items embedded and written per Chroma call in ``add_many``.
DEFAULT_BATCH_SIZE = 256
#: ``add_many`` shows a progress bar from this many items on (unless ``progress`` says otherwise).
PROGRESS_THRESHOLD = 500
#: Searches buffer access counts in memory and write them back after this many hits, at most
#: once per USAGE_FLUSH_SECONDS, or at once when USAGE_MAX_PENDING memories are waiting. Each
#: write-back rewrites every record it counts, which competes with adds for Chroma: at 40
#: searches/s, flushing every 256 hits rewrote up to 10 records per add.
USAGE_FLUSH_EVERY = 256
USAGE_FLUSH_SECONDS = 10.0
USAGE_MAX_PENDING = 4096
LOCK_NAME = ".memcube.lock"
#: Id of the record (in the retrieval side collection) saying the items use the current layout.
RECORD_LAYOUT_ID = "record-layout:2"

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
        lifecycle: LifecycleConfig | None = None,
        audit: AuditConfig | None = None,
        redactor: RedactorLike | bool | None = None,
        grant_cache_seconds: float = 1.0,
        publish_interval: float = 0.5,
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
            lifecycle: add-time merge and supersede policies (see
                :class:`~memcube.lifecycle.LifecycleConfig`).
            audit: what the audit log records (see :class:`~memcube.governance.AuditConfig`).
            redactor: opt-in redaction before storage: ``True`` for the default patterns
                (e-mail, phone and card numbers), a :class:`~memcube.redaction.Redactor`, or a
                ``str -> str`` callable (see :mod:`memcube.redaction`).
            grant_cache_seconds: how long sharing grants are cached in this process (grants
                made by other processes become visible within this time).
            publish_interval: seconds within which the bookkeeping of a write (the marker that
                makes other processes' searches see it) is written; the writes of one interval
                share one Chroma call per collection. Audit entries follow within
                ``AuditConfig.interval`` (2 s) if that is longer. ``0`` writes all of it before
                each operation returns. See :mod:`memcube.outbox`.

        Raises:
            CubeLockedError: another process has this embedded cube open.
            EmbedderMismatchError: ``embedder`` differs from the one the cube was built with.
            CorruptManifestError, UnsupportedVersionError: ``cube.json`` cannot be used.
        """
        # Checked before anything is locked or opened, so a bad value leaves nothing behind.
        scheduler_config = (scheduler or SchedulerConfig()).validate()
        lifecycle_config = (lifecycle or LifecycleConfig()).validate()
        audit_config = (audit or AuditConfig()).validate()
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
        elif (self.path / MANIFEST_NAME).exists():
            creation_lock = None  # server mode, existing cube: no lock (the folder may be read-only)
        else:
            # Server mode: many processes may open a new folder at once. The manifest names the
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
            self.outbox = Outbox(publish_interval)
            self.retriever = Retriever(self.backend, emb, retrieval, outbox=self.outbox)
            self.governance = Governance(
                self.backend, manifest.collection_prefix, grant_cache_seconds=grant_cache_seconds
            )
        except BaseException:
            if self._file_lock is not None:
                self._file_lock.release()
            raise
        finally:
            if creation_lock is not None:
                creation_lock.release()
        self._usage: dict[str, tuple[int, datetime]] = {}
        self._usage_flushing = False
        self._usage_lock = threading.Lock()
        self._usage_pending = 0
        self._usage_flushed_at = time.monotonic()
        self.scheduler_config = scheduler_config
        self.lifecycle_config = lifecycle_config
        self.audit_log = AuditLog(self.backend, audit_config, outbox=self.outbox)
        self._redact = make_redactor(redactor)
        self._closed = False
        try:
            self._upgrade_records()
        except BaseException:
            self.close()
            raise
        return self

    def _upgrade_records(self) -> None:
        """Bring records of the earlier layout (every view key stored in Chroma) to the current
        one (:mod:`memcube.plaintext.records`), once per cube: they gain the lifecycle's lookup
        keys, so duplicates of them are still found, and lose the keys Chroma no longer needs.
        Idempotent, so processes opening the cube at once may both run it."""
        state = self.retriever._state_collection
        if self.backend.get(state, ids=[RECORD_LAYOUT_ID])["ids"]:
            return
        offset = 0
        while True:
            res = self.backend.get(self.backend.items, limit=DEFAULT_BATCH_SIZE, offset=offset)
            if not res["ids"]:
                break
            ids, changes = [], []
            for id_, md in zip(res["ids"], res["metadatas"]):
                new = self._metadata(metadata_to_item(md))
                change = {**{k: None for k in md if k not in new}, **new}
                if any(md.get(k) != v for k, v in change.items()):
                    ids.append(id_)
                    changes.append(change)
            self.backend.update_metadata(self.backend.items, ids, changes)
            offset += len(res["ids"])
        self.backend.upsert(
            state, [RECORD_LAYOUT_ID], embeddings=None, documents=None, metadatas=[{"record_layout": 2}]
        )

    def close(self) -> None:
        """Flush buffered usage counts and release the client and the lock. Idempotent."""
        if self._closed:
            return
        with self._lock:
            try:
                self.flush()
            finally:
                self._closed = True
                try:
                    self.outbox.close()
                finally:
                    self.retriever.close()
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
        merge: bool | None = None,
    ) -> list[MemoryItem]:
        """Store many memories with batched embedding.

        ``items`` are :class:`MemoryItem` objects or dicts with the keyword arguments of
        :meth:`add` (``content`` required; ``user_id`` defaults to the ``user_id`` given here).
        Every item is validated before anything is written, so bad input changes nothing. Each
        batch is written in one Chroma call: after a crash, every batch whose call returned is
        stored whole. ``on_batch(items)`` is called after each batch is stored (acknowledged), e.g.
        to checkpoint a long import.

        Lifecycle (:mod:`memcube.lifecycle`): facts, preferences and profile memories are merged
        with exact and near duplicates and supersede older values of the same subject.
        ``merge=None`` applies this to memories given without an id (dicts), ``True`` to all,
        ``False`` to none. The returned list holds, per input, the memory it is stored as (the
        existing one when it was merged, a new version when it superseded one).
        """
        self._check_open()
        if batch_size < 1:
            raise InvalidInputError("batch_size must be at least 1.")
        prepared: list[MemoryItem] = []
        mergeable: list[bool] = []  # only memories added without an id are merged/superseded
        explicit: list[bool] = []  # the caller chose the id (it may already be stored)
        for x in items:
            prepared.append(self._to_item(x, user_id))
            explicit.append(not (isinstance(x, dict) and x.get("id") is None))
            mergeable.append(merge if merge is not None else not explicit[-1])
        ids = [it.id for it in prepared]
        if len(set(ids)) != len(ids):
            raise InvalidInputError("add_many got the same id twice; ids must be unique.")
        # Ids the caller chose may already be stored: such an add replaces that memory, and only
        # its owner may do that.
        existing = self._stored([it.id for it, chosen in zip(prepared, explicit) if chosen])
        for it in prepared:
            old = existing.get(it.id)
            if old is not None and old.user_id != it.user_id:
                raise InvalidInputError(
                    f"memory {it.id!r} belongs to another user; an add cannot take it over."
                )
        generated = {it.id for it, chosen in zip(prepared, explicit) if not chosen}
        show = progress if progress is not None else len(prepared) >= PROGRESS_THRESHOLD
        bar = None
        if show:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(prepared), desc="memcube add", unit="item")
        stored: list[MemoryItem] = []
        try:
            for start in range(0, len(prepared), batch_size):
                batch = self._store_batch(
                    prepared[start : start + batch_size],
                    mergeable[start : start + batch_size],
                    existing,
                    generated,
                )
                stored.extend(batch)
                if on_batch is not None:
                    on_batch(batch)
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        return stored

    def _stored(self, ids: Sequence[str]) -> dict[str, MemoryItem]:
        """The stored records of these ids (those that exist), read by id."""
        found: dict[str, MemoryItem] = {}
        for start in range(0, len(ids), DEFAULT_BATCH_SIZE):
            res = self.backend.get(self.backend.items, ids=list(ids[start : start + DEFAULT_BATCH_SIZE]))
            found.update((i, metadata_to_item(md)) for i, md in zip(res["ids"], res["metadatas"]))
        return found

    def _store_batch(
        self,
        items: list[MemoryItem],
        mergeable: list[bool],
        existing: dict[str, MemoryItem],
        generated: set[str],
    ) -> list[MemoryItem]:
        """Embed a batch, let the lifecycle decide insert / merge / supersede per item
        (:func:`memcube.lifecycle.plan_batch`), and write it: history first, then the items,
        then metadata-only merges. ``existing`` holds the stored records of ids the caller chose
        (they are replaced); ids in ``generated`` were made here, so nothing can be stored under
        them yet. Returns the stored memory of each input."""
        if not items:
            return []
        texts = [self.retriever.index_text(it) for it in items]
        vectors = self.embedder.embed_documents(texts)
        check_vectors(vectors, self.manifest.embedding_dimension, self.embedder.model_id)
        with self._lock:
            plan = plan_batch(self, items, vectors, mergeable, self.lifecycle_config)
            upserts = [(it, v, prev or existing.get(it.id)) for it, v, prev in plan.upserts]
            if plan.history:
                self._put_history(plan.history)
            views = [record_view(it) for it, _, _ in upserts]
            metadatas = [self._metadata(it, prev, view=v) for (it, _, prev), v in zip(upserts, views)]
            documents = [self.retriever.index_text(it) for it, _, _ in upserts]
            if upserts:
                # A batch of ids made here is added (cheaper for Chroma than an upsert, see
                # ChromaBackend.add). Either way, one call per batch.
                fresh = all(prev is None and it.id in generated for it, _, prev in upserts)
                write = self.backend.add if fresh else self.backend.upsert
                write(
                    self.backend.items,
                    [it.id for it, _, _ in upserts],
                    embeddings=[v for _, v, _ in upserts],
                    documents=documents,
                    metadatas=metadatas,
                )
            if plan.metadata_updates:
                self.backend.update_metadata(
                    self.backend.items,
                    [it.id for it, _ in plan.metadata_updates],
                    [self._metadata(it, prev) for it, prev in plan.metadata_updates],
                )
            if plan.history or plan.metadata_updates or any(prev for _, _, prev in upserts):
                self.retriever.invalidate({it.user_id for it in items})
            else:  # only new records: the cached indexes grow instead of reloading
                self.retriever.added(
                    [it for it, _, _ in upserts], views, documents, [v for _, v, _ in upserts]
                )
        actors = sorted({it.user_id for it in items})
        for event, ids in plan.events.items():
            if ids:
                self.audit_log.record(
                    "add" if event == "inserted" else event,
                    actors[0] if len(actors) == 1 else None,
                    ids,
                    {"users": actors} if len(actors) > 1 else None,
                )
        return plan.results

    def _metadata(
        self, item: MemoryItem, previous: MemoryItem | None = None, *, view: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The Chroma metadata of ``item`` (see :mod:`memcube.plaintext.records`)."""
        return item_to_metadata(
            item, previous, merge_types=self.lifecycle_config._types, view=view
        )

    def _to_item(self, raw: MemoryItem | dict[str, Any], user_id: str | None) -> MemoryItem:
        if isinstance(raw, MemoryItem):
            return self._redacted(raw)
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
        if isinstance(fields.get("metadata"), dict):
            check_reserved_metadata(fields["metadata"])
        return self._redacted(build_item(**fields))

    def _redacted(self, item: MemoryItem) -> MemoryItem:
        """Apply the opt-in redaction hook to an item's content (see :mod:`memcube.redaction`)."""
        if self._redact is None:
            return item
        text, counts = self._redact(item.content)
        if not counts:
            return item
        detail = {**item.provenance.detail, "redacted": counts}
        data = item.model_dump()
        data.update(content=text, content_hash="")
        data["provenance"]["detail"] = detail
        return build_item(**data)

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
                    self._metadata(it, previous[i] if previous else None) for i, it in enumerate(items)
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
        check_reserved_metadata(metadata)
        return self._new_version(id, changes, user_id=user_id)

    def _new_version(
        self,
        id: str,
        changes: dict[str, Any],
        *,
        user_id: str | None,
        allow_frozen: bool = False,
        old_state: LifecycleState = LifecycleState.SUPERSEDED,
        op: str = "update",
    ) -> MemoryItem:
        self._check_open()
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise InvalidInputError(f"cannot update fields {sorted(unknown)}.")
        with self._lock:
            current = self._load(id, user_id)
            self.governance.check_write(current, user_id)
            if current.state == LifecycleState.FROZEN and not allow_frozen:
                raise FrozenItemError(
                    f"memory {id} is frozen; call cube.unfreeze({id!r}) before updating it."
                )
            changes = dict(changes)
            if "metadata" in changes:  # shares and feedback votes survive a metadata rewrite
                md = changes["metadata"]
                if isinstance(md, dict):
                    changes["metadata"] = {**md, **reserved_metadata(current)}
            if self._redact is not None and isinstance(changes.get("content"), str):
                text, counts = self._redact(changes["content"])
                if counts:
                    changes["content"] = text
                    prov = changes.get("provenance", current.provenance)
                    prov = prov if isinstance(prov, Provenance) else Provenance.model_validate(prov)
                    changes["provenance"] = prov.model_copy(
                        update={"detail": {**prov.detail, "redacted": counts}}
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
                    self.backend.items, [new.id], [self._metadata(new, current)]
                )
                self.retriever.invalidate({new.user_id})
        self.audit_log.record(op, user_id, [new.id], {"version": new.version})
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
            item = self._load(id, user_id)
            self.governance.check_write(item, user_id)
            if hard:
                self.backend.delete(self.backend.history, where={"item_id": item.id})
                self.backend.delete(self.backend.items, ids=[item.id])
                self.retriever.invalidate({item.user_id})
                self.audit_log.record("hard_delete", user_id, [item.id], {"owner": item.user_id})
            elif item.state != LifecycleState.ARCHIVED:
                self._new_version(
                    id,
                    {"state": LifecycleState.ARCHIVED},
                    user_id=user_id,
                    allow_frozen=True,
                    old_state=item.state,
                    op="delete",
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
            for it in found:
                self.governance.check_write(it, user_id)
            updated = [it.model_copy(update={"expires_at": when}) for it in found]
            self.backend.update_metadata(
                self.backend.items, [it.id for it in updated], [self._metadata(it) for it in updated]
            )
            self.retriever.invalidate({it.user_id for it in updated})
        self.audit_log.record(
            "set_expiry", user_id, [it.id for it in updated], {"expires_at": when}
        )
        return updated

    # ------------------------------------------------------------------ lifecycle operations
    def _set_in_place(
        self, items: Sequence[tuple[MemoryItem, MemoryItem]], op: str, user_id: str | None, **detail: Any
    ) -> None:
        """Rewrite ``(new, old)`` records in place (bookkeeping, no new version) and audit it."""
        if not items:
            return
        with self._lock:
            self.backend.update_metadata(
                self.backend.items,
                [new.id for new, _ in items],
                [self._metadata(new, old) for new, old in items],
            )
            self.retriever.invalidate({new.user_id for new, _ in items})
        self.audit_log.record(op, user_id, [new.id for new, _ in items], detail or None)

    def rollback(self, id: str, version: int, *, user_id: str | None = None) -> MemoryItem:
        """Make an earlier version current again, as a new version (the version rolled back
        from stays in :meth:`history`). Shares and feedback votes of the current version are kept.

        Raises:
            VersionNotFoundError: the memory has no such version.
            FrozenItemError: the memory is frozen.
            AccessDeniedError: ``user_id`` may only read it.
        """
        self._check_open()
        if not isinstance(version, int) or isinstance(version, bool):
            raise InvalidInputError(f"version must be an integer, got {version!r}.")
        with self._lock:
            current = self._load(id, user_id)
            self.governance.check_write(current, user_id)
            if version == current.version:
                raise InvalidInputError(f"memory {id!r} is already at version {version}.")
            target = self.get_version(id, version, user_id=user_id)
            state = target.state
            if state in HIDDEN_STATES or state == LifecycleState.FROZEN:
                state = LifecycleState.GENERATED
            prov = target.provenance.model_copy(
                update={"detail": {**target.provenance.detail, "rolled_back_from": current.version}}
            )
            changes = {
                "content": target.content,
                "metadata": {k: v for k, v in target.metadata.items() if not k.startswith("_mc_")},
                "tags": list(target.tags),
                "importance": target.importance,
                "memory_type": target.memory_type,
                "event_time": target.event_time,
                "expires_at": target.expires_at,
                "state": state,
                "agent_id": target.agent_id,
                "session_id": target.session_id,
                "provenance": prov,
            }
            return self._new_version(id, changes, user_id=user_id, op="rollback")

    def freeze(self, id: str, *, user_id: str | None = None) -> MemoryItem:
        """Pin a memory: it refuses updates (and is never superseded) until :meth:`unfreeze`.
        A state change in place, not a new version; audited."""
        with self._lock:
            item = self._load(id, user_id)
            self.governance.check_write(item, user_id)
            if item.state == LifecycleState.FROZEN:
                return item
            if item.state in HIDDEN_STATES:
                raise InvalidInputError(f"memory {id!r} is {item.state.value}; only live memories freeze.")
            detail = {**item.provenance.detail, "state_before_freeze": item.state.value}
            new = item.model_copy(
                update={
                    "state": LifecycleState.FROZEN,
                    "provenance": item.provenance.model_copy(update={"detail": detail}),
                }
            )
            self._set_in_place([(new, item)], "freeze", user_id)
        return new

    def unfreeze(self, id: str, *, user_id: str | None = None) -> MemoryItem:
        """Undo :meth:`freeze`: the memory returns to the state it had before."""
        with self._lock:
            item = self._load(id, user_id)
            self.governance.check_write(item, user_id)
            if item.state != LifecycleState.FROZEN:
                return item
            detail = dict(item.provenance.detail)
            before = detail.pop("state_before_freeze", LifecycleState.GENERATED.value)
            new = item.model_copy(
                update={
                    "state": LifecycleState(before),
                    "provenance": item.provenance.model_copy(update={"detail": detail}),
                }
            )
            self._set_in_place([(new, item)], "unfreeze", user_id)
        return new

    def feedback(self, id: str, *, useful: bool, user_id: str | None = None) -> MemoryItem:
        """Tell the scheduler whether a memory helped. A vote moves ``importance`` by
        ``SchedulerConfig.feedback_step`` and counts as ``feedback_uses`` accesses (plus or minus)
        in the usage signal, so future working memory and activation follow it. Needs write
        access (it changes the memory's ranking for its owner)."""
        from memcube.scheduler import NOT_USEFUL_KEY, USEFUL_KEY, demoted_state, is_cold

        if not isinstance(useful, bool):
            raise InvalidInputError("feedback(useful=...) takes True or False.")
        cfg = self.scheduler_config
        with self._lock:
            self.flush_usage()
            item = self._load(id, user_id)
            self.governance.check_write(item, user_id)
            key = USEFUL_KEY if useful else NOT_USEFUL_KEY
            md = {**item.metadata, key: int(item.metadata.get(key, 0) or 0) + 1}
            step = cfg.feedback_step if useful else -cfg.feedback_step
            importance = min(1.0, max(0.0, item.importance + step))
            new = item.model_copy(update={"metadata": md, "importance": importance})
            now = utcnow()
            if new.state == LifecycleState.ACTIVATED and is_cold(new, cfg, now):
                new = new.model_copy(update={"state": demoted_state(new)})
            elif should_promote(new, cfg, now):
                new = new.model_copy(update={"state": LifecycleState.ACTIVATED})
            self._set_in_place([(new, item)], "feedback", user_id, useful=useful)
        return new

    def maintain(self, *, user_id: str | None = None) -> dict[str, list[str]]:
        """Run the time-based policies: memories whose TTL ran out become ``expired`` (hidden,
        kept), and activated memories that went cold are demoted. Returns the ids per action.
        Safe to run at any time (e.g. from a periodic job)."""
        from memcube.scheduler import demoted_state, is_cold

        self._check_open()
        check_scope_id(user_id, "user_id")
        self.flush_usage()
        now = utcnow()
        cfg = self.scheduler_config
        expired: list[tuple[MemoryItem, MemoryItem]] = []
        demoted: list[tuple[MemoryItem, MemoryItem]] = []
        scope = [{"live_user_id": user_id}] if user_id is not None else [{"live": True}]
        due = and_(*scope, {"expires_ts": {"$lte": now.timestamp()}})
        for it in self._select(due):
            if it.state != LifecycleState.FROZEN:
                expired.append((it.model_copy(update={"state": LifecycleState.EXPIRED}), it))
        active = and_(*scope, {"state": LifecycleState.ACTIVATED.value})
        for it in self._select(active):
            if is_cold(it, cfg, now) and not it.is_expired:
                demoted.append((it.model_copy(update={"state": demoted_state(it)}), it))
        self._set_in_place(expired, "expire", user_id)
        self._set_in_place(demoted, "demote", user_id)
        return {"expired": [n.id for n, _ in expired], "demoted": [n.id for n, _ in demoted]}

    # ------------------------------------------------------------------ governance
    def share(
        self,
        owner: str,
        with_user: str,
        *,
        ids: Sequence[str] | None = None,
        access: str = "read",
        user_id: str | None = None,
    ) -> list[Grant]:
        """Share memories of ``owner`` with ``with_user``: the given ``ids``, or with
        ``ids=None`` every memory of ``owner`` in this cube (present and future). ``access`` is
        ``"read"`` or ``"write"``. ``user_id`` is who asks (the owner, or ``None`` for the
        application). Sharing again changes the access. See :mod:`memcube.governance`."""
        from memcube.governance import Access, share_key

        self._check_open()
        check_scope_id(owner, "owner", required=True)
        check_scope_id(with_user, "with_user", required=True)
        check_scope_id(user_id, "user_id")
        if user_id is not None and user_id != owner:
            raise AccessDeniedError(f"only {owner!r} (or the application) may share their memories.")
        if with_user == owner:
            raise InvalidInputError("a user cannot share memories with themselves.")
        try:
            acc = Access(access)
        except ValueError:
            raise InvalidInputError(f"access must be 'read' or 'write', got {access!r}.") from None
        if ids is None:
            grants = [Grant(owner=owner, grantee=with_user, access=acc)]
            self.governance.put_grants(grants)
            self.audit_log.record("share", user_id, (), {"owner": owner, "with": with_user, "access": acc.value, "scope": "cube"})
            return grants
        wanted = list(dict.fromkeys(ids))
        with self._lock:
            res = self.backend.get(self.backend.items, ids=wanted)
            found = {i: metadata_to_item(md) for i, md in zip(res["ids"], res["metadatas"])}
            missing = [i for i in wanted if i not in found or found[i].user_id != owner]
            if missing:
                raise ItemNotFoundError(f"no memories {missing} owned by {owner!r}; nothing was shared.")
            grants = [Grant(owner=owner, grantee=with_user, access=acc, item_id=i) for i in wanted]
            self.governance.put_grants(grants)
            changed = []
            for i in wanted:
                it = found[i]
                md = {**it.metadata, share_key(with_user): acc.value}
                changed.append((it.model_copy(update={"metadata": md}), it))
            self._set_in_place(changed, "share", user_id, owner=owner, with_user=with_user, access=acc.value)
        return grants

    def unshare(
        self,
        owner: str,
        with_user: str,
        *,
        ids: Sequence[str] | None = None,
        user_id: str | None = None,
    ) -> int:
        """Revoke shares of ``owner`` to ``with_user``: the given items, or with ``ids=None``
        the whole-cube grant and every per-item grant. Returns how many grants were removed."""
        from memcube.governance import share_key

        self._check_open()
        check_scope_id(owner, "owner", required=True)
        check_scope_id(with_user, "with_user", required=True)
        if user_id is not None and user_id != owner:
            raise AccessDeniedError(f"only {owner!r} (or the application) may unshare their memories.")
        existing = self.governance.grants(owner=owner, grantee=with_user)
        if ids is not None:
            wanted = set(ids)
            existing = [g for g in existing if g.item_id in wanted]
        item_ids = [g.item_id for g in existing if g.item_id]
        with self._lock:
            res = self.backend.get(self.backend.items, ids=item_ids) if item_ids else {"ids": [], "metadatas": []}
            changed = []
            for md in res["metadatas"]:
                it = metadata_to_item(md)
                meta = {k: v for k, v in it.metadata.items() if k != share_key(with_user)}
                changed.append((it.model_copy(update={"metadata": meta}), it))
            self._set_in_place(changed, "unshare", user_id, owner=owner, with_user=with_user)
            self.governance.delete_grants(existing)
        if not changed:
            self.audit_log.record("unshare", user_id, (), {"owner": owner, "with_user": with_user})
        return len(existing)

    def shares(self, *, owner: str | None = None, with_user: str | None = None) -> list[Grant]:
        """The grants in force (of one owner and/or to one user)."""
        self._check_open()
        return self.governance.grants(owner=owner, grantee=with_user)

    def audit(
        self,
        *,
        actor: str | None = None,
        op: str | Sequence[str] | None = None,
        item_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Query the audit log: entries matching every given condition, oldest first (the
        newest ``limit`` of them). ``actor`` is a user id, or ``"*"`` for calls made without one.
        An administrative API: it is not scoped to a user."""
        self._check_open()
        return self.audit_log.query(
            actor=actor, op=op, item_id=item_id, since=since, until=until, limit=limit
        )

    def flush(self) -> None:
        """Write buffered usage counts, queued audit entries and retrieval markers now (a barrier:
        afterwards every other process's search sees this process's writes)."""
        self.flush_usage()
        self.outbox.flush()

    # ------------------------------------------------------------------ reads
    def get(self, id: str, *, user_id: str | None = None, include_archived: bool = True) -> MemoryItem:
        """Return the current version of a memory.

        With ``user_id`` the read is scoped: another user's memory is reported as not found.
        """
        item = self._load(id, user_id)
        if not include_archived and item.state in HIDDEN_STATES:
            raise ItemNotFoundError(f"memory {id!r} is {item.state.value}.")
        self.audit_log.record("get", user_id, [id], read=True)
        return item

    def _load(self, id: str, user_id: str | None) -> MemoryItem:
        """The current version of ``id`` if ``user_id`` may read it (governance), else
        ItemNotFoundError. Not audited: callers record their own operation."""
        self._check_open()
        if not isinstance(id, str) or not id:
            raise InvalidInputError(f"memory ids are non-empty strings, got {id!r}.")
        check_scope_id(user_id, "user_id")
        res = self.backend.get(self.backend.items, ids=[id])
        if not res["ids"]:
            raise ItemNotFoundError(f"no memory with id {id!r}.")
        item = metadata_to_item(res["metadatas"][0])
        if not self.governance.can_read(item, user_id):
            raise ItemNotFoundError(f"no memory with id {id!r} for user {user_id!r}.")
        return item

    def get_many(self, ids: Sequence[str], *, user_id: str | None = None) -> list[MemoryItem]:
        """Current versions of the ids that exist (and belong to ``user_id``), in the given order."""
        self._check_open()
        check_scope_id(user_id, "user_id")
        if not ids:
            return []
        res = self.backend.get(self.backend.items, ids=list(ids))
        found = {i: metadata_to_item(md) for i, md in zip(res["ids"], res["metadatas"])}
        out = [found[i] for i in ids if i in found and self.governance.can_read(found[i], user_id)]
        self.audit_log.record("get_many", user_id, [it.id for it in out], read=True)
        return out

    def history(self, id: str, *, user_id: str | None = None) -> list[MemoryItem]:
        """Every version of a memory, oldest first, ending with the current one."""
        current = self._load(id, user_id)
        self.audit_log.record("history", user_id, [id], read=True)
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
        include_shared: bool = False,
    ) -> dict[str, Any] | None:
        """The ``where`` clause of a read, over record views (Chroma runs its stored-key part,
        see :mod:`memcube.plaintext.records`). With ``check_expiry=False`` expired items are not
        excluded here and the caller must drop them (search does, which keeps its filter cheap)."""
        check_scope_id(agent_id, "agent_id")
        check_scope_id(session_id, "session_id")
        clauses: list[dict[str, Any] | None] = []
        if user_id is not None:
            # Governance decides what the user may read (own memories, plus shared ones).
            clauses.append(
                self.governance.scope_clause(
                    user_id, include_archived=include_archived, include_shared=include_shared
                )
            )
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
        include_shared: bool = True,
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
            include_shared: also search memories other users shared with ``user_id``.
        """
        self._check_open()
        check_scope_id(user_id, "user_id", required=True)
        if not isinstance(query, str) or not query.strip() or not is_encodable(query):
            raise InvalidInputError("search needs a non-empty query string of valid Unicode text.")
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
            include_shared=include_shared,
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
        cfg = self.audit_log.config
        self.audit_log.record(
            "search",
            user_id,
            [h.item.id for h in hits],
            {"query": query[: cfg.max_query_chars]} if cfg.max_query_chars else None,
            read=True,
        )
        return hits

    def items(
        self,
        *,
        user_id: str | None,
        include_archived: bool = False,
        filters: dict[str, Any] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        tags: Sequence[str] | None = None,
        include_shared: bool = False,
    ) -> Iterator[MemoryItem]:
        """Iterate over a user's memories (every user's with ``user_id=None``), oldest id first.
        ``tags`` keeps only memories carrying every one of these tags; ``include_shared`` adds
        the memories other users shared with ``user_id``."""
        self._check_open()
        check_scope_id(user_id, "user_id")
        where = self._where(
            user_id=user_id,
            filters=filters,
            tags=tags,
            include_archived=include_archived,
            include_shared=include_shared,
        )
        self.audit_log.record("items", user_id, (), read=True)
        yield from self._select(where, batch_size=batch_size)

    def _select(self, where: dict[str, Any] | None, *, batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[MemoryItem]:
        """The stored memories ``where`` admits, page by page: Chroma runs the part of the clause
        on keys it holds, and the rest is checked here on each record's view."""
        stored, check = chroma_part(where), needs_check(where)
        offset = 0
        while True:
            res = self.backend.get(self.backend.items, where=stored, limit=batch_size, offset=offset)
            if not res["ids"]:
                return
            for md in res["metadatas"]:
                item = metadata_to_item(md)
                if not check or matches(where, record_view(item)):
                    yield item
            offset += len(res["ids"])

    def __iter__(self) -> Iterator[MemoryItem]:
        return self.items(user_id=None)

    def count(
        self, *, user_id: str | None = None, include_archived: bool = False, include_shared: bool = False
    ) -> int:
        """How many memories there are (for one user, or in the whole cube); ``include_shared``
        also counts those other users shared with ``user_id``."""
        self._check_open()
        check_scope_id(user_id, "user_id")
        if user_id is None and include_archived:
            return self.backend.count(self.backend.items)
        where = self._where(
            user_id=user_id, include_archived=include_archived, include_shared=include_shared
        )
        if needs_check(where):
            return sum(1 for _ in self._select(where))
        return len(self.backend.get(self.backend.items, where=where, include=())["ids"])

    def user_ids(self) -> list[str]:
        """Every user that owns at least one memory in this cube."""
        self._check_open()
        seen: set[str] = set()
        for item in self.items(user_id=None, include_archived=True):
            seen.add(item.user_id)
        return sorted(seen)

    # ------------------------------------------------------------------ interchange (MIP)
    def _restore(self, records: Sequence[Sequence[MemoryItem]], *, detail: dict[str, Any] | None = None) -> None:
        """Write memories with their stored versions verbatim (``records``: per memory, its
        versions oldest first, current last). Used by :mod:`memcube.interchange`, which
        validates everything first; the current versions are embedded with this cube's embedder.
        The write is recorded in the audit log as ``import``."""
        self._check_open()
        with self._lock:
            old = [v for versions in records for v in versions[:-1]]
            for start in range(0, len(old), DEFAULT_BATCH_SIZE):
                self._put_history(old[start : start + DEFAULT_BATCH_SIZE])
            self._write([versions[-1] for versions in records])
        audit = getattr(self, "audit_log", None)
        if audit is not None and records:
            audit.record("import", None, [versions[-1].id for versions in records], detail)

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
        fact_roles: Sequence[str] | None = None,
    ) -> list[MemoryItem]:
        """Read a conversation into memories through the reader and store them.

        ``messages`` may be LangChain messages, LlamaIndex ``ChatMessage`` objects or
        ``{"role": ..., "content": ...}`` dicts. A message's own time wins over ``timestamp``,
        which defaults to now. ``roles`` names the speakers whose turns are remembered
        (normalized roles such as ``"user"``, ``"assistant"``; default: the reader's).
        ``fact_roles`` names those whose first-person statements become facts (default: user).
        ``extractor``: ``None`` (rules, no model), ``"turns"`` (turns only), a chat model or
        :class:`~memcube.extractors.LLMExtractor`, or a callable (see :mod:`memcube.reader`).

        Returns a :class:`~memcube.reader.ReadResult`: the stored memories (a list) with
        ``.problems``, what the extractor could not use (the raw turns are stored regardless).
        """
        from memcube.reader import FACT_ROLES, REMEMBERED_ROLES, ReadResult, read_messages

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
            fact_roles=FACT_ROLES if fact_roles is None else tuple(fact_roles),
        )
        stored = self.add_many(items, progress=False, merge=True)
        for p in items.problems:
            self.audit_log.record(
                "extraction_problem",
                user_id,
                [it.id for it in stored if set(it.provenance.message_ids) & set(p.message_ids)],
                {"extractor": p.extractor, "message": p.message},
            )
        return ReadResult(stored, items.problems)

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

    @property
    def parametric(self) -> Any:
        """Parametric memory: this cube's LoRA adapters (a
        :class:`memcube.parametric.ParametricMemory`, created on first use)."""
        self._check_open()
        pm = self.__dict__.get("_parametric")
        if pm is None:
            from memcube.parametric.memory import ParametricMemory

            pm = self.__dict__["_parametric"] = ParametricMemory(self)
        return pm

    # ------------------------------------------------------------------ usage accounting
    def _record_usage(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        now = utcnow()
        # A lock of its own: a search must not wait behind a flush (or any write) holding _lock.
        with self._usage_lock:
            for i in ids:
                n, _ = self._usage.get(i, (0, now))
                self._usage[i] = (n + 1, now)
            self._usage_pending += len(ids)
            due = (
                self._usage_pending >= USAGE_FLUSH_EVERY
                and time.monotonic() - self._usage_flushed_at >= USAGE_FLUSH_SECONDS
            )
            if self._usage_flushing or not (due or len(self._usage) >= USAGE_MAX_PENDING):
                return
            self._usage_flushing = True
        # Off the search path: a flush rewrites hundreds of records (~0.5 s at 256 hits), which
        # would otherwise land on one unlucky search.
        threading.Thread(target=self._flush_usage_in_background, daemon=True).start()

    def _flush_usage_in_background(self) -> None:
        try:
            if not self._closed:
                self.flush_usage()
        except Exception:  # usage is advisory; a failed flush must not take a search down
            log.warning("flushing usage counts failed", exc_info=True)
        finally:
            self._usage_flushing = False

    def flush_usage(self) -> None:
        """Write buffered access counts. Searches do this in the background after
        ``USAGE_FLUSH_EVERY`` hits, at most once per ``USAGE_FLUSH_SECONDS``; ``close``,
        ``flush``, ``maintain`` and ``activation_set`` do it at once. Usage is advisory: counts
        not yet flushed when a process dies are lost, memories never are."""
        with self._usage_lock:
            pending, self._usage, self._usage_pending = self._usage, {}, 0
            self._usage_flushed_at = time.monotonic()
        if not pending:
            return
        with self._lock:  # the read-modify-write below must not interleave with new versions
            res = self.backend.get(self.backend.items, ids=list(pending))
            ids, changes, views = [], [], []
            for i, md in zip(res["ids"], res["metadatas"]):
                old = metadata_to_item(md)
                n, last = pending[i]
                item = old.model_copy(
                    update={"access_count": old.access_count + n, "last_accessed_at": last}
                )
                # Scheduler policy: items used often move into activation memory.
                if should_promote(item, self.scheduler_config, last):
                    item = item.model_copy(update={"state": LifecycleState.ACTIVATED})
                view = record_view(item)
                new = self._metadata(item, old, view=view)
                ids.append(i)
                # Only the keys that changed: Chroma merges, and every key it rewrites costs.
                changes.append({k: v for k, v in new.items() if md.get(k) != v})
                views.append(view)
            self.backend.update_metadata(self.backend.items, ids, changes)
            self.retriever.usage_updated(dict(zip(ids, views)))

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

    async def aset_expiry(self, ids: Sequence[str], **kwargs: Any) -> list[MemoryItem]:
        """Async :meth:`set_expiry`."""
        return await asyncio.to_thread(self.set_expiry, list(ids), **kwargs)

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
