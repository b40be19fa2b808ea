"""Parametric memory with the bundled SmolLM2-135M-Instruct: registry, hot swap, per-user
defaults, base identity, mixed batches, refusals, and distillation reloaded in a new process."""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from memcube import MemCube
from memcube.errors import InvalidInputError, ItemNotFoundError, ModelMismatchError
from memcube.parametric import (
    AdapterManager,
    AdapterNotFoundError,
    AdapterStore,
    CorruptAdapterError,
    resolve_adapter,
)
from memcube.runtime import ChatMessage, load_model
from memcube.runtime.chat import build_prompt

REPO = Path(__file__).resolve().parents[2]
NEW_TOKENS = 6


@pytest.fixture(scope="module")
def smol():
    return load_model()


def _peft_model(base, seed: int, targets=("q_proj", "v_proj"), rank: int = 4):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    cfg = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=list(targets), init_lora_weights=False
    )
    peft_model = get_peft_model(base, cfg)
    # random B as well (PEFT's non-default init), scaled so the output visibly changes
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    return peft_model


@pytest.fixture(scope="module")
def peft_folders(smol, tmp_path_factory):
    """Two PEFT adapter folders (safetensors) for SmolLM, made by PEFT itself on a copy."""
    model, _ = smol
    root = tmp_path_factory.mktemp("peft")
    out = {}
    for seed, name in ((1, "a"), (2, "b")):
        pm = _peft_model(copy.deepcopy(model), seed)
        pm.save_pretrained(str(root / name), safe_serialization=True)
        out[name] = root / name
        del pm
    return out


def _prompt_ids(tokenizer, text: str) -> list[int]:
    return build_prompt(tokenizer, [ChatMessage("user", text)]).ids


def _greedy(model, ids: list[int]) -> list[int]:
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
        )
    return out[0, len(ids) :].tolist()


# ---------------------------------------------------------------------------- registry
def test_register_version_list_delete(cube: MemCube, peft_folders, smol) -> None:
    pm = cube.parametric
    m1 = pm.register("alice", peft_folders["a"], description="first")
    assert (m1.name, m1.version, m1.rank, m1.alpha) == ("alice", 1, 4, 8.0)
    assert m1.target_modules == ["q_proj", "v_proj"]
    assert m1.provenance.source == "peft_folder"
    from memcube.runtime import fingerprint

    assert m1.base_model.matches(fingerprint(*smol))
    folder = pm.path("alice")
    assert folder == cube.path / "adapters" / "alice" / "v1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
        "manifest.json",
    ]
    m2 = pm.register(
        "alice", peft_folders["b"], provenance={"source": "peft_folder", "memory_ids": ["m1"]}
    )
    assert m2.version == 2 and m2.provenance.memory_ids == ["m1"]
    assert [m.ref for m in pm.list()] == ["alice@v2"]
    assert [m.version for m in pm.history("alice")] == [1, 2]
    assert pm.get("alice", 1).description == "first"
    # the stored folder is a valid PEFT folder: PEFT itself reads it back, same weights
    _, payload = pm.load("alice", 2)
    from memcube.parametric import payload_from_folder

    original = payload_from_folder(peft_folders["b"])
    assert payload.state_dict.keys() == original.state_dict.keys()
    assert all(
        torch.equal(payload.state_dict[k], original.state_dict[k]) for k in payload.state_dict
    )
    assert pm.delete("alice", 1) == [1]
    assert [m.version for m in pm.history("alice")] == [2]
    with pytest.raises(AdapterNotFoundError):
        pm.get("alice", 1)
    assert pm.delete("alice") == [2]
    assert pm.list() == []
    with pytest.raises(AdapterNotFoundError):
        pm.get("alice")


def test_register_peft_model_and_bad_input(tmp_path, smol) -> None:
    model, tokenizer = smol
    with MemCube.open(tmp_path / "c") as cube:
        live = _peft_model(copy.deepcopy(model), 3, targets=("o_proj",), rank=2)
        with pytest.raises(InvalidInputError, match="tokenizer"):  # base model not from runtime
            cube.parametric.register("live", live)
        m = cube.parametric.register("live", live, tokenizer=tokenizer)
        assert m.provenance.source == "peft_model" and m.target_modules == ["o_proj"]
        for bad in ("", "a/b", "../x", "x.y", "-lead", "a" * 65):
            with pytest.raises(InvalidInputError):
                cube.parametric.register(bad, live, tokenizer=tokenizer)
        with pytest.raises(InvalidInputError):
            cube.parametric.register("nope", tmp_path / "missing")
        with pytest.raises(InvalidInputError):
            cube.parametric.register("nope", object())
        assert [a.name for a in cube.parametric.list()] == ["live"]


class _Bomb:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['BOMB_MARKER']}",))


def test_pickles_are_never_loaded(tmp_path, peft_folders, monkeypatch) -> None:
    marker = tmp_path / "exploded"
    monkeypatch.setenv("BOMB_MARKER", str(marker))
    only_bin = tmp_path / "only_bin"
    only_bin.mkdir()
    (only_bin / "adapter_config.json").write_text(
        (peft_folders["a"] / "adapter_config.json").read_text()
    )
    (only_bin / "adapter_model.bin").write_bytes(pickle.dumps(_Bomb()))
    with MemCube.open(tmp_path / "c") as cube:
        with pytest.raises(InvalidInputError, match="pickle"):
            cube.parametric.register("x", only_bin)
        cube.parametric.register("ok", peft_folders["a"])
        folder = cube.parametric.path("ok")
        (folder / "adapter_model.bin").write_bytes(pickle.dumps(_Bomb()))
        (folder / "extra.pkl").write_bytes(pickle.dumps(_Bomb()))
        _, payload = cube.parametric.load("ok")
        assert payload.state_dict
    assert not marker.exists()


def test_tampered_weights_are_refused(tmp_path, peft_folders) -> None:
    with MemCube.open(tmp_path / "c") as cube:
        cube.parametric.register("a", peft_folders["a"])
        weights = cube.parametric.path("a") / "adapter_model.safetensors"
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
        with pytest.raises(CorruptAdapterError):
            cube.parametric.load("a")


def test_adapter_for_another_base_model_is_refused(tmp_path, smol) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    model, tokenizer = smol
    torch.manual_seed(0)
    tiny = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=model.config.vocab_size,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    tiny_peft = _peft_model(tiny, 4)
    folder = tmp_path / "tiny"
    tiny_peft.save_pretrained(str(folder), safe_serialization=True)
    with MemCube.open(tmp_path / "c") as cube:
        pm = cube.parametric
        # as a folder claimed for SmolLM: the shapes give it away, nothing is stored
        with pytest.raises(ModelMismatchError):
            pm.register("tiny", folder)
        assert pm.list() == []
        # registered honestly for the tiny model, then loaded into SmolLM: refused by fingerprint
        manifest = pm.register("tiny", tiny_peft, tokenizer=tokenizer)
        from memcube.runtime import fingerprint

        assert not manifest.base_model.matches(fingerprint(model, tokenizer))
        manager = AdapterManager.for_model(model, tokenizer)
        before = len(manager.resident())
        with pytest.raises(ModelMismatchError):
            pm.prepare("tiny", model=model, tokenizer=tokenizer)
        assert len(manager.resident()) == before


# ---------------------------------------------------------------------------- hot swap
def test_swap_base_identity_lru_and_mixed_batch(tmp_path, peft_folders, smol) -> None:
    model, tokenizer = smol
    prompts = [
        _prompt_ids(tokenizer, q) for q in ("Hi! Who are you?", "Name a fruit.", "Say hello.")
    ]
    manager = AdapterManager.for_model(model, tokenizer)
    manager.activate(None)
    base = [_greedy(model, p) for p in prompts]  # before any adapter of this test is loaded
    weight = model.get_input_embeddings().weight
    ptr = weight.data_ptr()
    with MemCube.open(tmp_path / "c") as cube:
        pm = cube.parametric
        pm.register("a", peft_folders["a"])
        pm.register("b", peft_folders["b"])
        ka = pm.prepare("a", model=model)
        kb = pm.prepare("b", model=model)
        assert pm.prepare("a", model=model) == ka  # lazy: already resident
        with manager.using(ka):
            out_a = [_greedy(model, p) for p in prompts]
        with manager.using(kb):
            out_b = [_greedy(model, p) for p in prompts]
        assert out_a != base and out_b != base and out_a != out_b
        # adapter=None is exactly the base model, token for token, after adapters were used
        with manager.using(None):
            assert [_greedy(model, p) for p in prompts] == base
        with manager.using(ka):  # switching back gives the same output again
            assert [_greedy(model, p) for p in prompts] == out_a
        assert model.get_input_embeddings().weight.data_ptr() == ptr  # base never reloaded

        # one mixed forward, rows with different adapters == single-adapter runs
        mixed = manager.generate_batch(prompts, [ka, None, kb], max_new_tokens=NEW_TOKENS)
        assert mixed == [out_a[0], base[1], out_b[2]]
        same = manager.generate_batch(prompts, [kb, kb, kb], max_new_tokens=NEW_TOKENS)
        assert same == out_b
        with pytest.raises(InvalidInputError):
            manager.generate_batch(prompts, [ka], max_new_tokens=2)

        # LRU: with room for one adapter, loading b evicts a; a is re-read lazily on use
        old = manager.max_resident
        manager.max_resident = 1
        try:
            manager.unload(ka)
            manager.unload(kb)
            pm.prepare("a", model=model)
            pm.prepare("b", model=model)
            assert [r.key for r in manager.resident()] == [kb]
            with manager.using(ka):
                assert _greedy(model, prompts[0]) == out_a[0]
            assert [r.key for r in manager.resident()] == [ka]
        finally:
            manager.max_resident = old
        with pytest.raises(AdapterNotFoundError):
            manager.activate("never-loaded")
        assert manager.active is None


# ---------------------------------------------------------------------------- per-user defaults
def test_per_user_default_and_resolution(cube: MemCube, peft_folders) -> None:
    pm = cube.parametric
    pm.register("alice-lora", peft_folders["a"])
    pm.register("bob-lora", peft_folders["b"])
    assert pm.user_adapter("alice") is None
    pm.set_user_adapter("alice", "alice-lora")
    assert pm.user_adapters() == {"alice": "alice-lora"}
    assert pm.resolve(user_id="alice") == "alice-lora"  # the user's default
    assert pm.resolve("bob-lora", user_id="alice") == "bob-lora"  # per-call override wins
    assert pm.resolve(default="bob-lora", user_id="alice") == "bob-lora"  # wrapper's adapter=
    assert pm.resolve(user_id="carol") is None  # no default: base model
    assert resolve_adapter(None, default=None, user_default="x") == "x"
    with pytest.raises(AdapterNotFoundError):
        pm.set_user_adapter("bob", "missing")
    pm.delete("alice-lora")
    assert pm.user_adapter("alice") is None
    # the mapping lives in the cube folder: another store object over it sees it
    pm.set_user_adapter("bob", "bob-lora")
    assert AdapterStore(cube.path / "adapters").user_default("bob") == "bob-lora"


# ---------------------------------------------------------------------------- distillation
CHILD = r"""
import json, sys, torch
from memcube import MemCube
from memcube.runtime import load_model, ChatMessage
from memcube.runtime.chat import build_prompt
from memcube.parametric import AdapterManager
path, url = sys.argv[1], (sys.argv[2] or None)
cube = MemCube.open(path, chroma_url=url)
model, tok = load_model()
key = cube.parametric.prepare("alice-facts", model=model, tokenizer=tok)
ids = build_prompt(tok, [ChatMessage("user", "What is my dog called?")]).ids
with AdapterManager.for_model(model, tok).using(key), torch.no_grad():
    logits = model(torch.tensor([ids])).logits[0, -1]
m = cube.parametric.get("alice-facts")
print(json.dumps({"top": torch.topk(logits, 5).indices.tolist(), "logits": logits[:50].tolist(),
                  "memory_ids": m.provenance.memory_ids}))
cube.close()
"""


@pytest.mark.slow
def test_distill_then_reload_in_new_process(cube: MemCube, smol) -> None:
    model, tokenizer = smol
    dog = cube.add("My dog is called Biscuit.", user_id="alice")
    cube.add("I work as a nurse in Oslo.", user_id="alice")
    cube.add("Bob's secret is that he hates jazz.", user_id="bob")
    with pytest.raises(InvalidInputError):
        cube.parametric.distill("x", user_id="alice", items=[dog.id], query="dog", steps=1)
    with pytest.raises(ItemNotFoundError):  # another user's memory is not distilled
        bob = cube.items(user_id="bob").__next__()
        cube.parametric.distill("x", user_id="alice", items=[bob.id], steps=1)
    with pytest.raises(InvalidInputError):
        cube.parametric.distill("x", user_id="nobody", steps=1)
    assert cube.parametric.list() == []
    manifest = cube.parametric.distill(
        "alice-facts",
        user_id="alice",
        query="my dog",
        k=1,
        steps=2,
        rank=4,
        set_default=True,
        progress=False,
    )
    assert manifest.provenance.source == "distill"
    assert manifest.provenance.memory_ids == [dog.id]
    assert manifest.provenance.memory_versions == {dog.id: 1}
    assert manifest.provenance.data["steps"] == 2 and manifest.rank == 4
    assert manifest.provenance.data["final_loss"] is not None
    assert cube.parametric.user_adapter("alice") == "alice-facts"

    ids = build_prompt(tokenizer, [ChatMessage("user", "What is my dog called?")]).ids
    key = cube.parametric.prepare("alice-facts", model=model)
    manager = AdapterManager.for_model(model, tokenizer)
    with manager.using(key), torch.no_grad():
        here = model(torch.tensor([ids])).logits[0, -1]
    with manager.using(None), torch.no_grad():
        base = model(torch.tensor([ids])).logits[0, -1]
    assert not torch.equal(here, base)  # training changed something

    url = cube.chroma_url or ""
    cube.close()  # an embedded cube is locked to one process at a time
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(cube.path), url],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(REPO),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    assert child["memory_ids"] == [dog.id]
    assert child["top"] == torch.topk(here, 5).indices.tolist()
    assert torch.allclose(torch.tensor(child["logits"]), here[:50], atol=1e-4)
