"""The state every part of the :class:`memcube.MemCube` facade shares: the opened storage, the
services wired over it, and closing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from typing_extensions import Self

from memcube.access import Governance
from memcube.audit import AuditConfig, AuditLog
from memcube.errors import CubeClosedError
from memcube.lifecycle import LifecycleConfig
from memcube.outbox import Outbox
from memcube.plaintext.backend import ChromaBackend
from memcube.plaintext.embedder import Embedder
from memcube.plaintext.repository import ItemRepository
from memcube.plaintext.retrieval import RetrievalConfig, Retriever
from memcube.scheduler import SchedulerConfig
from memcube.services.feedback import Feedback
from memcube.services.opening import FolderLocks, load_manifest
from memcube.services.ranking_store import RankingProfiles
from memcube.services.reads import Reads
from memcube.services.sharing import Sharing
from memcube.services.states import States
from memcube.services.usage import UsageCounter
from memcube.services.versions import Versions
from memcube.services.writes import Writes


class CubeBase:
    """An open cube's parts. :meth:`memcube.MemCube.open` creates it; use that."""

    def _attach(
        self,
        folder: Path,
        locks: FolderLocks,
        *,
        chroma_url: str | None,
        embedder: Embedder | None,
        owner: str | None,
        retrieval: RetrievalConfig | None,
        publish_interval: float,
        grant_cache_seconds: float,
    ) -> None:
        """Open the storage of the cube in ``folder``."""
        self._closed, self._superseded, self._locks = True, False, locks
        self.path, self.chroma_url = folder, chroma_url
        self.manifest, self.embedder = load_manifest(folder, embedder=embedder, owner=owner)
        prefix = self.manifest.collection_prefix
        self.backend = ChromaBackend(folder, chroma_url=chroma_url, prefix=prefix)
        self.outbox = Outbox(publish_interval)
        self.retriever = Retriever(self.backend, self.embedder, retrieval, outbox=self.outbox)
        self.governance = Governance(self.backend, prefix, grant_cache_seconds=grant_cache_seconds)

    def _assemble(
        self,
        scheduler: SchedulerConfig,
        lifecycle: LifecycleConfig,
        audit: AuditConfig,
        *,
        redact: Callable[[str], tuple[str, dict[str, int]]] | None,
    ) -> None:
        """Wire the services over the opened storage."""
        self.scheduler_config, self.lifecycle_config = scheduler, lifecycle
        self.audit_log = AuditLog(self.backend, audit, outbox=self.outbox)
        self.repository = ItemRepository(
            self.backend,
            self.retriever,
            self.embedder,
            dimension=self.manifest.embedding_dimension,
            merge_types=lifecycle.types,
        )
        self.usage = UsageCounter(self.repository, scheduler, is_closed=lambda: self._closed)
        self.ranking_profiles = RankingProfiles(self.path)
        self._reads = Reads(
            self.repository,
            self.retriever,
            self.governance,
            self.audit_log,
            self.usage,
            self.ranking_profiles,
        )
        self._writes = Writes(self.repository, self.audit_log, lifecycle, redact=redact)
        self._versions = Versions(
            self.repository, self._reads, self.governance, self.audit_log, redact=redact
        )
        self._states = States(
            self.repository, self._reads, self._writes, self.governance, self.usage, scheduler
        )
        self._feedback = Feedback(
            self._states, self._reads, self.retriever, self.ranking_profiles, self.audit_log
        )
        self._sharing = Sharing(self.repository, self.governance, self._writes, self.audit_log)
        self._closed = False
        self._locks.attach(self._close_superseded)

    def _close_superseded(self) -> bool:
        """Close this cube because its folder is being opened again in this process (see
        :mod:`memcube.services.opening`); ``False`` when it was closed already."""
        if self._closed:
            return False
        self._superseded = True
        self.close()
        return True

    def close(self) -> None:
        """Flush buffered usage counts and release the client and the lock. Idempotent."""
        if self._closed:
            return
        with self.repository.lock:
            try:
                self.flush()
            finally:
                self._closed = True
                try:
                    self.outbox.close()
                finally:
                    self.retriever.close()
                    self.backend.close()
                self._locks.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.chroma_url or "embedded"
        return f"MemCube(path={str(self.path)!r}, backend={where!r}, cube_id={self.cube_id!r})"

    @property
    def cube_id(self) -> str:
        return self.manifest.cube_id

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            if self._superseded:
                raise CubeClosedError(
                    f"this MemCube was closed because {self.path} was opened again in this "
                    "process; use the MemCube that the later MemCube.open(...) returned."
                )
            raise CubeClosedError("this MemCube is closed; open it again with MemCube.open(path).")

    def flush(self) -> None:
        """Write buffered usage counts, queued audit entries and retrieval markers now (a barrier:
        afterwards every other process's search sees this process's writes)."""
        self.flush_usage()
        self.outbox.flush()

    # ------------------------------------------------------------------ usage accounting
    def flush_usage(self) -> None:
        """Write buffered access counts. Searches do this in the background after
        ``USAGE_FLUSH_EVERY`` hits, at most once per ``USAGE_FLUSH_SECONDS``
        (:mod:`memcube.services.usage`); ``close``, ``flush``, ``maintain`` and
        ``activation_set`` do it at once. Usage is advisory: counts not yet flushed when a
        process dies are lost, memories never are."""
        self.usage.flush_usage()
