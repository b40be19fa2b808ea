"""Cross-model memory through MIP: a cube built on one model, exported, imported into a cube that
runs another model (SmolLM2-135M-Instruct <-> Gemma-3-270M), its KV cache rebuilt and its adapter
re-distilled there.

Per direction:

* the source cube holds 50 personal facts (``benchmarks.distill``'s, or ``--data``) plus
  ordinary memories, so the user's activation block is about ``--block`` tokens; one chat call
  with ``kv_memory=True`` caches it, and an adapter is distilled natively from the facts;
* the archive is imported into a cube on the other model with ``model=...,
  rematerialize="now"``: the cache is *rebuilt* (other tokenizer and architecture) and the
  adapter *re-distilled*, with the source model and its adapter as the teacher;
* **kv_identical**: greedy replies to the questions through ``ChatMemOS(kv_memory=True)`` on the
  rebuilt cache equal those on a cache the target builds natively for the same block (a second
  import with ``rematerialize="never"``); the rebuilt cache must be read, not rebuilt;
* **redistilled_accuracy** vs **native_accuracy**: closed-book accuracy (no memories in the
  prompt) on the unseen questions and paraphrases, of the re-distilled adapter and of an adapter
  distilled natively on the target from the same memories.

Run from the repo root::

    python -m benchmarks.cross_model [--data FILE] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from benchmarks.distill import MODELS, generate, load_facts  # noqa: E402

#: Ordinary memories that fill the activation block beside the facts.
FILLER = [
    "Went for a long walk by the river after work today.",
    "Tried a new recipe for lentil soup; it needed more salt.",
    "Watched a documentary about deep-sea creatures last night.",
    "The bus was late again this morning, so I cycled.",
    "Spent Sunday afternoon reorganizing the bookshelf.",
    "Had coffee with an old colleague who just moved back to town.",
    "Started reading a mystery novel set in Edinburgh.",
    "The neighbours are renovating their kitchen; it is noisy.",
    "Fixed the squeaky hinge on the garden gate.",
    "Booked a dentist appointment for next month.",
    "Planted tomatoes and basil on the balcony.",
    "Finished a jigsaw puzzle of a lighthouse, 1000 pieces.",
    "Cleaned the windows because the sun showed every streak.",
    "Found a nice bakery two streets away that sells rye bread.",
    "Listened to a podcast about the history of maps.",
    "Went to a friend's birthday dinner at an Ethiopian restaurant.",
    "The heating broke for a day; the repairman came on Thursday.",
    "Wrote postcards to three friends for no particular reason.",
    "Took the long way home to see the autumn leaves.",
    "Practised some stretching exercises before bed.",
]


def accuracy(model: Any, tokenizer: Any, facts: list[dict[str, Any]]) -> float:
    """Closed-book share of the questions and paraphrases whose greedy reply holds the answer."""
    asked = [(rec, q) for rec in facts for q in [rec["question"], *rec["paraphrases"]]]
    replies = generate(model, tokenizer, [q for _, q in asked])
    ok = sum(
        rec["answer"].lower() in tokenizer.decode(r, skip_special_tokens=True).lower()
        for (rec, _), r in zip(asked, replies, strict=True)
    )
    return round(100.0 * ok / len(asked), 1)


def adapter_accuracy(cube: Any, runtime: Any, name: str, facts: list[dict[str, Any]]) -> float:
    from memcube.parametric import AdapterManager

    key = cube.parametric.prepare(name, runtime=runtime)
    manager = AdapterManager.for_model(runtime.model, runtime.tokenizer)
    with manager.using(key):
        return accuracy(runtime.model, runtime.tokenizer, facts)


def build_source(
    root: Path,
    runtime: Any,
    facts: list[dict[str, Any]],
    block: int,
    quiet: bool,
    steps: int | None = None,
) -> dict[str, Any]:
    """The source cube: facts and filler, the block cached by a chat call, a native adapter."""
    from langchain_memos import ChatMemOS
    from memcube import MemCube

    cube = MemCube.open(root / f"src-{runtime.name}")
    items = cube.add_many(
        [{"content": rec["fact"], "memory_type": "fact"} for rec in facts], user_id="ann"
    )
    cube.add_many([{"content": t} for t in FILLER], user_id="ann")
    chat = ChatMemOS(
        cube=cube,
        user_id="ann",
        kv_memory=True,
        activation_budget=block,
        max_tokens=4,
        model=runtime.name,
    )
    cached = chat.invoke(facts[0]["question"]).response_metadata["kv_memory"]["cached_tokens"]
    start = time.perf_counter()
    cube.parametric.distill(
        "facts", user_id="ann", items=items, runtime=runtime, progress=not quiet, steps=steps
    )
    train_s = time.perf_counter() - start
    native = adapter_accuracy(cube, runtime, "facts", facts)
    base = accuracy(runtime.model, runtime.tokenizer, facts)
    archive = root / f"{runtime.name}.mip.tar.gz"
    cube.export(archive)
    cube.close()
    return {
        "archive": archive,
        "cached_tokens": cached,
        "native_accuracy": native,
        "base_accuracy": base,
        "train_s": round(train_s, 1),
    }


def replies(cube: Any, runtime: Any, questions: list[str], block: int) -> list[str]:
    from langchain_memos import ChatMemOS

    chat = ChatMemOS(
        cube=cube,
        user_id="ann",
        kv_memory=True,
        activation_budget=block,
        max_tokens=16,
        model=runtime.name,
    )
    out = []
    for q in questions:
        msg = chat.invoke(q)
        assert msg.response_metadata["kv_memory"]["cached_tokens"] > 0, "the cache was not used"
        out.append(str(msg.content))
    return out


def direction(
    root: Path,
    source: dict[str, Any],
    src_rt: Any,
    tgt_rt: Any,
    facts: list[dict[str, Any]],
    native_on_target: float,
    args: argparse.Namespace,
) -> dict[str, Any]:
    from memcube import MemCube
    from memcube.activation.memory import activation_memory

    questions = [rec["question"] for rec in facts[: args.questions]]
    start = time.perf_counter()
    cube, report = MemCube.import_archive(
        source["archive"], into=root / f"{src_rt.name}-to-{tgt_rt.name}", model=tgt_rt
    )
    total_s = time.perf_counter() - start
    rules = {r.kind: (r.rule, r.status, r.detail) for r in report.rematerialized}
    store = activation_memory(cube, tgt_rt).store
    built_before = store.stats["built"]
    rebuilt = replies(cube, tgt_rt, questions, args.block)
    cache_read = store.stats["built"] == built_before
    redistilled = adapter_accuracy(cube, tgt_rt, "facts", facts)
    cube.close()
    native_cube, _ = MemCube.import_archive(
        source["archive"],
        into=root / f"{src_rt.name}-to-{tgt_rt.name}-native",
        model=tgt_rt,
        rematerialize="never",
    )
    native = replies(native_cube, tgt_rt, questions, args.block)
    native_cube.close()
    return {
        "source": src_rt.name,
        "target": tgt_rt.name,
        "kv_identical": rebuilt == native and cache_read,
        "redistilled_accuracy": redistilled,
        "native_accuracy": native_on_target,
        "import_s": round(total_s - report.rematerialize_s, 2),
        "rematerialize_s": report.rematerialize_s,
        "rules": {k: v[0] for k, v in rules.items()},
        "statuses": {k: v[1] for k, v in rules.items()},
        "teacher_used": bool(rules.get("adapters", (None, None, {}))[2].get("teacher")),
        "source_cached_tokens": source["cached_tokens"],
        "questions": len(questions),
        "replies_identical": sum(a == b for a, b in zip(rebuilt, native, strict=True)),
        "rebuilt_cache_read_from_disk": cache_read,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", help="JSON list of {fact, question, paraphrases, answer}")
    parser.add_argument("--block", type=int, default=1024, help="activation budget (tokens)")
    parser.add_argument("--questions", type=int, default=5, help="chat questions compared")
    parser.add_argument(
        "--steps",
        type=int,
        help="most training steps (default: DistillConfig's); the "
        "re-distillation follows the source adapter's recorded recipe",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--json", dest="json_out")
    args = parser.parse_args(argv)

    import torch

    from memcube.runtime import Runtime

    torch.set_num_threads(args.threads)
    facts = load_facts(args.data)
    runtimes = {name: Runtime.shared(name) for name in MODELS}
    result: dict[str, Any] = {"directions": [], "facts": len(facts), "block_tokens": args.block}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sources = {
            name: build_source(root, rt, facts, args.block, args.quiet, args.steps)
            for name, rt in runtimes.items()
        }
        result["native"] = {
            name: {k: v for k, v in s.items() if k != "archive"} for name, s in sources.items()
        }
        for src, tgt in (MODELS, MODELS[::-1]):
            entry = direction(
                root,
                sources[src],
                runtimes[src],
                runtimes[tgt],
                facts,
                sources[tgt]["native_accuracy"],
                args,
            )
            result["directions"].append(entry)
            if args.json_out:
                Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    result["load_average"] = round(os.getloadavg()[0], 2)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"\n{'source -> target':<44}{'kv same':>8}{'redist. %':>10}{'native %':>9}"
        f"{'import s':>9}{'remat. s':>9}"
    )
    for d in result["directions"]:
        print(
            f"{d['source'] + ' -> ' + d['target']:<44}{str(d['kv_identical']):>8}"
            f"{d['redistilled_accuracy']:>10.1f}{d['native_accuracy']:>9.1f}"
            f"{d['import_s']:>9.2f}{d['rematerialize_s']:>9.1f}"
        )
    return result


if __name__ == "__main__":
    main()
