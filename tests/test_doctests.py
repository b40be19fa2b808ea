"""The docstring examples of every module run here, except those of modules whose examples load
the chat model (minutes on 2 cores; the runtime tests cover them)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Modules whose examples load or generate with the chat model, or train an adapter.
LOADS_A_CHAT_MODEL = {
    "memcube.activation.memory",
    "memcube.activation.store",
    "memcube.parametric",
    "memcube.parametric.memory",
    "memcube.parametric.manager",
    "memcube.runtime",
    "memcube.runtime.engine",
    "memcube.runtime.model",
    "memcube.runtime.session",
    "langchain_memos.chat_model",
    "llama_index_memos.llm",
}


def _modules() -> list[str]:
    names = []
    for package in ("memcube", "langchain_memos", "llama_index_memos"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            if name not in LOADS_A_CHAT_MODEL:
                names.append(name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_the_excluded_modules_exist() -> None:
    missing = [m for m in LOADS_A_CHAT_MODEL if importlib.util.find_spec(m) is None]
    assert missing == []
