"""Opening an embedded cube's folder again in the same process (the notebook case:
``cube = MemCube.open(p)`` run twice without ``close()``) closes the earlier MemCube object with a
warning, losing nothing it acknowledged; another process holding the folder is still refused
with a CubeLockedError that says how to fix it."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from memcube import MemCube
from memcube.errors import CubeClosedError, CubeLockedError

OPENING_LOG = "memcube.services.opening"
REPO = Path(__file__).resolve().parents[2]

HOLD = """
import sys
from memcube import MemCube
cube = MemCube.open(sys.argv[1])
print("READY", flush=True)
sys.stdin.readline()
cube.close()
"""


def reopen_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == OPENING_LOG]


def test_reopen_closes_the_earlier_object_and_keeps_its_writes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cube"
    # A long publish interval keeps the audit entry and the usage counts buffered in the first
    # object: only its close() writes them.
    first = MemCube.open(path, publish_interval=60.0)
    kept = first.add("the spare key is under the blue pot", user_id="u")
    assert first.search("where is the key?", user_id="u")[0].item.id == kept.id

    with caplog.at_level(logging.WARNING, logger=OPENING_LOG):
        second = MemCube.open(path)
    try:
        assert first.closed
        (message,) = reopen_warnings(caplog)
        assert str(path) in message and "closed" in message
        assert ".close()" in message and "with MemCube.open(...) as cube" in message

        assert second.get(kept.id, user_id="u").content == kept.content
        assert second.count(user_id="u") == 1
        assert second.get(kept.id).access_count >= 1  # the first object's usage was flushed
        assert [e.item_ids for e in second.audit(op="add")] == [(kept.id,)]

        with pytest.raises(CubeClosedError, match="opened again in this process"):
            first.search("key", user_id="u")
        first.close()  # closing it again is harmless, and leaves the new object open
        assert not second.closed
        assert second.add("still writable", user_id="u").content == "still writable"
    finally:
        second.close()


def test_notebook_cell_run_twice(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cube"
    ids = []
    with caplog.at_level(logging.WARNING, logger=OPENING_LOG):
        for run in range(3):  # the same cell, run three times in one kernel
            cube = MemCube.open(path)
            ids.append(cube.add(f"note {run}", user_id="u").id)
    try:
        assert len(reopen_warnings(caplog)) == 2
        assert sorted(i.id for i in cube.items(user_id="u")) == sorted(ids)
    finally:
        cube.close()


def test_an_unreferenced_earlier_object_does_not_block_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "cube"
    kept = MemCube.open(path).add("written through a dropped object", user_id="u")
    with MemCube.open(path) as cube:  # no gc.collect() needed
        assert cube.get(kept.id).content == kept.content


def test_a_properly_closed_object_gives_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cube"
    with caplog.at_level(logging.WARNING, logger=OPENING_LOG):
        with MemCube.open(path) as cube:
            cube.add("one", user_id="u")
        first = MemCube.open(path)
        first.close()
        with MemCube.open(path) as cube:
            assert cube.count() == 1
    assert reopen_warnings(caplog) == []


def test_nested_with_blocks_close_the_outer_cube(tmp_path: Path) -> None:
    path = tmp_path / "cube"
    with MemCube.open(path) as outer:
        item = outer.add("from the outer block", user_id="u")
        with MemCube.open(path) as inner:
            assert inner.get(item.id).content == item.content
        assert outer.closed
    with MemCube.open(path) as cube:
        assert cube.count() == 1


def test_another_process_holding_the_folder_still_gets_cube_locked_error(tmp_path: Path) -> None:
    path = tmp_path / "cube"
    with MemCube.open(path) as cube:
        cube.add("held elsewhere", user_id="u")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        assert holder.stdout is not None and holder.stdin is not None
        assert holder.stdout.readline().strip() == "READY"
        with pytest.raises(CubeLockedError) as refused:
            MemCube.open(path)
        message = str(refused.value)
        assert "is open in another process" in message
        assert ".close() on the earlier MemCube" in message
        assert "with MemCube.open(...) as cube" in message
        assert "chroma_url" in message
        holder.stdin.write("\n")
        holder.stdin.flush()
        assert holder.wait(timeout=120) == 0
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=30)
    with MemCube.open(path) as cube:  # free again once that process closed it
        assert cube.count() == 1
