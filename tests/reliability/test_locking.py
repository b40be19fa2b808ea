"""Two processes and one embedded cube: the second gets a clear CubeLockedError, and a lock held
by a process that died (kill -9) is released by the kernel."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from memcube import MemCube
from memcube.errors import CubeLockedError

OPEN_AND_REPORT = """
import sys
from memcube import MemCube
from memcube.errors import CubeLockedError
try:
    MemCube.open(sys.argv[1]).close()
except CubeLockedError as exc:
    print("CubeLockedError:", exc)
    sys.exit(3)
print("OPENED")
"""


def open_in_subprocess(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", OPEN_AND_REPORT, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_same_process_second_open_takes_over_from_the_first(tmp_path: Path) -> None:
    first = MemCube.open(tmp_path / "cube")
    kept = first.add("written through the first object", user_id="u")
    second = MemCube.open(tmp_path / "cube")  # closes `first` (flushed), with a warning
    try:
        assert second.get(kept.id, user_id="u").content == kept.content
    finally:
        second.close()
    MemCube.open(tmp_path / "cube").close()


@pytest.mark.slow
def test_second_process_gets_cube_locked_error_and_kill9_releases_the_lock(
    tmp_path: Path, spawn
) -> None:
    path = tmp_path / "cube"
    with MemCube.open(path) as cube:
        kept = cube.add("the key is under the blue pot", user_id="u")

    holder = spawn("hold", path, stdin=True)
    assert holder.ready.wait(120), holder.stderr()

    # A second process is refused with a typed error that says what to do...
    other = open_in_subprocess(path)
    assert other.returncode == 3, other.stdout + other.stderr
    assert "is open in another process" in other.stdout
    # ...and so is this process, also with lock_timeout (it waits, then gives up).
    started = time.monotonic()
    with pytest.raises(CubeLockedError):
        MemCube.open(path, lock_timeout=0.5)
    assert time.monotonic() - started >= 0.5

    # A holder that dies without closing (SIGKILL: no cleanup code runs) frees the lock.
    holder.proc.kill()
    holder.proc.wait(timeout=30)
    with MemCube.open(path) as cube:
        assert cube.get(kept.id).content == kept.content
        assert cube.count() == 1
    assert open_in_subprocess(path).stdout.strip() == "OPENED"


def test_concurrent_first_opens_in_server_mode_agree_on_one_cube(
    chroma_server, tmp_path: Path
) -> None:
    """The manifest names the server collections: openers racing on a new folder must all end
    up on the same cube (it is created under a short lock)."""
    import threading

    path = tmp_path / "fresh"
    barrier = threading.Barrier(6)
    cubes: list[MemCube] = []
    errors: list[BaseException] = []

    def opener() -> None:
        barrier.wait()
        try:
            cubes.append(MemCube.open(path, chroma_url=chroma_server.url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert not errors, errors
        assert len({c.cube_id for c in cubes}) == 1
        item = cubes[0].add("shared from the start", user_id="u")
        assert all(c.get(item.id).content == item.content for c in cubes)
    finally:
        for c in cubes:
            c.close()
