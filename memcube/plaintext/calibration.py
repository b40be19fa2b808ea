"""Calibrated relevance: the ``hit.score`` a user can threshold.

The first ranking stage (:mod:`memcube.plaintext.retrieval`) fuses z-scored signals, which is
good at ordering one cube's memories but gives numbers that mean nothing on their own (a single
hit scores 0.0; adding an unrelated memory moves another's score). This stage re-scores the
best candidates of that ranking with signals on absolute scales and maps them through a fixed
logistic curve, so a score is an estimate in ``[0, 1]`` that a memory answers the query,
comparable across queries, users and cube sizes:

* ``dense``: cosine similarity of the query and memory embeddings;
* ``coverage``: the share of the query's topic words (IDF-weighted, stop words dropped, lightly
  stemmed) that the memory's own words contain; ``context_coverage``: the share its context
  (e.g. the previous turn) adds;
* ``time``: the memory happened (or mentions a date) in a period the query names;
* ``speaker``: the assistant's own words count less for questions about the user (not for
  questions about what the assistant said: "what did you recommend?").

Roughly: an exact or near-verbatim answer scores above 0.7, a memory on the query's topic around
0.4-0.6, and an unrelated one below 0.2 (measured with the bundled MiniLM embedder; see
``benchmarks/memory_semantics.py``).

The order weighs, besides that logit, a share of the first stage's fused z-score
(``FUSED_WEIGHT``; ``FUSED_WEIGHT_OTHERS`` for questions about named people rather than the
asking user, where a transcript's own words and sessions decide more): it orders one cube's
memories better than the absolute signals alone, but its numbers are relative, so it shapes the
order only. The scores are then made non-increasing down the order by isotonic regression
(:func:`monotone`), so ``hit.score`` is monotone with the ranking.

Two rules shape the list before that:

* **current over outdated**: for a question about the user's own present ("where do I live?",
  :func:`asks_about_now`), when a newer statement of the same speaker is about the same thing
  as an older one and announces a change ("now", "no longer", "quit", "switched", "new ...";
  not "also", "another"), it is ranked at least as high as the older one, which loses
  ``OUTDATED_PENALTY`` (its value is not presented as current);
* **no crowding**: a hit that repeats a higher-ranked one of the same speaker (embedding
  cosine >= ``REPEAT_COSINE`` and nothing new: see :func:`~memcube.plaintext.lexical.adds_nothing`)
  is left out of the results (it stays stored and findable, it just does not take a second
  place); one that restates a higher-ranked one, or is a fact read from it, is discounted
  (maximal marginal relevance, see :func:`_diversify`), so the same fact said four times does
  not push other memories out of the top ``k``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field

import numpy as np

from memcube.plaintext.lexical import CALENDAR, adds_nothing, tokenize
from memcube.plaintext.ranking_profile import Personalization, vote_feature

#: Logistic curve of the calibrated score: ``sigmoid(bias + sum(weight * signal))``.
WEIGHTS = {"dense": 7.0, "coverage": 3.2, "context_coverage": 0.8, "time": 2.5}
BIAS = -3.8
#: Share of the first stage's fused z-score (clipped to +-FUSED_CLIP) in the order.
FUSED_WEIGHT = 0.5
#: ... for questions that are not about the asking user ("what did Caroline paint?"): there
#: the transcript's own words (BM25, the session) decide more.
FUSED_WEIGHT_OTHERS = 1.5
FUSED_CLIP = 50.0
#: Logit added to the assistant's words when the query is not about what the assistant said.
ASSISTANT_PRIOR = -2.5
#: Logit taken from an older statement that a newer change statement outdates.
OUTDATED_PENALTY = 0.8
#: A change statement is lifted over an older one only if its own logit is within this much.
CURRENT_MAX_GAP = 4.0
#: Two memories this similar (embedding cosine) are about the same thing.
SAME_TOPIC_COSINE = 0.35
#: A hit this similar to a higher-ranked one, adding no word, number, date or name, repeats it.
REPEAT_COSINE = 0.85
#: From this similarity to a higher-ranked hit of the same speaker, a hit loses up to
#: ``REDUNDANCY_WEIGHT`` of its logit (linearly up to cosine 1): it says little that is new.
SIMILAR_COSINE = 0.5
REDUNDANCY_WEIGHT = 6.0
#: ... and only when they share this share of their topic words (see :func:`_overlap`).
SHARED_WORDS = 0.34

_ADDRESSED = re.compile(
    r"\b(?:did|have|had)\s+you\b(?!\s+know\b)|\bdo\s+you\s+remember\b"
    r"|\byou(?:'ve|\s+have|\s+had)?\s+(?:\w+\s+){0,2}?(?:said|say|suggest\w*|recommend\w*|told|"
    r"tell|mention\w*|propos\w*|advis\w*|gave|give|pick\w*|thought|came up with|wrote)\b"
    r"|\byour\s+(?:suggestion|recommendation|advice|idea|tip|answer|opinion|pick|list|plan)s?\b"
    r"|\bassistant\b",
    re.I,
)
_CHANGE = re.compile(
    r"\b(?:now|no longer|not\b.{0,40}\b(?:any ?more|these days)|any ?more|quit|quitting|"
    r"stopped|gave up|given up|cut out|switched|switching|changed|moved|new|newly|previous|"
    r"old|former|formerly|update|updated|left|broke up|split up|divorced|replaced|instead|"
    r"these days|nowadays|currently|finally|started|no more|used to|ex-?)\b",
    re.I,
)
_FIRST_PERSON = re.compile(r"\b(?:i|i'm|i've|i'd|my|me|mine|myself|we|we're|our|ours|us)\b", re.I)
_NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+")
_PAST = re.compile(
    r"\b(?:did|was|were|had|used to|ago|last (?:week|month|year|time)|before|first|ever)\b", re.I
)
_ADDITIVE = re.compile(r"\b(?:also|another|too|as well|second|other|both|plus)\b", re.I)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def addresses_assistant(query: str) -> bool:
    """The query asks about the assistant's own words ("what did you recommend?"), not about
    the user ("what do you know about my job?").

    Example:
        >>> addresses_assistant("what was that place you recommended?")
        True
        >>> addresses_assistant("What do you know about my job?")
        False
    """
    return _ADDRESSED.search(query) is not None


def asks_about_now(query: str) -> bool:
    """The user asks about their own present ("where do I live?", "do I still smoke?"), not
    about the past ("when did I move?") or about someone else ("where does Caroline live?").

    Example:
        >>> asks_about_now("Do I still work at Brennan & Hale?"), asks_about_now("When did I move?")
        (True, False)
    """
    return _FIRST_PERSON.search(query) is not None and _PAST.search(query) is None


def about_others(query: str) -> bool:
    """The question is about named people, not the asking user ("what did Caroline paint?";
    not "what did I paint?" nor "what happened on 13 March?").

    Example:
        >>> about_others("When did Caroline go to the support group?"), about_others("Plan our trip")
        (True, False)
    """
    if _FIRST_PERSON.search(query) is not None:
        return False
    names = {m.group(0).casefold() for m in _NAME.finditer(query)}
    return bool(names - CALENDAR)


def announces_change(text: str) -> bool:
    """The statement reports a change of state, not an additional fact."""
    return _CHANGE.search(text) is not None and _ADDITIVE.search(text) is None


def coverage(
    query_tokens: Sequence[str], doc_tokens: Container[str], idf: Callable[[str], float]
) -> float:
    """IDF-weighted share of the query's tokens found in ``doc_tokens`` (0 without tokens)."""
    terms = set(query_tokens)
    if not terms:
        return 0.0
    weights = {t: max(idf(t), 0.3) for t in terms}
    total = sum(weights.values())
    return sum(w for t, w in weights.items() if t in doc_tokens) / total


@dataclass
class Candidate:
    """One first-stage hit to calibrate: its features and (after :func:`calibrate`) score."""

    key: int
    content: str
    role: str | None
    speaker_key: str
    when: float
    vector: np.ndarray | None
    signals: dict[str, float] = field(default_factory=dict)
    #: Where it came from: message ids, and for an extracted fact the sentence it was read from.
    message_ids: frozenset[str] = frozenset()
    statement: str | None = None
    session: str | None = None
    logit: float = 0.0
    score: float = 0.0
    #: The memory's id, and (when the ranking is personalized) the terms of its rank and its
    #: ``votes`` feature, as :mod:`memcube.plaintext.ranking_profile` learns from them.
    memory_id: str = ""
    terms: dict[str, float] = field(default_factory=dict)
    votes: float = 0.0


def calibrate(
    query: str, candidates: list[Candidate], learned: Personalization | None = None
) -> list[Candidate]:
    """Score ``candidates`` (their ``signals`` hold dense / coverage / context_coverage / time),
    apply the current-over-outdated and no-crowding rules; returns them best first, repeats
    left out. ``learned`` (a user's weights learned from feedback, see
    :mod:`memcube.plaintext.ranking_profile`) reweighs the terms of the order, not the scores."""
    about_assistant = addresses_assistant(query)
    for c in candidates:
        logit = BIAS + sum(WEIGHTS[name] * c.signals.get(name, 0.0) for name in WEIGHTS)
        c.logit = logit
        if c.role == "assistant" and not about_assistant:
            c.logit += ASSISTANT_PRIOR
            c.signals["speaker"] = ASSISTANT_PRIOR
    # The order also weighs the first stage's z-scored fusion (BM25 with term frequencies, the
    # session signal): it orders one cube's memories better than the absolute signals alone.
    # Its numbers are relative, so it shapes the order only; the scores stay absolute and are
    # then made consistent with the order (isotonic regression, :func:`monotone`).
    about_self = not about_others(query)
    fused_weight = FUSED_WEIGHT if about_self else FUSED_WEIGHT_OTHERS
    rank = {
        id(c): c.logit
        + fused_weight
        * min(max(c.signals.get("fused", 0.0), -FUSED_CLIP), FUSED_CLIP)
        * (0.0 if "speaker" in c.signals else 1.0)  # an aside's fused score is its context's
        for c in candidates
    }
    if learned is not None:
        for c in candidates:
            c.terms = rank_terms(c, fused_weight)
            c.votes = vote_feature(
                learned.shares.get(c.memory_id, 0.0), c.logit, c.signals.get("feedback", 0.0)
            )
            rank[id(c)] += learned.weights.adjustment(c.terms, votes=c.votes)
    if asks_about_now(query):
        _prefer_current(candidates, rank)
    ranked = _diversify(candidates, rank, about_self=about_self)
    for c, score in zip(ranked, monotone([sigmoid(c.logit) for c in ranked])):
        c.score = score
    return ranked


def rank_terms(c: Candidate, fused_weight: float) -> dict[str, float]:
    """The parts of a candidate's rank that learned weights scale, in logit units (their sum
    plus ``BIAS`` is the static rank before the two rules)."""
    terms = {name: WEIGHTS[name] * c.signals.get(name, 0.0) for name in WEIGHTS}
    terms["speaker"] = c.signals.get("speaker", 0.0)
    fused = min(max(c.signals.get("fused", 0.0), -FUSED_CLIP), FUSED_CLIP)
    terms["fused"] = fused_weight * fused * (0.0 if "speaker" in c.signals else 1.0)
    return terms


def monotone(scores: Sequence[float]) -> list[float]:
    """The non-increasing sequence closest to ``scores`` (least squares: pool adjacent
    violators), so a score never rises down the ranking.

    Example:
        >>> monotone([0.9, 0.2, 0.6, 0.1])
        [0.9, 0.4, 0.4, 0.1]
    """
    blocks: list[list[float]] = []  # [sum, count]
    for x in scores:
        blocks.append([x, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            total, n = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += n
    out: list[float] = []
    for total, n in blocks:
        out.extend([total / n] * int(n))
    return out


def _prefer_current(candidates: list[Candidate], rank: dict[int, float]) -> None:
    """Newer change statements rank at least as high as the older statements they outdate."""
    with_vec = [c for c in candidates if c.vector is not None and c.role != "assistant"]
    changes = [c for c in with_vec if announces_change(c.content)]
    for new in changes:
        for old in with_vec:
            if old is new or old.speaker_key != new.speaker_key or old.when >= new.when:
                continue
            if _same_source(old, new):  # a fact and the turn it was read from
                continue
            assert old.vector is not None and new.vector is not None
            if float(np.dot(old.vector, new.vector)) < SAME_TOPIC_COSINE:
                continue
            # Only a statement that itself answers the query is lifted (not any newer change).
            if new.logit < old.logit - CURRENT_MAX_GAP or new.signals.get("dense", 1.0) < 0.15:
                continue
            if new.logit < old.logit:
                new.signals["current"] = old.logit - new.logit
                new.logit = old.logit + 1e-3
            rank[id(new)] = max(rank[id(new)], rank[id(old)] + 1e-3)
            old.logit -= OUTDATED_PENALTY
            rank[id(old)] -= OUTDATED_PENALTY
            old.signals["outdated"] = -OUTDATED_PENALTY


def _numbers(text: str) -> set[str]:
    """The tokens holding a digit ("#2281", "4B", "10am"): two texts that differ in one say
    different things."""
    return {t.strip(".,;:!?()[]\"'").casefold() for t in re.findall(r"\S*\d\S*", text)}


@functools.lru_cache(maxsize=8192)
def _topic_words(text: str) -> frozenset[str]:
    # Diversification compares every kept hit with every candidate: stemming the same few
    # dozen texts again for each pair took most of a search's time.
    return frozenset(tokenize(text))


def _overlap(a: str, b: str) -> float:
    """Share of the smaller text's topic words that the other holds (embeddings of two turns
    of one conversation are close even when they say different things; words tell)."""
    ta, tb = _topic_words(a), _topic_words(b)
    if not ta or not tb:
        return 0.0
    return len(ta & tb) / min(len(ta), len(tb))


def _restated(a: Candidate, b: Candidate) -> bool:
    """Said again on another occasion: alike turns within one session are a conversation
    developing its topic, each adding to it; the same thing said in another session repeats it."""
    return a.session is None or b.session is None or a.session != b.session


def _same_source(a: Candidate, b: Candidate) -> bool:
    if a.message_ids & b.message_ids:
        return True
    return any(
        x.statement is not None and x.statement.casefold() in y.content.casefold()
        for x, y in ((a, b), (b, a))
    )


def _diversify(
    candidates: list[Candidate], rank: dict[int, float], *, about_self: bool
) -> list[Candidate]:
    """Greedy selection, best first: a candidate that repeats a chosen one (see
    :data:`REPEAT_COSINE`) is left out; one that is merely similar to a chosen one loses
    ``REDUNDANCY_WEIGHT * (cosine - SIMILAR_COSINE) / (1 - SIMILAR_COSINE)`` of its logit when
    it restates it (most of its words shared, no new number; for a question not about the
    asking user, only across sessions: alike turns of one transcript session develop a
    topic), or is a fact read
    from it (or the turn a chosen fact was read from): one statement does not take two places."""
    pool = list(candidates)
    kept: list[Candidate] = []
    while pool:
        best = max(pool, key=lambda c: rank[id(c)])
        pool.remove(best)
        kept.append(best)
        if best.vector is None:
            continue
        for c in list(pool):
            if c.vector is None or c.speaker_key != best.speaker_key:
                continue
            sim = float(np.dot(best.vector, c.vector))
            if sim >= REPEAT_COSINE and adds_nothing(c.content, best.content):
                best.signals["repeats"] = best.signals.get("repeats", 0.0) + 1.0
                pool.remove(c)
            elif sim > SIMILAR_COSINE and (
                _same_source(best, c)
                or (
                    (about_self or _restated(best, c))
                    and _overlap(c.content, best.content) >= SHARED_WORDS
                    and _numbers(c.content) <= _numbers(best.content)
                )
            ):
                penalty = REDUNDANCY_WEIGHT * (sim - SIMILAR_COSINE) / (1.0 - SIMILAR_COSINE)
                c.logit -= penalty
                rank[id(c)] -= penalty
                c.signals["redundancy"] = c.signals.get("redundancy", 0.0) - penalty
    return kept


def content_tokens(text: str) -> set[str]:
    """The stemmed topic words of a text (what :func:`coverage` matches)."""
    return set(tokenize(text))


__all__ = [
    "ASSISTANT_PRIOR",
    "BIAS",
    "CURRENT_MAX_GAP",
    "FUSED_CLIP",
    "FUSED_WEIGHT",
    "FUSED_WEIGHT_OTHERS",
    "Candidate",
    "OUTDATED_PENALTY",
    "REDUNDANCY_WEIGHT",
    "REPEAT_COSINE",
    "SIMILAR_COSINE",
    "SAME_TOPIC_COSINE",
    "WEIGHTS",
    "addresses_assistant",
    "about_others",
    "announces_change",
    "asks_about_now",
    "calibrate",
    "content_tokens",
    "coverage",
    "rank_terms",
    "sigmoid",
]
