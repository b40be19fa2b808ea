"""A pickle planted anywhere in a cube folder is never loaded: opening, searching and reopening
the cube never runs it."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

from memcube import MemCube

PLANTED_NAMES = [
    "cube.pkl",
    "index.pickle",
    "activation_memory.pickle",  # what MemOS ships its KV caches as
    "adapter_model.bin",  # PEFT's pickled adapter weights
    "cache.pt",
]


class Detonator:
    """Unpickling this object creates ``marker``: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def plant(folder: Path, payload: bytes) -> list[Path]:
    """Put the malicious pickle under every planted name in every folder of the cube."""
    planted = []
    dirs = [folder, *(p for p in folder.rglob("*") if p.is_dir())]
    dirs += [folder / "activation", folder / "adapters" / "alice"]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        for name in PLANTED_NAMES:
            target = d / name
            if not target.exists():
                target.write_bytes(payload)
                planted.append(target)
    return planted


def test_planted_pickles_are_never_loaded(open_cube, tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    payload = pickle.dumps(Detonator(marker))
    pickle.loads(payload)  # the bomb is live: loading it really does create the marker
    assert marker.exists()
    marker.unlink()

    path = tmp_path / "cube"
    cube: MemCube = open_cube(path)
    kept = cube.add("the spare key is in the green mailbox", user_id="alice")
    cube.close()  # flush to disk, so Chroma's own folders exist and get a pickle too
    planted = plant(path, payload)
    assert len(planted) >= 3 * len(PLANTED_NAMES)

    for _ in range(2):  # open, use, close; then reopen
        cube = open_cube(path)
        hits = cube.search("where is the key?", user_id="alice", k=3)
        assert hits[0].item.id == kept.id
        assert cube.get(kept.id).content == kept.content
        cube.add("another memory", user_id="alice")
        cube.close()
        assert not marker.exists(), "a planted pickle was loaded"
    for p in planted:  # left alone: never rewritten, never deleted, never loaded
        assert p.read_bytes() == payload


def test_large_embedded_cube_reopens(tmp_path: Path) -> None:
    """Past Chroma's sync threshold (1,000 vectors) its HNSW index is persisted with Chroma's own
    ``index_metadata.pickle`` (decoded by Chroma's Rust code, which runs no Python pickle); the
    cube must leave that file alone and reopen with every item findable."""
    from tests.helpers import HashEmbedder

    path = tmp_path / "big"
    with MemCube.open(path, embedder=HashEmbedder()) as cube:
        items = cube.add_many(
            [{"content": f"bulk memory number {i} about topic {i % 37}"} for i in range(1500)],
            user_id="u",
            progress=False,
        )
    assert list(path.glob("chroma/*/index_metadata.pickle")), "Chroma persisted no HNSW index"
    with MemCube.open(path, embedder=HashEmbedder()) as cube:
        assert cube.count(user_id="u") == 1500
        assert cube.get(items[-1].id).content == items[-1].content
        assert cube.search("bulk memory number 1499", user_id="u", k=5)
