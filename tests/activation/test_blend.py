"""KV blending: exact RoPE re-encoding, exactness at full recompute, contracts, no mutation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from memcube.activation.blend import blend, check_blend_support, rerotate_keys
from memcube.activation.chunks import ChunkStore
from memcube.errors import InvalidInputError, UnsupportedRopeError
from memcube.runtime import Runtime

PREFIX = "<|im_start|>system\nLong-term memories about the user:"
MEMORIES = [
    "\n- [8 May 2023] Caroline: I went to a LGBTQ support group yesterday.",
    "\n- [8 May 2023] Melanie: I painted a sunrise last year, it was lovely.",
    "\n- [9 May 2023] Caroline: I want to study counseling and psychology.",
]
SUFFIX = "<|im_end|>\n<|im_start|>user\nWhat did Melanie paint?<|im_end|>\n<|im_start|>assistant\n"


def _ids(runtime: Runtime, text: str) -> list[int]:
    return list(runtime.tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.fixture
def parts(runtime: Runtime, tmp_path: Path):
    prefix = _ids(runtime, PREFIX)
    memories = [_ids(runtime, m) for m in MEMORIES]
    suffix = _ids(runtime, SUFFIX)
    store = ChunkStore(tmp_path, runtime, lead_in=_ids(runtime, PREFIX))
    chunks = [store.get_or_build(f"m{i}", "v1", m) for i, m in enumerate(memories)]
    return prefix, memories, suffix, chunks


def _snapshot(tensors) -> list:
    return [t.clone() for t in tensors]


def test_rope_reencoding_is_exact_for_layer_zero_keys(runtime: Runtime) -> None:
    """Layer-0 keys depend on the token and its position only: a chunk computed at 0 and
    rotated to p equals the same tokens computed at p after any context."""
    memory = _ids(runtime, MEMORIES[1])
    alone = runtime.prefill(memory).layers[0].keys
    context = _ids(runtime, PREFIX + MEMORIES[0]) * 3
    placed = runtime.prefill(context + memory).layers[0].keys[:, :, len(context) :]
    rotated = rerotate_keys(runtime, alone, 0, len(context))
    assert rotated.shape == placed.shape
    assert torch.allclose(rotated, placed, atol=2e-5, rtol=0)
    assert not torch.allclose(alone, placed, atol=1e-2)  # positions really moved
    # and back: rotations compose
    assert torch.allclose(rerotate_keys(runtime, rotated, len(context), 0), alone, atol=2e-5)


def test_composition_without_recompute_places_layer_zero_exactly(runtime: Runtime, parts) -> None:
    prefix, memories, suffix, chunks = parts
    full = runtime.prefill(prefix + sum(memories, []))
    out = blend(runtime, runtime.prefill(prefix), len(prefix), memories, chunks, recompute_ratio=0)
    assert out.computed_tokens == 0 and out.probed_tokens == 0
    assert torch.allclose(out.cache.layers[0].keys, full.layers[0].keys, atol=2e-5, rtol=0)
    assert torch.allclose(out.cache.layers[0].values, full.layers[0].values, atol=2e-5, rtol=0)


def test_full_recompute_equals_full_prefill(runtime: Runtime, parts) -> None:
    prefix, memories, suffix, chunks = parts
    ids = prefix + sum(memories, []) + suffix
    with torch.no_grad():
        reference = runtime.model(input_ids=torch.tensor([ids])).logits[0, -len(suffix) :]
        out = blend(
            runtime, runtime.prefill(prefix), len(prefix), memories, chunks, recompute_ratio=1.0
        )
        logits = runtime.model(
            input_ids=torch.tensor([suffix]), past_key_values=out.cache, use_cache=True
        ).logits[0]
    assert out.computed_tokens == sum(map(len, memories))
    assert out.cached_tokens == len(prefix)
    assert torch.allclose(logits, reference, atol=2e-3, rtol=0)
    assert torch.equal(logits.argmax(-1), reference.argmax(-1))


def test_length_contracts_and_selection(runtime: Runtime, parts) -> None:
    prefix, memories, suffix, chunks = parts
    n = sum(map(len, memories))
    out = blend(
        runtime, runtime.prefill(prefix), len(prefix), memories, chunks, recompute_ratio=0.3
    )
    total = len(prefix) + n
    assert out.cache.get_seq_length() == total == out.total_tokens
    assert out.computed_tokens == round(0.3 * n) == len(out.recomputed_positions)
    assert out.cached_tokens == total - out.computed_tokens
    assert out.probed_tokens == n
    assert all(len(prefix) <= p < total for p in out.recomputed_positions)
    starts, at = [], len(prefix)
    for m in memories:
        starts.append(at)
        at += len(m)
    assert set(starts) <= set(out.recomputed_positions)  # first token of each chunk
    for layer in out.cache.layers:
        assert layer.keys.shape[-2] == total and layer.values.shape[-2] == total
    # the caller can run the rest of the prompt on it, as on any prefix cache
    with torch.no_grad():
        runtime.model(input_ids=torch.tensor([suffix]), past_key_values=out.cache, use_cache=True)
    assert out.cache.get_seq_length() == total + len(suffix)


def test_prefix_cache_and_chunks_are_never_mutated(runtime: Runtime, parts) -> None:
    prefix, memories, suffix, chunks = parts
    prefix_cache = runtime.prefill(prefix)
    before = [_snapshot((layer.keys, layer.values)) for layer in prefix_cache.layers]
    chunk_before = [_snapshot((*c.keys, *c.values)) for c in chunks]
    for ratio in (0.0, 0.5, 1.0):
        out = blend(runtime, prefix_cache, len(prefix), memories, chunks, recompute_ratio=ratio)
        with torch.no_grad():
            runtime.model(input_ids=torch.tensor([suffix]), past_key_values=out.cache)
        for layer, mine in zip(prefix_cache.layers, out.cache.layers):
            assert layer.keys.untyped_storage().data_ptr() != mine.keys.untyped_storage().data_ptr()
    assert prefix_cache.get_seq_length() == len(prefix)
    for layer, (keys, values) in zip(prefix_cache.layers, before):
        assert torch.equal(layer.keys, keys) and torch.equal(layer.values, values)
    for chunk, saved in zip(chunks, chunk_before):
        assert all(torch.equal(a, b) for a, b in zip((*chunk.keys, *chunk.values), saved))


def test_bad_arguments_are_refused(runtime: Runtime, parts) -> None:
    prefix, memories, suffix, chunks = parts
    cache = runtime.prefill(prefix)
    with pytest.raises(InvalidInputError):
        blend(runtime, cache, len(prefix) + 1, memories, chunks)
    with pytest.raises(InvalidInputError):
        blend(runtime, cache, len(prefix), [memories[1], memories[0], memories[2]], chunks)
    with pytest.raises(InvalidInputError):
        blend(runtime, cache, len(prefix), memories[:2], chunks)
    with pytest.raises(InvalidInputError):
        blend(runtime, cache, len(prefix), memories, chunks, recompute_ratio=1.5)


def test_blend_works_on_another_llama_model(tiny_llama_runtime: Runtime, tmp_path: Path) -> None:
    rt = tiny_llama_runtime
    prefix = _ids(rt, PREFIX)
    memories = [_ids(rt, m) for m in MEMORIES]
    store = ChunkStore(tmp_path, rt)
    chunks = [store.get_or_build(f"m{i}", "v1", m) for i, m in enumerate(memories)]
    suffix = _ids(rt, SUFFIX)
    with torch.no_grad():
        reference = rt.model(input_ids=torch.tensor([prefix + sum(memories, []) + suffix])).logits[
            0, -len(suffix) :
        ]
        out = blend(rt, rt.prefill(prefix), len(prefix), memories, chunks, recompute_ratio=1.0)
        logits = rt.model(input_ids=torch.tensor([suffix]), past_key_values=out.cache).logits[0]
    assert torch.allclose(logits, reference, atol=1e-4, rtol=0)


def test_models_whose_rope_cannot_be_reencoded_are_refused(runtime: Runtime) -> None:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

    gemma = Gemma3TextConfig(
        vocab_size=runtime.model.config.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
    )
    with pytest.raises(UnsupportedRopeError):
        check_blend_support(Runtime(Gemma3ForCausalLM(gemma).eval(), runtime.tokenizer))
    dynamic = LlamaConfig(
        vocab_size=runtime.model.config.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0},
    )
    rt = Runtime(LlamaForCausalLM(dynamic).eval(), runtime.tokenizer)
    with pytest.raises(UnsupportedRopeError):
        blend(rt, rt.prefill([1, 2]), 2, [], [])
    assert check_blend_support(runtime) is runtime.model.base_model.rotary_emb


def test_eager_attention_gets_an_additive_mask_with_the_same_result(
    runtime: Runtime, tmp_path: Path
) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    def tiny(impl: str) -> Runtime:
        torch.manual_seed(1)
        config = LlamaConfig(
            vocab_size=runtime.model.config.vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
        model = LlamaForCausalLM(config).eval()
        model.config._attn_implementation = impl
        return Runtime(model, runtime.tokenizer, name=f"tiny-{impl}")

    prefix = _ids(runtime, PREFIX)
    memories = [_ids(runtime, m) for m in MEMORIES]
    caches = []
    for impl in ("sdpa", "eager"):
        rt = tiny(impl)
        store = ChunkStore(tmp_path / impl, rt)
        chunks = [store.get_or_build(f"m{i}", "v1", m) for i, m in enumerate(memories)]
        out = blend(rt, rt.prefill(prefix), len(prefix), memories, chunks, recompute_ratio=0.5)
        caches.append(out)
        full = blend(rt, rt.prefill(prefix), len(prefix), memories, chunks, recompute_ratio=1.0)
        reference = rt.prefill(prefix + sum(memories, []))
        for mine, ref in zip(full.cache.layers, reference.layers):
            assert torch.allclose(mine.keys, ref.keys, atol=1e-5)
            assert torch.allclose(mine.values, ref.values, atol=1e-5)
    sdpa, eager = caches
    assert sdpa.recomputed_positions == eager.recomputed_positions
    for a, b in zip(sdpa.cache.layers, eager.cache.layers):
        assert torch.allclose(a.keys, b.keys, atol=1e-5)
        assert torch.allclose(a.values, b.values, atol=1e-5)
