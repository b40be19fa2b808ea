"""Opening a cube's folder: the lock that keeps one process per embedded cube, and the manifest
that names the cube, its collections and its embedder.

Within one process, opening a folder that an earlier, still-open ``MemCube`` object holds (the
notebook case: ``cube = MemCube.open(p)`` run twice without ``close()``) closes that earlier
object first, which flushes what it buffered, and logs a warning. Another process holding the
folder still gets :class:`~memcube.errors.CubeLockedError`.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from filelock import FileLock, Timeout

from memcube.config import MANIFEST_NAME, CubeManifest
from memcube.errors import CubeLockedError, EmbedderMismatchError, InvalidInputError
from memcube.plaintext.embedder import DEFAULT_MODEL_ID, Embedder, default_embedder

LOCK_NAME = ".memcube.lock"
HOW_TO_CLOSE = "call .close() on the earlier MemCube, or use `with MemCube.open(...) as cube:`"

log = logging.getLogger(__name__)

#: The embedded cubes open in this process, by folder: a weak reference to the method that
#: closes each (so an object nobody references any more can still be collected), and to the
#: locks it holds (so only its own entry is removed when it closes).
_holders: dict[str, tuple[weakref.ref[FolderLocks], weakref.WeakMethod[Callable[[], bool]]]] = {}
_holders_lock = threading.Lock()


@dataclass
class FolderLocks:
    """The locks taken on a cube folder: ``held`` for as long as the cube is open (embedded
    mode), ``creating`` only until the manifest exists (server mode, new folder)."""

    held: FileLock | None
    creating: FileLock | None
    folder: Path | None = field(default=None, compare=False)

    def created(self) -> None:
        """The manifest exists: other processes may open the folder now."""
        if self.creating is not None:
            self.creating.release()
            self.creating = None

    def attach(self, close_earlier: Callable[[], bool]) -> None:
        """Name the object holding ``held``: a later open of the folder in this process calls
        ``close_earlier()`` (a bound method, referenced weakly) instead of failing on the lock.
        It returns whether it closed anything."""
        if self.held is None or self.folder is None:
            return
        with _holders_lock:
            _holders[str(self.folder)] = (weakref.ref(self), weakref.WeakMethod(close_earlier))

    def release(self) -> None:
        self.created()
        if self.held is not None:
            if self.folder is not None:
                with _holders_lock:
                    entry = _holders.get(str(self.folder))
                    if entry is not None and entry[0]() is self:
                        del _holders[str(self.folder)]
            self.held.release()
            self.held = None


def _close_earlier_holder(folder: Path) -> None:
    """Close the still-open MemCube of this process that holds ``folder``, if there is one."""
    with _holders_lock:  # never held while closing: close() releases, which takes it again
        entry = _holders.pop(str(folder), None)
    close_earlier = entry[1]() if entry is not None else None
    if close_earlier is None:  # none, or collected (its lock went with it)
        return
    if close_earlier():
        log.warning(
            "%s was still open in this process through an earlier MemCube object; that object "
            "was flushed and closed so the folder could be opened again, and using it now "
            "raises CubeClosedError. To avoid this, %s.",
            folder,
            HOW_TO_CLOSE,
        )


def cube_folder(path: str | Path) -> Path:
    """The absolute folder of a cube, created if missing."""
    folder = Path(path).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"{folder} is a file; a cube is a folder (give a folder path).")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def lock_folder(folder: Path, *, server: bool, lock_timeout: float) -> FolderLocks:
    """Take the locks a cube in ``folder`` needs (see :class:`FolderLocks`)."""
    lock = FileLock(str(folder / LOCK_NAME), is_singleton=False)
    if not server:
        # Two processes writing one embedded Chroma would corrupt it; refuse the second. An
        # earlier MemCube object of this process is closed instead (see the module docstring).
        _close_earlier_holder(folder)
        try:
            lock.acquire(timeout=lock_timeout)
        except Timeout:
            raise CubeLockedError(
                f"{folder} is open in another process (or is still being opened or closed by "
                f"another thread of this one). There, {HOW_TO_CLOSE}; or run a Chroma server "
                "and open the cube with chroma_url=... from every process."
            ) from None
        return FolderLocks(held=lock, creating=None, folder=folder)
    if (folder / MANIFEST_NAME).exists():
        return FolderLocks(None, None)  # existing cube: no lock (the folder may be read-only)
    # Many processes may open a new folder at once. The manifest names the server collections,
    # so it is created under a short lock: all of them agree on it.
    try:
        lock.acquire(timeout=max(lock_timeout, 30.0))
    except Timeout:
        raise CubeLockedError(
            f"{folder} is held by an embedded MemCube in another process; open it "
            "with chroma_url=... everywhere, or close the embedded one."
        ) from None
    return FolderLocks(held=None, creating=lock)


def load_manifest(
    folder: Path, *, embedder: Embedder | None, owner: str | None
) -> tuple[CubeManifest, Embedder]:
    """The cube's manifest (written for a new cube) and the embedder it is searched with.

    Raises:
        EmbedderMismatchError: ``embedder`` differs from the one the cube was built with.
    """
    manifest = CubeManifest.read(folder)
    if manifest is None:
        emb = embedder or default_embedder()
        manifest = CubeManifest(
            owner=owner, embedder_id=emb.model_id, embedding_dimension=emb.dimension
        )
        manifest.collection_prefix = f"mc_{manifest.cube_id}"
        manifest.write(folder)
        return manifest, emb
    if embedder is None:
        if manifest.embedder_id != DEFAULT_MODEL_ID:
            raise EmbedderMismatchError(
                f"this cube was built with embedder {manifest.embedder_id!r}; "
                "pass embedder=... with that model to open it."
            )
        embedder = default_embedder()
    if (
        embedder.model_id != manifest.embedder_id
        or embedder.dimension != manifest.embedding_dimension
    ):
        raise EmbedderMismatchError(
            f"this cube was built with {manifest.embedder_id!r} "
            f"({manifest.embedding_dimension}-d) but was opened with {embedder.model_id!r} "
            f"({embedder.dimension}-d). Open it with the original embedder, or export it "
            "and import it into a new cube to re-embed."
        )
    return manifest, embedder


__all__ = [
    "HOW_TO_CLOSE",
    "LOCK_NAME",
    "FolderLocks",
    "cube_folder",
    "load_manifest",
    "lock_folder",
]
