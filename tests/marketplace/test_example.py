"""The publish/subscribe example runs for real: its own local registry, one process publishing,
another subscribing and syncing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from memcube.marketplace.local import missing_binaries

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_marketplace_example_runs() -> None:
    if missing_binaries():
        pytest.skip(
            f"{', '.join(missing_binaries())} not installed (apt install docker-registry apache2-utils)"
        )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "examples/marketplace_publish_subscribe.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "[publisher] published full #1: 3 memories" in out
    assert "[publisher] published delta #2: 2 memories, 1 tombstones" in out
    assert "sync applied 1 versions: 1 new, 1 updated, 1 deleted; from IT desk" in out
    assert "(published by IT desk, shared with you): Deploys happen on Wednesdays" in out
    assert out.count("The old wiki") == 1  # deleted by the delta
