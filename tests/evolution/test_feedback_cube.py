"""Retrieval that learns from feedback, on real cubes: static by default, bounded under a
hostile flood, durable, resettable, exported and imported by MIP."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

import memcube.plaintext.ranking_profile as rp
from memcube import MemCube
from memcube.errors import InvalidInputError
from memcube.plaintext.ranking_profile import BOUNDS, DEFAULTS
from tests.evolution.conftest import people_questions


def _recall_at(
    cube: MemCube, questions: list[tuple[str, str]], by_name: dict[str, str], k: int
) -> float:
    found = 0
    for q, name in questions:
        hits = cube.search(q, user_id="u", k=k, count_usage=False)
        found += by_name[name] in [h.item.id for h in hits]
    return 100.0 * found / len(questions)


def _ranking(cube: MemCube, query: str) -> list[tuple[str, float]]:
    return [(h.item.id, h.score) for h in cube.search(query, user_id="u", k=8, count_usage=False)]


def test_without_feedback_the_ranking_is_the_static_one(people_cube) -> None:
    cube, _, _ = people_cube
    assert cube.ranking_profiles.personalization("u") is None
    profile = cube.ranking_profile("u")
    assert profile["weights"] == DEFAULTS and profile["effective_weights"] == DEFAULTS
    assert profile["steps"] == 0 and profile["votes"] == {}


def test_feedback_teaches_a_paraphrase(people_cube) -> None:
    cube, by_name, _ = people_cube
    target = by_name["Tomas"]  # "Tomas adopted a grey rescue cat called Pepper."
    query = "Does Tomas look after any animals at home?"
    cube.feedback(target, useful=True, user_id="u", query=query)
    profile = cube.ranking_profile("u")
    assert profile["votes"][target] == [1, 0] and profile["version"] >= 1
    later = cube.search("Tomas animals at home?", user_id="u", k=3, count_usage=False)
    assert later[0].item.id == target
    assert later[0].signals["feedback"] > 0.5  # matched the query it was voted for


def test_a_bare_vote_learns_from_the_latest_search(people_cube) -> None:
    cube, by_name, _ = people_cube
    hits = cube.search("What is Lena's job?", user_id="u", k=5)
    assert by_name["Lena"] in [h.item.id for h in hits]
    cube.feedback(by_name["Lena"], useful=True, user_id="u")  # no query: the search above
    assert "job" in cube.ranking_profile("u")["words"][by_name["Lena"]]


def test_hostile_flood_is_bounded(people_cube) -> None:
    cube, by_name, chatter = people_cube
    questions = people_questions()
    attacked, others = questions[::2], questions[1::2]
    before = {k: _recall_at(cube, others, by_name, k) for k in (1, 3)}
    rng = random.Random(0)
    for _ in range(6):  # every attacked question, six times: small talk voted useful
        for q, name in attacked:
            cube.feedback(rng.choice(chatter), useful=True, user_id="u", query=q)
            cube.feedback(by_name[name], useful=False, user_id="u", query=q)
    profile = cube.ranking_profile("u")
    assert profile["steps"] > 0
    assert profile["weights"] != DEFAULTS  # the flood did move the weights ...
    for name, (low, high) in BOUNDS.items():  # ... within their box
        assert low <= profile["effective_weights"][name] <= high
    after = {k: _recall_at(cube, others, by_name, k) for k in (1, 3)}
    assert abs(after[1] - before[1]) < 2.0 and abs(after[3] - before[3]) < 2.0


def test_reset_returns_to_the_static_ranking(people_cube) -> None:
    cube, by_name, chatter = people_cube
    query = "What pet does Tomas have?"
    static = _ranking(cube, query)
    for mid in chatter[:3]:
        cube.feedback(mid, useful=True, user_id="u", query=query)
    assert cube.ranking_profiles.personalization("u") is not None
    reset = cube.reset_ranking_profile("u")
    cube.reset_ranking_profile(None)
    assert reset["votes"] == {} and reset["weights"] == DEFAULTS and reset["version"] > 1
    assert _ranking(cube, query) == static


def test_weights_are_durable_and_json(tmp_path: Path) -> None:
    with MemCube.open(tmp_path / "c") as cube:
        a = cube.add("I play the cello in a community orchestra", user_id="ann")
        cube.add("I enjoy long walks by the sea", user_id="ann")
        cube.feedback(a.id, useful=True, user_id="ann", query="Which instrument do I play?")
        saved = cube.ranking_profile("ann")
    files = sorted((tmp_path / "c" / "ranking").rglob("*.json"))
    assert len(files) == 2  # the user's profile and the cube-wide prior; nothing pickled
    assert not list((tmp_path / "c" / "ranking").rglob("*.tmp"))
    with MemCube.open(tmp_path / "c") as cube:
        assert cube.ranking_profile("ann") == saved


def test_export_and_import_carry_learned_weights(tmp_path: Path) -> None:
    with MemCube.open(tmp_path / "src") as cube:
        a = cube.add("I play the cello in a community orchestra", user_id="ann")
        b = cube.add("I adopted a beagle named Biscuit", user_id="bob")
        cube.add("I enjoy long walks by the sea", user_id="ann")
        cube.feedback(a.id, useful=True, user_id="ann", query="Which instrument do I play?")
        cube.feedback(b.id, useful=True, user_id="bob", query="Do I have a dog?")
        ann = cube.ranking_profile("ann")
        prior = cube.ranking_profile(None)
        report = cube.export(tmp_path / "all.mip.tar.gz")
        assert report.ranking_profiles == 2
        only_ann = cube.export(tmp_path / "ann.mip.tar.gz", user_id="ann")
        assert only_ann.ranking_profiles == 1
    target, rep = MemCube.import_archive(tmp_path / "all.mip.tar.gz", tmp_path / "dst")
    with target:
        assert sorted(rep.ranking_profiles) == ["*", "ann", "bob"]
        got = target.ranking_profile("ann")
        assert got["weights"] == ann["weights"] and got["votes"] == ann["votes"]
        assert got["words"] == ann["words"]
        assert target.ranking_profile(None)["weights"] == prior["weights"]
    target, rep = MemCube.import_archive(tmp_path / "ann.mip.tar.gz", tmp_path / "dst2")
    with target:
        assert rep.ranking_profiles == ["ann"]
        assert target.ranking_profile("bob")["votes"] == {}


def test_the_same_flood_wrecks_an_unbounded_learner(people_cube, monkeypatch) -> None:
    """What the bounds and the pull toward the defaults buy (so the test above can fail)."""
    cube, by_name, chatter = people_cube
    wide = {**{n: (-50.0, 50.0) for n in rp.TERMS}, rp.VOTES: (0.0, 500.0)}
    monkeypatch.setattr(rp, "BOUNDS", wide)
    monkeypatch.setattr(rp, "REGULARIZATION", 0.0)
    questions = people_questions()
    attacked, others = questions[::2], questions[1::2]
    before = _recall_at(cube, others, by_name, 3)
    rng = random.Random(0)
    for _ in range(6):
        for q, name in attacked:
            cube.feedback(rng.choice(chatter), useful=True, user_id="u", query=q)
            cube.feedback(by_name[name], useful=False, user_id="u", query=q)
    assert _recall_at(cube, others, by_name, 3) < before - 20.0


def test_a_malformed_ranking_document_writes_nothing(tmp_path: Path) -> None:
    with MemCube.open(tmp_path / "c") as cube:
        good = {
            "format": "memcube.ranking_profile",
            "schema_version": 1,
            "user_id": "ann",
            "weights": {"coverage": 1.2},
        }
        bad = {**good, "user_id": "bob", "weights": {"dense": "__import__('os')"}}
        doc = {"format": "memcube.ranking", "prior": None, "users": [good, bad]}
        with pytest.raises(InvalidInputError):
            cube.import_ranking(doc)
        assert not (tmp_path / "c" / "ranking").exists()
        assert cube.import_ranking({**doc, "users": [good]}) == ["ann"]
        assert cube.ranking_profile("ann")["weights"]["coverage"] == 1.2


def test_the_cube_wide_prior_serves_a_user_without_feedback(tmp_path: Path) -> None:
    with MemCube.open(tmp_path / "c") as cube:
        for user in ("ann", "bob"):
            cube.add("I play the cello in a community orchestra", user_id=user)
            cube.add("I enjoy long walks by the sea", user_id=user)
            cube.add("My sister lives in Porto", user_id=user)
        cello = next(it for it in cube.items(user_id="ann") if "cello" in it.content)
        cube.feedback(cello.id, useful=True, user_id="ann", query="What music do I make?")
        prior = cube.ranking_profile(None)
        assert prior["steps"] == 1 and prior["weights"] != DEFAULTS
        bob = cube.ranking_profile("bob")
        assert bob["steps"] == 0 and bob["effective_weights"] == prior["weights"]
        ann = cube.ranking_profile("ann")  # one vote: mostly the prior still
        assert ann["effective_weights"] == pytest.approx(prior["weights"], abs=0.01)
