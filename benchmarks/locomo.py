"""LoCoMo evidence recall: does ``cube.search`` find the turns a question's answer rests on?

Each conversation of a LoCoMo-format file goes into a fresh cube as one user: one memory per turn
(content = the turn's text, plus the caption of a shared photo), ``event_time`` = the session's
date, ``metadata.speaker``, the dialog id in ``provenance.message_ids`` and the previous turn as
context (:func:`memcube.plaintext.context.attach_context`). Every question with evidence is then
asked through ``cube.search`` and scored by turn-level evidence recall@k: the fraction of gold
dialog ids carried by the top k memories. Side by side, in the same run:

* ``dense``: raw Chroma + the same embedder, one document per turn
  (``(<session date>) <speaker> said, "<text>"``), no cube;
* ``bm25``: Okapi BM25 (:mod:`memcube.plaintext.lexical`) over the same documents.

Each system's ``budget_recall`` is the same evidence recall over what an answering model would
read: the memories inside a prompt block of at most 500, 1,000 and 2,000 tokens (``--budgets``).
For memcube that block is ``cube.memory_block(question, token_budget=B)``, the product's own
choice and rendering; a baseline's ranked turns go through the same renderer
(:func:`memcube.prompting.fit_to_budget`: the header, then one
:func:`~memcube.prompting.memory_line` per memory while the approximate token count fits).
``budget_recall_by_category`` splits it by category and ``budget_memories`` is the mean number of
memories in a block.

Usage:
    python -m benchmarks.locomo --data ../shared/data/locomo_dev.json [--k 1,5,10,25]
        [--json OUT] [--plot PNG] [--conversations 0,1] [--chroma-url http://host:port]
        [--budgets 500,1000,2000]
        [--set dense_weight=0.8 ...] [--feedback [--seeds 3] [--hostile]]

``--feedback`` adds ``"feedback": {"seeds", "static", "learned"}`` (R@10 per category on the
unseen half of each conversation's questions after thumbs-up on the seen half's evidence; see
:mod:`benchmarks.locomo_feedback`). The last printed line is memcube's overall R@10.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from memcube import MemCube
    from memcube.items import MemoryItem
    from memcube.prompting import MemoryBlock

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop", 5: "adversarial"}
SYSTEMS = ("memcube", "dense", "bm25")
#: Prompt-block sizes (tokens) of ``budget_recall``.
DEFAULT_BUDGETS = (500, 1000, 2000)
#: Keys of a system's result that are not categories.
SYSTEM_KEYS = ("budget_recall", "budget_recall_by_category", "budget_memories", "latency_ms",
               "ingest_s")  # fmt: skip
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "locomo_dev.json"
RESULTS = Path(__file__).resolve().parent / "results"
_EVIDENCE = re.compile(r"D\s*:?\s*(\d+)\s*:\s*(\d+)")


# ---------------------------------------------------------------------------------- data
@dataclass
class Turn:
    dia_id: str
    session: int
    speaker: str
    text: str
    when: datetime | None
    date_text: str


@dataclass
class Question:
    question: str
    evidence: list[str]
    category: str
    answer: str = ""


@dataclass
class Conversation:
    sample_id: str
    turns: list[Turn]
    questions: list[Question]


def normalize_evidence(evidence: Any) -> list[str]:
    """Gold dialog ids as ``D<session>:<turn>``: ``"D30:05"`` -> ``D30:5``, ``"D:11:26"`` ->
    ``D11:26``, ``"D8:6; D9:17"`` -> two ids; anything without a session and turn is dropped.

    >>> normalize_evidence(["D30:05", "D:11:26", "D8:6; D9:17", "D", "D1:3"])
    ['D30:5', 'D11:26', 'D8:6', 'D9:17', 'D1:3']
    """
    items = evidence if isinstance(evidence, list) else [evidence]
    out: dict[str, None] = {}
    for raw in items:
        for m in _EVIDENCE.finditer(str(raw)):
            out.setdefault(f"D{int(m.group(1))}:{int(m.group(2))}", None)
    return list(out)


def parse_date(text: str) -> datetime | None:
    """LoCoMo session dates look like ``1:56 pm on 8 May, 2023``."""
    from dateutil import parser

    if not text:
        return None
    try:
        value = parser.parse(text.replace(" on ", " "), fuzzy=True)
    except (ValueError, OverflowError):
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def turn_text(turn: dict[str, Any]) -> str:
    """A turn's text, with the caption of a photo it shares."""
    text = str(turn.get("text") or "").strip()
    caption = str(turn.get("blip_caption") or "").strip()
    if caption:
        caption = re.sub(r"^a photo of\s+", "", caption)
        text = f"{text} [shares a photo of {caption}]".strip()
    return text


def load_locomo(path: Path) -> list[Conversation]:
    """Read any LoCoMo-format file: a list of samples with ``conversation`` and ``qa``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(data, dict):
        data = [data]
    out = []
    for n, sample in enumerate(data):
        conv = sample.get("conversation") or {}
        sessions = sorted(
            int(m.group(1))
            for key in conv
            if (m := re.fullmatch(r"session_(\d+)", key)) and isinstance(conv[key], list)
        )
        turns = []
        for s in sessions:
            date_text = str(conv.get(f"session_{s}_date_time") or "")
            when = parse_date(date_text)
            for t in conv[f"session_{s}"]:
                text = turn_text(t)
                if not text or not t.get("dia_id"):
                    continue
                ids = normalize_evidence([t["dia_id"]])
                turns.append(
                    Turn(
                        dia_id=ids[0] if ids else str(t["dia_id"]),
                        session=s,
                        speaker=str(t.get("speaker") or "someone"),
                        text=text,
                        when=when,
                        date_text=date_text,
                    )
                )
        questions = []
        for qa in sample.get("qa") or []:
            evidence = normalize_evidence(qa.get("evidence") or [])
            if not evidence or not qa.get("question"):
                continue
            cat = qa.get("category")
            questions.append(
                Question(
                    question=str(qa["question"]),
                    evidence=evidence,
                    category=CATEGORIES.get(cat, f"category-{cat}"),
                    answer=str(qa.get("answer", "")),
                )
            )
        out.append(Conversation(str(sample.get("sample_id", n)), turns, questions))
    return out


# ---------------------------------------------------------------------------------- scoring
def evidence_recall(evidence: Sequence[str], memories: Iterable[Sequence[str]]) -> float:
    """The fraction of a question's gold dialog ids carried by ``memories`` (each memory given
    by its dialog ids): a question with two evidence turns and one of them found scores 0.5.

    >>> evidence_recall(["D1:2", "D1:5"], [["D1:5"], ["D3:1", "D1:9"]])
    0.5
    """
    gold = set(evidence)
    found = {i for ids in memories for i in ids}
    return len(gold & found) / len(gold)


class Tally:
    """Per-category recall sums and latencies for one system."""

    def __init__(self, ks: Sequence[int], budgets: Sequence[int] = ()) -> None:
        self.ks = list(ks)
        self.budgets = list(budgets)
        self.sums: dict[str, dict[int, float]] = {}
        self.counts: dict[str, int] = {}
        self.budget_sums: dict[str, dict[int, float]] = {}
        self.budget_counts: dict[str, int] = {}
        self.block_sizes: dict[int, list[int]] = {b: [] for b in self.budgets}
        self.latencies: list[float] = []
        self.ingest_s = 0.0

    def add(self, q: Question, ranked_ids: Sequence[Sequence[str]], latency_s: float) -> None:
        for cat in ("overall", q.category):
            self.counts[cat] = self.counts.get(cat, 0) + 1
            row = self.sums.setdefault(cat, {k: 0.0 for k in self.ks})
            for k in self.ks:
                row[k] += evidence_recall(q.evidence, ranked_ids[:k])
        self.latencies.append(latency_s)

    def add_blocks(self, q: Question, blocks: Mapping[int, Sequence[Sequence[str]]]) -> None:
        """Score the prompt blocks of one question: budget -> the dialog ids of each memory in
        the block of that budget."""
        for cat in ("overall", q.category):
            self.budget_counts[cat] = self.budget_counts.get(cat, 0) + 1
            row = self.budget_sums.setdefault(cat, {b: 0.0 for b in self.budgets})
            for b in self.budgets:
                row[b] += evidence_recall(q.evidence, blocks[b])
        for b in self.budgets:
            self.block_sizes[b].append(len(blocks[b]))

    def result(self) -> dict[str, Any]:
        order = ["overall", *CATEGORIES.values()]
        cats = [c for c in order if c in self.counts] + sorted(set(self.counts) - set(order))
        out: dict[str, Any] = {}
        for cat in cats:
            n = self.counts[cat]
            out[cat] = {
                "n": n,
                **{f"R@{k}": round(100.0 * self.sums[cat][k] / n, 2) for k in self.ks},
            }
        if self.budget_counts:
            by_cat = {
                cat: {
                    str(b): round(100.0 * self.budget_sums[cat][b] / self.budget_counts[cat], 2)
                    for b in self.budgets
                }
                for cat in cats
                if cat in self.budget_counts
            }
            out["budget_recall"] = by_cat["overall"]
            out["budget_recall_by_category"] = by_cat
            out["budget_memories"] = {
                str(b): round(statistics.fmean(self.block_sizes[b]), 2) for b in self.budgets
            }
        lat = sorted(self.latencies)
        out["latency_ms"] = {
            "p50": round(1000 * statistics.median(lat), 2) if lat else None,
            "p95": round(1000 * lat[min(len(lat) - 1, int(0.95 * len(lat)))], 2) if lat else None,
        }
        out["ingest_s"] = round(self.ingest_s, 2)
        return out


def baseline_document(t: Turn) -> str:
    return f'({t.date_text}) {t.speaker} said, "{t.text}"'


def prompt_block(cube: MemCube, question: str, user_id: str, budget: int) -> MemoryBlock:
    """What ``cube.memory_block`` puts in a prompt about ``question`` within ``budget`` tokens.

    Usage is left out of the choice (``usage_weight=0``: the block of a cube whose memories were
    never used), so a question's block does not depend on the questions asked before it, nor on
    when the cube's background write-back of usage counts happened to run."""
    unused = dataclasses.replace(cube.scheduler_config, usage_weight=0.0)
    return cube.memory_block(question, user_id=user_id, token_budget=budget, config=unused)


def block_ids(
    items: Sequence[MemoryItem], budget: int, reader: str | None = None
) -> list[list[str]]:
    """The dialog ids of each memory that fits a prompt block of ``budget`` tokens, in the
    product's rendering (:func:`memcube.prompting.fit_to_budget`): how baselines' ranked turns
    are cut to a budget."""
    from memcube.prompting import fit_to_budget

    return [it.dialog_ids for it in fit_to_budget(items, budget, reader=reader)]


def turn_drafts(conv: Conversation, user_id: str) -> list[dict[str, Any]]:
    """The memories a conversation becomes (dicts for ``cube.add_many``), with context."""
    from memcube.items import Provenance
    from memcube.plaintext.context import attach_context

    drafts = [
        {
            "content": t.text,
            "user_id": user_id,
            "session_id": f"session_{t.session}",
            "memory_type": "episodic",
            "event_time": t.when,
            "metadata": {"speaker": t.speaker, "dia_id": t.dia_id},
            "provenance": Provenance(source="locomo", message_ids=[t.dia_id]),
        }
        for t in conv.turns
    ]
    return attach_context(drafts)  # type: ignore[return-value]


def run(
    conversations: Sequence[Conversation],
    *,
    ks: Sequence[int],
    chroma_url: str | None = None,
    retrieval: dict[str, Any] | None = None,
    systems: Sequence[str] = SYSTEMS,
    progress: bool = True,
    count_usage: bool = False,
    budgets: Sequence[int] = DEFAULT_BUDGETS,
) -> dict[str, Any]:
    """Measure every system on the conversations; returns ``{"systems": {...}}``."""
    import chromadb
    from chromadb.config import Settings

    from memcube import MemCube, RetrievalConfig
    from memcube.items import MemoryItem
    from memcube.plaintext.embedder import default_embedder
    from memcube.plaintext.lexical import BM25Index, tokenize

    embedder = default_embedder()
    embedder.embed_query("warm up")
    config = RetrievalConfig(**(retrieval or {}))
    kmax = max(ks)
    tallies = {s: Tally(ks, budgets) for s in systems}
    with tempfile.TemporaryDirectory(prefix="locomo-") as tmp:
        raw = chromadb.PersistentClient(
            path=str(Path(tmp) / "raw"), settings=Settings(anonymized_telemetry=False)
        )
        for n, conv in enumerate(conversations):
            if not conv.turns or not conv.questions:
                continue
            ids = [t.dia_id for t in conv.turns]
            docs = [baseline_document(t) for t in conv.turns]
            user = f"locomo-{n}"
            # The baselines' turns as the memories a prompt block renders (unsaved items).
            turn_items = [MemoryItem(**d) for d in turn_drafts(conv, user)]
            if "memcube" in systems:
                tally = tallies["memcube"]
                t0 = time.perf_counter()
                cube = MemCube.open(
                    Path(tmp) / f"cube-{n}", chroma_url=chroma_url, embedder=embedder,
                    retrieval=config,
                )  # fmt: skip
                try:
                    cube.add_many(turn_drafts(conv, user), progress=progress)
                    tally.ingest_s += time.perf_counter() - t0
                    for q in conv.questions:
                        t1 = time.perf_counter()
                        hits = cube.search(
                            q.question, user_id=user, k=kmax, count_usage=count_usage
                        )
                        tally.add(q, [h.item.dialog_ids for h in hits], time.perf_counter() - t1)
                    # After the timed searches: a block records usage, whose background
                    # write-back would otherwise land in their latency.
                    for q in conv.questions if budgets else ():
                        tally.add_blocks(q, {
                            b: [it.dialog_ids for it in prompt_block(cube, q.question, user, b).items]
                            for b in budgets
                        })  # fmt: skip
                finally:
                    cube.close()
            if "dense" in systems:
                tally = tallies["dense"]
                t0 = time.perf_counter()
                coll = raw.create_collection(
                    f"conv{n}", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
                )
                coll.add(ids=ids, documents=docs, embeddings=embedder.embed_documents(docs))
                tally.ingest_s += time.perf_counter() - t0
                position = {i: p for p, i in enumerate(ids)}
                for q in conv.questions:
                    t1 = time.perf_counter()
                    query = embedder.embed_query(q.question)
                    res = coll.query(
                        query_embeddings=[query], n_results=min(kmax, len(ids)), include=[]
                    )
                    tally.add(q, [[i] for i in res["ids"][0]], time.perf_counter() - t1)
                    if budgets:  # the whole ranking, untimed, for the prompt blocks
                        res = coll.query(query_embeddings=[query], n_results=len(ids), include=[])
                        ranked = [turn_items[position[i]] for i in res["ids"][0]]
                        tally.add_blocks(q, {b: block_ids(ranked, b, user) for b in budgets})
            if "bm25" in systems:
                tally = tallies["bm25"]
                t0 = time.perf_counter()
                index = BM25Index(docs)
                tally.ingest_s += time.perf_counter() - t0
                for q in conv.questions:
                    t1 = time.perf_counter()
                    scores = index.scores(tokenize(q.question))
                    order = sorted(range(len(ids)), key=lambda i: -scores[i])
                    tally.add(q, [[ids[i]] for i in order[:kmax]], time.perf_counter() - t1)
                    if budgets:
                        ranked = [turn_items[i] for i in order]
                        tally.add_blocks(q, {b: block_ids(ranked, b, user) for b in budgets})
    return {
        "systems": {s: tallies[s].result() for s in systems},
        "config": {
            "retrieval": asdict(config),
            "embedder": embedder.model_id,
            "k": list(ks),
            "budgets": list(budgets),
        },
    }


# ---------------------------------------------------------------------------------- output
def table(result: dict[str, Any], ks: Sequence[int]) -> str:
    systems = result["systems"]
    cats = [c for c in next(iter(systems.values())) if c not in SYSTEM_KEYS]
    lines = []
    head = f"{'category':<14}{'n':>5}  " + "  ".join(
        f"{s + ' R@' + str(k):>16}" for s in systems for k in ks
    )
    lines.append(head)
    lines.append("-" * len(head))
    for cat in cats:
        n = next(iter(systems.values()))[cat]["n"]
        cells = "  ".join(f"{systems[s][cat][f'R@{k}']:>16.1f}" for s in systems for k in ks)
        lines.append(f"{cat:<14}{n:>5}  {cells}")
    budgets = list(next(iter(systems.values())).get("budget_recall", {}))
    if budgets:
        lines.append("")
        head = f"{'recall within':<14}{'n':>5}  " + "  ".join(
            f"{s + ' ' + b + ' tok':>16}" for s in systems for b in budgets
        )
        lines.append(head)
        lines.append("-" * len(head))
        for cat in cats:
            n = next(iter(systems.values()))[cat]["n"]
            cells = "  ".join(
                f"{systems[s]['budget_recall_by_category'][cat][b]:>16.1f}"
                for s in systems
                for b in budgets
            )
            lines.append(f"{cat:<14}{n:>5}  {cells}")
        cells = "  ".join(
            f"{systems[s]['budget_memories'][b]:>16.1f}" for s in systems for b in budgets
        )
        lines.append(f"{'memories/block':<19}  {cells}")
    lines.append("")
    for s, r in systems.items():
        lat = r["latency_ms"]
        lines.append(
            f"{s:<8} query latency p50 {lat['p50']} ms, p95 {lat['p95']} ms; ingest {r['ingest_s']} s"
        )
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path, k: int = 10) -> Path:
    """Grouped bar chart of R@k per category and system."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = result["systems"]
    cats = [c for c in next(iter(systems.values())) if c not in SYSTEM_KEYS]
    width = 0.8 / len(systems)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, (name, r) in enumerate(systems.items()):
        xs = [j + (i - (len(systems) - 1) / 2) * width for j in range(len(cats))]
        vals = [r[c][f"R@{k}"] for c in cats]
        bars = ax.bar(xs, vals, width, label=name)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(range(len(cats)), cats)
    ax.set_ylabel(f"evidence recall@{k} (%)")
    ax.set_ylim(0, 112)
    ax.set_yticks(range(0, 101, 20))
    ax.set_title("LoCoMo turn-level evidence recall")
    ax.legend(ncol=len(systems), loc="upper center", frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _positive_ints(text: str, option: str) -> list[int]:
    try:
        values = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{option} takes comma-separated integers, got {text!r}"
        ) from None
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"{option} values must be positive")
    return values


def _parse_ks(text: str) -> list[int]:
    return _positive_ints(text, "--k")


def _parse_budgets(text: str) -> list[int]:
    return _positive_ints(text, "--budgets")


def _parse_selection(text: str | None, n: int) -> list[int]:
    if not text:
        return list(range(n))
    out: list[int] = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return [i for i in out if 0 <= i < n]


def _parse_set(items: Sequence[str]) -> dict[str, Any]:
    from memcube import RetrievalConfig

    known = {f.name: f.type for f in fields(RetrievalConfig)}
    out: dict[str, Any] = {}
    for item in items:
        key, _, value = item.partition("=")
        if key not in known:
            raise SystemExit(
                f"--set: unknown RetrievalConfig field {key!r}; known: {sorted(known)}"
            )
        out[key] = json.loads(value) if value not in ("", None) else None
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.locomo", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LoCoMo-format JSON file")
    ap.add_argument("--k", type=_parse_ks, default=[1, 5, 10, 25], help="e.g. 1,5,10,25")
    ap.add_argument("--budgets", type=_parse_budgets, default=list(DEFAULT_BUDGETS),
                    help="prompt-block token budgets of budget_recall, e.g. 500,1000,2000")  # fmt: skip
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    ap.add_argument(
        "--plot", type=Path, default=None, help="bar chart PNG (default: next to --json)"
    )
    ap.add_argument("--conversations", default=None, help="indices to run, e.g. 0,2-4")
    ap.add_argument("--chroma-url", default=None, help="run memcube against a Chroma server")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=JSON",
                    help="override a RetrievalConfig field, e.g. --set dense_weight=0.5")  # fmt: skip
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="subset of memcube,dense,bm25")
    ap.add_argument("--no-progress", action="store_true")
    ap.add_argument("--feedback", action="store_true",
                    help="also measure ranking learned from feedback (benchmarks.locomo_feedback)")  # fmt: skip
    ap.add_argument("--seeds", type=int, default=3, help="random splits for --feedback")
    ap.add_argument("--hostile", action="store_true",
                    help="with --feedback: also measure votes on random non-evidence turns")  # fmt: skip
    ap.add_argument("--count-usage", action="store_true",
                    help="let searches count usage (the cube's periodic usage flush then shows "
                    "up in the latency tail)")  # fmt: skip
    args = ap.parse_args(argv)
    if not args.data.exists():
        raise SystemExit(f"no LoCoMo file at {args.data}; pass --data PATH")
    systems = [s for s in args.systems.split(",") if s]
    if not systems or set(systems) - set(SYSTEMS):
        raise SystemExit(f"--systems takes a subset of {','.join(SYSTEMS)}")
    convs = load_locomo(args.data)
    selected = _parse_selection(args.conversations, len(convs))
    convs = [convs[i] for i in selected]
    if 10 not in args.k:
        args.k = sorted({*args.k, 10})
    result = run(
        convs,
        ks=args.k,
        chroma_url=args.chroma_url,
        retrieval=_parse_set(args.set),
        systems=systems,
        progress=not args.no_progress,
        count_usage=args.count_usage,
        budgets=args.budgets,
    )
    result["data"] = {"file": args.data.name, "conversations": selected}
    print(table(result, args.k))
    if args.feedback:
        from benchmarks.locomo_feedback import run_feedback

        result["feedback"] = run_feedback(
            convs, seeds=args.seeds, retrieval=_parse_set(args.set), hostile=args.hostile
        )
        fb = result["feedback"]
        for cat in fb["static"]:
            print(f"feedback {cat:<12} static {fb['static'][cat]:5.1f}  learned "
                  f"{fb['learned'][cat]:5.1f}" + (f"  hostile {fb['hostile'][cat]:5.1f}"
                  if "hostile" in fb else ""))  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    png = args.plot or (args.json.with_suffix(".png") if args.json else RESULTS / "locomo.png")
    plot(result, png)
    print(f"chart: {png}")
    main_system = "memcube" if "memcube" in result["systems"] else systems[0]
    print(f"{main_system} overall R@10: {result['systems'][main_system]['overall']['R@10']:.1f}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
