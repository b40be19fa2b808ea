"""Fixtures for the LlamaIndex adapter tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def session_one_cubes(
    tmp_path_factory: pytest.TempPathFactory, chroma_server: Any
) -> dict[str | None, tuple[Path, dict[str, list[str]]]]:
    """Session 1, run by ``tests/llama_index/session_one.py`` in a NEW process, into one embedded
    cube and one cube on the Chroma server. Maps the backend (``None`` for embedded, else the
    server URL) to the cube path and what the process reported (user -> memory contents)."""
    base = tmp_path_factory.mktemp("li-session-one")
    cubes = {None: base / "embedded", chroma_server.url: base / "server"}
    args = [x for backend, path in cubes.items() for x in (str(path), backend or "")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.llama_index.session_one", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = json.loads(proc.stdout.strip().splitlines()[-1])
    return {backend: (path, rep) for (backend, path), rep in zip(cubes.items(), reports)}
