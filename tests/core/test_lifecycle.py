"""Lifecycle: merge at add time, supersede on conflict, freeze, rollback, archive and TTL expiry."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from memcube import (
    FrozenItemError,
    InvalidInputError,
    LifecycleState,
    MemCube,
    VersionNotFoundError,
)
from memcube.lifecycle import LifecycleConfig

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _fact(content: str, subject: str | None = None, value: str | None = None, **kw: object) -> dict:
    md = {}
    if subject:
        md = {"subject": subject, "value": value or content}
    return {"content": content, "memory_type": "fact", "metadata": md, **kw}


def test_exact_duplicates_merge_with_provenance_of_both(cube: MemCube) -> None:
    a = cube.add(
        "I am allergic to nuts", user_id="u", memory_type="fact", provenance={"message_ids": ["m1"]}
    )
    b = cube.add(
        "i am  ALLERGIC to nuts",
        user_id="u",
        memory_type="fact",
        provenance={"message_ids": ["m2"]},
    )
    assert b.id == a.id and b.state == LifecycleState.MERGED
    assert b.content == "I am allergic to nuts"
    assert b.provenance.message_ids == ["m1", "m2"]
    assert len(b.provenance.merged_from) == 1
    assert b.provenance.detail["merged"][0]["content"] == "i am  ALLERGIC to nuts"
    assert cube.count(user_id="u") == 1
    # the merge is audited, and nothing of the first memory was lost
    assert [e.op for e in cube.audit(item_id=a.id)] == ["add", "merged"]
    assert cube.get(a.id).provenance.message_ids == ["m1", "m2"]


def test_near_duplicates_merge_but_different_facts_do_not(cube: MemCube) -> None:
    a = cube.add("User prefers green tea", user_id="u", memory_type="preference")
    b = cube.add("The user prefers green tea.", user_id="u", memory_type="preference")
    c = cube.add("User prefers black coffee", user_id="u", memory_type="preference")
    assert b.id == a.id and "near duplicate" in b.provenance.detail["merged"][0]["how"]
    assert c.id != a.id
    assert cube.count(user_id="u") == 2
    # within one batch too, and with one Chroma write per batch
    out = cube.add_many(
        [
            {"content": "User is vegetarian", "memory_type": "preference"},
            {"content": "The user is vegetarian.", "memory_type": "preference"},
        ],
        user_id="v",
    )
    assert out[0].id == out[1].id and cube.count(user_id="v") == 1


def test_turns_documents_and_explicit_ids_are_never_merged(cube: MemCube) -> None:
    turns = cube.add_many(
        [{"content": "Yes!", "memory_type": "episodic"} for _ in range(3)], user_id="u"
    )
    assert len({t.id for t in turns}) == 3
    a = cube.add("same fact", user_id="u", memory_type="fact", id="k1")
    b = cube.add("same fact", user_id="u", memory_type="fact", id="k2")
    assert (a.id, b.id) == ("k1", "k2")
    assert cube.count(user_id="u") == 5
    # merge=False turns the policy off for a bulk import; merge types are configurable
    c = cube.add_many([_fact("same fact")], user_id="u", merge=False)[0]
    assert c.id not in ("k1", "k2")


def test_merge_types_are_configurable(open_cube) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(
        lifecycle=LifecycleConfig(merge_types=("episodic",), near_duplicate_threshold=None)
    )
    a = cube.add("hello there", user_id="u", memory_type="episodic")
    b = cube.add("Hello  there", user_id="u", memory_type="episodic")
    f1 = cube.add("a fact", user_id="u", memory_type="fact")
    f2 = cube.add("a fact", user_id="u", memory_type="fact")
    assert a.id == b.id and f1.id != f2.id
    with pytest.raises(InvalidInputError):
        LifecycleConfig(merge_types=("nope",)).validate()


def test_conflicting_fact_supersedes_as_new_version(cube: MemCube) -> None:
    a = cube.add_many(
        [_fact("User lives in Lisbon", "residence", "Lisbon", event_time=T0)], user_id="u"
    )[0]
    b = cube.add_many(
        [_fact("User lives in Berlin", "Residence", "Berlin", event_time=T0 + timedelta(days=90))],
        user_id="u",
    )[0]
    assert b.id == a.id and b.version == 2 and b.content == "User lives in Berlin"
    assert b.provenance.detail["supersedes"]["content"] == "User lives in Lisbon"
    hist = cube.history(a.id)
    assert [(h.content, h.state) for h in hist] == [
        ("User lives in Lisbon", LifecycleState.SUPERSEDED),
        ("User lives in Berlin", LifecycleState.GENERATED),
    ]
    assert hist[0].event_time == T0
    # the same value again is a duplicate, not a new version
    c = cube.add_many([_fact("I live in Berlin", "residence", "berlin")], user_id="u")[0]
    assert c.id == a.id and c.version == 2 and c.state == LifecycleState.MERGED
    # an older value arriving late does not replace the current one: stored, already superseded
    d = cube.add_many(
        [_fact("User lives in Porto", "residence", "Porto", event_time=T0 - timedelta(days=300))],
        user_id="u",
    )[0]
    assert d.id != a.id and d.state == LifecycleState.SUPERSEDED
    assert d.metadata["superseded_by"] == a.id
    hits = cube.search("where does the user live", user_id="u", k=5)
    assert [h.item.content for h in hits] == ["User lives in Berlin"]
    archived = cube.search("where does the user live", user_id="u", k=5, include_archived=True)
    assert {h.item.content for h in archived} == {"User lives in Berlin", "User lives in Porto"}


def test_supersede_within_one_batch_keeps_every_version(cube: MemCube) -> None:
    out = cube.add_many(
        [
            _fact("User lives in Lisbon", "residence", "Lisbon", event_time=T0),
            _fact("User lives in Berlin", "residence", "Berlin", event_time=T0 + timedelta(days=1)),
            _fact("User lives in Rome", "residence", "Rome", event_time=T0 + timedelta(days=2)),
        ],
        user_id="u",
    )
    assert len({o.id for o in out}) == 1
    assert [h.content for h in cube.history(out[0].id)] == [
        "User lives in Lisbon",
        "User lives in Berlin",
        "User lives in Rome",
    ]
    assert cube.count(user_id="u") == 1


def test_subjects_are_per_user_and_entity(cube: MemCube) -> None:
    a = cube.add_many(
        [_fact("Ann lives in Oslo", "residence", "Oslo", metadata=None)], user_id="u"
    )[0]
    b = cube.add_many([_fact("Bob lives in Rome", "residence", "Rome")], user_id="other")[0]
    c = cube.add_many(
        [{"content": "Tom lives in Kyiv", "memory_type": "fact",
          "metadata": {"subject": "residence", "value": "Kyiv", "entity": "Tom"}}],
        user_id="u",
    )[0]  # fmt: skip
    assert len({a.id, b.id, c.id}) == 3
    assert cube.get(a.id).version == 1


def test_freeze_refuses_updates_and_is_not_superseded(cube: MemCube) -> None:
    a = cube.add_many([_fact("User lives in Oslo", "residence", "Oslo")], user_id="u")[0]
    frozen = cube.freeze(a.id, user_id="u")
    assert frozen.state == LifecycleState.FROZEN and frozen.version == 1
    with pytest.raises(FrozenItemError):
        cube.update(a.id, user_id="u", content="changed")
    with pytest.raises(FrozenItemError):
        cube.update(a.id, importance=0.9)  # the application too
    newer = cube.add_many([_fact("User lives in Bergen", "residence", "Bergen")], user_id="u")[0]
    assert newer.id != a.id and newer.provenance.detail["conflicts_with"] == a.id
    assert cube.get(a.id).content == "User lives in Oslo"
    back = cube.unfreeze(a.id, user_id="u")
    assert back.state == LifecycleState.GENERATED
    assert cube.update(a.id, user_id="u", importance=0.9).version == 2
    assert [e.op for e in cube.audit(item_id=a.id, op=["freeze", "unfreeze", "update"])] == [
        "freeze",
        "unfreeze",
        "update",
    ]


def test_rollback_restores_an_earlier_version(cube: MemCube) -> None:
    a = cube.add("v1 text", user_id="u", tags=["x"], metadata={"k": 1})
    cube.update(a.id, user_id="u", content="v2 text", metadata={"k": 2})
    cube.update(a.id, user_id="u", content="v3 text")
    r = cube.rollback(a.id, 1, user_id="u")
    assert (r.version, r.content, r.metadata, r.tags) == (4, "v1 text", {"k": 1}, ["x"])
    assert r.provenance.detail["rolled_back_from"] == 3
    assert [h.content for h in cube.history(a.id)] == ["v1 text", "v2 text", "v3 text", "v1 text"]
    assert cube.search("v1 text", user_id="u", k=1)[0].item.version == 4
    with pytest.raises(VersionNotFoundError):
        cube.rollback(a.id, 9, user_id="u")
    with pytest.raises(InvalidInputError):
        cube.rollback(a.id, 4, user_id="u")


def test_archived_and_expired_are_hidden_unless_asked(cube: MemCube) -> None:
    keep = cube.add("garden party on sunday", user_id="u")
    gone = cube.add("garden party cancelled", user_id="u")
    short = cube.add("garden party parking code", user_id="u", ttl=timedelta(hours=1))
    cube.delete(gone.id, user_id="u")
    cube.set_expiry(
        [short.id], user_id="u", expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)
    )
    assert [h.item.id for h in cube.search("garden party", user_id="u")] == [keep.id]
    result = cube.maintain()
    assert result["expired"] == [short.id]
    assert cube.get(short.id).state == LifecycleState.EXPIRED  # kept, not deleted
    every = {h.item.id for h in cube.search("garden party", user_id="u", include_archived=True)}
    assert every == {keep.id, gone.id, short.id}
    assert cube.count(user_id="u") == 1 and cube.count(user_id="u", include_archived=True) == 3
    assert len(cube.audit(item_id=short.id, op="expire")) == 1


def test_bulk_turn_ingestion_is_unchanged(cube: MemCube) -> None:
    rows = [{"content": f"turn number {i % 5}", "memory_type": "episodic"} for i in range(150)]
    out = cube.add_many(rows, user_id="u", batch_size=64)
    assert len(out) == 150 and len({o.id for o in out}) == 150
    assert cube.count(user_id="u") == 150
    assert len(cube.audit(op="add")) == 3  # one audit entry per batch, not per item
