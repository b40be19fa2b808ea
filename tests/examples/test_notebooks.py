"""The tutorial notebooks run top to bottom, offline, with no error."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "examples" / "notebooks").glob("*.ipynb"))


def test_the_three_tutorials_exist() -> None:
    assert {p.name for p in NOTEBOOKS} == {
        "langchain_agent_memory.ipynb",
        "llama_index_memory.ipynb",
        "kv_cache_injection.ipynb",
    }


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    book = nbformat.read(path, as_version=4)
    client = NotebookClient(
        book, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
    )
    client.execute()  # raises CellExecutionError on the first failing cell
    errors = [
        o
        for c in book.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert errors == []
    if path.stem == "kv_cache_injection":
        images = [
            o for c in book.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
        ]
        assert images, "the KV notebook must draw its time-to-first-token plot"
