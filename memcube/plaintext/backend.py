"""The Chroma client behind a cube: embedded (``PersistentClient``) or a server (``HttpClient``).

Everything above this module is identical in both modes. Server calls are retried with
exponential backoff where that is safe (reads, and idempotent upserts keyed by id); when the
server stays away a :class:`~memcube.errors.BackendUnavailableError` is raised.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from memcube.errors import (
    BackendError,
    BackendUnavailableError,
    InvalidFilterError,
    InvalidInputError,
    MemCubeError,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: History and audit collections hold no meaningful vector; Chroma still wants one.
PLACEHOLDER_VECTOR = [0.0]

# On Chroma (1.5.9, `chroma run`) a write costs more the more writes its collection has had
# since its index was last synced, and the growth is in bytes written: with Chroma's default of
# 1000, single adds of memory records went from 11 to 26 ms before each sync, and 15 KB audit
# pages from 12 to 46 ms within 600 writes; with 100 (20 for the pages) they stayed at 10-14 ms.
#: Writes between syncs of the memory collection's vector index.
ITEMS_SYNC_THRESHOLD = 100
#: The same for the other collections: audit pages, history, grants, markers (tiny vectors).
SIDE_SYNC_THRESHOLD = 20


def _is_connection_error(exc: BaseException) -> bool:
    names = {type(e).__name__ for e in _chain(exc)}
    return bool(
        names
        & {
            "ConnectError",
            "ConnectTimeout",
            "ReadTimeout",
            "ReadError",
            "RemoteProtocolError",
            "ConnectionError",
            "ConnectionRefusedError",
            "ConnectionResetError",
            "WriteError",
            "PoolTimeout",
        }
    ) or "Could not connect" in str(exc)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


class ChromaBackend:
    """Owns the Chroma client and the cube's three collections (items, history, audit)."""

    def __init__(
        self,
        path: Path,
        *,
        chroma_url: str | None,
        prefix: str,
        retries: int = 5,
        backoff_s: float = 0.2,
    ) -> None:
        import chromadb
        from chromadb.config import Settings

        self.chroma_url = chroma_url
        self.retries = retries if chroma_url else 0
        self.backoff_s = backoff_s
        settings = Settings(anonymized_telemetry=False)
        if chroma_url:
            url = urlparse(chroma_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise InvalidInputError(
                    f"chroma_url must look like http://host:port, got {chroma_url!r}."
                )
            port = url.port or (443 if url.scheme == "https" else 8000)
            self.client: Any = self._retry(
                lambda: chromadb.HttpClient(
                    host=url.hostname or "", port=port, ssl=url.scheme == "https", settings=settings
                ),
                "connect",
            )
        else:
            # Chroma persists its HNSW index beside a file named index_metadata.pickle, which
            # its Rust code decodes with a data-only decoder (no Python unpickling, no code).
            self.client = chromadb.PersistentClient(path=str(path / "chroma"), settings=settings)
        self.items = self.collection(f"{prefix}_items", cosine=True)
        self.history = self.collection(f"{prefix}_history", cosine=False)
        self.audit = self.collection(f"{prefix}_audit", cosine=False)

    def collection(self, name: str, *, cosine: bool) -> Any:
        """Open (or create) a collection of this cube; ``cosine`` for vector-searched ones."""
        sync = ITEMS_SYNC_THRESHOLD if cosine else SIDE_SYNC_THRESHOLD
        # Any: chromadb types this as a TypedDict whose keys its own docs spell as here.
        config: Any = {"hnsw": {"space": "cosine" if cosine else "l2", "sync_threshold": sync}}
        collection = self._retry(
            lambda: self.client.get_or_create_collection(
                name, configuration=config, embedding_function=None
            ),
            f"open collection {name}",
        )
        hnsw = (collection.configuration or {}).get("hnsw") or {}
        if hnsw.get("sync_threshold", sync) != sync:  # made before the threshold was set
            try:
                self._retry(
                    lambda: collection.modify(configuration={"hnsw": {"sync_threshold": sync}}),
                    f"configure collection {name}",
                )
            except MemCubeError as exc:  # only slower without it: keep the server's setting
                log.warning("could not set sync_threshold on %s: %s", name, exc)
        return collection

    def _retry(self, fn: Callable[[], T], what: str, *, filtered: bool = False) -> T:
        """Run one Chroma call; retry connection failures with exponential backoff (server
        mode), and turn every other Chroma failure into a typed :class:`MemCubeError`."""
        attempt = 0
        while True:
            try:
                return fn()
            except MemCubeError:
                raise
            except Exception as exc:
                if not _is_connection_error(exc):
                    raise self._typed(exc, what, filtered) from exc
                if attempt >= self.retries:
                    raise BackendUnavailableError(
                        f"Chroma at {self.chroma_url or 'embedded'} is unreachable ({what}): {exc}. "
                        "Check that the server is running; nothing was lost on this side."
                    ) from exc
                delay = self.backoff_s * (2**attempt)
                log.warning("chroma %s failed (%s); retrying in %.1fs", what, exc, delay)
                time.sleep(delay)
                attempt += 1

    def _typed(self, exc: Exception, what: str, filtered: bool) -> Exception:
        from chromadb.errors import ChromaError, InvalidArgumentError

        if not isinstance(exc, (ChromaError, ValueError)):
            return exc  # not Chroma's: a bug to see as it is
        if filtered and isinstance(exc, (InvalidArgumentError, ValueError)):
            return InvalidFilterError(f"Chroma rejected the filter ({what}): {exc}")
        if isinstance(exc, (InvalidArgumentError, ValueError)):
            return InvalidInputError(f"Chroma rejected the {what}: {exc}")
        return BackendError(
            f"Chroma failed the {what} at {self.chroma_url or 'the embedded database'}: {exc}"
        )

    @property
    def max_batch(self) -> int:
        return int(self._retry(self.client.get_max_batch_size, "max batch size"))

    # Upserts are keyed by id and carry the complete record, so replaying one is harmless.
    def upsert(
        self,
        collection: Any,
        ids: Sequence[str],
        *,
        embeddings: Sequence[Sequence[float]] | None,
        documents: Sequence[str] | None,
        metadatas: Sequence[dict[str, Any]],
    ) -> None:
        self._put(collection.upsert, "upsert", ids, embeddings, documents, metadatas)

    def add(
        self,
        collection: Any,
        ids: Sequence[str],
        *,
        embeddings: Sequence[Sequence[float]],
        documents: Sequence[str] | None,
        metadatas: Sequence[dict[str, Any]],
    ) -> None:
        """Insert records whose ids are new (generated by this process). Chroma keeps the first
        record of an id and ignores a later add of it, so a replay after a lost response is
        harmless. Raw Chroma with 16 clients ran 1.1-1.2x the operations per second with adds as
        with upserts of the same records."""
        self._put(collection.add, "add", ids, embeddings, documents, metadatas)

    def _put(
        self,
        write: Callable[..., Any],
        what: str,
        ids: Sequence[str],
        embeddings: Sequence[Sequence[float]] | None,
        documents: Sequence[str] | None,
        metadatas: Sequence[dict[str, Any]],
    ) -> None:
        """One ``add`` or ``upsert`` call of whole records (a placeholder vector if none)."""
        if not ids:
            return
        vectors = embeddings if embeddings is not None else [PLACEHOLDER_VECTOR] * len(ids)
        self._retry(
            lambda: write(
                ids=list(ids),
                embeddings=[list(e) for e in vectors],
                documents=list(documents) if documents is not None else None,
                metadatas=list(metadatas),
            ),
            what,
        )

    def update_metadata(
        self, collection: Any, ids: Sequence[str], metadatas: Sequence[dict[str, Any]]
    ) -> None:
        if ids:
            self._retry(
                lambda: collection.update(ids=list(ids), metadatas=list(metadatas)), "update"
            )

    def get(
        self,
        collection: Any,
        *,
        ids: Sequence[str] | None = None,
        where: dict[str, Any] | None = None,
        limit: int | None = None,
        offset: int | None = None,
        include: Sequence[str] = ("metadatas",),
    ) -> dict[str, Any]:
        return self._retry(
            lambda: collection.get(
                ids=list(ids) if ids is not None else None,
                where=where,
                limit=limit,
                offset=offset,
                include=list(include),
            ),
            "get",
            filtered=where is not None,
        )

    def query(
        self,
        collection: Any,
        embedding: Sequence[float],
        *,
        n: int,
        where: dict[str, Any] | None,
        include: Sequence[str] = ("metadatas", "distances"),
    ) -> dict[str, Any]:
        return self.query_many(collection, [embedding], n=n, where=where, include=include)

    def query_many(
        self,
        collection: Any,
        embeddings: Sequence[Sequence[float]],
        *,
        n: int,
        where: dict[str, Any] | None,
        include: Sequence[str] = ("metadatas", "distances"),
    ) -> dict[str, Any]:
        """One nearest-neighbour query for several vectors (one result list per vector)."""
        return self._retry(
            lambda: collection.query(
                query_embeddings=[list(e) for e in embeddings],
                n_results=n,
                where=where,
                include=list(include),
            ),
            "query",
            filtered=where is not None,
        )

    def delete(
        self,
        collection: Any,
        *,
        ids: Sequence[str] | None = None,
        where: dict[str, Any] | None = None,
    ) -> None:
        if ids is not None and not ids:
            return
        self._retry(
            lambda: collection.delete(ids=list(ids) if ids is not None else None, where=where),
            "delete",
            filtered=where is not None,
        )

    def count(self, collection: Any) -> int:
        return int(self._retry(collection.count, "count"))

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # closing twice, or a server already gone: nothing left to release
            log.debug("chroma close failed", exc_info=True)
