"""Memory semantics: does the cube store and recall what a user expects?

Runs files of the ``memcube-semantics/1`` format (``../shared/data/memory_semantics_FORMAT.md``):
every scenario on a fresh, empty cube, written through the default write path
(``cube.add_messages`` with the default roles and extractor, ``cube.add``, ``cube.share``), then
checked through ``cube.search`` and ``cube.memory_block`` (the text the agent adapters inject).
Matching is case-insensitive substring matching. Prints the pass rate per category and, last,
the overall pass rate.

Usage:
    python -m benchmarks.memory_semantics --data ../shared/data/memory_semantics_dev.json
        [--json OUT] [--failures] [--only ID,ID]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FORMAT = "memcube-semantics/1"
DEFAULT_DATA = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "memory_semantics_dev.json"
)


class FormatError(ValueError):
    """The file does not follow the memcube-semantics/1 format."""


def load(path: Path) -> list[dict[str, Any]]:
    """The scenarios of a ``memcube-semantics/1`` file (FormatError if it is another format)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FormatError(f"{path}: not a {FORMAT} file.")
    scenarios = data.get("scenarios")
    if not isinstance(scenarios, list):
        raise FormatError(f"{path}: 'scenarios' must be a list.")
    return scenarios


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def run_step(cube: Any, step: dict[str, Any]) -> None:
    """One scenario step, on the default write path."""
    op = step["op"]
    if op == "add_messages":
        cube.add_messages(
            step["messages"],
            user_id=step["user_id"],
            session_id=step.get("session_id"),
            timestamp=_when(step.get("timestamp")),
        )
    elif op == "add":
        kwargs: dict[str, Any] = {"event_time": _when(step.get("timestamp"))}
        if step.get("memory_type"):
            kwargs["memory_type"] = step["memory_type"]
        cube.add(step["content"], user_id=step["user_id"], **kwargs)
    elif op == "share":
        cube.share(step["owner"], step["with_user"])
    else:
        raise FormatError(f"unknown step op {op!r}")


def _has(text: str, fragment: str) -> bool:
    return fragment.casefold() in text.casefold()


def run_check(cube: Any, check: dict[str, Any]) -> tuple[bool, list[str], Any]:
    """``(passed, failed conditions, what was seen)`` for one check."""
    failed: list[str] = []
    if "search" in check:
        hits = cube.search(check["search"], user_id=check["user_id"], k=check["k"])
        texts = [h.item.content for h in hits]
        seen: Any = [(round(h.score, 3), h.item.content[:90]) for h in hits]
        if "top1" in check and not (texts and _has(texts[0], check["top1"])):
            failed.append(f"top1 {check['top1']!r}")
        for frag in check.get("contains", []):
            if not any(_has(t, frag) for t in texts):
                failed.append(f"contains {frag!r}")
        for frag in check.get("excludes", []):
            if any(_has(t, frag) for t in texts):
                failed.append(f"excludes {frag!r}")
        cap = check.get("max_hits_containing")
        if cap and sum(_has(t, cap["fragment"]) for t in texts) > cap["max"]:
            failed.append(f"max_hits_containing {cap['fragment']!r} <= {cap['max']}")
        if "min_top_score" in check and not (hits and hits[0].score >= check["min_top_score"]):
            failed.append(f"min_top_score {check['min_top_score']}")
        if "max_top_score" in check and any(h.score > check["max_top_score"] for h in hits):
            failed.append(f"max_top_score {check['max_top_score']}")
    elif "prompt" in check:
        block = cube.memory_block(
            check["prompt"], user_id=check["user_id"], token_budget=check["token_budget"]
        )
        seen = block
        for frag in check.get("contains", []):
            if not _has(block, frag):
                failed.append(f"contains {frag!r}")
        for frag in check.get("excludes", []):
            if _has(block, frag):
                failed.append(f"excludes {frag!r}")
        for frag, who in check.get("attributed", []):
            lines = [line for line in block.splitlines() if _has(line, frag)]
            if any(not _has(line, who) for line in lines):
                failed.append(f"attributed {frag!r} to {who!r}")
    else:
        raise FormatError(f"a check needs 'search' or 'prompt': {check}")
    return not failed, failed, seen


def run(path: Path, *, only: set[str] | None = None) -> dict[str, Any]:
    """Run every scenario of ``path``; returns the results (per check, category, overall)."""
    from memcube import MemCube
    from memcube.plaintext.embedder import default_embedder

    embedder = default_embedder()
    embedder.embed_query("warm up")
    results = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memsem-") as tmp:
        for n, scenario in enumerate(load(path)):
            if only and scenario["id"] not in only:
                continue
            with MemCube.open(Path(tmp) / f"cube-{n}", embedder=embedder) as cube:
                for step in scenario["steps"]:
                    run_step(cube, step)
                for check in scenario["checks"]:
                    passed, failed, seen = run_check(cube, check)
                    results.append(
                        {
                            "scenario": scenario["id"],
                            "category": scenario["category"],
                            "check": check,
                            "passed": passed,
                            "failed": failed,
                            "seen": seen,
                        }
                    )
    by_cat: dict[str, list[bool]] = defaultdict(list)
    for r in results:
        by_cat[r["category"]].append(r["passed"])
    categories = {c: sum(v) / len(v) for c, v in sorted(by_cat.items())}
    overall = sum(r["passed"] for r in results) / len(results) if results else 0.0
    return {
        "data": str(path),
        "checks": len(results),
        "seconds": round(time.perf_counter() - started, 1),
        "categories": categories,
        "overall": overall,
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--failures", action="store_true", help="print every failed check")
    ap.add_argument("--only", default="", help="comma-separated scenario ids")
    args = ap.parse_args(argv)
    only = {s for s in args.only.split(",") if s} or None
    out = run(args.data, only=only)
    if args.failures:
        for r in out["results"]:
            if not r["passed"]:
                what = r["check"].get("search") or r["check"].get("prompt")
                print(f"FAIL {r['scenario']}: {what!r}: {', '.join(r['failed'])}")
                seen = r["seen"]
                for line in seen if isinstance(seen, list) else seen.splitlines():
                    print(f"    {line}")
    counts: dict[str, list[bool]] = defaultdict(list)
    for r in out["results"]:
        counts[r["category"]].append(r["passed"])
    print(f"\n{'category':<18} {'passed':>8} {'rate':>7}")
    for cat, rate in out["categories"].items():
        print(f"{cat:<18} {sum(counts[cat]):>3}/{len(counts[cat]):<4} {100 * rate:>6.1f}%")
    print(f"({out['checks']} checks, {out['seconds']} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2, default=str), encoding="utf-8")
    print(f"overall {100 * out['overall']:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
