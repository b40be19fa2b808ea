"""Ranking that learns from use: per-user weights over the signals the ranker already computes.

The calibrated ranker (:mod:`memcube.plaintext.calibration`) orders a query's candidates by a
sum of *terms*, each a signal times its hand-tuned weight, all in logit units:

* ``dense``, ``coverage``, ``context_coverage``, ``time``: the absolute signals of the logit;
* ``speaker``: the assistant prior (negative for the assistant's words in questions about the
  user);
* ``fused``: the share of the first stage's fused z-score that shapes the order.

A :class:`RankingWeights` multiplies each term (``1.0`` is the static ranker) and adds one more,
``votes``: how useful the user found the memory before (``useful / (useful + not_useful + 1)``
of the votes this profile holds), times its relevance to the query: the larger of its own
calibrated relevance and how well the query matches the earlier queries it was voted useful
for (the ``feedback`` signal, which also brings such a memory into the candidates when the
first stage missed it: see :meth:`memcube.plaintext.retrieval.Retriever.search`). So a memory
voted useful rises only for queries it is about (a junk memory voted up by a hostile client
scores near 0 for unrelated queries and gains nearly nothing there). The term is 0 for a
memory without votes. The weights change only the *order*; ``hit.score`` stays the static
calibrated estimate.

Learning (:func:`learn`) is online pairwise logistic regression (RankNet): a ``useful`` vote for
a memory on a query raises the weights of the terms in which it beats the candidates ranked
above it (or in the top :data:`TOP`), a ``not useful`` vote the terms in which the candidates
ranked below it beat it. Each step is small (:data:`LEARNING_RATE`, normalized by the number of
pairs), pulled back toward the defaults (L2, :data:`REGULARIZATION`) and clipped to
:data:`BOUNDS`, so a few votes move the ranking a little and no amount of votes can move a term
outside its box. The ``votes`` feature of a step is taken *before* the step's own vote, so its
weight grows only when memories voted useful earlier are useful again.

A cube-wide prior (the same learner over every user's feedback) stands in for a user with
little feedback: :func:`effective_weights` is ``prior + n / (n + PRIOR_STRENGTH) * (own -
prior)`` for a user with ``n`` feedback steps. A cube nobody has given feedback to ranks
exactly as the static ranker (:meth:`RankingWeights.is_default`).

Profiles are plain JSON documents (:meth:`RankingProfile.to_dict`, :func:`profile_from_dict`,
which validates every number of an untrusted document); the cube stores them
(:mod:`memcube.services.feedback`) and MIP carries them.

Example:
    >>> w = RankingWeights()
    >>> w.is_default(), w.get("dense"), w.get("votes")
    (True, 1.0, 6.0)
    >>> terms = {"dense": 2.0, "coverage": 1.0}
    >>> w.adjustment(terms, votes=0.0), w.adjustment(terms, votes=0.5)
    (0.0, 3.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from memcube.errors import InvalidInputError
from memcube.plaintext.lexical import tokenize

#: The static ranker's terms, each scaled by a learned multiplier (default 1).
TERMS = ("dense", "coverage", "context_coverage", "time", "speaker", "fused")
#: The learned weight of the feedback term. Its default is not 0: the term itself is 0 for a
#: memory nobody voted on, so a user without votes still ranks exactly as the static ranker.
VOTES = "votes"
DEFAULTS: dict[str, float] = {**dict.fromkeys(TERMS, 1.0), VOTES: 6.0}
#: The box each weight stays in, whatever the feedback.
BOUNDS: dict[str, tuple[float, float]] = {
    **dict.fromkeys(TERMS, (0.6, 1.6)),
    VOTES: (0.0, 12.0),
}
#: Step size of one vote per weight (the gradient is normalized by the number of pairs it
#: compares): the multipliers move slowly, the weight of the feedback term faster.
LEARNING_RATE: dict[str, float] = {**dict.fromkeys(TERMS, 0.03), VOTES: 0.3}
#: Pull of each step back toward the defaults (L2 weight decay).
REGULARIZATION = 0.02
#: Candidates in this many first places are compared with a voted memory whatever its rank.
TOP = 10
#: Feedback steps at which a user's own weights count as much as the cube-wide prior.
PRIOR_STRENGTH = 20.0
#: Memories whose votes a profile keeps (the least recently voted are dropped first).
MAX_VOTES = 20_000
#: Query words kept per voted memory.
MAX_WORDS = 32
FORMAT = "memcube.ranking_profile"
SCHEMA_VERSION = 1


def _clip(name: str, value: float) -> float:
    low, high = BOUNDS[name]
    return min(max(value, low), high)


@dataclass
class RankingWeights:
    """Multipliers of the ranker's terms plus the weight of the ``votes`` term.

    Missing names take their default; values are clipped to :data:`BOUNDS`.
    """

    values: dict[str, float] = field(default_factory=lambda: dict(DEFAULTS))

    def __post_init__(self) -> None:
        self.values = {
            name: _clip(name, float(self.values.get(name, DEFAULTS[name]))) for name in DEFAULTS
        }

    def get(self, name: str) -> float:
        return self.values[name]

    def is_default(self) -> bool:
        return all(self.values[n] == DEFAULTS[n] for n in DEFAULTS)

    def adjustment(self, terms: Mapping[str, float], *, votes: float) -> float:
        """What these weights add to a candidate's static rank (0.0 with the defaults)."""
        out = sum((self.values[n] - 1.0) * terms.get(n, 0.0) for n in TERMS)
        return out + self.values[VOTES] * votes

    def score(self, terms: Mapping[str, float], *, votes: float) -> float:
        """The learned part of a candidate's rank: ``sum(weight * term)``."""
        out = sum(self.values[n] * terms.get(n, 0.0) for n in TERMS)
        return out + self.values[VOTES] * votes

    def copy(self) -> RankingWeights:
        return RankingWeights(dict(self.values))


def vote_share(useful: int, not_useful: int) -> float:
    """How useful a memory was found, in ``[0, 1)``: ``useful / (useful + not_useful + 1)``.

    Example:
        >>> vote_share(0, 0), vote_share(1, 0), vote_share(3, 1)
        (0.0, 0.5, 0.6)
    """
    return useful / (useful + not_useful + 1.0) if useful > 0 else 0.0


def vote_feature(share: float, logit: float, match: float = 0.0) -> float:
    """The ``votes`` term of a candidate: its vote share times its relevance to the query,
    the larger of its calibrated relevance (``sigmoid(logit)``) and ``match``, how well the
    query matches the earlier queries it was voted useful for (the ``feedback`` signal)."""
    if not share:
        return 0.0
    return share * max(1.0 / (1.0 + math.exp(-logit)), match)


@dataclass
class Ranked:
    """A candidate as the learner sees it: its memory id, terms, votes feature and whether it
    is among the memories the vote is about."""

    memory_id: str
    terms: dict[str, float]
    votes: float


def _features(c: Ranked) -> dict[str, float]:
    return {**{n: c.terms.get(n, 0.0) for n in TERMS}, VOTES: c.votes}


def learn(
    weights: RankingWeights,
    candidates: Sequence[Ranked],
    voted: set[str],
    *,
    useful: bool,
    ranked_by: RankingWeights | None = None,
    rate: Mapping[str, float] = LEARNING_RATE,
) -> tuple[RankingWeights, int]:
    """One online step of ``weights`` for a vote on the memories ``voted`` among
    ``candidates`` (a query's candidates, ordered by ``ranked_by``, by default ``weights``);
    returns the new weights and the number of pairs compared (0: nothing to learn, the weights
    are returned unchanged).

    Example:
        >>> good = Ranked("a", {"dense": 1.0, "coverage": 3.0}, 0.0)
        >>> bad = Ranked("b", {"dense": 3.0, "coverage": 0.0}, 0.0)
        >>> new, pairs = learn(RankingWeights(), [bad, good], {"a"}, useful=True)
        >>> pairs, new.get("coverage") > 1.0 > new.get("dense")
        (1, True)
    """
    if not candidates or not (voted & {c.memory_id for c in candidates}):
        return weights, 0
    by = ranked_by or weights
    scores = [by.score(c.terms, votes=c.votes) for c in candidates]
    order = sorted(range(len(candidates)), key=lambda i: -scores[i])
    rank = {i: r for r, i in enumerate(order)}
    grad = dict.fromkeys(DEFAULTS, 0.0)
    pairs = 0
    for i, c in enumerate(candidates):
        if c.memory_id not in voted:
            continue
        for j, other in enumerate(candidates):
            if other.memory_id in voted:
                continue
            if useful:  # c should be above other
                if not (rank[j] < rank[i] or rank[j] < TOP):
                    continue
                hi, lo, diff = c, other, scores[i] - scores[j]
            else:  # other should be above c
                if not (rank[j] > rank[i] and rank[j] < max(TOP, rank[i] + 1)):
                    continue
                hi, lo, diff = other, c, scores[j] - scores[i]
            pull = 1.0 / (1.0 + math.exp(min(max(diff, -50.0), 50.0)))  # sigmoid(-diff)
            fh, fl = _features(hi), _features(lo)
            for n in grad:
                grad[n] += pull * (fh[n] - fl[n])
            pairs += 1
    if not pairs:
        return weights, 0
    step = {n: grad[n] / pairs for n in grad}
    # Scaling every term down shrinks every pair's difference toward 0, which a logistic loss
    # rewards whenever a voted memory is out of reach: that direction (the terms' typical
    # sizes) is projected out, so the multipliers only trade one signal against another.
    size = {n: sum(abs(c.terms.get(n, 0.0)) for c in candidates) / len(candidates) for n in TERMS}
    norm = sum(v * v for v in size.values())
    if norm > 0:
        along = sum(step[n] * size[n] for n in TERMS) / norm
        for n in TERMS:
            step[n] -= along * size[n]
    new = {
        n: weights.values[n]
        + rate[n] * (step[n] - REGULARIZATION * (weights.values[n] - DEFAULTS[n]))
        for n in DEFAULTS
    }
    return RankingWeights(new), pairs


def effective_weights(own: RankingWeights, steps: int, prior: RankingWeights) -> RankingWeights:
    """A user's weights: the cube-wide ``prior`` moved toward the user's ``own`` weights as the
    user's feedback ``steps`` grow (half way at :data:`PRIOR_STRENGTH`).

    Example:
        >>> own = RankingWeights({"coverage": 1.5})
        >>> effective_weights(own, 20, RankingWeights()).get("coverage")
        1.25
    """
    share = steps / (steps + PRIOR_STRENGTH) if steps > 0 else 0.0
    return RankingWeights(
        {n: prior.values[n] + share * (own.values[n] - prior.values[n]) for n in DEFAULTS}
    )


#: A recalled memory counts as used by an answer when the answer holds this share of the
#: memory's topic words (and at least :data:`IMPLICIT_MIN_WORDS` of them).
IMPLICIT_OVERLAP = 0.5
IMPLICIT_MIN_WORDS = 2


def answer_uses(answer: str, memory: str) -> bool:
    """Implicit feedback: whether ``answer`` used ``memory``, judged by overlap: it holds at
    least half of the memory's topic words (stemmed, stop words dropped), two or more.

    Example:
        >>> answer_uses("You adopted Biscuit, a beagle, last spring.", "I adopted a beagle named Biscuit")
        True
        >>> answer_uses("The capital of France is Paris.", "I adopted a beagle named Biscuit")
        False
    """
    words = set(tokenize(memory))
    if not words:
        return False
    shared = words & set(tokenize(answer))
    return len(shared) >= min(IMPLICIT_MIN_WORDS, len(words)) and len(shared) >= (
        IMPLICIT_OVERLAP * len(words)
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class RankingProfile:
    """What a cube learned from one user's feedback (``user_id=None``: the cube-wide prior).

    ``version`` counts the changes (each learning step, reset or import); ``steps`` the votes
    that changed the weights; ``votes`` the ``[useful, not_useful]`` tallies per memory id.
    """

    user_id: str | None
    weights: RankingWeights = field(default_factory=RankingWeights)
    steps: int = 0
    votes: dict[str, list[int]] = field(default_factory=dict)
    words: dict[str, list[str]] = field(default_factory=dict)
    version: int = 0
    updated_at: str | None = None

    def record_vote(self, memory_id: str, *, useful: bool, query: str | None = None) -> None:
        """Count a vote; a useful one also keeps the topic words of its query (the newest
        first, at most :data:`MAX_WORDS`), which the ``feedback`` signal matches."""
        tally = self.votes.pop(memory_id, [0, 0])  # re-inserted last: most recently voted
        tally[0 if useful else 1] += 1
        self.votes[memory_id] = tally
        if useful and query:
            old = self.words.pop(memory_id, [])
            self.words[memory_id] = list(dict.fromkeys([*tokenize(query), *old]))[:MAX_WORDS]
        while len(self.votes) > MAX_VOTES:
            dropped = next(iter(self.votes))
            self.votes.pop(dropped)
            self.words.pop(dropped, None)

    def share(self, memory_id: str) -> float:
        tally = self.votes.get(memory_id)
        return vote_share(tally[0], tally[1]) if tally else 0.0

    def touch(self) -> None:
        self.version += 1
        self.updated_at = _now()

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "user_id": self.user_id,
            "version": self.version,
            "updated_at": self.updated_at,
            "steps": self.steps,
            "weights": dict(self.weights.values),
            "defaults": dict(DEFAULTS),
            "votes": {k: list(v) for k, v in self.votes.items()},
            "words": {k: list(v) for k, v in self.words.items()},
        }


@dataclass
class Personalization:
    """What one search ranks with: a user's effective weights and the vote shares of the
    memories they voted on (memory id -> :func:`vote_share`)."""

    weights: RankingWeights
    shares: Mapping[str, float] = field(default_factory=dict)
    #: memory id -> the topic words of the queries it was voted useful for.
    words: Mapping[str, frozenset[str]] = field(default_factory=dict)


class ProfileFormatError(InvalidInputError):
    """A ranking profile document is malformed."""


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 1 << 40:
        raise ProfileFormatError(f"{what} must be a non-negative integer, got {value!r}.")
    return value


def profile_from_dict(doc: Any) -> RankingProfile:
    """Read (and validate) a document written by :meth:`RankingProfile.to_dict`. Weights are
    clipped to :data:`BOUNDS`, so an imported profile is as bounded as a learned one.

    Raises:
        ProfileFormatError: not a ranking profile of a schema this version reads.
    """
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ProfileFormatError("not a memcube ranking profile document.")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ProfileFormatError(
            f"ranking profile schema {doc.get('schema_version')!r}; this version reads "
            f"{SCHEMA_VERSION}."
        )
    user_id = doc.get("user_id")
    if user_id is not None and (not isinstance(user_id, str) or not user_id):
        raise ProfileFormatError("a ranking profile's user_id is a non-empty string or null.")
    raw = doc.get("weights")
    if not isinstance(raw, dict):
        raise ProfileFormatError("a ranking profile needs a weights object.")
    values: dict[str, float] = {}
    for name in DEFAULTS:
        v = raw.get(name, DEFAULTS[name])
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ProfileFormatError(f"weight {name!r} must be a finite number, got {v!r}.")
        values[name] = float(v)
    votes_raw = doc.get("votes") or {}
    if not isinstance(votes_raw, dict) or len(votes_raw) > MAX_VOTES:
        raise ProfileFormatError(f"votes must be an object of at most {MAX_VOTES} memories.")
    votes: dict[str, list[int]] = {}
    for key, tally in votes_raw.items():
        if not isinstance(key, str) or not key or not isinstance(tally, list) or len(tally) != 2:
            raise ProfileFormatError("each vote is 'memory id': [useful, not_useful].")
        votes[key] = [_count(tally[0], "a vote count"), _count(tally[1], "a vote count")]
    words_raw = doc.get("words") or {}
    if not isinstance(words_raw, dict):
        raise ProfileFormatError("words must be an object of memory id -> list of words.")
    words: dict[str, list[str]] = {}
    for key, ws in words_raw.items():
        if key not in votes or not isinstance(ws, list) or len(ws) > MAX_WORDS:
            raise ProfileFormatError(
                f"words are kept for voted memories only, at most {MAX_WORDS} each."
            )
        if not all(isinstance(w, str) and 0 < len(w) <= 64 for w in ws):
            raise ProfileFormatError("each learned word is a short non-empty string.")
        words[key] = list(ws)
    updated = doc.get("updated_at")
    return RankingProfile(
        user_id=user_id,
        weights=RankingWeights(values),
        steps=_count(doc.get("steps", 0), "steps"),
        votes=votes,
        words=words,
        version=_count(doc.get("version", 0), "version"),
        updated_at=updated if isinstance(updated, str) else None,
    )


__all__ = [
    "BOUNDS",
    "DEFAULTS",
    "FORMAT",
    "IMPLICIT_MIN_WORDS",
    "IMPLICIT_OVERLAP",
    "LEARNING_RATE",
    "MAX_VOTES",
    "Personalization",
    "PRIOR_STRENGTH",
    "REGULARIZATION",
    "TERMS",
    "TOP",
    "VOTES",
    "ProfileFormatError",
    "Ranked",
    "answer_uses",
    "RankingProfile",
    "RankingWeights",
    "effective_weights",
    "learn",
    "profile_from_dict",
    "vote_feature",
    "vote_share",
]
