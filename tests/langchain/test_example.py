"""examples/langchain_agent.py runs offline from the repository root and reports success."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_langchain_agent_example_runs(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "examples/langchain_agent.py",
            "--path",
            str(tmp_path / "cube"),
            "--max-tokens",
            "8",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "recalled in a new thread: True; after restart: True; Bob isolated: True" in out
    assert out.rstrip().endswith("OK")
    assert "allergic to peanuts" in out.split("[alice / thread 3]")[1].split("[bob")[0]
