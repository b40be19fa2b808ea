"""KV prefix injection: time to first token with memories as text vs from activation memory.

End to end through ``langchain_memos.ChatMemOS`` with the bundled SmolLM2-135M-Instruct: for
memory blocks of 256, 1024 and 2048 tokens (the user's activation set), measures

- ``ttft_text_s``: first-token time with the memories read as plain text (``kv_memory=False``);
- ``ttft_kv_s``: the same with the block served from activation memory (``kv_memory=True``;
  includes copying the stored cache);
- ``suffix_forward_s``: one forward pass of the same model over only the uncached suffix tokens
  on a ready cache (the physical limit);
- ``identical``: greedy outputs of both modes are the same text;
- ``ttft_blend_s`` / ``blend_speedup`` / ``blend_identical``: the same memories as per-question
  memories (no stable block, every fact retrieved) served by ``kv_memory="blend"`` from their
  own KV chunks (chunks built by a first, untimed call), against reading that prompt as text;

(first-token times are taken by the runtime from the start of decoding, reported in
``response_metadata``; ``e2e_*`` add memory selection and prompt building, the wall time to the
first streamed chunk), plus cache bytes and safetensors save/load times. Medians of ``--repeats``.

Usage:
    python -m benchmarks.kv_prefix [--sizes 256 1024 2048] [--repeats 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PEOPLE = ["Alice", "Bob", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun"]
THINGS = [
    "tea",
    "chess",
    "jazz",
    "sailing",
    "pottery",
    "hiking",
    "sushi",
    "poetry",
    "cycling",
    "astronomy",
    "gardening",
    "baking",
    "opera",
    "climbing",
    "tango",
    "origami",
]
QUESTION = "Which hobbies do my friends share with me?"
USER = "bench-user"


def _facts(n: int) -> list[str]:
    out = []
    for i in range(n):
        p, t = PEOPLE[i % len(PEOPLE)], THINGS[(i * 7) % len(THINGS)]
        out.append(f"Fact {i}: my friend {p} (number {i}) enjoys {t} on day {i % 28 + 1}.")
    return out


def _fill(cube: Any, runtime: Any, target_tokens: int) -> int:
    """Add facts until the rendered activation prefix reaches ``target_tokens``."""
    from memcube.activation import block_segments

    head = runtime.prompt([_user()], activation_segments=["X"]).prefix_text[:-1]
    used = len(runtime.tokenizer(head, add_special_tokens=False)["input_ids"])
    used += runtime.count_tokens("Long-term memories about the user:")
    batch, n = [], 0
    for fact in _facts(10_000):
        if used >= target_tokens:
            break
        used += runtime.count_tokens(f"\n- [2026-01-01] {fact}")
        batch.append({"content": fact, "user_id": USER, "memory_type": "fact"})
        n += 1
    cube.add_many(batch)
    prompt = runtime.prompt(
        [_user()],
        activation_segments=block_segments(cube.activation_set(USER, token_budget=100_000)),
    )
    return len(prompt.prefix_ids)


def _user() -> Any:
    from memcube.runtime import ChatMessage

    return ChatMessage("user", QUESTION)


def _first_chunk(llm: Any) -> tuple[float, float, str]:
    start = time.perf_counter()
    first = None
    text = ""
    meta: dict[str, Any] = {}
    for chunk in llm.stream(QUESTION):
        if first is None:
            first = time.perf_counter() - start
        text += chunk.content if isinstance(chunk.content, str) else ""
        meta = chunk.response_metadata or meta
    return float(meta["time_to_first_token_s"]), float(first or 0.0), text


def _measure(size: int, repeats: int, max_tokens: int) -> dict[str, Any]:
    import torch

    from langchain_memos import ChatMemOS
    from memcube import MemCube
    from memcube.activation import activation_memory, block_segments, cache_to_tensors
    from memcube.atomic import atomic_write_bytes
    from memcube.runtime import Runtime

    runtime = Runtime.shared()
    with tempfile.TemporaryDirectory() as tmp, MemCube.open(Path(tmp) / "cube") as cube:
        prefix_tokens = _fill(cube, runtime, size)
        common = {
            "cube": cube,
            "user_id": USER,
            "max_tokens": max_tokens,
            "activation_budget": 100_000,
            "memory_budget": 64,
        }
        text_llm = ChatMemOS(kv_memory=False, **common)
        kv_llm = ChatMemOS(kv_memory=True, **common)
        kv_llm.invoke(QUESTION)  # build + store the cache once (not timed)
        text_out = text_llm.invoke(QUESTION).content
        kv_out = kv_llm.invoke(QUESTION).content
        ttft_text, ttft_kv, e2e_text, e2e_kv = [], [], [], []
        for _ in range(repeats):
            t, e, _ = _first_chunk(text_llm)
            ttft_text.append(t)
            e2e_text.append(e)
            t, e, _ = _first_chunk(kv_llm)
            ttft_kv.append(t)
            e2e_kv.append(e)
        store = activation_memory(cube, runtime).store
        entry = next(iter(store._memory.values()))
        prompt = runtime.prompt(
            [_user()],
            activation_segments=block_segments(cube.activation_set(USER, token_budget=100_000)),
        )
        suffix = torch.tensor([prompt.suffix_ids])
        forward = []
        for _ in range(repeats):
            cache = copy.deepcopy(entry.cache)
            with torch.no_grad():
                start = time.perf_counter()
                runtime.model(
                    input_ids=suffix, past_key_values=cache, use_cache=True, logits_to_keep=1
                )
                forward.append(time.perf_counter() - start)
        from safetensors.torch import save as save_safetensors

        saves, loads = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            tensors, _ = cache_to_tensors(entry.cache)
            atomic_write_bytes(Path(tmp) / "probe.safetensors", save_safetensors(tensors))
            saves.append(time.perf_counter() - start)
            start = time.perf_counter()
            store.load(entry.manifest.key)
            loads.append(time.perf_counter() - start)
        med = statistics.median
        blend = _blend_row(cube, max_tokens, repeats)
        return {
            **blend,
            "prefix_tokens": prefix_tokens,
            "suffix_tokens": len(prompt.suffix_ids),
            "ttft_text_s": round(med(ttft_text), 4),
            "ttft_kv_s": round(med(ttft_kv), 4),
            "suffix_forward_s": round(med(forward), 4),
            "identical": text_out == kv_out,
            "speedup": round(med(ttft_text) / med(ttft_kv), 2),
            "kv_over_suffix_forward": round(med(ttft_kv) / med(forward), 2),
            "e2e_text_s": round(med(e2e_text), 4),
            "e2e_kv_s": round(med(e2e_kv), 4),
            "cache_bytes": entry.nbytes,
            "save_s": round(med(saves), 4),
            "load_s": round(med(loads), 4),
        }


def _blend_row(cube: Any, max_tokens: int, repeats: int) -> dict[str, Any]:
    """Blend mode on the same facts: all of them per-question memories, as KV chunks."""
    from langchain_memos import ChatMemOS
    from memcube.scheduler import SchedulerConfig

    n = sum(1 for _ in cube.items(user_id=USER))
    cube.scheduler_config = SchedulerConfig(candidates=n)
    common = {
        "cube": cube,
        "user_id": USER,
        "max_tokens": max_tokens,
        "activation_budget": 0,
        "memory_budget": 100_000,
    }
    text_llm = ChatMemOS(kv_memory=False, **common)
    blend_llm = ChatMemOS(kv_memory="blend", **common)
    blend_llm.invoke(QUESTION)  # computes and stores every memory's chunk once (not timed)
    text_out = text_llm.invoke(QUESTION).content
    blend_out = blend_llm.invoke(QUESTION).content
    ttft_text, ttft_blend = [], []
    for _ in range(repeats):
        ttft_text.append(_first_chunk(text_llm)[0])
        ttft_blend.append(_first_chunk(blend_llm)[0])
    cube.scheduler_config = SchedulerConfig()
    med = statistics.median
    return {
        "ttft_text_working_s": round(med(ttft_text), 4),
        "ttft_blend_s": round(med(ttft_blend), 4),
        "blend_speedup": round(med(ttft_text) / med(ttft_blend), 2),
        "blend_identical": text_out == blend_out,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    load_before = os.getloadavg()
    rows = [_measure(size, args.repeats, args.max_tokens) for size in args.sizes]
    import torch

    report = {
        "benchmark": "kv_prefix",
        "model": "SmolLM2-135M-Instruct (float32)",
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "repeats": args.repeats,
        "rows": rows,
    }
    header = (
        f"{'prefix':>7} {'text TTFT':>10} {'KV TTFT':>9} {'suffix fwd':>10} {'speedup':>8} "
        f"{'KV/fwd':>7} {'same':>5} {'cache MB':>9} {'save':>7} {'load':>7} "
        f"{'text*':>8} {'blend':>8} {'speedup':>8} {'same':>5}"
    )
    print(header)
    for r in rows:
        print(
            f"{r['prefix_tokens']:>7} {r['ttft_text_s']:>9.3f}s {r['ttft_kv_s']:>8.3f}s "
            f"{r['suffix_forward_s']:>9.3f}s {r['speedup']:>7.1f}x "
            f"{r['kv_over_suffix_forward']:>6.2f}x {str(r['identical']):>5} "
            f"{r['cache_bytes'] / 1e6:>9.1f} {r['save_s']:>6.3f}s {r['load_s']:>6.3f}s "
            f"{r['ttft_text_working_s']:>7.3f}s {r['ttft_blend_s']:>7.3f}s "
            f"{r['blend_speedup']:>7.1f}x {str(r['blend_identical']):>5}"
        )
    print("text*: the same memories as per-question text; blend: from their KV chunks")
    print(
        f"load average before/after: {report['machine']['loadavg_before']} / "
        f"{report['machine']['loadavg_after']}"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
