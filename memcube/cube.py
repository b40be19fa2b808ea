"""``MemCube``: the one facade. Every read and write of every adapter goes through it.

The facade opens and closes a cube and, per public method, checks the arguments and delegates
to one service (:mod:`memcube.services`). Scoping, versioning, usage counting, governance and
the lifecycle live below it, each in one place; see ``docs/architecture.md``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from memcube.activation.layout import BlockLayouts
from memcube.async_twins import AsyncTwins
from memcube.audit import AuditConfig
from memcube.checks import is_int, is_number
from memcube.cube_governance import GovernanceMethods
from memcube.errors import InvalidInputError
from memcube.items import (
    UPDATE_FIELDS,
    LifecycleState,
    MemoryItem,
    MemoryType,
    Provenance,
    SearchHit,
    check_reserved_metadata,
    check_scope_id,
    is_encodable,
    keyed_id,
)
from memcube.lifecycle import LifecycleConfig
from memcube.plaintext.embedder import Embedder
from memcube.plaintext.repository import PAGE_SIZE
from memcube.plaintext.retrieval import RetrievalConfig
from memcube.prompting import MemoryBlock, approx_tokens
from memcube.redaction import RedactorLike, make_redactor
from memcube.scheduler import SchedulerConfig
from memcube.services.opening import cube_folder, lock_folder
from memcube.services.writes import expiry

#: Items embedded and written per Chroma call in ``add_many``.
DEFAULT_BATCH_SIZE = PAGE_SIZE


class MemCube(GovernanceMethods, AsyncTwins):
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
            InvalidInputError: ``path`` is a file, or a config holds a bad value.
        """
        # Checked before anything is locked or opened, so a bad value leaves nothing behind.
        configs = (
            (scheduler or SchedulerConfig()).validate(),
            (lifecycle or LifecycleConfig()).validate(),
            (audit or AuditConfig()).validate(),
        )
        redact = make_redactor(redactor)
        folder = cube_folder(path)
        locks = lock_folder(folder, server=chroma_url is not None, lock_timeout=lock_timeout)
        self = object.__new__(cls)
        try:
            self._attach(folder, locks, chroma_url=chroma_url, embedder=embedder, owner=owner,
                         retrieval=retrieval, publish_interval=publish_interval,
                         grant_cache_seconds=grant_cache_seconds)  # fmt: skip
        except BaseException:
            locks.release()
            raise
        locks.created()
        self._assemble(*configs, redact=redact)
        try:
            self.repository.upgrade_records()
        except BaseException:
            self.close()
            raise
        return self

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
        return self._writes.add_many(
            items,
            user_id=user_id,
            batch_size=batch_size,
            progress=progress,
            on_batch=on_batch,
            merge=merge,
        )

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
        given = dict(
            content=content,
            metadata=metadata,
            tags=list(tags) if tags is not None else None,
            importance=importance,
            memory_type=memory_type,
            event_time=event_time,
            expires_at=expires_at,
            state=state,
            provenance=provenance,
        )
        changes = {k: v for k, v in given.items() if v is not None and k in UPDATE_FIELDS}
        if not changes:
            raise InvalidInputError("update needs at least one field to change.")
        check_reserved_metadata(metadata)
        self._check_open()
        return self._versions.new_version(id, changes, user_id=user_id)

    def delete(self, id: str, *, user_id: str | None = None, hard: bool = False) -> None:
        """Archive a memory (hidden from search, kept with its history), or purge it with
        ``hard=True`` (the item and every stored version are removed)."""
        self._check_open()
        self._versions.delete(id, user_id=user_id, hard=hard)

    def delete_all(self, user_id: str, *, hard: bool = False) -> int:
        """Archive every memory ``user_id`` owns (not those shared with them), or purge them
        with ``hard=True``; audited once, as one operation. Returns how many were archived
        (memories already archived are left as they are) or purged: ``0`` for an unknown user.

        Raises:
            InvalidUserIdError: ``user_id`` is missing or not a valid id.
        """
        self._check_open()
        check_scope_id(user_id, "user_id", required=True)
        if not isinstance(hard, bool):
            raise InvalidInputError(f"hard must be True or False, got {hard!r}.")
        return self._versions.delete_all(user_id, hard=hard)

    #: A deterministic memory id for a composite key (see :func:`memcube.items.keyed_id`).
    keyed_id = staticmethod(keyed_id)

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
        when = expiry(ttl, expires_at)
        return self._states.set_expiry(ids, user_id=user_id, when=when)

    # ------------------------------------------------------------------ lifecycle operations
    def rollback(self, id: str, version: int, *, user_id: str | None = None) -> MemoryItem:
        """Make an earlier version current again, as a new version (the version rolled back
        from stays in :meth:`history`). Shares and feedback votes of the current version are kept.

        Raises:
            VersionNotFoundError: the memory has no such version.
            FrozenItemError: the memory is frozen.
            AccessDeniedError: ``user_id`` may only read it.
        """
        self._check_open()
        if not is_int(version):
            raise InvalidInputError(f"version must be an integer, got {version!r}.")
        return self._versions.rollback(id, version, user_id=user_id)

    def freeze(self, id: str, *, user_id: str | None = None) -> MemoryItem:
        """Pin a memory: it refuses updates (and is never superseded) until :meth:`unfreeze`.
        A state change in place, not a new version; audited."""
        self._check_open()
        return self._states.freeze(id, user_id=user_id)

    def unfreeze(self, id: str, *, user_id: str | None = None) -> MemoryItem:
        """Undo :meth:`freeze`: the memory returns to the state it had before."""
        self._check_open()
        return self._states.unfreeze(id, user_id=user_id)

    def feedback(
        self,
        id: str,
        *,
        useful: bool,
        user_id: str | None = None,
        query: str | None = None,
    ) -> MemoryItem:
        """Tell the cube whether a memory helped. A vote moves ``importance`` by
        ``SchedulerConfig.feedback_step`` and counts as ``feedback_uses`` accesses (plus or minus)
        in the usage signal, so future working memory and activation follow it. Needs write
        access (it changes the memory's ranking for its owner).

        It also teaches the search of the voter (the memory's owner when ``user_id`` is None):
        a small, bounded step of their ranking weights (and the cube-wide prior) over the
        signals in ``hit.signals`` for ``query`` (default: this user's latest search that
        returned the memory), and the memory's vote tally; see :meth:`ranking_profile` and
        :mod:`memcube.plaintext.ranking_profile`.
        """
        if not isinstance(useful, bool):
            raise InvalidInputError("feedback(useful=...) takes True or False.")
        if query is not None and (not isinstance(query, str) or not is_encodable(query)):
            raise InvalidInputError("feedback(query=...) takes the query string or None.")
        self._check_open()
        return self._feedback.feedback(id, useful=useful, user_id=user_id, query=query)

    def implicit_feedback(
        self, answer: str, ids: Sequence[str], *, user_id: str, query: str | None = None
    ) -> list[str]:
        """Implicit feedback (optional): vote ``useful`` for the memories among ``ids`` (e.g.
        those recalled for ``query``) that ``answer`` visibly used: it holds at least half of
        the memory's topic words (see :func:`memcube.plaintext.ranking_profile.answer_uses`).
        The others get no vote. Returns the ids voted for."""
        self._check_open()
        check_scope_id(user_id, "user_id", required=True)
        if not isinstance(answer, str) or isinstance(ids, str):
            raise InvalidInputError("implicit_feedback takes the answer text and a list of ids.")
        if query is not None and not isinstance(query, str):
            raise InvalidInputError("implicit_feedback(query=...) takes a string or None.")
        return self._feedback.from_answer(answer, list(ids), user_id=user_id, query=query)

    def ranking_profile(self, user_id: str | None = None) -> dict[str, Any]:
        """What the search learned from feedback: the stored profile of ``user_id`` (weights,
        learning steps, vote tallies, version) plus ``effective_weights`` (what a search ranks
        with now: the cube-wide prior moved toward the user's own weights) and
        ``prior_weights``; ``user_id=None``: the cube-wide prior. JSON-ready."""
        self._check_open()
        check_scope_id(user_id, "user_id")
        return self._feedback.profile(user_id)

    def reset_ranking_profile(self, user_id: str | None = None) -> dict[str, Any]:
        """Forget what the search learned from ``user_id``'s feedback (``None``: the cube-wide
        prior); the scheduler's importance is not changed. Audited; returns the fresh profile."""
        self._check_open()
        check_scope_id(user_id, "user_id")
        return self._feedback.reset(user_id)

    def export_ranking(self, user_id: str | None = None) -> dict[str, Any] | None:
        """The ranking profiles a MIP export carries (``None`` when nothing was learned)."""
        self._check_open()
        return self.ranking_profiles.export_document(user_id)

    def import_ranking(self, document: Any, *, on_conflict: str = "skip") -> list[str]:
        """Store the ranking profiles of a MIP archive (see :meth:`export_ranking`)."""
        self._check_open()
        return self.ranking_profiles.import_document(document, on_conflict=on_conflict)

    def rematerialize_pending(
        self,
        runtime: Any,
        *,
        user_id: str | None = None,
        kind: str | None = None,
        signing_key: Any = None,
        progress: bool = False,
    ) -> list[Any]:
        """Build the caches and adapters an import left for later (``rematerialize="lazy"``)
        that are meant for ``runtime``'s model: of one user and kind (``"activation"`` or
        ``"adapters"``), or all. Chat calls do this on first use; call it to do it ahead.
        Derived payloads are signed with ``signing_key`` when given. Returns what was done
        (:class:`~memcube.interchange.rematerialize.Rematerialization` records)."""
        from memcube.interchange.rematerialize import has_pending, run_pending

        self._check_open()
        if not has_pending(self.path):
            return []
        with self._rematerialize_lock:
            return run_pending(
                self,
                runtime,
                user_id=user_id,
                kind=kind,
                signing_key=signing_key,
                progress=progress,
            )

    def maintain(self, *, user_id: str | None = None) -> dict[str, list[str]]:
        """Run the time-based and batched policies: memories whose TTL ran out become
        ``expired`` (hidden, kept), activated memories that went cold are demoted, and the
        stored activation blocks are rebuilt (the removals, reorders and evictions calls leave
        out; their KV caches are rebuilt now for the models this process serves the cube with).
        Returns the ids per action (``activation_rebuilt``: the users whose block was rebuilt).
        Safe to run at any time (e.g. from a periodic job)."""
        from memcube.activation.memory import counter_name, live_runtimes, warm

        self._check_open()
        check_scope_id(user_id, "user_id")
        done = self._states.maintain(user_id=user_id)
        runtimes = {counter_name(rt): rt for rt in live_runtimes(self)}
        rebuilt = self._block_layouts.rebuild(
            self,
            user_id,
            config=self.scheduler_config,
            counters={name: rt.count_tokens for name, rt in runtimes.items()},
        )
        for layout in rebuilt:
            rt = runtimes.get(layout.counter)
            if rt is not None:
                warm(
                    self,
                    rt,
                    layout.user_id,
                    self.get_many([e.id for e in layout.entries]),
                    layout.token_budget,
                )
        done["activation_rebuilt"] = sorted({layout.user_id for layout in rebuilt})
        return done

    # ------------------------------------------------------------------ reads
    def get(
        self, id: str, *, user_id: str | None = None, include_archived: bool = True
    ) -> MemoryItem:
        """Return the current version of a memory.

        With ``user_id`` the read is scoped: another user's memory is reported as not found.
        """
        self._check_open()
        return self._reads.get(id, user_id, include_archived=include_archived)

    def get_many(self, ids: Sequence[str], *, user_id: str | None = None) -> list[MemoryItem]:
        """Current versions of the ids that exist (and belong to ``user_id``), in the given order."""
        self._check_open()
        return self._reads.get_many(ids, user_id)

    def history(self, id: str, *, user_id: str | None = None) -> list[MemoryItem]:
        """Every version of a memory, oldest first, ending with the current one."""
        self._check_open()
        return self._reads.history(id, user_id)

    def get_version(self, id: str, version: int, *, user_id: str | None = None) -> MemoryItem:
        """One stored version of a memory.

        Raises:
            VersionNotFoundError: the memory has no such version.
        """
        self._check_open()
        return self._reads.get_version(id, version, user_id)

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
        min_score: float | None = None,
    ) -> list[SearchHit]:
        """The ``k`` memories of ``user_id`` that best match ``query``, best first.

        ``hit.score`` is a calibrated relevance in ``[0, 1]`` (higher is more relevant),
        comparable across queries, users and cube sizes, so it can be thresholded: about 0.7 and
        up for an exact answer, 0.3-0.6 for a memory on the query's topic, under 0.2 for an
        unrelated one. The per-signal parts are in ``hit.signals`` (see
        :mod:`memcube.plaintext.calibration`). Memories that repeat a better hit are left out,
        and the assistant's words rank below the user's own for questions about the user.

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
            min_score: leave out hits scoring below this (a number in ``[0, 1]``).

        Example:
            >>> import tempfile
            >>> with MemCube.open(tempfile.mkdtemp()) as cube:
            ...     _ = cube.add("I play the cello in a community orchestra", user_id="ann")
            ...     hits = cube.search("Which instrument do I play?", user_id="ann")
            ...     unrelated = cube.search("Who won the 1966 World Cup?", user_id="ann")
            ...     hits[0].score > 0.5, unrelated[0].score < 0.2
            (True, True)
        """
        self._check_open()
        check_scope_id(user_id, "user_id", required=True)
        if min_score is not None and (not is_number(min_score) or not 0 <= min_score <= 1):
            raise InvalidInputError(f"min_score must be a number in [0, 1], got {min_score!r}.")
        if not isinstance(query, str) or not query.strip() or not is_encodable(query):
            raise InvalidInputError("search needs a non-empty query string of valid Unicode text.")
        if not is_int(k) or k < 1:
            raise InvalidInputError(f"k must be a positive integer, got {k!r}.")
        return self._reads.search(
            query,
            user_id=user_id,
            k=k,
            filters=filters,
            memory_types=memory_types,
            tags=tags,
            agent_id=agent_id,
            session_id=session_id,
            time_range=time_range,
            include_archived=include_archived,
            count_usage=count_usage,
            include_shared=include_shared,
            min_score=min_score,
        )

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
        yield from self._reads.items(
            user_id=user_id,
            include_archived=include_archived,
            filters=filters,
            batch_size=batch_size,
            tags=tags,
            include_shared=include_shared,
        )

    def __iter__(self) -> Iterator[MemoryItem]:
        return self.items(user_id=None)

    def count(
        self,
        *,
        user_id: str | None = None,
        include_archived: bool = False,
        include_shared: bool = False,
    ) -> int:
        """How many memories there are (for one user, or in the whole cube); ``include_shared``
        also counts those other users shared with ``user_id``."""
        self._check_open()
        check_scope_id(user_id, "user_id")
        return self._reads.count(
            user_id=user_id, include_archived=include_archived, include_shared=include_shared
        )

    def user_ids(self) -> list[str]:
        """Every user that owns at least one memory in this cube."""
        self._check_open()
        return self._reads.user_ids()

    # ------------------------------------------------------------------ interchange (MIP)
    def restore(
        self, records: Sequence[Sequence[MemoryItem]], *, detail: dict[str, Any] | None = None
    ) -> None:
        """Write memories with their stored versions verbatim (``records``: per memory, its
        versions oldest first, current last), as an import does: the caller has validated
        them (:mod:`memcube.interchange` does); the current versions are embedded with this
        cube's embedder. Recorded in the audit log as ``import``."""
        self._check_open()
        self._writes.restore(records, detail=detail)

    def export(
        self,
        path: str | Path,
        *,
        user_id: str | None = None,
        signing_key: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Write this cube (or one user's part) to a MIP archive; see
        :func:`memcube.interchange.export_cube`. Returns an ``ExportReport``."""
        from memcube.interchange import export_cube

        self._check_open()
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
        ``(cube, report)``; see :func:`memcube.interchange.import_archive`. When ``into`` is a
        folder, the cube there is opened (created if new) once the archive has been verified.

        ``model=`` names the target cube's model (``"gemma-3-270m"``, a local folder, or a
        :class:`~memcube.runtime.Runtime`): caches and adapters built for another model are
        then recomputed, rebuilt or re-distilled for it (``rematerialize="now" | "lazy" |
        "never"``), and ``report.rematerialized`` says which rule each got and why."""
        from memcube.interchange import import_archive

        if isinstance(into, MemCube):
            into._check_open()
        elif not isinstance(into, (str, Path)) and not hasattr(into, "__fspath__"):
            raise InvalidInputError("into must be an open MemCube or the path of the target cube.")
        opener = partial(cls.open, chroma_url=kwargs.pop("chroma_url", None),
                         embedder=kwargs.pop("embedder", None))  # fmt: skip
        model = kwargs.pop("model", None)
        if model is not None and kwargs.get("runtime") is None:
            from memcube.runtime import Runtime

            kwargs["runtime"] = model if isinstance(model, Runtime) else Runtime.shared(model)
        cube, report = import_archive(
            path,
            into,
            on_conflict=on_conflict,
            trusted_keys=trusted_keys,
            open_target=opener,
            **kwargs,
        )
        return cube, report  # type: ignore[return-value]

    @classmethod
    async def aimport_archive(
        cls, path: str | Path, into: MemCube | str | Path, **kwargs: Any
    ) -> tuple[MemCube, Any]:
        """Async :meth:`import_archive`."""
        return await asyncio.to_thread(cls.import_archive, path, into, **kwargs)

    # ------------------------------------------------------------------ marketplace (OCI)
    def publish(
        self,
        reference: str,
        *,
        signing_key: Any,
        user_id: str | None = None,
        tags: Sequence[str] | None = None,
        credentials: tuple[str, str] | None = None,
        plain_http: bool | None = None,
        **listing: Any,
    ) -> Any:
        """Publish this cube (or ``user_id``'s memories, or those tagged with any of ``tags``)
        to an OCI registry channel ``oci://host/namespace/name:tag``, signed with
        ``signing_key``: a full cube the first time, then deltas. ``listing``: ``title``,
        ``description``, ``license`` (SPDX id or URL), ``terms`` (terms/price URI),
        ``publisher`` (a name), ``full=True``. Returns a
        :class:`~memcube.marketplace.PublishReport`; see
        :meth:`memcube.marketplace.Marketplace.publish`."""
        from memcube.marketplace import Marketplace

        self._check_open()
        check_scope_id(user_id, "user_id")
        market = Marketplace(self, credentials=credentials, plain_http=plain_http)
        return market.publish(
            reference, signing_key=signing_key, user_id=user_id, tags=tags, **listing
        )

    @classmethod
    def pull(
        cls,
        reference: str,
        into: MemCube | str | Path,
        *,
        trusted_keys: Any = None,
        accept_license: str | Sequence[str] | None = None,
        on_conflict: str = "skip",
        **kwargs: Any,
    ) -> tuple[MemCube, Any]:
        """Pull a published cube (and the deltas after it) into ``into`` (an open cube, or a
        folder opened once everything is verified) and return ``(cube, report)``. Digests,
        signature (against ``trusted_keys``), revocations and license are checked before
        anything is written; see :func:`memcube.marketplace.pull` (``as_user``,
        ``share_with``, ``model_fingerprint``, ``max_bytes``, ``credentials``...)."""
        from memcube.marketplace import pull

        if isinstance(into, MemCube):
            into._check_open()
        elif not isinstance(into, (str, Path)) and not hasattr(into, "__fspath__"):
            raise InvalidInputError("into must be an open MemCube or the path of the target cube.")
        opener = partial(cls.open, chroma_url=kwargs.pop("chroma_url", None),
                         embedder=kwargs.pop("embedder", None))  # fmt: skip
        cube, report = pull(
            reference,
            into,
            open_target=opener,
            trusted_keys=trusted_keys,
            accept_license=accept_license,
            on_conflict=on_conflict,
            **kwargs,
        )
        return cube, report  # type: ignore[return-value]

    async def apublish(self, reference: str, **kwargs: Any) -> Any:
        """Async :meth:`publish`."""
        return await asyncio.to_thread(self.publish, reference, **kwargs)

    @classmethod
    async def apull(
        cls, reference: str, into: MemCube | str | Path, **kwargs: Any
    ) -> tuple[MemCube, Any]:
        """Async :meth:`pull`."""
        return await asyncio.to_thread(cls.pull, reference, into, **kwargs)

    def subscribe(self, reference: str, *, trusted_keys: Any, **kwargs: Any) -> Any:
        """Follow a registry channel: :meth:`sync` then applies what its publishers (each
        signing with one of ``trusted_keys``) publish. ``accept_license``, ``on_conflict``,
        ``as_user`` (mount the memories under this owner), ``share_with`` (readers who see them
        read-only), ``revocations`` and ``revocation_keys``; see
        :meth:`memcube.marketplace.Marketplace.subscribe`."""
        from memcube.marketplace import Marketplace

        self._check_open()
        return Marketplace(self).subscribe(reference, trusted_keys=trusted_keys, **kwargs)

    def sync(
        self,
        reference: str | None = None,
        *,
        credentials: tuple[str, str] | None = None,
        plain_http: bool | None = None,
        model_fingerprint: Any = None,
    ) -> list[Any]:
        """Apply, for every subscription (or ``reference``'s), the versions published since the
        last applied one, in order; returns one :class:`~memcube.marketplace.SyncReport` each."""
        from memcube.marketplace import Marketplace

        self._check_open()
        market = Marketplace(self, credentials=credentials, plain_http=plain_http)
        return market.sync(reference, model_fingerprint=model_fingerprint)

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
        from memcube.services.ingest import add_messages

        self._check_open()
        check_scope_id(user_id, "user_id", required=True)
        return add_messages(
            self._writes,
            self.audit_log,
            messages,
            user_id=user_id,
            agent_id=agent_id,
            session_id=session_id,
            timestamp=timestamp,
            extractor=extractor,
            roles=roles,
            fact_roles=fact_roles,
        )

    def working_memory(
        self, query: str, *, user_id: str, token_budget: int = 512, **kwargs: Any
    ) -> list[MemoryItem]:
        """The memories the scheduler puts in a prompt about ``query``, within ``token_budget``
        tokens, most useful first. Adapters use this; they select nothing themselves."""
        from memcube.scheduler import working_memory

        kwargs["config"] = kwargs.get("config") or self.scheduler_config
        return working_memory(
            self, self.usage, query, user_id=user_id, token_budget=token_budget, **kwargs
        )

    def memory_block(
        self,
        query: str,
        *,
        user_id: str,
        token_budget: int = 512,
        exclude_texts: Iterable[str] = (),
        header: str | None = None,
        count_tokens: Callable[[str], int] | None = None,
        min_score: float | None = None,
        **kwargs: Any,
    ) -> MemoryBlock:
        """The memory text an agent's prompt gets for ``user_id`` and ``query``, within
        ``token_budget`` tokens: exactly what the LangChain middleware, the LlamaIndex memory
        and memory block, the LLM wrappers (``ChatMemOS``, ``MemOSLLM``) and the demo inject.
        ``""`` when nothing is relevant. The result is a ``str`` whose ``.items`` are the
        memories it holds.

        The scheduler chooses the memories (:meth:`working_memory`); every line then says whose
        words it holds (:func:`memcube.prompting.speaker`): ``user said``, ``assistant said``
        (what the assistant told the user is never presented as a fact about the user), or
        ``<owner> (shared with you)`` for a memory another user shared.

        Args:
            exclude_texts: texts already in the prompt (the conversation so far): not repeated.
            header: the block's first line (default :data:`memcube.prompting.DEFAULT_HEADER`).
            count_tokens: the model's token counter (default: about four characters a token).
            min_score: leave out memories whose search score is below this.
            kwargs: search conditions (``filters``, ``memory_types``, ``tags``...) and
                ``config`` (a :class:`~memcube.scheduler.SchedulerConfig`).

        Example:
            >>> import tempfile
            >>> with MemCube.open(tempfile.mkdtemp()) as cube:
            ...     _ = cube.add_messages([
            ...         {"role": "user", "content": "Any tips for Porto?"},
            ...         {"role": "assistant", "content": "Try Taberna do Ferrolho."},
            ...     ], user_id="ravi")
            ...     print(cube.memory_block("Where should we eat in Porto?", user_id="ravi",
            ...                             token_budget=60))  # doctest: +ELLIPSIS
            Relevant long-term memories, most relevant first:
            - [...] user said: Any tips for Porto?
            - [...] assistant said: Try Taberna do Ferrolho.
        """
        from memcube.prompting import DEFAULT_HEADER, MemoryBlock, approx_tokens, render_memories

        count = count_tokens or approx_tokens
        if min_score is not None:
            kwargs["min_score"] = min_score
        items = self.working_memory(
            query, user_id=user_id, token_budget=token_budget, exclude_texts=exclude_texts,
            count_tokens=count, **kwargs,
        )  # fmt: skip
        text = render_memories(
            items,
            header=DEFAULT_HEADER if header is None else header,
            token_budget=token_budget,
            count_tokens=count,
            reader=user_id,
        )
        return MemoryBlock(text, items)

    def activation_set(
        self,
        user_id: str,
        *,
        token_budget: int | None = None,
        count_tokens: Callable[[str], int] | None = None,
        counter: str | None = None,
        rebuild: bool = False,
        config: SchedulerConfig | None = None,
    ) -> list[MemoryItem]:
        """The user's stable memory block for a KV-cache prefix, in block order: their own
        memories of any type by importance and use (profile, fact and preference first) within
        ``token_budget`` tokens (default ``SchedulerConfig.activation_token_budget``). The
        block is stored; between rebuilds it only grows at the end (new memories appended) or
        is cut where a member changed, so its cache is never rebuilt on a call; ``rebuild=True``
        (or :meth:`maintain`) re-chooses it. ``count_tokens`` measures the budget (``counter``
        names it; layouts of different counters are kept apart). Policy:
        :func:`memcube.scheduler.plan_activation_block`.

        Example:
            >>> import tempfile
            >>> cube = MemCube.open(tempfile.mkdtemp())
            >>> a = cube.add("I am vegetarian.", user_id="ann", memory_type="preference")
            >>> b = cube.add("We talked about Lisbon trams.", user_id="ann")
            >>> [m.id for m in cube.activation_set("ann")] == [a.id, b.id]
            True
            >>> cube.close()
        """
        from memcube.activation.layout import APPROX_COUNTER

        self._check_open()
        check_scope_id(user_id, "user_id", required=True)
        cfg = (config or self.scheduler_config).validate()
        budget = cfg.activation_token_budget if token_budget is None else token_budget
        if not is_int(budget) or budget < 1:
            raise InvalidInputError(f"token_budget must be a positive integer, got {budget!r}.")
        if not isinstance(rebuild, bool):
            raise InvalidInputError("rebuild takes True or False.")
        if rebuild:
            self.usage.flush_usage()  # promotions happen when usage is written back
        return self._block_layouts.block(
            self,
            user_id,
            token_budget=budget,
            config=cfg,
            count_tokens=count_tokens or approx_tokens,
            counter=counter or APPROX_COUNTER,
            rebuild=rebuild,
        )

    @property
    def _rematerialize_lock(self) -> threading.Lock:
        lock: threading.Lock | None = self.__dict__.get("_remat_lock")
        if lock is None:
            lock = self.__dict__.setdefault("_remat_lock", threading.Lock())
        assert lock is not None
        return lock

    @property
    def _block_layouts(self) -> BlockLayouts:
        layouts = self.__dict__.get("_layouts")
        if layouts is None:
            layouts = self.__dict__["_layouts"] = BlockLayouts(self.path)
        return layouts

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


__all__ = ["DEFAULT_BATCH_SIZE", "MemCube"]
