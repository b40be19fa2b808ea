"""Feedback that teaches the ranking: votes on memories and implicit feedback from answers.

``cube.feedback(id, useful=...)`` does two things: the scheduler's bookkeeping
(:meth:`memcube.services.states.States.feedback`: importance, activation) and a learning step
of the voter's ranking profile (:mod:`memcube.plaintext.ranking_profile`, stored by
:mod:`memcube.services.ranking_store`) and of the cube-wide prior. The step needs the query the
vote is about: the one given (``query=``), else the latest search of this user (in this
process) that returned the memory; without either only the memory's vote tally changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memcube.audit import AuditLog
from memcube.errors import InvalidInputError
from memcube.items import MemoryItem
from memcube.plaintext.calibration import Candidate
from memcube.plaintext.ranking_profile import (
    Personalization,
    Ranked,
    answer_uses,
    effective_weights,
    learn,
)
from memcube.plaintext.retrieval import Retriever
from memcube.services.ranking_store import RankingProfiles
from memcube.services.reads import Reads
from memcube.services.states import States

#: Candidates a learning step compares (the pool of a search of this many).
LEARN_K = 25


class Feedback:
    """Votes on memories: the scheduler's bookkeeping plus a ranking learning step."""

    def __init__(
        self,
        states: States,
        reads: Reads,
        retriever: Retriever,
        profiles: RankingProfiles,
        audit: AuditLog,
    ) -> None:
        self.states = states
        self.reads = reads
        self.retriever = retriever
        self.profiles = profiles
        self.audit = audit

    def feedback(
        self, id: str, *, useful: bool, user_id: str | None, query: str | None
    ) -> MemoryItem:
        item = self.states.feedback(id, useful=useful, user_id=user_id)
        owner = user_id if user_id is not None else item.user_id
        about = query if query is not None else self.profiles.recent_query(owner, id)
        self.learn(owner, {id}, useful=useful, query=about)
        return item

    def learn(self, user_id: str, ids: set[str], *, useful: bool, query: str | None) -> int:
        """One learning step of ``user_id``'s profile and the prior; returns the pairs compared."""
        with self.profiles.lock:
            own, prior = self.profiles.load(user_id), self.profiles.load(None)
            pairs = 0
            if query is not None and query.strip():
                current = self.profiles.personalization(user_id)
                trace: list[Candidate] = []
                where = self.reads.where(user_id=user_id, include_shared=True, check_expiry=False)
                self.retriever.search(
                    query,
                    where=where,
                    k=LEARN_K,
                    live_only=True,
                    learned=current or Personalization(own.weights.copy()),
                    trace=trace,
                )
                ranked = [Ranked(c.memory_id, c.terms, c.votes) for c in trace]
                by = current.weights if current is not None else own.weights
                own.weights, pairs = learn(own.weights, ranked, ids, useful=useful, ranked_by=by)
                if pairs:
                    own.steps += 1
                    prior.weights, _ = learn(prior.weights, ranked, ids, useful=useful)
                    prior.steps += 1
                    self.profiles.save(prior)
            for mid in ids:
                own.record_vote(mid, useful=useful, query=query)
            self.profiles.save(own)
        return pairs

    def from_answer(
        self, answer: str, ids: Sequence[str], *, user_id: str, query: str | None
    ) -> list[str]:
        """Implicit feedback: the memories among ``ids`` that ``answer`` used (by overlap, see
        :func:`~memcube.plaintext.ranking_profile.answer_uses`) are voted useful; the others
        get no vote (an answer that does not quote a memory does not make it useless)."""
        if not isinstance(answer, str):
            raise InvalidInputError("implicit feedback needs the answer as a string.")
        used = [
            it.id for it in self.reads.get_many(list(dict.fromkeys(ids)), user_id)
            if answer_uses(answer, it.content)
        ]  # fmt: skip
        for mid in used:
            self.feedback(mid, useful=True, user_id=user_id, query=query)
        return used

    def profile(self, user_id: str | None) -> dict[str, Any]:
        """The stored profile of ``user_id`` (or the prior) and, for a user, the weights a
        search ranks with now."""
        with self.profiles.lock:
            own = self.profiles.load(user_id)
            doc = own.to_dict()
            if user_id is not None:
                prior = self.profiles.load(None)
                doc["effective_weights"] = dict(
                    effective_weights(own.weights, own.steps, prior.weights).values
                )
                doc["prior_weights"] = dict(prior.weights.values)
            return doc

    def reset(self, user_id: str | None) -> dict[str, Any]:
        fresh = self.profiles.reset(user_id)
        self.audit.record("ranking_reset", user_id, (), {"version": fresh.version})
        return self.profile(user_id)


__all__ = ["LEARN_K", "Feedback"]
