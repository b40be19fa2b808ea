"""Shared fixtures: offline environment, a real `chroma run` server, and cubes in both modes."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memcube import MemCube


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chroma_binary() -> str:
    local = Path(sys.executable).parent / "chroma"
    found = str(local) if local.exists() else shutil.which("chroma")
    if not found:
        raise RuntimeError("the `chroma` command (from the chromadb package) is not installed")
    return found


class ChromaServer:
    """A real `chroma run` on a free loopback port, persisting to a temporary folder."""

    def __init__(self, path: Path, port: int | None = None) -> None:
        self.path = path
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.path.parent / f"chroma-{self.port}.log", "ab")
        self.proc = subprocess.Popen(
            [chroma_binary(), "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {self.proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"chroma run did not answer on {self.url} within {timeout}s")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChromaServer]:
    server = ChromaServer(tmp_path_factory.mktemp("chroma-server") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "server"])
def backend(request: pytest.FixtureRequest) -> str | None:
    """``None`` for embedded Chroma, or the URL of the session's Chroma server."""
    if request.param == "server":
        return request.getfixturevalue("chroma_server").url
    return None


CubeFactory = Callable[..., MemCube]


@pytest.fixture
def open_cube(backend: str | None, tmp_path: Path) -> Iterator[CubeFactory]:
    """Open cubes in the parametrized backend; every cube opened is closed afterwards."""
    opened: list[MemCube] = []

    def factory(path: Path | None = None, **kwargs: object) -> MemCube:
        cube = MemCube.open(path or tmp_path / "cube", chroma_url=backend, **kwargs)  # type: ignore[arg-type]
        opened.append(cube)
        return cube

    yield factory
    for cube in opened:
        cube.close()


@pytest.fixture
def cube(open_cube: CubeFactory) -> MemCube:
    """A fresh cube, once embedded and once against the real Chroma server."""
    return open_cube()
