"""examples/interchange.py runs offline on the defaults."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "interchange.py"


@pytest.mark.slow
def test_interchange_example(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", [str(EXAMPLE), "--workdir", str(tmp_path)])
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "signature verified" in out and "tampered archive refused: ChecksumMismatchError" in out
    assert "v2: Maya moved from Lisbon to Porto in 2026" in out
    assert "skipped activation_memory.pickle" in out and "never unpickled" in out
