"""Scheduler: working-memory ranking, feedback, activation set, promotion and demotion."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from memcube import InvalidInputError, LifecycleState, MemCube
from memcube.scheduler import SchedulerConfig, score_candidates

NOW = datetime.now(timezone.utc)


def test_score_uses_every_signal() -> None:
    from memcube.items import MemoryItem

    cfg = SchedulerConfig(type_bonus={})
    base = dict(user_id="u", memory_type="long_term")
    old = MemoryItem(content="old", event_time=NOW - timedelta(days=400), **base)
    new = MemoryItem(content="new", event_time=NOW, **base)
    important = MemoryItem(content="imp", importance=1.0, **base)
    used = MemoryItem(content="used", access_count=50, **base)
    plain = MemoryItem(content="plain", **base)
    order = [it.content for _, it, _ in score_candidates([old, new], [0.5, 0.5], cfg)]
    assert order == ["new", "old"]  # recency
    order = [it.content for _, it, _ in score_candidates([plain, important], [0.5, 0.5], cfg)]
    assert order == ["imp", "plain"]  # importance
    order = [it.content for _, it, _ in score_candidates([plain, used], [0.5, 0.5], cfg)]
    assert order == ["used", "plain"]  # usage
    order = [it.content for _, it, _ in score_candidates([plain, used], [0.9, 0.1], cfg)]
    assert order == ["plain", "used"]  # relevance dominates by default
    with pytest.raises(InvalidInputError):
        SchedulerConfig(candidates=0).validate()
    with pytest.raises(InvalidInputError):
        SchedulerConfig(activation_types=("nope",)).validate()


def test_working_memory_budget_usage_and_feedback(cube: MemCube) -> None:
    a = cube.add("Dinner idea: pasta with pesto", user_id="u")
    b = cube.add("Dinner idea: pasta with tomato sauce", user_id="u")
    first = cube.working_memory("dinner pasta", user_id="u", token_budget=500)
    assert {i.id for i in first} == {a.id, b.id}
    # header (~17 tokens) plus one line (~11) fit in 32, not two
    assert len(cube.working_memory("dinner pasta", user_id="u", token_budget=32)) == 1
    loser = first[-1]
    winner = first[0]
    for _ in range(3):
        cube.feedback(loser.id, useful=True, user_id="u")
        cube.feedback(winner.id, useful=False, user_id="u")
    again = cube.working_memory("dinner pasta", user_id="u", token_budget=500)
    assert again[0].id == loser.id  # feedback changed the ranking
    assert cube.get(loser.id).importance > cube.get(winner.id).importance
    # only what the scheduler selected counts as accessed
    cube.flush_usage()
    other = cube.add("unrelated: car insurance renewal", user_id="u")
    cube.working_memory("dinner pasta", user_id="u", token_budget=32)
    cube.flush_usage()
    assert cube.get(other.id).access_count == 0
    with pytest.raises(InvalidInputError):
        cube.working_memory("x", user_id="u", token_budget=0)
    with pytest.raises(InvalidInputError):
        cube.feedback(a.id, useful="yes", user_id="u")  # type: ignore[arg-type]
    assert asyncio.run(cube.aworking_memory("dinner", user_id="u", token_budget=500))


def test_activation_block_grows_at_the_end_and_is_rebuilt_by_maintain(open_cube) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(scheduler=SchedulerConfig(promote_min_uses=3, demote_after_days=1))
    f1 = cube.add("User lives in Lisbon", user_id="u", memory_type="fact")
    p1 = cube.add("User prefers tea", user_id="u", memory_type="preference")
    ep = cube.add("We talked about the Lisbon tram 28", user_id="u", memory_type="episodic")
    cube.add("Bob lives in Rome", user_id="bob", memory_type="fact")
    # any type, own memories only: a small user's whole memory fits, oldest first
    assert [i.id for i in cube.activation_set("u")] == [f1.id, p1.id, ep.id]
    for _ in range(3):  # use does not reorder the block between rebuilds
        cube.working_memory("Lisbon tram", user_id="u", token_budget=100)
    assert [i.id for i in cube.activation_set("u")] == [f1.id, p1.id, ep.id]
    # a new memory is appended
    n1 = cube.add("User started learning the guitar", user_id="u")
    assert [i.id for i in cube.activation_set("u")] == [f1.id, p1.id, ep.id, n1.id]
    # an edited member cuts the block there, never showing the old text; maintain() rebuilds
    cube.update(p1.id, user_id="u", content="User prefers green tea")
    assert [i.id for i in cube.activation_set("u")] == [f1.id]
    assert cube.maintain(user_id="u")["activation_rebuilt"] == ["u"]
    block = cube.activation_set("u")
    assert [i.id for i in block] == [f1.id, ep.id, n1.id, p1.id]  # unchanged head kept
    assert block[3].content == "User prefers green tea"
    # a tight budget (its own block) keeps the highest priority: importance, use, type
    cube.update(p1.id, user_id="u", importance=1.0)
    assert [i.id for i in cube.activation_set("u", token_budget=25)] == [p1.id]
    # voted down: out of the block at once
    for _ in range(2):
        cube.feedback(ep.id, useful=False, user_id="u")
    assert ep.id not in {i.id for i in cube.activation_set("u")}
    assert asyncio.run(cube.aactivation_set("u"))
    with pytest.raises(InvalidInputError):
        cube.activation_set("u", token_budget=0)


def test_activation_block_rebuild_keeps_members_unless_clearly_beaten(open_cube) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube()
    old = [cube.add(f"Note {i}: the user visited town number {i}", user_id="u") for i in range(3)]
    from memcube.prompting import DEFAULT_HEADER, approx_tokens, memory_line

    line = max(approx_tokens(memory_line(m)) for m in old)
    budget = approx_tokens(DEFAULT_HEADER) + 3 * line + line // 2  # room for three notes
    first = [i.id for i in cube.activation_set("u", token_budget=budget)]
    assert first == [m.id for m in old]
    slightly = cube.add("Note 9: the user visited town number 9", user_id="u", importance=0.6)
    cube.maintain(user_id="u")
    assert [i.id for i in cube.activation_set("u", token_budget=budget)] == first  # no churn
    clearly = cube.add("Note 8: the user visited town number 8", user_id="u", importance=1.0)
    cube.maintain(user_id="u")
    rebuilt = [i.id for i in cube.activation_set("u", token_budget=budget)]
    assert clearly.id in rebuilt and slightly.id not in rebuilt
    assert rebuilt[: len(rebuilt) - 1] == [i for i in first if i in rebuilt]  # old order kept


def test_cold_activated_items_are_demoted_by_maintain(open_cube) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(scheduler=SchedulerConfig(promote_min_uses=1, demote_after_days=1))
    ep = cube.add("the Lisbon tram 28 ride", user_id="u", memory_type="episodic")
    cube.working_memory("tram ride", user_id="u", token_budget=100)
    cube.flush_usage()
    assert cube.get(ep.id).state == LifecycleState.ACTIVATED
    assert cube.maintain()["demoted"] == []
    # make it cold: last access long ago (bookkeeping write, as flush_usage does)
    from memcube.plaintext.records import item_to_metadata

    item = cube.get(ep.id)
    stale = item.model_copy(update={"last_accessed_at": NOW - timedelta(days=3)})
    cube.backend.update_metadata(cube.backend.items, [ep.id], [item_to_metadata(stale, item)])
    assert cube.maintain()["demoted"] == [ep.id]
    assert cube.get(ep.id).state == LifecycleState.GENERATED


def test_working_memory_leaves_out_texts_already_in_the_prompt(cube: MemCube) -> None:
    dog = cube.add("My dog is called Pixel.", user_id="u", tags=["pet"])
    cube.add("Pixel loves the beach.", user_id="u")
    assert dog.id in {it.id for it in cube.working_memory("Pixel", user_id="u")}
    shown = cube.working_memory("Pixel", user_id="u", exclude_texts=["my dog is   called PIXEL."])
    assert dog.id not in {it.id for it in shown}
    assert [it.content for it in shown] == ["Pixel loves the beach."]
    assert [it.id for it in cube.working_memory("Pixel", user_id="u", tags=["pet"])] == [dog.id]
    both = cube.working_memory("Pixel", user_id="u", tags=["pet"], exclude_texts=[dog.content])
    assert both == []  # combined with the caller's own conditions, not instead of them
    with pytest.raises(InvalidInputError):
        cube.working_memory("Pixel", user_id="u", exclude_texts="My dog is called Pixel.")
