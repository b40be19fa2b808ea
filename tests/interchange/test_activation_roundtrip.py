"""A real KV cache (built by memcube.activation with the bundled model) and a real LoRA adapter
(registered with memcube.parametric) survive export and import: they are attached to the same model,
the cache is reused from disk without a rebuild and gives identical output, and the adapter
loads with identical weights."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from memcube import MemCube
from memcube.interchange import find_fingerprint, fingerprint_digest
from tests.helpers import HashEmbedder

torch = pytest.importorskip("torch")


@pytest.mark.slow
def test_real_kv_cache_round_trip(tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model

    from memcube.activation.store import ActivationStore
    from memcube.runtime import Runtime

    rt = Runtime.shared()
    prefix = rt.tokenizer("<|im_start|>system\nMemories:\n- The user likes jasmine tea.\n")[
        "input_ids"
    ]
    with MemCube.open(tmp_path / "src", embedder=HashEmbedder()) as src:
        item = src.add("The user likes jasmine tea.", user_id="alice")
        built = ActivationStore(src.path, rt).get_or_build(
            prefix, user_id="alice", item_ids=[item.id]
        )
        lora = get_peft_model(
            copy.deepcopy(rt.model), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"])
        )
        adapter = src.parametric.register("alice-facts", lora, tokenizer=rt.tokenizer)
        src.parametric.set_user_adapter("alice", "alice-facts")
        _, weights = src.parametric.load("alice-facts")
        src.export(tmp_path / "a.mip.tar.gz")
    key = built.manifest.key

    # Another model fingerprint: the cache is dropped, not attached.
    cube, report = MemCube.import_archive(tmp_path / "a.mip.tar.gz", into=tmp_path / "other",
                                          embedder=HashEmbedder(), model_fingerprint="f" * 64)  # fmt: skip
    cube.close()
    assert report.attached == []
    assert {d.unit for d in report.dropped} >= {
        f"activation/{key}",
        f"adapters/alice-facts/v{adapter.version}",
    }

    # The same model (given as the runtime's ModelFingerprint): attached and reused as is.
    cube, report = MemCube.import_archive(tmp_path / "a.mip.tar.gz", into=tmp_path / "dst",
                                          embedder=HashEmbedder(), model_fingerprint=rt.fingerprint)  # fmt: skip
    assert report.attached == [f"activation/{key}", f"adapters/alice-facts/v{adapter.version}"]
    manifest, loaded_weights = cube.parametric.load("alice-facts")
    assert manifest == adapter
    # The per-user default mapping (adapters/users.json) holds no tensors: reported, not attached.
    assert any(d.unit == "adapters" and "per-user" in d.reason for d in report.dropped)
    assert weights.state_dict.keys() == loaded_weights.state_dict.keys()
    assert all(
        torch.equal(weights.state_dict[k], loaded_weights.state_dict[k]) for k in weights.state_dict
    )
    cube.close()
    store = ActivationStore(tmp_path / "dst", rt)
    loaded = store.get_or_build(prefix, user_id="alice", item_ids=[item.id])
    assert store.stats["disk_hits"] == 1 and store.stats["built"] == 0
    assert loaded.manifest == built.manifest

    suffix = rt.tokenizer("<|im_start|>user\nWhat do I like?<|im_end|>\n")["input_ids"]

    def logits(cache):
        with torch.no_grad():
            out = rt.model(
                input_ids=torch.tensor([suffix]),
                past_key_values=copy.deepcopy(cache),
                use_cache=True,
            )
        return out.logits

    assert torch.equal(logits(built.cache), logits(loaded.cache))


def test_fingerprints_in_the_manifests_the_modules_write() -> None:
    from memcube.runtime.model import ModelFingerprint

    fp = ModelFingerprint(model_id="m", config_hash="a", dtype="torch.float32", tokenizer_hash="b",
                          chat_template_hash="c", weights_hash="d")  # fmt: skip
    # memcube.activation: {"fingerprint": {...}, "fingerprint_digest": "..."}
    assert (
        find_fingerprint({"fingerprint": fp.model_dump(), "fingerprint_digest": fp.digest})
        == fp.digest
    )
    # memcube.parametric: {"base_model": {...ModelFingerprint fields...}}
    assert find_fingerprint({"name": "alice", "base_model": fp.model_dump()}) == fp.digest
    assert fingerprint_digest(fp) == fingerprint_digest(fp.model_dump()) == fp.digest
    assert find_fingerprint({"name": "x"}) is None
