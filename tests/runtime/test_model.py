"""Model loading, the bundled default model and fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest

from memcube.errors import InvalidInputError
from memcube.runtime import (
    DEFAULT_MODEL_NAME,
    ModelFingerprint,
    Runtime,
    default_model_path,
    fingerprint,
    load_model,
)


def test_default_model_is_converted_once_to_safetensors() -> None:
    path = default_model_path()
    assert path.name == DEFAULT_MODEL_NAME
    assert list(path.glob("*.safetensors")), "converted weights are plain safetensors"
    assert not list(path.glob("*.bin")) and not list(path.glob("*.pt"))
    assert (path / "memcube-converted.json").is_file()
    assert default_model_path() == path  # second call: nothing to do


def test_load_model_is_cached_and_in_eval_mode() -> None:
    model, tokenizer = load_model()
    again, tok_again = load_model(None)
    assert model is again and tokenizer is tok_again
    assert not model.training
    assert str(model.dtype) == "torch.float32"


def test_load_model_rejects_a_folder_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="config.json"):
        load_model(tmp_path)


def test_fingerprint_is_stable_and_distinguishes_models(
    runtime: Runtime, tiny_llama_runtime: Runtime
) -> None:
    fp = fingerprint(runtime.model, runtime.tokenizer)
    assert fp.model_id == DEFAULT_MODEL_NAME
    assert fp.dtype == "torch.float32"
    assert len(fp.digest) == 64
    assert fp == fingerprint(runtime.model, runtime.tokenizer)
    # the JSON round trip keeps the digest (it is stored in cache manifests)
    assert ModelFingerprint.model_validate_json(fp.model_dump_json()).digest == fp.digest
    other = tiny_llama_runtime.fingerprint
    assert not fp.matches(other)
    assert "config_hash" in fp.differences(other)
    assert other.tokenizer_hash == fp.tokenizer_hash  # same tokenizer, different model
    # the model id alone does not make a different model
    assert fp.matches(fp.model_copy(update={"model_id": "copied-elsewhere"}))


def test_model_key_names_one_model_however_spelled(tmp_path: Path) -> None:
    from memcube.runtime import GEMMA_MODEL_NAME, model_key
    from memcube.runtime.model import bundled_model_path

    assert model_key(None) == model_key(DEFAULT_MODEL_NAME.upper()) == ""
    assert model_key(" Gemma-3-270M ") == GEMMA_MODEL_NAME
    assert model_key(tmp_path) == model_key(str(tmp_path)) == str(tmp_path.resolve())
    assert model_key("org/some-cached-hub-id") == "org/some-cached-hub-id"
    assert Runtime.shared(DEFAULT_MODEL_NAME.lower()) is Runtime.shared()
    with pytest.raises(InvalidInputError, match="not a bundled model"):
        bundled_model_path("gpt-5")
