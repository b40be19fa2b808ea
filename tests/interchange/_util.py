"""Helpers shared by the interchange tests: building cubes with history and payloads, building
hand-made (possibly hostile) archives, and taking a full snapshot of a cube."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

from memcube import MemCube

FP_A = "sha256:model-a-3f1c"
FP_B = "sha256:model-b-77aa"
QUERIES = [
    ("alice", "what does alice drink"),
    ("alice", "where does she live"),
    ("alice", "pets"),
    ("bob", "chess"),
]


def state(cube: MemCube) -> dict[str, list[dict[str, Any]]]:
    """Every memory (all users, every state) with its full history, as JSON-ready dicts."""
    out = {}
    for item in cube.items(user_id=None, include_archived=True):
        out[item.id] = [v.model_dump(mode="json") for v in cube.history(item.id)]
    return dict(sorted(out.items()))


def payload_files(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``activation/`` and ``adapters/``."""
    found = {}
    for top in ("activation", "adapters"):
        base = root / top
        if base.is_dir():
            for p in sorted(base.rglob("*")):
                if p.is_file():
                    found[p.relative_to(root).as_posix()] = hashlib.sha256(
                        p.read_bytes()
                    ).hexdigest()
    return found


def searches(cube: MemCube) -> list[list[tuple[str, float]]]:
    return [
        [[h.item.id, round(h.score, 4)] for h in cube.search(q, user_id=u, k=3)] for u, q in QUERIES
    ]


def fill(cube: MemCube) -> dict[str, str]:
    """Memories with history, provenance, archive state; returns a few ids by name."""
    t0 = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
    tea = cube.add(
        "Alice drinks black coffee every morning",
        user_id="alice",
        memory_type="preference",
        tags=["drinks"],
        metadata={"source_app": "chat", "year": 2026},
        event_time=t0,
        provenance={"source": "message", "extractor": "turns", "message_ids": ["m-1", "m-2"]},
        importance=0.8,
    )
    cube.update(tea.id, content="Alice switched to green tea in the morning")
    cube.update(tea.id, tags=["drinks", "health"])
    home = cube.add("Alice lives in Lisbon near the river", user_id="alice", memory_type="fact")
    old = cube.add("Alice had a goldfish named Bubbles", user_id="alice", session_id="s-9")
    cube.delete(old.id)  # archived, kept with its history
    cube.add("Alice adopted a border collie called Pixel", user_id="alice", agent_id="helper")
    chess = cube.add("Bob plays chess on Tuesdays", user_id="bob", memory_type="episodic")
    return {"tea": tea.id, "home": home.id, "old": old.id, "chess": chess.id}


def place_payloads(cube_path: Path, alice_item: str) -> dict[str, str]:
    """Real safetensors files with JSON manifests, laid out as the activation and parametric
    modules store them: two caches (models A and B) and one adapter for model A."""
    rng = np.random.default_rng(0)
    act = cube_path / "activation"
    act.mkdir(parents=True, exist_ok=True)
    save_file({"layer0.keys": rng.standard_normal((1, 2, 5, 4)).astype(np.float32),
               "layer0.values": rng.standard_normal((1, 2, 5, 4)).astype(np.float32)},
              str(act / "cache-a.safetensors"))  # fmt: skip
    (act / "cache-a.json").write_text(json.dumps(
        {"model_fingerprint": {"digest": FP_A, "model_id": "tiny-a"}, "tokens": 5,
         "item_ids": [alice_item], "user_id": "alice"}))  # fmt: skip
    save_file({"layer0.keys": np.ones((1, 2, 3, 4), np.float32)}, str(act / "cache-b.safetensors"))
    (act / "cache-b.json").write_text(
        json.dumps({"model_fingerprint": FP_B, "tokens": 3, "user_id": "alice"})
    )
    (act / "scratch.tmp").write_text("never exported")
    ad = cube_path / "adapters" / "alice" / "v1"
    ad.mkdir(parents=True, exist_ok=True)
    save_file({"base_model.model.layers.0.q_proj.lora_A.weight": rng.standard_normal((4, 16)).astype(np.float32)},
              str(ad / "adapter_model.safetensors"))  # fmt: skip
    (ad / "manifest.json").write_text(json.dumps(
        {"name": "alice", "version": 1, "base_model_fingerprint": FP_A, "rank": 4,
         "provenance": {"user_id": "alice"}}))  # fmt: skip
    return payload_files(cube_path)


# --------------------------------------------------------------------------- hand-made archives
def item_line(
    content: str = "Alice likes tea", *, id: str = "i1", user: str = "alice", versions: int = 1
) -> bytes:
    vs = []
    for v in range(1, versions + 1):
        vs.append({"id": id, "content": f"{content} v{v}" if versions > 1 else content,
                   "user_id": user, "version": v,
                   "state": "superseded" if v < versions else "generated"})  # fmt: skip
    return (json.dumps({"id": id, "versions": vs}) + "\n").encode()


def build_archive(
    path: Path,
    members: list[tuple[str, bytes]] | None = None,
    *,
    manifest: dict[str, Any] | None = None,
    manifest_overrides: dict[str, Any] | None = None,
    extra_infos: list[tarfile.TarInfo] | None = None,
    unlisted: list[tuple[str, bytes]] | None = None,
    sign_with: Any = None,
    compress: bool = True,
) -> Path:
    """A tar archive with ``members`` (listed in a correct manifest unless ``manifest`` is
    given), raw ``extra_infos`` (links, devices...) and ``unlisted`` members."""
    from memcube.interchange.signing import sign_manifest

    members = members if members is not None else [("items.jsonl", item_line())]
    if manifest is None:
        n_items = n_versions = 0
        for name, data in members:
            if name == "items.jsonl":
                lines = [json.loads(x) for x in data.splitlines() if x.strip()]
                n_items = len(lines)
                n_versions = sum(len(x.get("versions", [])) for x in lines if isinstance(x, dict))
        manifest = {
            "mip_version": "1.0", "producer": {"name": "test"}, "cube_id": "c-test",
            "embedder_id": "sentence-transformers/all-MiniLM-L6-v2", "embedding_dimension": 384,
            "item_schema_version": "1.0", "counts": {"items": n_items, "versions": n_versions},
            "members": {n: {"sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in members},
        }  # fmt: skip
    manifest.update(manifest_overrides or {})
    mbytes = json.dumps(manifest).encode()
    with tarfile.open(path, "w:gz" if compress else "w") as tar:
        for name, data in [*members, *(unlisted or [])]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra_infos or []:
            tar.addfile(info)
        info = tarfile.TarInfo("mip.json")
        info.size = len(mbytes)
        tar.addfile(info, io.BytesIO(mbytes))
        if sign_with is not None:
            sig = sign_manifest(mbytes, sign_with)
            info = tarfile.TarInfo("mip.sig")
            info.size = len(sig)
            tar.addfile(info, io.BytesIO(sig))
    return path


def repack(src: Path, dst: Path, edit: Any) -> Path:
    """Copy an archive member by member, letting ``edit(name, data)`` change a member's bytes
    (return ``None`` to drop it)."""
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()  # type: ignore[union-attr]
            new = edit(m.name, data)
            if new is None:
                continue
            info = tarfile.TarInfo(m.name)
            info.size = len(new)
            tout.addfile(info, io.BytesIO(new))
    return dst
