"""The preservation anchors of distillation: generic prompts, none about the distilled facts."""

from __future__ import annotations

import pytest

from benchmarks.distill import FACTS, UNRELATED
from memcube.errors import InvalidInputError
from memcube.parametric.anchors import anchor_prompts
from memcube.parametric.distill import ANCHORS, DistillConfig


def test_pool_is_large_distinct_and_stable() -> None:
    pool = anchor_prompts()
    assert len(pool) > 300 and len(set(pool)) == len(pool)
    assert anchor_prompts() == pool  # a fixed order, not the process's random state
    assert anchor_prompts(limit=10) == pool[:10]


def test_prompts_about_the_memories_are_left_out() -> None:
    memories = ["My sister Mia is a nurse in Oslo.", "I ride a red bicycle to work."]
    kept = anchor_prompts(memories)
    words = ("sister", "nurse", "oslo", "bicycle", "work", "mia", "red", "ride")
    assert not [p for p in kept if any(w in p.lower().split() or f"{w}'s" in p.lower()
                                       for w in words)]  # fmt: skip
    removed = set(anchor_prompts()) - set(kept)
    assert "What is my sister's job?" in removed
    # Only prompts sharing a content word go: common words ("my", "what") do not count.
    assert "What is the capital of France?" in kept and len(kept) > 250


def test_first_prompts_lead_and_are_filtered_too() -> None:
    first = ["Say hello to my sister.", "Tell me a joke.", "Tell me a joke."]
    out = anchor_prompts(["My sister is called Ann."], first=first)
    assert out[0] == "Tell me a joke." and out.count("Tell me a joke.") == 1
    assert "Say hello to my sister." not in out


def test_benchmark_measures_kl_on_prompts_it_never_trained_on() -> None:
    # The distill benchmark's unrelated prompts must not be training anchors, or its KL figure
    # would measure memorised anchors instead of generalisation.
    facts = [f[0] for f in FACTS]
    trained = set(anchor_prompts(facts, first=[q for q, _ in ANCHORS]))
    assert not trained & set(UNRELATED)
    assert len(trained) >= DistillConfig().anchors // 2


def test_anchor_count_is_validated() -> None:
    for bad in (0, -3, 2.5, "many"):
        with pytest.raises(InvalidInputError, match="anchors"):
            DistillConfig(anchors=bad)  # type: ignore[arg-type]
