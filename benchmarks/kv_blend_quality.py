"""KV blending quality and speed: per-memory KV chunks composed after a stable prefix cache.

For questions of one LoCoMo conversation (``../shared/data/locomo_dev.json``), with the
bundled SmolLM2-135M-Instruct:

- the prompt is ``<|im_start|>system\\n`` + a **stable prefix** (``Long-term memories about
  the user:`` and ~2,000 tokens of the conversation's first turns, one line
  ``\\n- [date] Speaker: text`` per turn; exact cache, computed once) + **~1,000 tokens of the
  question's memories** (its gold evidence turns and their neighbours, outside the prefix, in
  dialog order, one chunk per turn) + the chat-template suffix with the question;
- the reference is a full prefill of exactly the same token ids and its greedy continuation of
  16 tokens;
- blend (:func:`memcube.activation.blend.blend`) composes the prefix cache and the stored chunks
  for each ``recompute_ratio``; the suffix and the reference continuation are then run on the
  blended cache **teacher-forced** (the same 16 answer tokens), which gives per position the
  next-token KL(reference || blend) and whether the greedy token agrees. ``free_agree`` is the
  share of the 16 tokens equal when blend decodes greedily on its own;
- times: ``full_s`` the full text prefill to the first token (all ~3,100 tokens), ``exact_s``
  an exact prefix cache plus the memories read as text, ``blend_s`` blend plus the suffix
  forward (chunks already computed and in memory, as after their first use).

Usage:
    python -m benchmarks.kv_blend_quality [--questions 12] [--ratios 0 0.1 0.15 0.3]
        [--lead-in none|head] [--threads N] [--json OUT]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "locomo_dev.json"
HEAD = "<|im_start|>system\n"
HEADER = "Long-term memories about the user:"
ANSWER_TOKENS = 16


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:  # pragma: no cover
        return ""


def _date(raw: str) -> str:
    # "1:56 pm on 8 May, 2023" -> "8 May 2023"
    part = raw.split(" on ", 1)[-1]
    return part.replace(",", "").strip()


def _turns(conv: dict[str, Any]) -> list[dict[str, str]]:
    sessions = sorted(
        (int(m.group(1)), k) for k in conv if (m := re.fullmatch(r"session_(\d+)", k))
    )
    out = []
    for _num, key in sessions:
        date = _date(conv.get(f"{key}_date_time", ""))
        for turn in conv[key]:
            out.append(
                {
                    "id": str(turn["dia_id"]),
                    "line": f"\n- [{date}] {turn['speaker']}: {turn['text']}",
                }
            )
    return out


def _evidence(qa: dict[str, Any]) -> list[str]:
    ids: list[str] = []
    for raw in qa.get("evidence", []):
        for m in re.finditer(r"D:?(\d+):0*(\d+)", str(raw)):
            ids.append(f"D{int(m.group(1))}:{int(m.group(2))}")
    return ids


def _build_cases(
    tok: Any, conversation: int, n_questions: int, prefix_tokens: int, memory_tokens: int
) -> tuple[list[int], list[dict[str, Any]]]:
    data = json.loads(DATA.read_text())
    sample = data[conversation]
    turns = _turns(sample["conversation"])
    enc = [tok(t["line"], add_special_tokens=False)["input_ids"] for t in turns]
    index = {t["id"]: i for i, t in enumerate(turns)}
    prefix = tok(HEAD, add_special_tokens=False)["input_ids"]
    prefix += tok(HEADER, add_special_tokens=False)["input_ids"]
    in_prefix = 0
    while len(prefix) + len(enc[in_prefix]) <= prefix_tokens:
        prefix += enc[in_prefix]
        in_prefix += 1
    qas = [
        qa
        for qa in sample["qa"]
        if qa.get("category") != 5
        and (ev := [index[e] for e in _evidence(qa) if e in index])
        and min(ev) >= in_prefix
    ]
    step = max(1, len(qas) // n_questions)
    cases = []
    for qa in qas[::step][:n_questions]:
        ev = sorted({index[e] for e in _evidence(qa) if e in index})
        chosen = set(ev)
        used = sum(len(enc[i]) for i in chosen)
        radius = 1
        while used < memory_tokens and radius < len(turns):
            grew = False
            for e in ev:
                for j in (e - radius, e + radius):
                    if in_prefix <= j < len(turns) and j not in chosen:
                        if used + len(enc[j]) > memory_tokens:
                            continue
                        chosen.add(j)
                        used += len(enc[j])
                        grew = True
            radius += 1
            if not grew and radius > 50:
                break
        order = sorted(chosen)
        suffix = tok(
            f"<|im_end|>\n<|im_start|>user\n{qa['question']}<|im_end|>\n<|im_start|>assistant\n",
            add_special_tokens=False,
        )["input_ids"]
        cases.append(
            {
                "question": qa["question"],
                "answer": str(qa.get("answer", "")),
                "memory_ids": [turns[i]["id"] for i in order],
                "chunks": [enc[i] for i in order],
                "suffix": suffix,
            }
        )
    return prefix, cases


def _kl(ref_logits: Any, logits: Any) -> Any:
    import torch

    p = torch.log_softmax(ref_logits.double(), -1)
    q = torch.log_softmax(logits.double(), -1)
    return (p.exp() * (p - q)).sum(-1)


def _greedy(model: Any, cache: Any, feed: list[int], steps: int) -> tuple[list[int], Any]:
    """Greedy continuation of ``feed`` on ``cache`` (mutated); logits of every step."""
    import torch

    out: list[int] = []
    logits = []
    step = torch.tensor([feed])
    for _ in range(steps):
        last = model(input_ids=step, past_key_values=cache, use_cache=True, logits_to_keep=1)
        row = last.logits[0, -1].float()
        logits.append(row)
        token = int(row.argmax())
        out.append(token)
        step = torch.tensor([[token]])
    return out, torch.stack(logits)


def _measure_case(
    runtime: Any,
    store: Any,
    prefix: list[int],
    prefix_cache: Any,
    case: dict[str, Any],
    ratios: list[float],
    recompute_first: int,
) -> dict[str, Any]:
    import torch

    from memcube.activation.blend import blend

    model = runtime.model
    chunk_ids = case["chunks"]
    memory = [t for c in chunk_ids for t in c]
    suffix = case["suffix"]
    all_ids = prefix + memory + suffix
    chunks = [
        store.get_or_build(f"{case['memory_ids'][i]}", "v1", ids) for i, ids in enumerate(chunk_ids)
    ]
    with torch.no_grad():
        # reference: full prefill, first token timed, then the greedy continuation
        cache = runtime.prefill(())
        t0 = time.perf_counter()
        first = model(
            input_ids=torch.tensor([all_ids]),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        full_s = time.perf_counter() - t0
        tok0 = int(first.logits[0, -1].argmax())
        rest, rest_logits = _greedy(model, cache, [tok0], ANSWER_TOKENS - 1)
        answer = [tok0, *rest]
        ref_logits = torch.cat([first.logits[0, -1:].float(), rest_logits], 0)
        # exact prefix cache + memories read as text
        t0 = time.perf_counter()
        exact = copy.deepcopy(prefix_cache)
        model(
            input_ids=torch.tensor([memory + suffix]),
            past_key_values=exact,
            use_cache=True,
            logits_to_keep=1,
        )
        exact_s = time.perf_counter() - t0
        del exact
        rows = []
        for ratio in ratios:
            t0 = time.perf_counter()
            res = blend(
                runtime,
                prefix_cache,
                len(prefix),
                chunk_ids,
                chunks,
                recompute_ratio=ratio,
                recompute_first=recompute_first,
            )
            free_cache = copy.deepcopy(res.cache)
            out = model(
                input_ids=torch.tensor([suffix + answer[:-1]]),
                past_key_values=res.cache,
                use_cache=True,
                logits_to_keep=ANSWER_TOKENS,
            )
            # first token time: blend + suffix forward (the teacher-forced extra tokens are
            # 15 more, a negligible share of this forward; timed separately below)
            blend_tf_s = time.perf_counter() - t0
            logits = out.logits[0].float()
            kl = _kl(ref_logits, logits)
            agree = (logits.argmax(-1) == torch.tensor(answer)).float()
            t1 = time.perf_counter()
            free_first = model(
                input_ids=torch.tensor([suffix]),
                past_key_values=free_cache,
                use_cache=True,
                logits_to_keep=1,
            )
            suffix_s = time.perf_counter() - t1
            f0 = int(free_first.logits[0, -1].argmax())
            frest, _ = _greedy(model, free_cache, [f0], ANSWER_TOKENS - 1)
            free = [f0, *frest]
            rows.append(
                {
                    "ratio": ratio,
                    "agree": float(agree.mean()),
                    "kl": float(kl.mean()),
                    "kl_max": float(kl.max()),
                    "free_agree": sum(a == b for a, b in zip(free, answer)) / ANSWER_TOKENS,
                    "first_token_agree": bool(f0 == answer[0]),
                    "computed": res.computed_tokens,
                    "cached": res.cached_tokens,
                    "probed": res.probed_tokens,
                    "blend_s": res.timings["total_s"],
                    "suffix_s": suffix_s,
                    "ttft_s": res.timings["total_s"] + suffix_s,
                    "blend_tf_s": blend_tf_s,
                    "timings": res.timings,
                }
            )
    tok = runtime.tokenizer
    return {
        "question": case["question"],
        "gold": case["answer"],
        "reference_answer": tok.decode(answer, skip_special_tokens=True),
        "tokens": {
            "prefix": len(prefix),
            "memories": len(memory),
            "chunks": len(chunk_ids),
            "suffix": len(suffix),
            "total": len(all_ids),
        },
        "full_s": full_s,
        "exact_s": exact_s,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--conversation", type=int, default=0)
    parser.add_argument("--questions", type=int, default=12)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.0, 0.1, 0.15, 0.3])
    parser.add_argument("--prefix-tokens", type=int, default=2000)
    parser.add_argument("--memory-tokens", type=int, default=1000)
    parser.add_argument("--lead-in", choices=["head", "none"], default="none")
    parser.add_argument("--recompute-first", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from memcube.activation.chunks import ChunkStore
    from memcube.runtime import Runtime

    uptime_before = _uptime()
    load_before = os.getloadavg()
    runtime = Runtime.shared()
    tok = runtime.tokenizer
    prefix, cases = _build_cases(
        tok, args.conversation, args.questions, args.prefix_tokens, args.memory_tokens
    )
    lead_in: list[int] = []
    if args.lead_in == "head":
        lead_in = tok(HEAD, add_special_tokens=False)["input_ids"]
        lead_in += tok(HEADER, add_special_tokens=False)["input_ids"]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        store = ChunkStore(tmp, runtime, lead_in=lead_in)
        prefix_cache = runtime.prefill(prefix)
        for i, case in enumerate(cases):
            r = _measure_case(
                runtime, store, prefix, prefix_cache, case, args.ratios, args.recompute_first
            )
            results.append(r)
            short = " ".join(
                f"r={row['ratio']:.2f}: agree {row['agree']:.2f} kl {row['kl']:.3f}"
                for row in r["rows"]
            )
            print(
                f"[{i + 1}/{len(cases)}] {r['tokens']['total']} tok, full {r['full_s']:.2f}s | "
                f"{short}",
                flush=True,
            )
    med = statistics.median
    mean = statistics.fmean
    summary = []
    for k, ratio in enumerate(args.ratios):
        rows = [r["rows"][k] for r in results]
        full = med(r["full_s"] for r in results)
        ttft = med(row["ttft_s"] for row in rows)
        summary.append(
            {
                "ratio": ratio,
                "agree": round(mean(row["agree"] for row in rows), 4),
                "kl": round(mean(row["kl"] for row in rows), 4),
                "kl_median_question": round(med(row["kl"] for row in rows), 4),
                "free_agree": round(mean(row["free_agree"] for row in rows), 4),
                "first_token_agree": round(mean(row["first_token_agree"] for row in rows), 4),
                "computed": round(mean(row["computed"] for row in rows), 1),
                "cached": round(mean(row["cached"] for row in rows), 1),
                "blend_s": round(med(row["blend_s"] for row in rows), 4),
                "ttft_s": round(ttft, 4),
                "full_s": round(full, 4),
                "speedup_vs_full": round(full / ttft, 2),
                "meets_quality": mean(row["agree"] for row in rows) >= 0.9
                and mean(row["kl"] for row in rows) <= 0.1,
            }
        )
    report = {
        "benchmark": "kv_blend_quality",
        "model": "SmolLM2-135M-Instruct (float32)",
        "method": {
            "agreement": "teacher-forced on the full-prefill greedy continuation "
            f"({ANSWER_TOKENS} tokens); free_agree: blend's own greedy tokens equal",
            "kl": "mean over the 16 positions of KL(full prefill || blend), nats",
            "lead_in": args.lead_in,
            "recompute_first": args.recompute_first,
            "selection": "layer-1 KV deviation after an exact layer-0 pass (CacheBlend)",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "uptime_before": uptime_before,
            "uptime_after": _uptime(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "conversation": args.conversation,
        "questions": len(results),
        "median_tokens": {
            key: med(r["tokens"][key] for r in results)
            for key in ("prefix", "memories", "chunks", "suffix", "total")
        },
        "median_full_s": round(med(r["full_s"] for r in results), 4),
        "median_exact_s": round(med(r["exact_s"] for r in results), 4),
        "targets": {"agree": ">= 0.90", "kl": "<= 0.1", "speedup_vs_full": ">= 8"},
        "summary": summary,
        "cases": results,
    }
    print(
        f"\n{len(results)} questions, median tokens {report['median_tokens']}; full prefill "
        f"{report['median_full_s']:.2f}s, exact prefix + text memories "
        f"{report['median_exact_s']:.2f}s"
    )
    print(
        f"{'ratio':>6} {'agree':>6} {'free':>6} {'KL':>7} {'computed':>9} {'cached':>7} "
        f"{'blend':>7} {'TTFT':>7} {'speedup':>8} {'target':>7}"
    )
    for s in summary:
        print(
            f"{s['ratio']:>6.2f} {s['agree']:>6.3f} {s['free_agree']:>6.3f} {s['kl']:>7.4f} "
            f"{s['computed']:>9.1f} {s['cached']:>7.1f} {s['blend_s']:>6.3f}s "
            f"{s['ttft_s']:>6.3f}s {s['speedup_vs_full']:>7.1f}x {str(s['meets_quality']):>7}"
        )
    print(f"uptime before: {uptime_before}\nuptime after:  {report['machine']['uptime_after']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
