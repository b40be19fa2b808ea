"""Activation memory: KV caches of a user's stable memory block, stored in the cube.

Layout: ``<cube.path>/activation/<key>.safetensors`` (keys, values and the prefix token ids)
next to ``<key>.json`` (the :class:`CacheManifest`: model fingerprint, token count, prefix-ids
hash, memory item ids, created_at). Only files with exactly those two suffixes are ever opened,
with the safetensors and JSON parsers; nothing is unpickled, so a file planted in the folder can
never run code. Files are written atomically and never rewritten: a stored cache is immutable
and every generation works on a copy.

Above the disk sits an in-memory LRU tier with a byte budget. When a user's block grows by
appended memories, the longest stored cache whose token ids are a prefix of the new block is
extended by the new tokens only.

Example:
    >>> import tempfile
    >>> from memcube.runtime import Runtime
    >>> rt = Runtime.shared()
    >>> store = ActivationStore(tempfile.mkdtemp(), rt)
    >>> ids = rt.tokenizer("<|im_start|>system\\nThe user likes tea.")["input_ids"]
    >>> entry = store.get_or_build(ids, user_id="alice", item_ids=["m1"])
    >>> entry.manifest.token_count == len(ids), store.stats["built"]
    (True, 1)
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from memcube.activation.kv import cache_nbytes, cache_to_tensors, layer_info, tensors_to_cache
from memcube.atomic import atomic_write_bytes, atomic_write_text
from memcube.errors import InvalidInputError, MemCubeError, ModelMismatchError
from memcube.provenance import Derivation, PayloadSource
from memcube.runtime.caches import cache_prefix, fork_cache
from memcube.runtime.model import ModelFingerprint

if TYPE_CHECKING:  # pragma: no cover - typing only
    from memcube.runtime.engine import Runtime

__all__ = ["FORMAT_VERSION", "ActivationStore", "CacheEntry", "CacheManifest", "CorruptCacheError"]

FORMAT_VERSION = 1
_MAX_MANIFEST_BYTES = 4 * 1024 * 1024
DEFAULT_MEMORY_BUDGET = 512 * 1024 * 1024


class CorruptCacheError(MemCubeError, ValueError):
    """A stored KV cache file is unreadable or does not match its manifest; rebuild it."""


class CacheManifest(BaseModel):
    """The JSON manifest stored next to every cache."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format: int = FORMAT_VERSION
    key: str
    fingerprint: ModelFingerprint
    fingerprint_digest: str
    adapter: str | None = None
    user_id: str | None = None
    item_ids: list[str] = []
    token_count: int
    prefix_ids_sha256: str
    layers: list[dict[str, Any]]
    nbytes: int
    created_at: datetime
    extended_from: str | None = None
    #: What the cache was built from (memories, text, token ids): lets another model rebuild it.
    source: PayloadSource | None = None
    #: Set when the cache was derived on import from a cache built for another model.
    derived: Derivation | None = None


@dataclass
class CacheEntry:
    """A loaded cache. ``cache`` is shared and read-only: callers deep-copy it before use."""

    manifest: CacheManifest
    cache: Any
    prefix_ids: list[int]
    nbytes: int


def ids_sha256(ids: Sequence[int]) -> str:
    """SHA-256 of token ids (as little-endian int64)."""
    import numpy as np

    return hashlib.sha256(np.asarray(list(ids), dtype="<i8").tobytes()).hexdigest()


class ActivationStore:
    """KV caches of memory prefixes for one model (``runtime``), on disk under ``root/activation``.

    Args:
        root: the cube folder (``cube.path``); caches go to ``root/activation``.
        runtime: the :class:`memcube.runtime.Runtime` whose model the caches belong to.
        memory_budget_bytes: size of the in-memory LRU tier.
        keep_per_user: stored caches kept per user and model; older ones are deleted when a
            newer block is stored.
    """

    def __init__(
        self,
        root: str | Path,
        runtime: Runtime,
        *,
        memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET,
        keep_per_user: int = 4,
    ) -> None:
        if memory_budget_bytes < 0:
            raise InvalidInputError("memory_budget_bytes must be >= 0")
        self.folder = Path(root) / "activation"
        self.runtime = runtime
        self.memory_budget_bytes = memory_budget_bytes
        self.keep_per_user = max(1, keep_per_user)
        self._memory: OrderedDict[str, CacheEntry] = OrderedDict()
        #: seconds the last stored cache took to write (benchmarks separate it from compute)
        self.last_save_s = 0.0
        self._lock = threading.RLock()
        self.stats = {
            "memory_hits": 0,
            "disk_hits": 0,
            "built": 0,
            "extended": 0,
            "cut": 0,
            "tokens_prefilled": 0,
        }

    # ------------------------------------------------------------------ keys and paths
    @property
    def fingerprint(self) -> ModelFingerprint:
        return self.runtime.fingerprint

    def key_for(self, prefix_ids: Sequence[int], adapter: str | None = None) -> str:
        """The cache key: model fingerprint, adapter and the prefix token ids."""
        raw = f"{self.fingerprint.digest}|{adapter or ''}|{ids_sha256(prefix_ids)}"
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]

    def _paths(self, key: str) -> tuple[Path, Path]:
        if not key or any(c not in "0123456789abcdef" for c in key):
            raise InvalidInputError(f"invalid cache key {key!r}")
        return self.folder / f"{key}.safetensors", self.folder / f"{key}.json"

    # ------------------------------------------------------------------ public API
    @property
    def memory_bytes(self) -> int:
        """Bytes currently held by the in-memory tier."""
        return sum(e.nbytes for e in self._memory.values())

    def get_or_build(
        self,
        prefix_ids: Sequence[int],
        *,
        user_id: str | None = None,
        item_ids: Sequence[str] = (),
        adapter: str | None = None,
        source: PayloadSource | None = None,
    ) -> CacheEntry:
        """The cache of exactly ``prefix_ids``: from memory, from disk, extended from a stored
        shorter prefix, or built; new caches are saved. The returned cache must not be mutated.
        ``source`` (what the block was rendered from) is recorded in the manifest of a cache
        saved now.
        """
        ids = [int(i) for i in prefix_ids]
        if not ids:
            raise InvalidInputError("cannot cache an empty prefix")
        key = self.key_for(ids, adapter)
        with self._lock:
            entry = self._memory.get(key)
            if entry is not None:
                self._memory.move_to_end(key)
                self.stats["memory_hits"] += 1
                return entry
            if self._paths(key)[1].is_file():
                try:
                    entry = self.load(key)
                except CorruptCacheError:
                    entry = None  # rebuilt below and rewritten
                if entry is not None:
                    self.stats["disk_hits"] += 1
                    self._remember(key, entry)
                    return entry
            longer = self._cut_from_longer(ids, adapter)
            if longer is not None:
                # a block cut short (a memory in it changed): the exact head of a held cache,
                # no forward pass; kept in memory only, it is derived from a stored cache
                entry = CacheEntry(
                    self._manifest(key, ids, longer, user_id, item_ids, adapter, None, source),
                    longer,
                    ids,
                    cache_nbytes(longer),
                )
                self.stats["cut"] += 1
                self._remember(key, entry)
                return entry
            base = self._longest_stored_prefix(ids, user_id, adapter)
            if base is not None:
                cache = fork_cache(base.cache)
                new_ids = ids[base.manifest.token_count :]
                self.runtime.prefill(new_ids, cache, adapter=adapter)
                self.stats["extended"] += 1
                self.stats["tokens_prefilled"] += len(new_ids)
                extended_from: str | None = base.manifest.key
            else:
                cache = self.runtime.prefill(ids, adapter=adapter)
                self.stats["built"] += 1
                self.stats["tokens_prefilled"] += len(ids)
                extended_from = None
            entry = self._save(key, ids, cache, user_id, item_ids, adapter, extended_from, source)
            self._remember(key, entry)
            self._prune(user_id, adapter, keep=key)
            return entry

    def load(self, key: str) -> CacheEntry:
        """Load a stored cache by key, refusing one built for another model.

        Raises:
            ModelMismatchError: the cache was built for a different model (or dtype, tokenizer,
                chat template) than this store's runtime.
            CorruptCacheError: the files are missing, unreadable or inconsistent.
        """
        tensors_path, manifest_path = self._paths(key)
        manifest = self.read_manifest(manifest_path)
        mine = self.fingerprint
        if manifest.fingerprint_digest != mine.digest or not manifest.fingerprint.matches(mine):
            diff = ", ".join(manifest.fingerprint.differences(mine)) or "fingerprint"
            raise ModelMismatchError(
                f"KV cache {key} was built for model {manifest.fingerprint.model_id!r} but the "
                f"runtime holds {mine.model_id!r} (differs in: {diff}). Caches are only valid "
                "for the model that built them; drop it or rebuild it with this model."
            )
        return self._read_tensors(tensors_path, manifest)

    def record_derivation(self, key: str, derivation: Derivation) -> CacheManifest:
        """Write how the stored cache ``key`` was derived on import into its manifest."""
        manifest_path = self._paths(key)[1]
        with self._lock:
            manifest = self.read_manifest(manifest_path)
            manifest.derived = derivation
            atomic_write_text(manifest_path, manifest.model_dump_json(indent=2))
            entry = self._memory.get(key)
            if entry is not None:
                entry.manifest = manifest
        return manifest

    def tensors_path(self, key: str) -> Path:
        """The safetensors file of the stored cache ``key``."""
        return self._paths(key)[0]

    def manifests(self, user_id: str | None = None) -> list[CacheManifest]:
        """Readable manifests in the folder (optionally for one user), oldest first."""
        found: list[CacheManifest] = []
        if not self.folder.is_dir():
            return found
        for path in sorted(self.folder.glob("*.json")):
            try:
                m = self.read_manifest(path)
            except CorruptCacheError:
                continue
            if user_id is None or m.user_id == user_id:
                found.append(m)
        return sorted(found, key=lambda m: m.created_at)

    def clear_memory(self) -> None:
        """Drop the in-memory tier (the disk tier is kept)."""
        with self._lock:
            self._memory.clear()

    # ------------------------------------------------------------------ internals
    @staticmethod
    def read_manifest(path: Path) -> CacheManifest:
        """Parse and validate a manifest (JSON only)."""
        try:
            if path.stat().st_size > _MAX_MANIFEST_BYTES:
                raise CorruptCacheError(f"{path} is too large to be a cache manifest")
            data = json.loads(path.read_text(encoding="utf-8"))
            manifest = CacheManifest.model_validate(data)
        except (OSError, ValueError, ValidationError) as exc:
            if isinstance(exc, CorruptCacheError):
                raise
            raise CorruptCacheError(f"unreadable KV cache manifest {path}: {exc}") from exc
        if manifest.format > FORMAT_VERSION:
            raise CorruptCacheError(f"{path} has cache format {manifest.format}; upgrade memcube")
        if path.stem != manifest.key:
            raise CorruptCacheError(f"{path} names key {manifest.key}, not {path.stem}")
        return manifest

    def _read_tensors(self, path: Path, manifest: CacheManifest) -> CacheEntry:
        from safetensors import SafetensorError
        from safetensors.torch import load as load_safetensors

        try:
            tensors = load_safetensors(path.read_bytes())
        except (OSError, SafetensorError, ValueError) as exc:
            raise CorruptCacheError(f"unreadable KV cache {path}: {exc}") from exc
        ids_tensor = tensors.pop("prefix_ids", None)
        if ids_tensor is None:
            raise CorruptCacheError(f"{path} has no prefix ids")
        ids = [int(i) for i in ids_tensor.tolist()]
        if len(ids) != manifest.token_count or ids_sha256(ids) != manifest.prefix_ids_sha256:
            raise CorruptCacheError(f"{path} does not match its manifest (prefix ids)")
        dtype = str(next(iter(tensors.values())).dtype) if tensors else ""
        if dtype != manifest.fingerprint.dtype:
            raise CorruptCacheError(
                f"{path} holds {dtype} tensors, manifest says {manifest.fingerprint.dtype}"
            )
        try:
            cache = tensors_to_cache(self.runtime.model.config, tensors, manifest.layers)
        except KeyError as exc:
            raise CorruptCacheError(f"{path} is missing tensor {exc}") from exc
        except ValueError as exc:  # malformed tensors for the layers the manifest describes
            raise CorruptCacheError(f"{path} does not match its manifest: {exc}") from exc
        if cache.get_seq_length() != manifest.token_count:
            raise CorruptCacheError(
                f"{path} covers {cache.get_seq_length()} tokens, manifest "
                f"says {manifest.token_count}"
            )
        return CacheEntry(manifest, cache, ids, cache_nbytes(cache))

    def _save(
        self,
        key: str,
        ids: list[int],
        cache: Any,
        user_id: str | None,
        item_ids: Sequence[str],
        adapter: str | None,
        extended_from: str | None,
        source: PayloadSource | None = None,
    ) -> CacheEntry:
        import torch
        from safetensors.torch import save as save_safetensors

        tensors, _ = cache_to_tensors(cache)
        tensors["prefix_ids"] = torch.tensor(ids, dtype=torch.int64)
        manifest = self._manifest(
            key, ids, cache, user_id, item_ids, adapter, extended_from, source
        )
        tensors_path, manifest_path = self._paths(key)
        start = time.perf_counter()
        # tensors first, manifest last: a manifest on disk means a complete cache
        atomic_write_bytes(tensors_path, save_safetensors(tensors, metadata={"format": "memcube"}))
        atomic_write_text(manifest_path, manifest.model_dump_json(indent=2))
        self.last_save_s = time.perf_counter() - start
        return CacheEntry(manifest, cache, ids, manifest.nbytes)

    def _manifest(
        self,
        key: str,
        ids: list[int],
        cache: Any,
        user_id: str | None,
        item_ids: Sequence[str],
        adapter: str | None,
        extended_from: str | None,
        source: PayloadSource | None = None,
    ) -> CacheManifest:
        return CacheManifest(
            key=key,
            fingerprint=self.fingerprint,
            fingerprint_digest=self.fingerprint.digest,
            adapter=adapter,
            user_id=user_id,
            item_ids=list(item_ids),
            token_count=len(ids),
            prefix_ids_sha256=ids_sha256(ids),
            layers=[layer_info(layer) for layer in cache.layers],
            nbytes=cache_nbytes(cache),
            created_at=datetime.now(timezone.utc),
            extended_from=extended_from,
            source=source,
        )

    def _remember(self, key: str, entry: CacheEntry) -> None:
        if entry.nbytes > self.memory_budget_bytes:
            return
        self._memory[key] = entry
        self._memory.move_to_end(key)
        while self.memory_bytes > self.memory_budget_bytes and len(self._memory) > 1:
            self._memory.popitem(last=False)

    def _cut_from_longer(self, ids: list[int], adapter: str | None) -> Any | None:
        """The exact cache of ``ids`` cut from a held cache of a longer block that starts with
        them, or ``None``."""
        n = len(ids)
        for entry in reversed(self._memory.values()):  # most recently used first
            if (
                entry.manifest.adapter == adapter
                and entry.manifest.token_count > n
                and entry.prefix_ids[:n] == ids
            ):
                cut = cache_prefix(entry.cache, n)
                if cut is not None:
                    return cut
        return None

    def _longest_stored_prefix(
        self, ids: list[int], user_id: str | None, adapter: str | None
    ) -> CacheEntry | None:
        best: CacheEntry | None = None
        for entry in self._memory.values():
            n = entry.manifest.token_count
            if (
                entry.manifest.adapter == adapter
                and n < len(ids)
                and (best is None or n > best.manifest.token_count)
                and entry.prefix_ids == ids[:n]
            ):
                best = entry
        digest = self.fingerprint.digest
        for m in self.manifests(user_id):
            n = m.token_count
            if (
                m.fingerprint_digest == digest
                and m.adapter == adapter
                and n < len(ids)
                and (best is None or n > best.manifest.token_count)
                and m.prefix_ids_sha256 == ids_sha256(ids[:n])
            ):
                try:
                    best = self.load(m.key)
                except (CorruptCacheError, ModelMismatchError):
                    continue
        return best

    def _prune(self, user_id: str | None, adapter: str | None, *, keep: str) -> None:
        if user_id is None:
            return
        digest = self.fingerprint.digest
        mine = [
            m
            for m in self.manifests(user_id)
            if m.fingerprint_digest == digest and m.adapter == adapter
        ]
        for m in mine[: max(0, len(mine) - self.keep_per_user)]:
            if m.key == keep:
                continue
            tensors_path, manifest_path = self._paths(m.key)
            manifest_path.unlink(missing_ok=True)  # manifest first: never a manifest w/o tensors
            tensors_path.unlink(missing_ok=True)
            self._memory.pop(m.key, None)
