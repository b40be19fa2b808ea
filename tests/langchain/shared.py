"""A module-scoped cube in both backends, for suites with many small tests (standard suites):
one cube per module and backend instead of one per test keeps them fast."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from memcube import MemCube


@pytest.fixture(scope="module", params=["embedded", "server"])
def module_cube(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[MemCube]:
    url = request.getfixturevalue("chroma_server").url if request.param == "server" else None
    cube = MemCube.open(tmp_path_factory.mktemp("module-cube"), chroma_url=url)
    yield cube
    cube.close()
