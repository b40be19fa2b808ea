"""Pure tests of the ranking learner (no cube): bounds, regularization, the prior."""

from __future__ import annotations

import pytest

from memcube.plaintext.ranking_profile import (
    BOUNDS,
    DEFAULTS,
    ProfileFormatError,
    Ranked,
    RankingProfile,
    RankingWeights,
    answer_uses,
    effective_weights,
    learn,
    profile_from_dict,
)


def _pair() -> list[Ranked]:
    bad = Ranked("bad", {"dense": 4.0, "coverage": 0.5, "fused": 2.0}, 0.0)
    good = Ranked("good", {"dense": 1.0, "coverage": 3.0, "fused": 0.0}, 0.4)
    return [bad, good]


def test_default_weights_change_nothing() -> None:
    w = RankingWeights()
    assert w.is_default()
    assert w.adjustment({"dense": 3.0, "fused": -2.0}, votes=0.0) == 0.0


def test_a_vote_moves_weights_toward_the_voted_memory() -> None:
    new, pairs = learn(RankingWeights(), _pair(), {"good"}, useful=True)
    assert pairs == 1
    assert new.get("coverage") > 1.0 and new.get("dense") < 1.0
    assert new.get("votes") > DEFAULTS["votes"]


def test_a_flood_of_votes_stays_in_the_box() -> None:
    w = RankingWeights()
    for _ in range(5000):
        w, _ = learn(w, _pair(), {"good"}, useful=True)
    for name, (low, high) in BOUNDS.items():
        assert low <= w.get(name) <= high
    assert w.get("coverage") == pytest.approx(BOUNDS["coverage"][1], abs=0.05) or w.get(
        "dense"
    ) == pytest.approx(BOUNDS["dense"][0], abs=0.05)


def test_without_votes_weights_decay_toward_defaults() -> None:
    w = RankingWeights({"coverage": 1.5, "dense": 0.7})
    neutral = [Ranked("a", {"dense": 1.0}, 0.0), Ranked("b", {"dense": 1.0}, 0.0)]
    for _ in range(2000):
        w, _ = learn(w, neutral, {"a"}, useful=True)  # equal features: only the pull remains
    assert abs(w.get("coverage") - 1.0) < abs(1.5 - 1.0)
    assert abs(w.get("dense") - 1.0) < abs(0.7 - 1.0)


def test_prior_stands_in_for_a_user_with_little_feedback() -> None:
    prior = RankingWeights({"coverage": 1.4})
    own = RankingWeights({"coverage": 0.8})
    assert effective_weights(own, 0, prior).get("coverage") == pytest.approx(1.4)
    few = effective_weights(own, 2, prior).get("coverage")
    many = effective_weights(own, 2000, prior).get("coverage")
    assert 1.3 < few < 1.4 and many == pytest.approx(0.8, abs=0.01)


def test_profile_documents_round_trip_and_are_validated() -> None:
    p = RankingProfile(user_id="ann", weights=RankingWeights({"coverage": 1.3}), steps=4)
    p.record_vote("m1", useful=True, query="Which instrument do I play?")
    doc = p.to_dict()
    back = profile_from_dict(doc)
    assert back.weights.values == p.weights.values and back.votes == {"m1": [1, 0]}
    assert back.words["m1"] == p.words["m1"]
    hostile = {**doc, "weights": {**doc["weights"], "dense": 1e9}}
    assert profile_from_dict(hostile).weights.get("dense") == BOUNDS["dense"][1]
    for bad in (
        {**doc, "format": "pickle"},
        {**doc, "weights": {"dense": float("nan")}},
        {**doc, "votes": {"m1": [1]}},
        {**doc, "words": {"not-voted": ["x"]}},
        {**doc, "steps": -1},
    ):
        with pytest.raises(ProfileFormatError):
            profile_from_dict(bad)


def test_answer_overlap_is_implicit_feedback() -> None:
    memory = "I adopted a beagle named Biscuit in March"
    assert answer_uses("You adopted Biscuit, your beagle, back in March.", memory)
    assert not answer_uses("I don't know what pets you have.", memory)
