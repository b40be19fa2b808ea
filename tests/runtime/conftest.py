"""Shared fixtures for runtime and activation-memory tests: the bundled model and tiny models."""

from __future__ import annotations

import pytest

from memcube.runtime import Runtime


@pytest.fixture(scope="session")
def runtime() -> Runtime:
    """The bundled SmolLM2-135M-Instruct (converted once, then cached on disk)."""
    return Runtime.shared()


@pytest.fixture(scope="session")
def tiny_llama_runtime(runtime: Runtime) -> Runtime:
    """A tiny random-weight Llama built from a config, sharing SmolLM2's tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=runtime.model.config.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=2048,
    )
    model = LlamaForCausalLM(config).eval()
    return Runtime(model, runtime.tokenizer, name="tiny-random-llama")
