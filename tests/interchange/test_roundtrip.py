"""Round trips: export a cube with history, caches and an adapter, import it elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import serialization
from safetensors.numpy import load_file

from memcube import MemCube
from memcube.interchange import generate_signing_key, read_archive
from tests.helpers import HashEmbedder
from tests.interchange._util import (
    FP_A,
    FP_B,
    fill,
    payload_files,
    place_payloads,
    searches,
    state,
)

REPO = Path(__file__).resolve().parents[2]


def _raw_hex(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        .hex()
    )


@pytest.mark.slow
def test_round_trip_in_a_new_process(open_cube, backend, tmp_path: Path) -> None:
    src = open_cube(tmp_path / "src")
    ids = fill(src)
    placed = place_payloads(src.path, ids["tea"])
    before = state(src)
    key = generate_signing_key()
    archive = tmp_path / "out" / "cube.mip.tar.gz"
    exp = src.export(archive, signing_key=key)
    assert (exp.items, exp.versions, exp.users) == (len(before), sum(map(len, before.values())), 2)
    assert (
        exp.signed
        and ("activation/scratch.tmp", "not safetensors or JSON: never exported")
        in exp.skipped_files
    )
    expected_search = searches(src)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.interchange.import_child", str(archive), str(tmp_path / "dst"),
         backend or "", _raw_hex(key), FP_A],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    child = json.loads(proc.stdout.strip().splitlines()[-1])

    # Items, every version and provenance are equal; so are search results.
    assert child["state"] == before
    assert child["state"][ids["tea"]][0]["provenance"]["message_ids"] == ["m-1", "m-2"]
    assert [v["version"] for v in child["state"][ids["tea"]]] == [1, 2, 3]
    assert child["searches"] == expected_search
    report = child["report"]
    assert report["signature"] == "verified" and report["added"] == len(before)
    assert report["reembedded"] is False

    # The cache and adapter for model A are attached byte for byte; model B's cache is dropped.
    assert sorted(report["attached"]) == ["activation/cache-a", "adapters/alice/v1"]
    assert [d["unit"] for d in report["dropped"]] == ["activation/cache-b"]
    assert "rebuild" in report["dropped"][0]["reason"]
    got = payload_files(tmp_path / "dst")
    for name in ("activation/cache-a.safetensors", "activation/cache-a.json",
                 "adapters/alice/v1/adapter_model.safetensors", "adapters/alice/v1/manifest.json"):  # fmt: skip
        assert got[name] == placed[name]
    assert "activation/cache-b.safetensors" not in got
    a = load_file(str(src.path / "activation/cache-a.safetensors"))
    b = load_file(str(tmp_path / "dst/activation/cache-a.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_user_scoped_export_carries_only_that_user(tmp_path: Path) -> None:
    src = MemCube.open(tmp_path / "src")
    ids = fill(src)
    place_payloads(src.path, ids["tea"])
    exp = src.export(tmp_path / "bob.mip.tar.gz", user_id="bob")
    assert (exp.items, exp.users, exp.activation_files, exp.adapter_files) == (1, 1, 0, 0)
    with read_archive(tmp_path / "bob.mip.tar.gz") as staged:
        assert [r[-1].id for r in staged.records] == [ids["chess"]]
        assert staged.manifest.scope_user_id == "bob" and staged.units == []
    exp = src.export(tmp_path / "alice.mip.tar.gz", user_id="alice")
    with read_archive(tmp_path / "alice.mip.tar.gz") as staged:
        assert {u.key for u in staged.units} == {
            "activation/cache-a",
            "activation/cache-b",
            "adapters/alice/v1",
        }
        assert {r[-1].user_id for r in staged.records} == {"alice"}
    src.close()


def test_cross_embedder_import_reembeds(open_cube, tmp_path: Path) -> None:
    src = open_cube(tmp_path / "src")
    ids = fill(src)
    before = state(src)
    src.export(tmp_path / "a.mip.tar.gz")
    dst = open_cube(tmp_path / "dst", embedder=HashEmbedder())
    cube, report = MemCube.import_archive(tmp_path / "a.mip.tar.gz", into=dst)
    assert cube is dst and report.reembedded and report.added == len(before)
    assert "re-embedded" in report.warnings[0]
    assert dst.manifest.embedder_id == HashEmbedder.model_id
    assert state(dst) == before
    # The target's own (word-hashing) embedder now ranks the memories.
    hits = dst.search("border collie Pixel", user_id="alice", k=1)
    assert hits[0].item.id != ids["tea"] and "Pixel" in hits[0].item.content
    assert dst.search("chess Tuesdays", user_id="bob", k=1)[0].item.id == ids["chess"]


def test_unknown_target_model_drops_caches_honestly(tmp_path: Path) -> None:
    with MemCube.open(tmp_path / "src") as src:
        ids = fill(src)
        place_payloads(src.path, ids["tea"])
        src.export(tmp_path / "a.mip.tar.gz")
    cube, report = MemCube.import_archive(tmp_path / "a.mip.tar.gz", into=tmp_path / "dst")
    cube.close()
    assert report.attached == []
    assert {d.unit for d in report.dropped} == {
        "activation/cache-a",
        "activation/cache-b",
        "adapters/alice/v1",
    }
    assert all("model_fingerprint=" in d.reason for d in report.dropped)
    assert payload_files(tmp_path / "dst") == {}
    # With model B only B's cache is attached.
    cube, report = MemCube.import_archive(
        tmp_path / "a.mip.tar.gz", into=tmp_path / "dst2", model_fingerprint=FP_B
    )
    cube.close()
    assert report.attached == ["activation/cache-b"]


def test_conflict_policies(tmp_path: Path) -> None:
    src = MemCube.open(tmp_path / "src")
    ids = fill(src)
    src.export(tmp_path / "a.mip.tar.gz")
    source_history = state(src)[ids["home"]]

    dst = MemCube.open(tmp_path / "dst")
    mine = dst.add("Alice lives in Porto", user_id="alice", id=ids["home"])
    _, rep = MemCube.import_archive(tmp_path / "a.mip.tar.gz", into=dst)
    assert (ids["home"], "already in the target cube (on_conflict='skip')") in rep.skipped
    assert dst.get(ids["home"]).content == "Alice lives in Porto"
    assert rep.added == len(state(src)) - 1

    _, rep = MemCube.import_archive(tmp_path / "a.mip.tar.gz", into=dst, on_conflict="new_version")
    hist = dst.history(ids["home"])
    assert [v.content for v in hist] == [
        "Alice lives in Porto",
        "Alice lives in Lisbon near the river",
    ]
    assert hist[-1].version == mine.version + 1 and rep.new_versions == 1
    # The others are identical to the target's current versions now: nothing to add.
    assert rep.imported == 1

    _, rep = MemCube.import_archive(tmp_path / "a.mip.tar.gz", into=dst, on_conflict="overwrite")
    assert [v.model_dump(mode="json") for v in dst.history(ids["home"])] == source_history
    assert rep.overwritten == len(state(src))
    assert state(dst) == state(src)
    # Imports are audited like every other write.
    entries = dst.audit_log.query(op="import")
    assert entries and ids["home"] in " ".join(str(e) for e in entries)
    dst.close()
    src.close()


async def test_async_twins(tmp_path: Path) -> None:
    with MemCube.open(tmp_path / "src") as src:
        src.add("Carol collects vinyl records", user_id="carol")
        rep = await src.aexport(tmp_path / "c.mip.tar.gz")
    cube, report = await MemCube.aimport_archive(tmp_path / "c.mip.tar.gz", into=tmp_path / "dst")
    try:
        assert rep.items == 1 and report.added == 1
        assert (
            cube.search("music collection", user_id="carol", k=1)[0].item.content
            == "Carol collects vinyl records"
        )
    finally:
        cube.close()
