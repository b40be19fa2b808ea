"""The activation and parametric examples run offline from the repository root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_example(*args: str) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_kv_cache_injection_example() -> None:
    out = run_example("examples/kv_cache_injection.py")
    assert "time to first token, KV cache injected" in out
    assert "same answer: True" in out


@pytest.mark.slow
def test_lora_per_user_example() -> None:
    out = run_example("examples/lora_per_user.py", "--steps", "2", "--max-tokens", "8")
    # both adapters distilled and stored, each user's made their default, and all three
    # generation paths (own adapter, per-call override, base model) ran
    assert "stored alice@v1" in out and "stored bob@v1" in out
    assert "per-user defaults: {'alice': 'alice', 'bob': 'bob'}" in out
    for label in (
        "her own adapter (automatic):",
        "bob's adapter (per call):",
        "no cube, base model:",
    ):
        assert label in out
    assert "2 memories of alice distilled" in out
