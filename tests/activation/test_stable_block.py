"""The stable activation block in real use: ordinary memories, many different questions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from memcube import MemCube
from memcube.activation import activation_memory
from memcube.runtime import ChatMessage, GenerationOptions, Runtime
from memcube.runtime.caches import cache_prefix, fork_cache
from memcube.runtime.session import MemoryOptions, chat

pytestmark = pytest.mark.slow

TURNS = [
    "I adopted a grey cat called Miso in March.",
    "My sister Rita moved to Porto for a job at a bakery.",
    "I have been learning the cello for two years now.",
    "We went hiking in the Alps last summer and it rained every day.",
    "My favourite dish is mushroom risotto.",
    "I work as a nurse at the city hospital, mostly night shifts.",
    "Rita's bakery sells the best custard tarts in town.",
    "I am training for a half marathon in October.",
]
QUESTIONS = [
    "What is my cat called?",
    "Where does my sister live?",
    "Which instrument do I play?",
    "How was the hiking trip?",
    "What do I like to eat?",
    "What is my job?",
    "What does the bakery sell?",
    "What am I training for?",
    "When did I adopt my cat?",
    "Do I work at night?",
]
GREEDY = GenerationOptions(max_new_tokens=10)


@pytest.fixture
def cube(tmp_path: Path) -> Iterator[MemCube]:
    """An embedded cube: what is tested here does not depend on the Chroma backend."""
    with MemCube.open(tmp_path / "cube") as opened:
        yield opened


def _fill(cube: MemCube) -> None:
    cube.add_many([{"content": t, "user_id": "ann", "metadata": {"role": "user"}} for t in TURNS])


def _ask(runtime: Runtime, cube: MemCube, question: str, kv: bool, **budgets: int):
    return chat(
        runtime,
        [ChatMessage("user", question)],
        options=GREEDY,
        memory=MemoryOptions(cube, "ann", kv_memory=kv, **budgets),
    )


def _logits(runtime: Runtime, cache, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        out = runtime.model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True)
    return out.logits[0].float()


def test_ordinary_memories_are_served_from_the_cache(runtime: Runtime, cube: MemCube) -> None:
    _fill(cube)
    out = _ask(runtime, cube, "What is my cat called?", kv=True)
    # a small user's whole memory is the stable block: nothing left to read as text
    assert len(out.memory_item_ids) == len(TURNS) and out.working_item_ids == []
    assert out.kv_memory == {
        "mode": "exact",
        "cached_tokens": out.result.cached_tokens,
        "computed_tokens": out.result.prompt_tokens - out.result.cached_tokens,
    }
    assert out.result.cached_tokens > 5 * out.kv_memory["computed_tokens"]
    plain = _ask(runtime, cube, "What is my cat called?", kv=False)
    assert plain.kv_memory is not None and plain.kv_memory["mode"] == "text"
    assert plain.result.cached_tokens == 0


def test_kv_and_text_give_identical_output_over_ten_questions(
    runtime: Runtime, cube: MemCube
) -> None:
    _fill(cube)
    budgets = {"activation_budget": 80, "working_budget": 60}  # part cached, part as text
    store = activation_memory(cube, runtime).store
    blocks = set()
    for q in QUESTIONS:
        kv = _ask(runtime, cube, q, True, **budgets)
        text = _ask(runtime, cube, q, False, **budgets)
        assert kv.result.token_ids == text.result.token_ids, q
        assert (kv.memory_item_ids, kv.working_item_ids) == (
            text.memory_item_ids,
            text.working_item_ids,
        )
        assert kv.working_item_ids, "the test needs per-question memories as text too"
        blocks.add(tuple(kv.memory_item_ids))
    # the block does not churn under a sequence of calls: one block, one cache
    assert len(blocks) == 1
    assert store.stats["built"] == 1 and store.stats["extended"] == 0


def test_appended_memory_extends_to_the_same_logits_as_a_fresh_build(
    runtime: Runtime, cube: MemCube
) -> None:
    _fill(cube)
    first = _ask(runtime, cube, "What is my job?", kv=True)
    store = activation_memory(cube, runtime).store
    stored = next(iter(store._memory.values()))
    stored_keys = [layer.keys.clone() for layer in stored.cache.layers]
    cube.add("I just started a pottery class on Tuesdays.", user_id="ann")
    grown = _ask(runtime, cube, "What is my job?", kv=True)
    assert grown.memory_item_ids[:-1] == first.memory_item_ids  # appended at the end
    assert store.stats["extended"] == 1 and store.stats["built"] == 1
    extended = store._memory[next(reversed(store._memory))]
    # the stored cache the extension started from is untouched
    assert all(torch.equal(a, layer.keys) for a, layer in zip(stored_keys, stored.cache.layers))
    probe = runtime.tokenizer("\nWhat is my job?", add_special_tokens=False)["input_ids"]
    via_extension = _logits(runtime, fork_cache(extended.cache), probe)
    fresh = _logits(runtime, None, extended.prefix_ids + probe)[-len(probe) :]
    assert torch.allclose(via_extension, fresh, atol=1e-3, rtol=1e-4)


def test_an_edited_member_cuts_the_block_without_a_forward_pass(
    runtime: Runtime, cube: MemCube
) -> None:
    _fill(cube)
    first = _ask(runtime, cube, "Where does my sister live?", kv=True)
    store = activation_memory(cube, runtime).store
    prefilled = store.stats["tokens_prefilled"]
    sister = first.memory_item_ids[1]
    cube.update(sister, user_id="ann", content="My sister Rita moved to Lisbon last year.")
    cut = _ask(runtime, cube, "Where does my sister live?", kv=True)
    assert cut.memory_item_ids == first.memory_item_ids[:1]  # cut where the edit is
    assert store.stats["cut"] == 1 and store.stats["tokens_prefilled"] == prefilled
    # the old text is in no prompt; the new one is read as a per-question memory
    assert sister in cut.working_item_ids
    plain = _ask(runtime, cube, "Where does my sister live?", kv=False)
    assert plain.result.token_ids == cut.result.token_ids
    # maintain() rebuilds the block and its cache, so the next call finds it ready
    assert cube.maintain(user_id="ann")["activation_rebuilt"] == ["ann"]
    built = store.stats["built"] + store.stats["extended"]
    again = _ask(runtime, cube, "Where does my sister live?", kv=True)
    assert set(again.memory_item_ids) == set(first.memory_item_ids)
    assert again.memory_item_ids[-1] == sister  # the edited memory moved to the end
    assert store.stats["built"] + store.stats["extended"] == built
    latest = store._memory[next(reversed(store._memory))].cache
    head = cache_prefix(latest, 3)
    assert head is not None and head.get_seq_length() == 3 and latest.get_seq_length() > 3
