"""Crashes: kill -9 a writer in the middle of ``add_many`` of 10,000 items; kill -9 the Chroma
server mid-run and restart it; kill -9 a process in the middle of an atomic file write."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from memcube import MemCube
from memcube.atomic import atomic_write_bytes
from memcube.config import MANIFEST_NAME, CubeManifest
from memcube.errors import BackendUnavailableError
from memcube.plaintext.records import item_to_metadata, metadata_to_item
from memcube.testing import ChromaServer


def assert_no_half_written_items(cube: MemCube, acked: list[list[str]]) -> None:
    """Every stored item parses, has its full record, and belongs to an acknowledged batch or
    to the one batch that was in flight (stored whole, or not at all)."""
    res = cube.backend.get(cube.backend.items, include=("metadatas", "documents", "embeddings"))
    acked_ids = {i for batch in acked for i in batch}
    stored = set(res["ids"])
    assert acked_ids <= stored, f"{len(acked_ids - stored)} acknowledged items lost"
    for item_id, md, doc, emb in zip(
        res["ids"], res["metadatas"], res["documents"], res["embeddings"]
    ):
        item = metadata_to_item(md)  # the full JSON record is there and valid
        assert item.id == item_id
        assert doc == item.content
        # Every stored key is there, with the value the JSON implies.
        assert md == item_to_metadata(item, merge_types=cube.lifecycle_config.types)
        assert len(emb) == cube.manifest.embedding_dimension
        assert all(math.isfinite(float(x)) for x in emb)
    extra = stored - acked_ids
    # add_many writes one batch per Chroma call: the unacknowledged remainder is at most the
    # batch in flight, and whole.
    batch_size = len(acked[0])
    assert len(extra) in (0, batch_size), f"{len(extra)} items of a partial batch stored"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["embedded", "server"])
def test_kill9_in_the_middle_of_add_many(
    mode: str, tmp_path: Path, spawn, chroma_server: ChromaServer
) -> None:
    url = chroma_server.url if mode == "server" else None
    path = tmp_path / "cube"
    url_args = ["--url", url] if url else []
    writer = spawn("add_many", path, "--n", "10000", "--batch", "25", *url_args)
    rng = random.Random()
    kill_after = rng.randint(2, 3)  # acknowledged batches before we aim at a write
    deadline = time.monotonic() + 300
    while len(writer.acked) < kill_after:
        assert writer.proc.poll() is None, writer.stderr()
        assert time.monotonic() < deadline, "the writer made no progress"
        time.sleep(0.005)
    seen = writer.writes
    while writer.writes == seen:  # the next Chroma write is starting
        assert writer.proc.poll() is None and time.monotonic() < deadline, writer.stderr()
        time.sleep(0.001)
    time.sleep(rng.uniform(0.0, 0.02))
    writer.proc.kill()  # SIGKILL: no cleanup code, no close(), no lock release by us
    writer.proc.wait(timeout=30)
    time.sleep(0.2)  # let the output thread drain what the writer printed before dying
    assert not writer.done, "the writer finished before it was killed"
    acked = writer.acked
    manifest_before = json.loads((path / MANIFEST_NAME).read_text())

    # Reopen: it opens (the dead writer's file lock is gone), and nothing acknowledged is lost.
    with MemCube.open(path, chroma_url=url) as cube:
        assert CubeManifest.read(path).model_dump(mode="json") == manifest_before
        assert_no_half_written_items(cube, acked)
        acked_ids = [i for batch in acked for i in batch]
        assert len(cube.get_many(acked_ids)) == len(acked_ids)
        stored = cube.count(user_id="writer")
        assert stored >= len(acked_ids)
        # The index answers, and it finds acknowledged items.
        first = cube.get(acked_ids[0])
        hits = cube.search(first.content, user_id="writer", k=3)
        assert first.id in [h.item.id for h in hits]
        # The cube keeps working after the crash.
        cube.add("written after the crash", user_id="writer")
        assert cube.count(user_id="writer") == stored + 1


@pytest.mark.slow
def test_chroma_server_killed_and_restarted_mid_run(
    own_server: ChromaServer, tmp_path: Path
) -> None:
    cube = MemCube.open(tmp_path / "cube", chroma_url=own_server.url)
    # Retry 5 times, 0.5 + 1 + 2 + 4 + 8 s: a restart (~1-3 s, more on a busy machine) fits.
    cube.backend.retries, cube.backend.backoff_s = 5, 0.5
    cube.embedder.embed_query("load the model first")
    acked: list[str] = []
    unacked: list[str] = []  # writes that raised: stored or not, never half
    failures: list[BaseException] = []
    other: list[BaseException] = []
    stop = threading.Event()

    def write_loop() -> None:
        n = 0
        while not stop.is_set():
            item_id = f"entry-{n}"
            try:
                try:
                    acked.append(cube.add(f"entry {n}", user_id="u", id=item_id).id)
                except BackendUnavailableError:
                    unacked.append(item_id)
                    raise
                cube.search(f"entry {n}", user_id="u", k=1)
            except BackendUnavailableError as exc:
                failures.append(exc)
            except BaseException as exc:
                other.append(exc)
                return
            n += 1

    thread = threading.Thread(target=write_loop)
    thread.start()
    try:
        while len(acked) < 5:
            time.sleep(0.01)
        # 1. A short outage (shorter than the retry window): writes wait and then succeed.
        own_server.stop(kill=True)
        before = len(acked)
        time.sleep(0.5)
        own_server.start()
        while len(acked) < before + 5:
            assert thread.is_alive(), other
            time.sleep(0.01)
        assert not failures, "a short outage should be absorbed by retry with backoff"
        # 2. An outage longer than the retry window (shortened here to 0.1 + 0.2 s): operations
        # fail with the typed error, and nothing hangs.
        cube.backend.retries, cube.backend.backoff_s = 2, 0.1
        own_server.stop(kill=True)
        deadline = time.monotonic() + 60
        while not failures:
            assert time.monotonic() < deadline, "no BackendUnavailableError during the outage"
            time.sleep(0.05)
        own_server.start()
        cube.backend.retries, cube.backend.backoff_s = 5, 0.5
        after = len(acked)
        while len(acked) < after + 5:
            assert thread.is_alive(), other
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(60)
    assert not other, other
    assert "unreachable" in str(failures[0]) and isinstance(failures[0], ConnectionError)
    # No acknowledged write was lost, across two server crashes.
    assert len(cube.get_many(acked)) == len(acked)
    stored = {it.id for it in cube.items(user_id="u")}
    assert set(acked) <= stored <= set(acked) | set(unacked)
    cube.close()
    with MemCube.open(tmp_path / "cube", chroma_url=own_server.url) as again:
        assert len(again.get_many(acked)) == len(acked)


WRITE_FOREVER = """
import sys
from memcube.atomic import atomic_write_bytes
target, a, b = sys.argv[1], sys.argv[2], sys.argv[3]
blobs = [open(a, "rb").read(), open(b, "rb").read()]
print("READY", flush=True)
n = 0
while True:
    atomic_write_bytes(target, blobs[n % 2])
    n += 1
"""


def test_atomic_write_survives_kill9(tmp_path: Path) -> None:
    """A process killed while rewriting a file leaves the old or the new file, never a mix."""
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"A" * 3_000_000)
    b.write_bytes(b"B" * 2_000_000)
    target = tmp_path / "out" / "cache.safetensors"
    atomic_write_bytes(target, a.read_bytes())
    rng = random.Random()
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITE_FOREVER, str(target), str(a), str(b)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.kill()
        proc.wait(timeout=30)
        data = target.read_bytes()
        assert data in (a.read_bytes(), b.read_bytes())
