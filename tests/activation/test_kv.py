"""KV caches to tensors and back, including hybrid sliding-window models."""

from __future__ import annotations

import pytest
import torch

from memcube.activation import cache_nbytes, cache_to_tensors, tensors_to_cache
from memcube.errors import ModelMismatchError


def _tiny_gemma3() -> tuple[object, object]:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=4,
        layer_types=[
            "sliding_attention",
            "sliding_attention",
            "sliding_attention",
            "full_attention",
        ],
        max_position_embeddings=256,
    )
    return Gemma3ForCausalLM(config).eval(), config


def test_hybrid_sliding_window_cache_round_trips_exactly() -> None:
    from transformers import DynamicCache

    model, config = _tiny_gemma3()
    ids = torch.randint(0, 128, (1, 14))
    cache = DynamicCache(config=config)
    with torch.no_grad():
        model(input_ids=ids[:, :10], past_key_values=cache, use_cache=True)
        tensors, layers = cache_to_tensors(cache)
        assert [layer["kind"] for layer in layers] == ["sliding"] * 3 + ["full"]
        assert layers[0]["cumulative_length"] == 10
        assert tensors["layers.0.keys"].shape[-2] < 10  # the window, not the whole prefix
        restored = tensors_to_cache(config, tensors, layers)
        assert restored.get_seq_length() == 10
        assert cache_nbytes(restored) == cache_nbytes(cache)
        resumed = model(input_ids=ids[:, 10:], past_key_values=restored, use_cache=True).logits
        full = model(input_ids=ids).logits[:, 10:]
    assert torch.allclose(resumed, full, atol=1e-5)


def test_layer_layout_mismatch_is_refused() -> None:
    from transformers import DynamicCache, LlamaConfig

    model, config = _tiny_gemma3()
    cache = DynamicCache(config=config)
    with torch.no_grad():
        model(input_ids=torch.randint(0, 128, (1, 6)), past_key_values=cache, use_cache=True)
    tensors, layers = cache_to_tensors(cache)
    llama = LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    with pytest.raises(ModelMismatchError):
        tensors_to_cache(llama, tensors, layers)  # full layers where the cache has sliding ones
    with pytest.raises(ModelMismatchError):
        tensors_to_cache(
            llama.__class__(**{**llama.to_dict(), "num_hidden_layers": 2}), tensors, layers
        )


def test_sliding_window_cache_is_cut_exactly_while_it_holds_the_tokens() -> None:
    from transformers import DynamicCache

    from memcube.runtime.caches import cache_prefix, fork_cache

    model, config = _tiny_gemma3()  # window 4: sliding layers hold the last 3 tokens
    torch.manual_seed(0)
    ids = torch.randint(0, 128, (1, 8))
    with torch.no_grad():
        short = DynamicCache(config=config)
        model(input_ids=ids[:, :3], past_key_values=short, use_cache=True)
        head = cache_prefix(short, 2)  # all 3 tokens still held: exact
        assert head is not None and head.get_seq_length() == 2
        assert short.get_seq_length() == 3  # the original is untouched
        fresh = DynamicCache(config=config)
        model(input_ids=ids[:, :2], past_key_values=fresh, use_cache=True)
        for cut, want in zip(head.layers, fresh.layers):
            # the same tokens (a 3-token forward and a 2-token one round differently)
            assert torch.allclose(cut.keys, want.keys, atol=1e-5)
            assert torch.allclose(cut.values, want.values, atol=1e-5)
        resumed = model(input_ids=ids[:, 2:6], past_key_values=head, use_cache=True).logits
        full = model(input_ids=ids[:, :6]).logits[:, 2:]
        assert torch.allclose(resumed, full, atol=1e-4)
        # past the window the first tokens are gone: no exact cut, whatever the length asked
        grown = fork_cache(short)
        model(input_ids=ids[:, 3:8], past_key_values=grown, use_cache=True)
        assert cache_prefix(grown, 5) is None and cache_prefix(grown, 2) is None
        assert cache_prefix(grown, 9) is None and cache_prefix(grown, 0) is None
        same = cache_prefix(grown, 8)  # the whole cache is always its own prefix
        assert same is not None and same.get_seq_length() == 8


def test_sliding_layer_tensors_must_fit_their_window() -> None:
    from transformers import DynamicCache

    model, config = _tiny_gemma3()
    cache = DynamicCache(config=config)
    with torch.no_grad():
        model(input_ids=torch.randint(0, 128, (1, 10)), past_key_values=cache, use_cache=True)
    tensors, layers = cache_to_tensors(cache)
    layers[0] = {**layers[0], "cumulative_length": 2}  # 3 tokens held cannot be 2 seen
    with pytest.raises(ValueError, match="sliding cache layer 0"):
        tensors_to_cache(config, tensors, layers)
