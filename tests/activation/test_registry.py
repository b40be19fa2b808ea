"""The process-wide activation registry shares stores per cube but never keeps a cube alive."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from memcube import MemCube
from memcube.activation import activation_memory
from memcube.activation.memory import ActivationMemory
from memcube.items import MemoryItem, SearchHit


class _FakeRuntime:
    """Stands in for a Runtime: building an ActivationStore does not touch the model."""


class _Reader:
    """The smallest MemoryReader: a folder and no memories."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        return self._path

    def search(self, query: str, *, user_id: str, **kwargs: Any) -> list[SearchHit]:
        return []

    def items(self, *, user_id: str | None, **kwargs: Any) -> Iterator[MemoryItem]:
        return iter(())

    def get_many(self, ids: Sequence[str], *, user_id: str | None = None) -> list[MemoryItem]:
        return []

    def activation_set(self, user_id: str, **kwargs: Any) -> list[MemoryItem]:
        return []

    def working_memory(self, query: str, *, user_id: str, **kwargs: Any) -> list[MemoryItem]:
        return []

    def render(self, items: Sequence[MemoryItem], **kwargs: Any) -> str:
        return ""


def test_one_store_per_cube_and_runtime(tmp_path: Path) -> None:
    runtime: Any = _FakeRuntime()
    reader, other = _Reader(tmp_path / "a"), _Reader(tmp_path / "b")
    first = activation_memory(reader, runtime)
    assert isinstance(first, ActivationMemory) and first.cube is reader
    assert activation_memory(reader, runtime).store is first.store
    assert activation_memory(other, runtime).store is not first.store
    assert activation_memory(reader, _FakeRuntime()).store is not first.store  # type: ignore[arg-type]


def test_a_released_reader_is_not_held(tmp_path: Path) -> None:
    runtime: Any = _FakeRuntime()
    reader = _Reader(tmp_path)
    activation_memory(reader, runtime)
    ref = weakref.ref(reader)
    del reader
    gc.collect()
    assert ref() is None


def test_a_closed_released_cube_is_not_held(tmp_path: Path) -> None:
    runtime: Any = _FakeRuntime()
    cube = MemCube.open(tmp_path / "cube")
    mem = activation_memory(cube, runtime)
    assert activation_memory(cube, runtime).store is mem.store
    cube.close()
    ref = weakref.ref(cube)
    del cube, mem
    gc.collect()
    assert ref() is None
