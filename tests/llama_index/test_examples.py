"""The LlamaIndex examples run offline from the repository root, as the README says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def run_example(name: str, *args: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.run(
        [sys.executable, f"examples/{name}", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_chat_engine_example(tmp_path: Path) -> None:
    out = run_example("llama_index_chat_engine.py", "--cube", str(tmp_path / "cube"))
    lines = out.splitlines()
    session_two = lines[lines.index("== session 2 (new engine, new memory)") + 2]
    assert session_two.startswith("[alice]   recalled:") and "Biscuit" in session_two
    bob = [ln for ln in lines if ln.startswith("[bob]   recalled:")]
    assert bob == ["[bob]   recalled: []"]
    assert "alice has" in lines[-2] and "bob 2" in lines[-2]


def test_query_engine_example_against_a_chroma_server(tmp_path: Path, chroma_server) -> None:
    out = run_example(
        "llama_index_query_engine.py",
        "--cube",
        str(tmp_path / "cube"),
        "--chroma-url",
        chroma_server.url,
    )
    lines = out.splitlines()
    april = lines[lines.index("retrieve (what happens in April 2026?):") + 1]
    assert "flight to Tokyo" in april and "event_time=2026-04-12" in april
    assert any(
        ln.startswith("  source: 'I booked the Shibuya hotel") and "from=message" in ln
        for ln in lines
    )
    assert "  source: 'Alice is allergic to penicillin.' (type=fact" in out
    assert "bob's retriever sees: ['Bob is allergic to shellfish.']" in lines
