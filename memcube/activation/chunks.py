"""Per-memory KV chunks: each memory's keys and values, computed once and stored in the cube.

A :class:`Chunk` is the KV cache of one memory's token ids computed on their own, after a fixed
short *lead-in* (by default none, which measured better for blending than the chat template's
system head: see ``benchmarks/kv_blend_quality.py``), so that
:func:`memcube.activation.blend.blend` can place it after any prefix by re-encoding its key
positions. The chunk covers only the memory's tokens; the lead-in's keys are not kept.

Layout: ``<root>/activation/chunks/<key>.safetensors`` (keys, values and the token ids) next to
``<key>.json`` (the :class:`ChunkManifest`: model fingerprint, memory id and version, token-ids
hash, position origin and lead-in hash, a build id shared with the tensor file). The key is a
hash of the memory id, so a memory has at most one stored chunk: the newest one computed.

Rules:

- a chunk is served only for the same model (fingerprint digest), memory version, token ids
  and lead-in; anything else is never served. :meth:`ChunkStore.get_or_build` rebuilds and
  replaces it, :meth:`ChunkStore.load` refuses it with :class:`ModelMismatchError` or
  :class:`StaleChunkError`;
- files are written atomically, tensors first and the manifest last, and the manifest names a
  build id that the tensor file's header must carry: a tensor file without a manifest, a
  truncated tensor file, or a manifest whose tensors came from another write never loads, and is
  deleted (orphans only after ``orphan_grace_s``, so a write in progress elsewhere is safe);
- the on-disk store keeps at most ``byte_budget`` bytes; the least recently used chunks are
  evicted. Use is recorded as the manifest's modification time (one ``utime`` call, at most
  every ``touch_interval_s`` per chunk);
- an in-memory LRU tier (``memory_budget_bytes``) sits above the disk;
- thread-safe; nothing is pickled, only safetensors and JSON are ever parsed.

Example:
    >>> import tempfile
    >>> from memcube.runtime import Runtime
    >>> rt = Runtime.shared()
    >>> store = ChunkStore(tempfile.mkdtemp(), rt)
    >>> ids = rt.tokenizer("\\n- [8 May 2023] Caroline: I went to a support group.")["input_ids"]
    >>> chunk = store.get_or_build("m1", "v1", ids)
    >>> chunk.token_count == len(ids), store.stats["built"]
    (True, 1)
    >>> store.get_or_build("m1", "v1", ids) is chunk
    True
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from memcube.activation.kv import cache_to_tensors
from memcube.activation.store import CorruptCacheError, ids_sha256
from memcube.atomic import atomic_write_bytes, atomic_write_text
from memcube.errors import InvalidInputError, MemCubeError, ModelMismatchError, StaleChunkError
from memcube.runtime.model import ModelFingerprint

if TYPE_CHECKING:  # pragma: no cover - typing only
    from memcube.runtime.engine import Runtime

__all__ = [
    "CHUNK_FORMAT_VERSION",
    "DEFAULT_CHUNK_BYTE_BUDGET",
    "Chunk",
    "ChunkManifest",
    "ChunkNotFoundError",
    "ChunkStore",
]

CHUNK_FORMAT_VERSION = 1
DEFAULT_CHUNK_BYTE_BUDGET = 512 * 1024 * 1024
DEFAULT_CHUNK_MEMORY_BUDGET = 256 * 1024 * 1024
_MAX_MANIFEST_BYTES = 1024 * 1024
_TENSORS = ".safetensors"
_MANIFEST = ".json"


class ChunkNotFoundError(MemCubeError, LookupError):
    """No KV chunk is stored for that memory; compute it with :meth:`ChunkStore.get_or_build`."""


class ChunkManifest(BaseModel):
    """The JSON manifest stored next to every chunk's tensors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format: int = CHUNK_FORMAT_VERSION
    key: str
    item_id: str
    version: str
    fingerprint: ModelFingerprint
    fingerprint_digest: str
    token_count: int
    token_ids_sha256: str
    #: the position of the chunk's first token when it was computed (= the lead-in's length)
    position_origin: int
    lead_in_sha256: str
    layers: list[dict[str, Any]]
    nbytes: int
    build_id: str
    created_at: datetime


@dataclass(frozen=True)
class Chunk:
    """A memory's stored KV, read-only (``keys[i]`` / ``values[i]`` are layer ``i``'s
    ``[1, kv_heads, tokens, head_dim]`` tensors at positions ``position_origin + t``)."""

    item_id: str
    version: str
    token_ids: tuple[int, ...]
    keys: tuple[Any, ...]
    values: tuple[Any, ...]
    position_origin: int
    lead_in_sha256: str
    nbytes: int
    manifest: ChunkManifest

    @property
    def token_count(self) -> int:
        return len(self.token_ids)


def _key_for(item_id: str) -> str:
    return hashlib.sha256(item_id.encode("utf-8")).hexdigest()[:40]


class ChunkStore:
    """Per-memory KV chunks for one model (``runtime``), under ``root/activation/chunks``.

    Args:
        root: the cube folder (``cube.path``).
        runtime: the :class:`memcube.runtime.Runtime` whose model computes the chunks.
        byte_budget: most bytes the stored chunks (tensors and manifests) may take on disk;
            least recently used chunks are evicted beyond it.
        memory_budget_bytes: size of the in-memory LRU tier.
        lead_in: token ids each chunk is computed after (their keys are not stored); the chunk's
            position origin is ``len(lead_in)``. Chunks computed after another lead-in are
            never served.
        orphan_grace_s: a tensor file older than this without a manifest (a crashed write) is
            deleted by :meth:`sweep`; younger ones may be a write in progress.
        touch_interval_s: how often, at most, a chunk's last use is written to disk.
    """

    def __init__(
        self,
        root: str | Path,
        runtime: Runtime,
        *,
        byte_budget: int = DEFAULT_CHUNK_BYTE_BUDGET,
        memory_budget_bytes: int = DEFAULT_CHUNK_MEMORY_BUDGET,
        lead_in: Sequence[int] = (),
        orphan_grace_s: float = 60.0,
        touch_interval_s: float = 5.0,
    ) -> None:
        if byte_budget < 0 or memory_budget_bytes < 0:
            raise InvalidInputError("byte_budget and memory_budget_bytes must be >= 0")
        self.folder = Path(root) / "activation" / "chunks"
        self.runtime = runtime
        self.byte_budget = int(byte_budget)
        self.memory_budget_bytes = int(memory_budget_bytes)
        self.lead_in: tuple[int, ...] = tuple(int(i) for i in lead_in)
        self.lead_in_sha256 = ids_sha256(self.lead_in)
        self.orphan_grace_s = float(orphan_grace_s)
        self.touch_interval_s = float(touch_interval_s)
        self._memory: OrderedDict[str, Chunk] = OrderedDict()
        self._memory_bytes = 0
        self._touched: dict[str, float] = {}
        self._disk_bytes: int | None = None  # computed on first need, then kept up to date
        self._lead_in_cache: Any = None
        self._lock = threading.RLock()
        self.stats = {
            "memory_hits": 0,
            "disk_hits": 0,
            "built": 0,
            "rejected": 0,
            "evicted": 0,
            "tokens_computed": 0,
        }

    # ------------------------------------------------------------------ paths
    @property
    def fingerprint(self) -> ModelFingerprint:
        return self.runtime.fingerprint

    def paths(self, item_id: str) -> tuple[Path, Path]:
        """The tensor file and manifest of ``item_id``'s chunk."""
        key = _key_for(_check_item_id(item_id))
        return self.folder / f"{key}{_TENSORS}", self.folder / f"{key}{_MANIFEST}"

    @property
    def disk_bytes(self) -> int:
        """Bytes the stored chunks take on disk (tensor files and manifests)."""
        with self._lock:
            if self._disk_bytes is None:
                self.sweep()  # leftovers of crashed writes do not count, and go
                self._disk_bytes = sum(size for _, _, size in self._scan())
            return self._disk_bytes

    @property
    def memory_bytes(self) -> int:
        """Bytes held by the in-memory tier."""
        return self._memory_bytes

    # ------------------------------------------------------------------ public API
    def get_or_build(self, item_id: str, version: str, token_ids: Sequence[int]) -> Chunk:
        """The chunk of ``item_id`` at ``version`` for exactly ``token_ids``: from memory, from
        disk, or computed (and stored). A stored chunk for another model, version, token ids or
        lead-in is never served; it is replaced. The returned chunk must not be mutated."""
        ids = _check_ids(token_ids)
        version = _check_version(version)
        with self._lock:
            chunk = self._lookup(item_id, version, ids)
            if chunk is not None:
                return chunk
            chunk = self._build(item_id, version, ids)
            self._remember(chunk)
            self._evict(keep=chunk.manifest.key)
            return chunk

    def get(self, item_id: str, version: str, token_ids: Sequence[int]) -> Chunk | None:
        """The stored chunk if there is a valid one (from memory or disk), else ``None``; never
        computes."""
        ids = _check_ids(token_ids)
        version = _check_version(version)
        with self._lock:
            return self._lookup(item_id, version, ids)

    def load(self, item_id: str, version: str, token_ids: Sequence[int] | None = None) -> Chunk:
        """Load ``item_id``'s stored chunk from disk, refusing one that may not be served.

        Raises:
            ChunkNotFoundError: no chunk is stored for ``item_id``.
            ModelMismatchError: it was computed by another model (weights, dtype, tokenizer or
                chat template).
            StaleChunkError: it belongs to another version of the memory, other token ids or
                another lead-in.
            CorruptCacheError: the files are unreadable or do not belong together.
        """
        version = _check_version(version)
        ids = None if token_ids is None else _check_ids(token_ids)
        tensors_path, manifest_path = self.paths(item_id)
        with self._lock:
            if not manifest_path.is_file():
                raise ChunkNotFoundError(f"no KV chunk is stored for memory {item_id!r}")
            manifest = self._read_manifest(manifest_path)
            self._check_servable(manifest, item_id, version, ids)
            chunk = self._read_tensors(tensors_path, manifest)
            self._touch(manifest.key, manifest_path, force=True)
            return chunk

    def drop(self, item_id: str) -> bool:
        """Delete ``item_id``'s chunk (memory and disk); True if there was one."""
        tensors_path, manifest_path = self.paths(item_id)
        key = manifest_path.stem
        with self._lock:
            found = self._forget(key)
            found = self._delete_files(tensors_path, manifest_path) or found
            return found

    def clear_memory(self) -> None:
        """Drop the in-memory tier (the disk tier is kept)."""
        with self._lock:
            self._memory.clear()
            self._memory_bytes = 0

    def sweep(self) -> int:
        """Delete leftovers of crashed writes: tensor files without a manifest (older than
        ``orphan_grace_s``), temporary files, and manifests that do not parse. Returns how many
        files were deleted."""
        removed = 0
        now = time.time()
        with self._lock:
            if not self.folder.is_dir():
                return 0
            for path in list(self.folder.iterdir()):
                try:
                    age = now - path.stat().st_mtime
                except OSError:
                    continue
                name = path.name
                stale = age > self.orphan_grace_s
                if name.startswith(".") and name.endswith(".tmp") and stale:
                    removed += _unlink(path)
                elif name.endswith(_TENSORS) and stale:
                    if not path.with_name(path.name[: -len(_TENSORS)] + _MANIFEST).exists():
                        removed += _unlink(path)
                elif name.endswith(_MANIFEST):
                    try:
                        self._read_manifest(path)
                    except CorruptCacheError:
                        removed += _unlink(path)
            self._disk_bytes = None
            return removed

    # ------------------------------------------------------------------ lookup
    def _lookup(self, item_id: str, version: str, ids: tuple[int, ...]) -> Chunk | None:
        tensors_path, manifest_path = self.paths(item_id)
        key = manifest_path.stem
        chunk = self._memory.get(key)
        if chunk is not None:
            if self._servable(chunk.manifest, item_id, version, ids):
                self._memory.move_to_end(key)
                self.stats["memory_hits"] += 1
                self._touch(key, manifest_path)
                return chunk
            self._forget(key)
        if not manifest_path.is_file():
            return None
        try:
            manifest = self._read_manifest(manifest_path)
        except CorruptCacheError:
            self.stats["rejected"] += 1
            self._delete_files(tensors_path, manifest_path)
            return None
        if not self._servable(manifest, item_id, version, ids):
            self.stats["rejected"] += 1  # rebuilt and replaced by the caller
            return None
        try:
            chunk = self._read_tensors(tensors_path, manifest)
        except CorruptCacheError:
            self.stats["rejected"] += 1
            self._delete_files(tensors_path, manifest_path)
            return None
        self.stats["disk_hits"] += 1
        self._touch(key, manifest_path, force=True)
        self._remember(chunk)
        return chunk

    def _servable(
        self, manifest: ChunkManifest, item_id: str, version: str, ids: tuple[int, ...] | None
    ) -> bool:
        try:
            self._check_servable(manifest, item_id, version, ids)
        except (ModelMismatchError, StaleChunkError):
            return False
        return True

    def _check_servable(
        self, manifest: ChunkManifest, item_id: str, version: str, ids: tuple[int, ...] | None
    ) -> None:
        mine = self.fingerprint
        if manifest.fingerprint_digest != mine.digest or not manifest.fingerprint.matches(mine):
            diff = ", ".join(manifest.fingerprint.differences(mine)) or "fingerprint"
            raise ModelMismatchError(
                f"the KV chunk of memory {item_id!r} was computed by model "
                f"{manifest.fingerprint.model_id!r}, not {mine.model_id!r} (differs in: {diff}); "
                "chunks are only valid for the model that computed them. Rebuild it."
            )
        if manifest.item_id != item_id:
            raise StaleChunkError(f"the stored chunk belongs to {manifest.item_id!r}")
        if manifest.version != version:
            raise StaleChunkError(
                f"the KV chunk of memory {item_id!r} is for version {manifest.version!r}, not "
                f"{version!r}; the memory changed since. Rebuild the chunk."
            )
        if ids is not None and (
            manifest.token_count != len(ids) or manifest.token_ids_sha256 != ids_sha256(ids)
        ):
            raise StaleChunkError(
                f"the KV chunk of memory {item_id!r} was computed for other token ids "
                "(another rendering of the memory). Rebuild it."
            )
        if manifest.lead_in_sha256 != self.lead_in_sha256 or manifest.position_origin != len(
            self.lead_in
        ):
            raise StaleChunkError(
                f"the KV chunk of memory {item_id!r} was computed after another lead-in; "
                "rebuild it with this store's lead-in."
            )

    # ------------------------------------------------------------------ build and save
    def _build(self, item_id: str, version: str, ids: tuple[int, ...]) -> Chunk:
        import copy

        import torch
        from safetensors.torch import save as save_safetensors

        origin = len(self.lead_in)
        if origin:
            if self._lead_in_cache is None:
                self._lead_in_cache = self.runtime.prefill(self.lead_in)
            cache = self.runtime.prefill(ids, copy.deepcopy(self._lead_in_cache))
        else:
            cache = self.runtime.prefill(ids)
        tensors, layers = cache_to_tensors(cache)
        if any(layer.get("kind") != "full" for layer in layers):
            raise InvalidInputError(
                "KV chunks need a model whose layers all use full attention (no sliding window)"
            )
        for name in list(tensors):
            tensors[name] = tensors[name][:, :, origin:, :].contiguous()
        n_layers = len(layers)
        keys = tuple(tensors[f"layers.{i}.keys"] for i in range(n_layers))
        values = tuple(tensors[f"layers.{i}.values"] for i in range(n_layers))
        nbytes = sum(t.numel() * t.element_size() for t in (*keys, *values))
        tensors["token_ids"] = torch.tensor(list(ids), dtype=torch.int64)
        key = _key_for(item_id)
        build_id = uuid.uuid4().hex
        manifest = ChunkManifest(
            key=key,
            item_id=item_id,
            version=version,
            fingerprint=self.fingerprint,
            fingerprint_digest=self.fingerprint.digest,
            token_count=len(ids),
            token_ids_sha256=ids_sha256(ids),
            position_origin=origin,
            lead_in_sha256=self.lead_in_sha256,
            layers=layers,
            nbytes=nbytes,
            build_id=build_id,
            created_at=datetime.now(timezone.utc),
        )
        tensors_path, manifest_path = self.paths(item_id)
        old = _size(tensors_path) + _size(manifest_path)
        # a manifest that names this build must never sit next to another write's tensors:
        # remove the old manifest first, then write tensors, then the new manifest
        _unlink(manifest_path)
        payload = save_safetensors(
            tensors, metadata={"format": "memcube-chunk", "build_id": build_id, "key": key}
        )
        atomic_write_bytes(tensors_path, payload)
        text = manifest.model_dump_json(indent=1)
        atomic_write_text(manifest_path, text)
        if self._disk_bytes is not None:
            self._disk_bytes += len(payload) + len(text.encode("utf-8")) - old
        self._touched[key] = time.monotonic()
        self.stats["built"] += 1
        self.stats["tokens_computed"] += len(ids)
        return Chunk(
            item_id=item_id,
            version=version,
            token_ids=ids,
            keys=keys,
            values=values,
            position_origin=origin,
            lead_in_sha256=self.lead_in_sha256,
            nbytes=nbytes,
            manifest=manifest,
        )

    # ------------------------------------------------------------------ reading
    @staticmethod
    def _read_manifest(path: Path) -> ChunkManifest:
        try:
            if path.stat().st_size > _MAX_MANIFEST_BYTES:
                raise CorruptCacheError(f"{path} is too large to be a chunk manifest")
            manifest = ChunkManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
        except CorruptCacheError:
            raise
        except (OSError, ValueError, ValidationError) as exc:
            raise CorruptCacheError(f"unreadable KV chunk manifest {path}: {exc}") from exc
        if manifest.format > CHUNK_FORMAT_VERSION:
            raise CorruptCacheError(f"{path} has chunk format {manifest.format}; upgrade memcube")
        if path.stem != manifest.key or manifest.key != _key_for(manifest.item_id):
            raise CorruptCacheError(f"{path} names key {manifest.key}, not {path.stem}")
        return manifest

    def _read_tensors(self, path: Path, manifest: ChunkManifest) -> Chunk:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                metadata = fh.metadata() or {}
                if metadata.get("build_id") != manifest.build_id:
                    raise CorruptCacheError(
                        f"{path} is not the tensor file its manifest was written with"
                    )
                tensors = {name: fh.get_tensor(name) for name in fh.keys()}
        except CorruptCacheError:
            raise
        except (OSError, SafetensorError, ValueError, RuntimeError) as exc:
            raise CorruptCacheError(f"unreadable KV chunk {path}: {exc}") from exc
        ids_tensor = tensors.pop("token_ids", None)
        if ids_tensor is None:
            raise CorruptCacheError(f"{path} has no token ids")
        ids = tuple(int(i) for i in ids_tensor.tolist())
        if len(ids) != manifest.token_count or ids_sha256(ids) != manifest.token_ids_sha256:
            raise CorruptCacheError(f"{path} does not match its manifest (token ids)")
        n_layers = len(manifest.layers)
        try:
            keys = tuple(tensors[f"layers.{i}.keys"] for i in range(n_layers))
            values = tuple(tensors[f"layers.{i}.values"] for i in range(n_layers))
        except KeyError as exc:
            raise CorruptCacheError(f"{path} is missing tensor {exc}") from exc
        if len(tensors) != 2 * n_layers:
            raise CorruptCacheError(f"{path} holds unexpected tensors")
        for k, v in zip(keys, values):
            if k.dim() != 4 or k.shape != v.shape or k.shape[2] != len(ids):
                raise CorruptCacheError(f"{path} holds malformed tensors {tuple(k.shape)}")
            if str(k.dtype) != manifest.fingerprint.dtype:
                raise CorruptCacheError(
                    f"{path} holds {k.dtype} tensors, manifest says {manifest.fingerprint.dtype}"
                )
        nbytes = sum(t.numel() * t.element_size() for t in (*keys, *values))
        return Chunk(
            item_id=manifest.item_id,
            version=manifest.version,
            token_ids=ids,
            keys=keys,
            values=values,
            position_origin=manifest.position_origin,
            lead_in_sha256=manifest.lead_in_sha256,
            nbytes=nbytes,
            manifest=manifest,
        )

    # ------------------------------------------------------------------ tiers and budget
    def _remember(self, chunk: Chunk) -> None:
        key = chunk.manifest.key
        self._forget(key)
        if chunk.nbytes > self.memory_budget_bytes:
            return
        self._memory[key] = chunk
        self._memory_bytes += chunk.nbytes
        while self._memory_bytes > self.memory_budget_bytes and len(self._memory) > 1:
            _, old = self._memory.popitem(last=False)
            self._memory_bytes -= old.nbytes

    def _forget(self, key: str) -> bool:
        chunk = self._memory.pop(key, None)
        self._touched.pop(key, None)
        if chunk is None:
            return False
        self._memory_bytes -= chunk.nbytes
        return True

    def _touch(self, key: str, manifest_path: Path, *, force: bool = False) -> None:
        now = time.monotonic()
        last = self._touched.get(key)
        if not force and last is not None and now - last < self.touch_interval_s:
            return
        self._touched[key] = now
        try:
            os.utime(manifest_path)
        except OSError:
            pass

    def _scan(self) -> list[tuple[float, str, int]]:
        """(last use, key, bytes) of every stored chunk with a manifest."""
        out: list[tuple[float, str, int]] = []
        if not self.folder.is_dir():
            return out
        for manifest_path in self.folder.glob(f"*{_MANIFEST}"):
            try:
                used = manifest_path.stat().st_mtime
            except OSError:
                continue
            key = manifest_path.stem
            size = _size(manifest_path) + _size(self.folder / f"{key}{_TENSORS}")
            out.append((used, key, size))
        return out

    def _evict(self, *, keep: str) -> None:
        if self.disk_bytes <= self.byte_budget:
            return
        entries = sorted(self._scan())
        total = sum(size for _, _, size in entries)
        for _, key, size in entries:
            if total <= self.byte_budget:
                break
            if key == keep:
                continue
            self._forget(key)
            self._delete_files(self.folder / f"{key}{_TENSORS}", self.folder / f"{key}{_MANIFEST}")
            self.stats["evicted"] += 1
            total -= size
        self._disk_bytes = total

    def _delete_files(self, tensors_path: Path, manifest_path: Path) -> bool:
        size = _size(tensors_path) + _size(manifest_path)
        # the manifest first: there is never a manifest without its tensors
        found = bool(_unlink(manifest_path))
        found = bool(_unlink(tensors_path)) or found
        if self._disk_bytes is not None:
            self._disk_bytes = max(0, self._disk_bytes - size)
        return found


def _check_item_id(item_id: str) -> str:
    if not isinstance(item_id, str) or not item_id:
        raise InvalidInputError("item_id must be a non-empty string")
    return item_id


def _check_version(version: str) -> str:
    if not isinstance(version, str) or not version:
        raise InvalidInputError("version must be a non-empty string (e.g. the content hash)")
    return version


def _check_ids(token_ids: Sequence[int]) -> tuple[int, ...]:
    ids = tuple(int(i) for i in token_ids)
    if not ids:
        raise InvalidInputError("a KV chunk needs at least one token")
    return ids


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _unlink(path: Path) -> int:
    try:
        path.unlink()
    except FileNotFoundError:
        return 0
    except OSError:
        return 0
    return 1
