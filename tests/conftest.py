"""Shared fixtures: offline environment, a real `chroma run` server, and cubes in both modes."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memcube import MemCube
from memcube.testing import ChromaServer, chroma_binary, free_port

__all__ = ["ChromaServer", "chroma_binary", "free_port"]


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
