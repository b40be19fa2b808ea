"""Per-memory KV chunks: compute once, refuse what may not be served, budget, crash safety."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch

from memcube.activation import CorruptCacheError
from memcube.activation.chunks import ChunkNotFoundError, ChunkStore
from memcube.errors import ModelMismatchError, StaleChunkError
from memcube.runtime import Runtime

LINES = [
    "\n- [8 May 2023] Caroline: I went to a LGBTQ support group yesterday.",
    "\n- [8 May 2023] Melanie: I painted a sunrise last year.",
    "\n- [9 May 2023] Caroline: I want to study counseling.",
    "\n- [9 May 2023] Melanie: My kids love the beach.",
]


def _ids(runtime: Runtime, text: str) -> list[int]:
    return list(runtime.tokenizer(text, add_special_tokens=False)["input_ids"])


def _files(store: ChunkStore) -> list[str]:
    return sorted(p.name for p in store.folder.iterdir()) if store.folder.is_dir() else []


def test_computed_once_then_served_from_memory_and_disk(runtime: Runtime, tmp_path: Path) -> None:
    ids = _ids(runtime, LINES[0])
    store = ChunkStore(tmp_path, runtime)
    chunk = store.get_or_build("m1", "v1", ids)
    assert store.get_or_build("m1", "v1", ids) is chunk
    assert store.stats["built"] == 1 and store.stats["memory_hits"] == 1
    assert chunk.token_ids == tuple(ids) and chunk.position_origin == 0
    # exactly the model's own KV of those tokens
    reference = runtime.prefill(ids)
    for i, layer in enumerate(reference.layers):
        assert torch.equal(chunk.keys[i], layer.keys) and torch.equal(chunk.values[i], layer.values)
    assert {Path(n).suffix for n in _files(store)} == {".json", ".safetensors"}
    manifest = json.loads(next(store.folder.glob("*.json")).read_text())
    assert manifest["item_id"] == "m1" and manifest["version"] == "v1"
    assert manifest["fingerprint_digest"] == runtime.fingerprint.digest
    assert manifest["position_origin"] == 0 and len(manifest["token_ids_sha256"]) == 64
    again = ChunkStore(tmp_path, runtime)  # a new process: from disk
    loaded = again.get_or_build("m1", "v1", ids)
    assert again.stats["disk_hits"] == 1 and again.stats["built"] == 0
    assert all(torch.equal(a, b) for a, b in zip(loaded.keys, chunk.keys))


def test_lead_in_is_recorded_and_only_the_memory_tokens_are_kept(
    runtime: Runtime, tmp_path: Path
) -> None:
    lead = _ids(runtime, "<|im_start|>system\nLong-term memories about the user:")
    ids = _ids(runtime, LINES[1])
    chunk = ChunkStore(tmp_path, runtime, lead_in=lead).get_or_build("m", "v1", ids)
    full = runtime.prefill(lead + ids)
    assert chunk.position_origin == len(lead) and chunk.keys[0].shape[-2] == len(ids)
    assert torch.allclose(chunk.keys[5], full.layers[5].keys[:, :, len(lead) :], atol=1e-5)
    # a store with another lead-in never serves it
    other = ChunkStore(tmp_path, runtime)
    with pytest.raises(StaleChunkError):
        other.load("m", "v1", ids)
    assert other.get_or_build("m", "v1", ids).position_origin == 0


def test_another_version_or_other_tokens_are_never_served(runtime: Runtime, tmp_path: Path) -> None:
    ids, other_ids = _ids(runtime, LINES[0]), _ids(runtime, LINES[1])
    store = ChunkStore(tmp_path, runtime)
    store.get_or_build("m1", "v1", ids)
    with pytest.raises(StaleChunkError):
        store.load("m1", "v2", ids)
    with pytest.raises(StaleChunkError):
        store.load("m1", "v1", other_ids)
    assert store.get("m1", "v2", ids) is None
    new = store.get_or_build("m1", "v2", other_ids)  # the memory changed: rebuilt, replaced
    assert new.version == "v2" and store.stats["built"] == 2
    assert len(_files(store)) == 2  # one stored chunk per memory
    fresh = ChunkStore(tmp_path, runtime)
    assert fresh.get("m1", "v1", ids) is None
    with pytest.raises(StaleChunkError):
        fresh.load("m1", "v1")
    assert fresh.load("m1", "v2", other_ids).token_ids == tuple(other_ids)
    with pytest.raises(ChunkNotFoundError):
        fresh.load("nope", "v1")


def test_a_chunk_of_another_model_is_refused(
    runtime: Runtime, tiny_llama_runtime: Runtime, tmp_path: Path
) -> None:
    ids = _ids(runtime, LINES[0])
    ChunkStore(tmp_path, tiny_llama_runtime).get_or_build("m1", "v1", ids)
    store = ChunkStore(tmp_path, runtime)
    with pytest.raises(ModelMismatchError):
        store.load("m1", "v1", ids)
    assert store.get("m1", "v1", ids) is None
    chunk = store.get_or_build("m1", "v1", ids)  # rebuilt for this model
    assert chunk.manifest.fingerprint_digest == runtime.fingerprint.digest
    assert store.stats["rejected"] >= 1 and store.stats["built"] == 1
    with pytest.raises(ModelMismatchError):
        ChunkStore(tmp_path, tiny_llama_runtime).load("m1", "v1", ids)


def test_drop_removes_memory_and_disk(runtime: Runtime, tmp_path: Path) -> None:
    ids = _ids(runtime, LINES[0])
    store = ChunkStore(tmp_path, runtime)
    store.get_or_build("m1", "v1", ids)
    assert store.drop("m1") is True and _files(store) == []
    assert store.memory_bytes == 0 and store.disk_bytes == 0
    assert store.drop("m1") is False
    store.get_or_build("m1", "v1", ids)
    assert store.stats["built"] == 2


def test_lru_eviction_keeps_the_disk_store_under_its_byte_budget(
    runtime: Runtime, tmp_path: Path
) -> None:
    ids = [_ids(runtime, line) for line in LINES]
    probe = ChunkStore(tmp_path / "probe", runtime)
    probe.get_or_build("x", "v1", ids[0])
    per_chunk = probe.disk_bytes
    budget = int(per_chunk * 3.5)
    store = ChunkStore(tmp_path, runtime, byte_budget=budget, touch_interval_s=0)
    for i in range(3):
        store.get_or_build(f"m{i}", "v1", ids[i])
        time.sleep(0.02)
    store.get_or_build("m0", "v1", ids[0])  # used again: m1 is now the least recently used
    time.sleep(0.02)
    store.get_or_build("m3", "v1", ids[3])
    assert store.stats["evicted"] == 1
    assert store.disk_bytes <= budget
    assert store.disk_bytes == sum(p.stat().st_size for p in store.folder.iterdir())
    survivors = ChunkStore(tmp_path, runtime)
    assert survivors.get("m1", "v1", ids[1]) is None
    for i in (0, 2, 3):
        assert survivors.get(f"m{i}", "v1", ids[i]) is not None


def test_half_written_chunks_never_load(runtime: Runtime, tmp_path: Path) -> None:
    ids = _ids(runtime, LINES[0])
    store = ChunkStore(tmp_path, runtime, orphan_grace_s=0)
    store.get_or_build("m1", "v1", ids)
    tensors_path, manifest_path = store.paths("m1")

    # 1. a crash after the tensors, before the manifest: tensors without a manifest
    manifest_path.unlink()
    fresh = ChunkStore(tmp_path, runtime, orphan_grace_s=0)
    assert fresh.get("m1", "v1", ids) is None
    with pytest.raises(ChunkNotFoundError):
        fresh.load("m1", "v1", ids)
    assert fresh.sweep() == 1 and _files(fresh) == []

    # 2. a truncated tensor file under a valid manifest
    store.clear_memory()
    store.drop("m1")
    store.get_or_build("m1", "v1", ids)
    data = tensors_path.read_bytes()
    tensors_path.write_bytes(data[: len(data) // 2])
    fresh = ChunkStore(tmp_path, runtime)
    with pytest.raises(CorruptCacheError):
        fresh.load("m1", "v1", ids)
    assert fresh.get("m1", "v1", ids) is None
    assert _files(fresh) == []  # cleaned up
    assert fresh.get_or_build("m1", "v1", ids).token_ids == tuple(ids)

    # 3. a manifest next to another write's tensors (same names, other build)
    old_tensors = tensors_path.read_bytes()
    fresh.drop("m1")
    fresh.get_or_build("m1", "v1", ids)
    tensors_path.write_bytes(old_tensors)
    again = ChunkStore(tmp_path, runtime)
    with pytest.raises(CorruptCacheError):
        again.load("m1", "v1", ids)
    assert again.get("m1", "v1", ids) is None

    # 4. garbage manifests and leftover temporary files are swept
    again.get_or_build("m1", "v1", ids)
    (store.folder / ("0" * 40 + ".json")).write_text("{not json")
    (store.folder / ".x.safetensors.123.tmp").write_bytes(b"partial")
    old = time.time() - 3600
    os.utime(store.folder / ".x.safetensors.123.tmp", (old, old))
    assert ChunkStore(tmp_path, runtime, orphan_grace_s=60).sweep() == 2
    assert len(_files(again)) == 2


def test_a_copied_manifest_of_another_memory_is_refused(runtime: Runtime, tmp_path: Path) -> None:
    a, b = _ids(runtime, LINES[0]), _ids(runtime, LINES[1])
    store = ChunkStore(tmp_path, runtime)
    store.get_or_build("a", "v1", a)
    store.get_or_build("b", "v1", b)
    ta, ma = store.paths("a")
    tb, mb = store.paths("b")
    shutil.copy(ma, mb)
    shutil.copy(ta, tb)
    fresh = ChunkStore(tmp_path, runtime)
    with pytest.raises(CorruptCacheError):
        fresh.load("b", "v1", b)
    assert fresh.get("b", "v1", b) is None


def test_concurrent_get_or_build_is_safe(runtime: Runtime, tmp_path: Path) -> None:
    ids = [_ids(runtime, line) for line in LINES]
    store = ChunkStore(tmp_path, runtime)
    results: list[object] = []
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for j in range(len(LINES)):
                i = (j + k) % len(LINES)
                results.append(store.get_or_build(f"m{i}", "v1", ids[i]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.stats["built"] == len(LINES)
    assert len(results) == 6 * len(LINES)
    assert len({id(r) for r in results}) == len(LINES)
    assert len(_files(store)) == 2 * len(LINES)
