"""The README's "Parametric memory: LoRA adapters" snippet runs as written, and its comments are
true: the distilled adapter becomes Alice's default and is used without being named, a per-call
``adapter=`` wins, and removing the default gives the base model."""

from __future__ import annotations

import copy
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from memcube import MemCube
from memcube.runtime import Runtime

pytestmark = pytest.mark.slow
README = Path(__file__).resolve().parents[2] / "README.md"


def lora_snippet() -> str:
    section = README.read_text(encoding="utf-8").split("## Parametric memory: LoRA adapters", 1)[1]
    match = re.search(r"```py\n(.*?)```", section, flags=re.S)
    assert match is not None, "the section has no ```py block"
    return match.group(1)


@pytest.fixture
def peft_folder(tmp_path: Path) -> Path:
    """A PEFT adapter folder for the base model, made the cheap way (random LoRA weights)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(12)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    with warnings.catch_warnings():  # peft calls a transformers method deprecated in v5
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(copy.deepcopy(Runtime.shared().model), config)
    folder = tmp_path / "bob-adapter"
    peft_model.save_pretrained(str(folder))
    return folder


def test_readme_lora_snippet_runs_as_written(tmp_path: Path, peft_folder: Path) -> None:
    from langchain_memos import ChatMemOS

    code = lora_snippet()
    # Training steps are the one thing scaled down (2 instead of 30: same calls, less CPU time).
    assert code.count("steps=30") == 1
    code = code.replace("steps=30", "steps=2")
    with MemCube.open(tmp_path / "cube") as cube:
        cube.add("My dog is called Biscuit.", user_id="alice", memory_type="fact")
        prepared: list[str] = []
        parametric = cube.parametric
        prepare = parametric.prepare

        def recording_prepare(name: str, **kwargs: Any) -> str:
            prepared.append(name)
            key: str = prepare(name, **kwargs)
            return key

        parametric.prepare = recording_prepare  # which adapter each generation resolved to
        exec(code, {"cube": cube, "peft_folder": peft_folder, "ChatMemOS": ChatMemOS})

        assert [m.name for m in parametric.list()] == ["alice-lora", "bob-lora"]
        assert parametric.get("alice-lora").provenance.user_id == "alice"
        # her default adapter was used automatically; the per-call choice won for one call
        assert prepared == ["alice-lora", "bob-lora"]
        # the last line removed her default: her calls use the base model again
        assert parametric.user_adapter("alice") is None
        ChatMemOS(cube=cube, user_id="alice", max_tokens=2, kv_memory=False).invoke("Hi")
        assert prepared == ["alice-lora", "bob-lora"]
