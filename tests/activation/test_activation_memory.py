"""Activation memory end to end with the bundled model and real cubes (embedded and server)."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import pytest

from memcube import MemCube
from memcube.activation import ActivationStore, activation_memory, block_segments
from memcube.errors import ModelMismatchError
from memcube.items import MemoryItem
from memcube.runtime import ChatMessage, GenerationOptions, Runtime
from memcube.runtime.session import MemoryOptions, chat

pytestmark = pytest.mark.slow

FACTS = [
    "The user's name is Alice.",
    "Alice is vegetarian.",
    "Alice lives in Lyon.",
    "Alice has a cat named Miso.",
]
GREEDY = GenerationOptions(max_new_tokens=12)


def _fill(cube: MemCube) -> None:
    for fact in FACTS:
        cube.add(fact, user_id="alice", memory_type="fact")
    cube.add("Alice went hiking last Sunday.", user_id="alice", memory_type="episodic")


def _ask(runtime: Runtime, cube: MemCube, question: str, *, kv: bool):
    return chat(
        runtime,
        [ChatMessage("user", question)],
        options=GREEDY,
        memory=MemoryOptions(cube, "alice", kv_memory=kv),
    )


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def test_injection_gives_identical_greedy_output_and_one_cache_per_user(
    runtime: Runtime, cube: MemCube
) -> None:
    _fill(cube)
    plain = _ask(runtime, cube, "What is my cat called?", kv=False)
    cached = _ask(runtime, cube, "What is my cat called?", kv=True)
    assert cached.result.token_ids == plain.result.token_ids
    assert cached.result.cached_tokens > 0 and plain.result.cached_tokens == 0
    assert cached.result.prompt_tokens == plain.result.prompt_tokens
    assert sorted(cached.memory_item_ids) == sorted(i.id for i in cube.activation_set("alice"))
    store = activation_memory(cube, runtime).store
    # a second, different question from the same user reuses the one cache
    second = _ask(runtime, cube, "Where do I live?", kv=True)
    assert second.result.cached_tokens == cached.result.cached_tokens
    assert store.stats["built"] == 1 and store.stats["memory_hits"] >= 1
    assert len(store.manifests("alice")) == 1
    manifest = store.manifests("alice")[0]
    assert manifest.fingerprint.digest == runtime.fingerprint.digest
    assert manifest.token_count == cached.result.cached_tokens
    assert sorted(manifest.item_ids) == sorted(cached.memory_item_ids)


def test_appended_memory_extends_the_cache_by_the_new_tokens_only(
    runtime: Runtime, cube: MemCube
) -> None:
    _fill(cube)
    first = _ask(runtime, cube, "What do I play?", kv=True)
    store = activation_memory(cube, runtime).store
    before = dict(store.stats)
    cube.add("Alice plays the cello.", user_id="alice", memory_type="fact")
    grown = _ask(runtime, cube, "What do I play?", kv=True)
    new_tokens = grown.result.cached_tokens - first.result.cached_tokens
    assert new_tokens > 0
    assert store.stats["extended"] == before["extended"] + 1
    assert store.stats["built"] == before["built"]
    assert store.stats["tokens_prefilled"] - before["tokens_prefilled"] == new_tokens
    plain = _ask(runtime, cube, "What do I play?", kv=False)
    assert grown.result.token_ids == plain.result.token_ids


def test_stored_cache_is_never_mutated(runtime: Runtime, tmp_path: Path) -> None:
    with MemCube.open(tmp_path / "cube") as cube:
        _fill(cube)
        _ask(runtime, cube, "What is my name?", kv=True)
        folder = cube.path / "activation"
        before = _digests(folder)
        entry = next(iter(activation_memory(cube, runtime).store._memory.values()))
        length = entry.cache.get_seq_length()
        for q in ["What is my name?", "Do I eat meat?", "Where do I live?", "Any pets?"]:
            _ask(runtime, cube, q, kv=True)
        assert _digests(folder) == before  # byte-identical files
        assert entry.cache.get_seq_length() == length  # and the in-memory copy did not grow


def test_cache_is_refused_by_another_model(
    runtime: Runtime, tiny_llama_runtime: Runtime, tmp_path: Path
) -> None:
    store = ActivationStore(tmp_path, runtime)
    segments = block_segments([MemoryItem(content="likes tea", user_id="alice")])
    ids = runtime.prompt([ChatMessage("user", "x")], activation_segments=segments).prefix_ids
    entry = store.get_or_build(ids, user_id="alice")
    other = ActivationStore(tmp_path, tiny_llama_runtime)
    with pytest.raises(ModelMismatchError, match="was built for model 'SmolLM2-135M-Instruct'"):
        other.load(entry.manifest.key)
    # the other model never picks it up as its own: it builds its own cache
    own = other.get_or_build(ids, user_id="alice")
    assert own.manifest.key != entry.manifest.key
    assert own.manifest.fingerprint_digest == tiny_llama_runtime.fingerprint.digest


class _Boom:
    """Unpickling this creates a marker file: proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (Path.touch, (self.marker,))


def test_planted_pickles_are_never_loaded(runtime: Runtime, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Boom(marker))
    with MemCube.open(tmp_path / "cube") as cube:
        _fill(cube)
        first = _ask(runtime, cube, "What is my name?", kv=True)
        folder = cube.path / "activation"
        key = next(folder.glob("*.json")).stem
        # plant pickles everywhere a careless loader might look
        for name in ("cache.pkl", "kv_cache.pt", f"{key}.pt", f"{key}.pickle", "index.bin"):
            (folder / name).write_bytes(payload)
        fake = "f" * 40
        (folder / f"{fake}.safetensors").write_bytes(payload)
        (folder / f"{fake}.json").write_bytes(payload)
        activation_memory(cube, runtime).store.clear_memory()  # force the disk tier
        again = _ask(runtime, cube, "What is my name?", kv=True)
        assert again.result.token_ids == first.result.token_ids
        assert activation_memory(cube, runtime).store.stats["disk_hits"] == 1
        # a pickle posing as a cache is reported as corrupt, never executed
        from memcube.activation import CorruptCacheError

        with pytest.raises(CorruptCacheError):
            activation_memory(cube, runtime).store.load(fake)
    assert not marker.exists()


def test_memory_tier_respects_its_byte_budget(runtime: Runtime, tmp_path: Path) -> None:
    def ids(text: str) -> list[int]:
        return runtime.tokenizer(text, add_special_tokens=False)["input_ids"]

    probe = ActivationStore(tmp_path / "probe", runtime)
    one = probe.get_or_build(ids("<|im_start|>system\nfact one"), user_id="u").nbytes
    store = ActivationStore(tmp_path / "lru", runtime, memory_budget_bytes=int(one * 2.5))
    keys = [
        store.get_or_build(ids(f"<|im_start|>system\nfact {w}"), user_id=f"u{w}").manifest.key
        for w in ("one", "two", "six")
    ]
    assert store.memory_bytes <= store.memory_budget_bytes
    assert list(store._memory) == keys[1:]  # the least recently used went first
    # the evicted one comes back from disk, identical
    again = store.get_or_build(ids("<|im_start|>system\nfact one"), user_id="uone")
    assert again.manifest.key == keys[0] and store.stats["disk_hits"] == 1
