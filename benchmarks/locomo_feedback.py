"""LoCoMo with feedback: does the ranking learn from thumbs-up? (``benchmarks.locomo --feedback``)

For each conversation (one cube, one user) and each seed: the questions are split at random in
halves; every gold evidence turn of the *seen* half gets ``cube.feedback(id, useful=True,
query=question)``, as a user's thumbs-up on the memory that answered would; then R@10 is
measured on the *unseen* half, for the static ranker (the same cube before any feedback) and
the learned one. The profiles are reset between seeds (``cube.reset_ranking_profile``).

With ``hostile=True`` the same number of votes goes instead to random turns that are *not*
evidence of the seen questions (a client voting nonsense), and the unseen half is measured
again: bounded weights keep it near the static figure.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.locomo import Conversation, Question, Tally, turn_drafts


def _split(questions: Sequence[Question], seed: int) -> tuple[list[int], list[int]]:
    order = list(range(len(questions)))
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    return sorted(order[:half]), sorted(order[half:])


def _r10(tally: Tally) -> dict[str, float]:
    res = tally.result()
    return {c: v["R@10"] for c, v in res.items() if isinstance(v, dict) and "R@10" in v}


def run_feedback(
    conversations: Sequence[Conversation],
    *,
    seeds: int = 3,
    retrieval: dict[str, Any] | None = None,
    hostile: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """``{"seeds": N, "static": {cat: R@10}, "learned": {cat: R@10}}`` on the unseen halves
    (plus ``"hostile"`` when asked, and ``"votes"`` / ``"seconds"``)."""
    from memcube import MemCube, RetrievalConfig
    from memcube.plaintext.embedder import default_embedder

    embedder = default_embedder()
    config = RetrievalConfig(**(retrieval or {}))
    static, learned, flooded = Tally([10]), Tally([10]), Tally([10])
    votes = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="locomo-feedback-") as tmp:
        for n, conv in enumerate(conversations):
            if not conv.turns or not conv.questions:
                continue
            user = f"locomo-{n}"
            with MemCube.open(Path(tmp) / f"cube-{n}", embedder=embedder, retrieval=config) as cube:
                stored = cube.add_many(turn_drafts(conv, user), progress=progress)
                by_dia: dict[str, str] = {}
                for item in stored:
                    for mid in item.provenance.message_ids:
                        by_dia.setdefault(mid, item.id)
                every = list(dict.fromkeys(by_dia.values()))

                def ranked(q: Question, user: str = user) -> list[list[str]]:
                    hits = cube.search(q.question, user_id=user, k=10, count_usage=False)
                    return [h.item.dialog_ids for h in hits]

                before = [ranked(q) for q in conv.questions]
                modes = [("learned", learned)] + ([("hostile", flooded)] if hostile else [])
                for seed in range(seeds):
                    seen, unseen = _split(conv.questions, 1000 * seed + n)
                    for i in unseen:
                        static.add(conv.questions[i], before[i], 0.0)
                    for mode, tally in modes:
                        cube.reset_ranking_profile(user)
                        cube.reset_ranking_profile(None)
                        rng = random.Random(7919 * seed + n)
                        for i in seen:
                            q = conv.questions[i]
                            gold = [by_dia[e] for e in q.evidence if e in by_dia]
                            if mode == "hostile":
                                wrong = [m for m in every if m not in gold]
                                gold = rng.sample(wrong, min(len(gold), len(wrong)))
                            for mid in dict.fromkeys(gold):
                                cube.feedback(mid, useful=True, user_id=user, query=q.question)
                                votes += 1
                        for i in unseen:
                            tally.add(conv.questions[i], ranked(conv.questions[i]), 0.0)
                cube.reset_ranking_profile(user)
                cube.reset_ranking_profile(None)
    out: dict[str, Any] = {"seeds": seeds, "static": _r10(static), "learned": _r10(learned)}
    if hostile:
        out["hostile"] = _r10(flooded)
    out["votes"] = votes
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


__all__ = ["run_feedback"]
