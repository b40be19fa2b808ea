"""A real registry for the marketplace tests: Debian's ``docker-registry`` (the CNCF
distribution registry) on a free loopback port, with a temporary storage folder and htpasswd
basic auth, stopped afterwards. Without ``docker-registry`` or ``htpasswd`` these tests skip,
naming the missing program (``make test`` installs both when run as root on Debian)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memcube import MemCube
from memcube.interchange import generate_signing_key, public_key_of
from memcube.marketplace.local import LocalRegistry, missing_binaries
from tests.helpers import HashEmbedder

_names = itertools.count()


def _need_binaries() -> None:
    missing = missing_binaries()
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed (apt install docker-registry apache2-utils; "
            "`make test` does it as root on Debian)"
        )


@pytest.fixture(scope="session")
def registry() -> Iterator[LocalRegistry]:
    """One registry for the session; each test uses repositories of its own."""
    _need_binaries()
    reg = LocalRegistry(username="publisher", password="s3cret-pw").start()
    yield reg
    reg.close()


@pytest.fixture
def own_registry() -> Iterator[LocalRegistry]:
    """A registry of the test's own (for tests that stop it or tamper with its storage)."""
    _need_binaries()
    reg = LocalRegistry(username="publisher", password="s3cret-pw").start()
    yield reg
    reg.close()


@pytest.fixture
def repo(registry: LocalRegistry) -> Callable[[str], str]:
    """``repo("kb:main")`` -> a fresh ``oci://127.0.0.1:PORT/tNN/kb:main`` for this test."""
    n = next(_names)
    return lambda path: registry.url(f"t{n}/{path}")


@pytest.fixture
def creds(registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The registry's credentials, also exported the way a user would (environment)."""
    monkeypatch.setenv("MEMCUBE_REGISTRY_USERNAME", registry.username)
    monkeypatch.setenv("MEMCUBE_REGISTRY_PASSWORD", registry.password)
    return registry.credentials


@pytest.fixture
def keys() -> dict[str, object]:
    a, b, c = generate_signing_key(), generate_signing_key(), generate_signing_key()
    return {"a": a, "b": b, "rogue": c, "a.pub": public_key_of(a), "b.pub": public_key_of(b)}


@pytest.fixture
def cube_at(tmp_path: Path) -> Iterator[Callable[[str], MemCube]]:
    """Open (or create) cubes under the test's folder with a fast embedder; closed afterwards."""
    opened: list[MemCube] = []

    def open_(name: str) -> MemCube:
        cube = MemCube.open(tmp_path / name, embedder=HashEmbedder(), publish_interval=0)
        opened.append(cube)
        return cube

    yield open_
    for cube in opened:
        cube.close()
