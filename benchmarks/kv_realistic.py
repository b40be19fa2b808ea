"""Activation memory as a new user meets it: one LoCoMo conversation, 20 different questions.

One conversation of a LoCoMo-format file is ingested as turn memories (``cube.add_many``, as
``benchmarks.locomo`` does); then 20 different questions from its QA list go through
``langchain_memos.ChatMemOS`` with ``activation_budget=2048`` (the stable block) and
``memory_budget=1024`` (the per-question memories), greedy, in each mode:

- ``text``: every memory read as text (``kv_memory=False``);
- ``exact``: the stable block served from its KV cache (``kv_memory=True``), the per-question
  memories as text; token-for-token the same prompt as ``text``;
- ``blend``: the per-question memories from their own KV chunks too (``kv_memory="blend"``,
  approximate), when the installed memcube supports it.

Each question runs in every mode back to back, so all modes see the same cube state. Reported
per mode: median first-token time (the runtime's, from the start of decoding, and end to end to
the first streamed chunk; only the end-to-end time includes blend mode's composition of the
chunks and the first computation of chunks not seen before), tokens cached vs computed (from ``usage_metadata``), identical greedy
output to ``text``; and the cost of extending the stored 2,048-token block by one new memory
against that memory's own forward pass. A warm-up question outside the 20 builds the stable
block's cache first (its time is reported as ``block_build_s``).

Usage:
    python -m benchmarks.kv_realistic [--data ../shared/data/locomo_dev.json]
        [--conversation 0] [--questions 20] [--json OUT]
"""

from __future__ import annotations

import argparse
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

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo_dev.json"
USER = "locomo-user"
ACTIVATION_BUDGET = 2048
MEMORY_BUDGET = 1024
MODES: dict[str, Any] = {"text": False, "exact": True, "blend": "blend"}
#: LoCoMo categories 1-4 (category 5, adversarial, has no answer in the conversation)
ANSWERABLE = ("single-hop", "multi-hop", "temporal", "open-domain")


def pick_questions(questions: list[Any], n: int) -> tuple[list[str], str]:
    """``n`` different questions spread evenly over the QA list (categories 1-4), and one more
    for the warm-up."""
    seen: set[str] = set()
    pool = []
    for q in questions:
        if q.category in ANSWERABLE and q.question not in seen:
            seen.add(q.question)
            pool.append(q.question)
    if len(pool) < n + 1:
        raise SystemExit(f"the conversation has only {len(pool)} usable questions")
    step = len(pool) / (n + 1)
    chosen = [pool[int(i * step)] for i in range(n + 1)]
    return chosen[1:], chosen[0]


def _ask(llm: Any, question: str) -> dict[str, Any]:
    start = time.perf_counter()
    first = None
    text = ""
    last: Any = None
    for chunk in llm.stream(question):
        if first is None:
            first = time.perf_counter() - start
        text += chunk.content if isinstance(chunk.content, str) else ""
        last = chunk if last is None else last + chunk
    meta = last.response_metadata
    usage = last.usage_metadata or {}
    kv = meta.get("kv_memory") or {}
    return {
        "ttft_s": float(meta["time_to_first_token_s"]),
        "e2e_s": float(first or 0.0),
        "text": text,
        "mode": kv.get("mode"),
        "cached": int((usage.get("input_token_details") or {}).get("cache_read", 0)),
        "computed": int(kv.get("computed_tokens", 0)),
        "memory_ids": list(meta.get("memory_item_ids") or []),
        "working_ids": list(meta.get("working_memory_ids") or []),
    }


def _supports_blend() -> bool:
    from memcube.runtime.session import KV_MODES

    return "blend" in KV_MODES


def _extension(cube: Any, runtime: Any, conv: Any) -> dict[str, Any]:
    """Cost of extending a stored ~2,048-token block's cache by one appended memory, against
    the forward pass of that memory's own tokens (medians of 3, each on a new memory). A user of
    its own holds ~2,048 tokens of the conversation's turns, with room left in the budget."""
    import torch

    from benchmarks.locomo import turn_drafts
    from memcube.activation import activation_memory
    from memcube.runtime import ChatMessage

    user, budget = "extension-user", ACTIVATION_BUDGET + 512
    drafts, used = [], 0
    for d in turn_drafts(conv, user):
        used += runtime.count_tokens(f"\n- [2023-05-08] {d['metadata']['speaker']}: {d['content']}")
        if used > ACTIVATION_BUDGET - 64:
            break
        drafts.append(d)
    cube.add_many(drafts)
    mem = activation_memory(cube, runtime)
    question = [ChatMessage("user", "What did Caroline say?")]

    def prefix() -> tuple[list[int], list[str], list[str]]:
        ctx = mem.context("", user_id=user, activation_budget=budget, working_budget=0)
        return (
            runtime.prompt(question, activation_segments=ctx.segments).prefix_ids,
            ctx.item_ids,
            ctx.segments,
        )

    ids, items, _ = prefix()
    mem.prefix_cache(ids, user_id=user, item_ids=items)  # the stored block
    block_tokens = len(ids)
    extend, own, saves, tails = [], [], [], []
    for n in range(3):
        cube.add(
            f"Caroline said she will visit the lighthouse museum on day {n + 3}.", user_id=user
        )
        ids, items, segments = prefix()
        tail = runtime.tokenizer(segments[-1], add_special_tokens=False)["input_ids"]
        before = dict(mem.store.stats)
        start = time.perf_counter()
        mem.prefix_cache(ids, user_id=user, item_ids=items)
        total = time.perf_counter() - start
        if mem.store.stats["extended"] != before["extended"] + 1:
            raise RuntimeError("the new memory did not extend the stored block")
        save = mem.store.last_save_s
        with torch.no_grad():
            start = time.perf_counter()
            runtime.prefill(tail)
            own.append(time.perf_counter() - start)
        extend.append(total - save)
        saves.append(save)
        tails.append(len(tail))
    med = statistics.median
    return {
        "block_tokens": block_tokens,
        "memory_tokens": int(med(tails)),
        "extend_s": round(med(extend), 4),
        "own_forward_s": round(med(own), 4),
        "extend_over_own": round(med(extend) / med(own), 2),
        "save_s": round(med(saves), 4),
    }


def run(data: Path, conversation: int, n_questions: int, max_tokens: int) -> dict[str, Any]:
    from benchmarks.locomo import load_locomo, turn_drafts
    from langchain_memos import ChatMemOS
    from memcube import MemCube
    from memcube.runtime import Runtime

    conv = load_locomo(data)[conversation]
    questions, warmup = pick_questions(conv.questions, n_questions)
    modes = {m: v for m, v in MODES.items() if m != "blend" or _supports_blend()}
    runtime = Runtime.shared()
    with tempfile.TemporaryDirectory() as tmp, MemCube.open(Path(tmp) / "cube") as cube:
        start = time.perf_counter()
        cube.add_many(turn_drafts(conv, USER))
        ingest_s = time.perf_counter() - start
        llms = {
            m: ChatMemOS(
                cube=cube,
                user_id=USER,
                kv_memory=v,
                activation_budget=ACTIVATION_BUDGET,
                memory_budget=MEMORY_BUDGET,
                max_tokens=max_tokens,
            )
            for m, v in modes.items()
        }
        warm = {m: _ask(llm, warmup) for m, llm in llms.items()}
        rows = []
        for q in questions:
            rows.append({"question": q, **{m: _ask(llm, q) for m, llm in llms.items()}})
        extension = _extension(cube, runtime, conv)
    med = statistics.median
    summary: dict[str, Any] = {}
    for m in modes:
        ttft = med(r[m]["ttft_s"] for r in rows)
        summary[m] = {
            "median_ttft_s": round(ttft, 4),
            "median_e2e_s": round(med(r[m]["e2e_s"] for r in rows), 4),
            "median_cached_tokens": int(med(r[m]["cached"] for r in rows)),
            "median_computed_tokens": int(med(r[m]["computed"] for r in rows)),
            "same_prompt_as_text": sum(
                r[m]["memory_ids"] == r["text"]["memory_ids"]
                and r[m]["working_ids"] == r["text"]["working_ids"]
                for r in rows
            ),
            "identical_to_text": sum(r[m]["text"] == r["text"]["text"] for r in rows),
        }
    for m in modes:
        summary[m]["speedup_ttft"] = round(
            summary["text"]["median_ttft_s"] / summary[m]["median_ttft_s"], 2
        )
        summary[m]["speedup_e2e"] = round(
            summary["text"]["median_e2e_s"] / summary[m]["median_e2e_s"], 2
        )
    return {
        "conversation": conv.sample_id,
        "turns": len(conv.turns),
        "questions": len(questions),
        "ingest_s": round(ingest_s, 2),
        "block_build_s": round(warm.get("exact", {}).get("ttft_s", 0.0), 3),
        "modes": summary,
        "extension": extension,
        "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        f"{result['conversation']}: {result['turns']} turns, {result['questions']} questions, "
        f"activation_budget={ACTIVATION_BUDGET}, memory_budget={MEMORY_BUDGET}",
        f"{'mode':<6} {'TTFT':>8} {'e2e':>8} {'e2e gain':>8} {'cached':>7} {'computed':>9} "
        f"{'same prompt':>11} {'same output':>11}",
    ]
    n = result["questions"]
    for m, s in result["modes"].items():
        lines.append(
            f"{m:<6} {s['median_ttft_s']:>7.3f}s {s['median_e2e_s']:>7.3f}s "
            f"{s['speedup_e2e']:>7.2f}x {s['median_cached_tokens']:>7} "
            f"{s['median_computed_tokens']:>9} {s['same_prompt_as_text']:>8}/{n} "
            f"{s['identical_to_text']:>8}/{n}"
        )
    ext = result.get("extension") or {}
    if ext:
        lines.append(
            f"extend a stored {ext['block_tokens']}-token block by one memory "
            f"({ext['memory_tokens']} tokens): "
            f"{ext['extend_s']:.3f}s vs its own forward pass {ext['own_forward_s']:.3f}s "
            f"= {ext['extend_over_own']:.2f}x (plus {ext['save_s']:.3f}s writing the cache)"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--conversation", type=int, default=0)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    import torch

    load_before = os.getloadavg()
    result = run(args.data, args.conversation, args.questions, args.max_tokens)
    report = {
        "benchmark": "kv_realistic",
        "model": "SmolLM2-135M-Instruct (float32)",
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        **result,
    }
    print(table(report))
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
