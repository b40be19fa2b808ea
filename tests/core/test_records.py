"""The Chroma record layout: Chroma holds the JSON record and the scope keys only; every other
filter is checked in process on the record's view, on every read path."""

from __future__ import annotations

import pytest

from memcube import MemCube, RetrievalConfig
from memcube.plaintext.backend import ITEMS_SYNC_THRESHOLD, SIDE_SYNC_THRESHOLD
from memcube.plaintext.records import (
    LOOKUP_HASH,
    LOOKUP_SCOPE,
    LOOKUP_SUBJECT,
    chroma_part,
    needs_check,
    record_view,
)
from memcube.plaintext.repository import RECORD_LAYOUT_ID

DENSE = RetrievalConfig(hybrid=False)


def _stored(cube: MemCube, id: str) -> dict:
    return cube.backend.get(cube.backend.items, ids=[id])["metadatas"][0]


def test_chroma_part_keeps_a_superset_on_stored_keys() -> None:
    own = {"live_user_id": {"$eq": "a"}}
    city = {"md:city": {"$eq": "Oslo"}}
    share = {"md:_mc_share:a": {"$in": ["read"]}}
    assert chroma_part({"$and": [own, city]}) == own and needs_check({"$and": [own, city]})
    assert chroma_part(own) == own and not needs_check(own)
    # An $or is bounded only when every branch is; a branch on other keys is dropped whole.
    assert chroma_part({"$or": [own, {"$and": [share, {"live": True}]}]}) == {"$or": [own, share]}
    assert chroma_part({"$or": [own, city]}) is None
    assert chroma_part({"user_id": "a", "state": "generated"}) == {"user_id": "a"}
    assert chroma_part(None) is None and not needs_check(None)


def test_chroma_holds_the_json_and_scope_keys_only(cube: MemCube) -> None:
    turn = cube.add(
        "We talked about the garden", user_id="alice", session_id="s1", tags=["home"],
        metadata={"city": "Oslo"}, importance=0.9,
    )  # fmt: skip
    assert set(_stored(cube, turn.id)) == {"json", "user_id", "live_user_id"}

    fact = cube.add(
        "Alice lives in Oslo", user_id="alice", memory_type="fact",
        metadata={"subject": "residence", "value": "Oslo"},
    )  # fmt: skip
    md = _stored(cube, fact.id)
    assert {LOOKUP_SCOPE, LOOKUP_HASH, LOOKUP_SUBJECT} <= set(md)
    assert md[LOOKUP_HASH] == fact.content_hash and md[LOOKUP_SUBJECT] == "residence"

    cube.share("alice", "bob", ids=[turn.id])
    assert "md:_mc_share:bob" in _stored(cube, turn.id)

    cube.delete(fact.id)  # archived: no longer visible, so no longer a merge target either
    assert set(_stored(cube, fact.id)) == {"json", "user_id"}


@pytest.mark.parametrize("retrieval", [None, DENSE], ids=["hybrid", "dense"])
def test_filters_are_decided_by_the_json_not_by_stale_keys(
    open_cube, retrieval: RetrievalConfig | None
) -> None:
    cube = open_cube(retrieval=retrieval)
    kept = cube.add(
        "The Brevik harbour ferry leaves at nine", user_id="alice", metadata={"city": "Oslo"}
    )
    # A record written by an older layout carries flat filter keys; they may be stale and must
    # decide nothing (simulated: keys that contradict the JSON).
    cube.backend.update_metadata(
        cube.backend.items, [kept.id], [{"md:city": "Paris", "state": "archived", "tag:x": True}]
    )

    def found(**kw: object) -> list[str]:
        return [h.item.id for h in cube.search("Brevik harbour ferry", user_id="alice", k=5, **kw)]

    assert found() == [kept.id]
    assert found(filters={"city": "Oslo"}) == [kept.id]
    assert found(filters={"city": "Paris"}) == []
    assert found(tags=["x"]) == []
    assert [it.id for it in cube.items(user_id="alice", filters={"city": "Oslo"})] == [kept.id]
    assert list(cube.items(user_id="alice", filters={"city": "Paris"})) == []
    assert cube.count(user_id="alice") == 1


def test_dense_search_widens_until_the_filter_is_met(open_cube) -> None:
    cube = open_cube(retrieval=DENSE)
    near = [f"My bicycle needs a new chain, note {i}" for i in range(60)]
    cube.add_many([{"content": c, "user_id": "u", "metadata": {"kind": "a"}} for c in near])
    far = cube.add_many(
        [
            {"content": "The bicycle shop on Elm street closes at six", "user_id": "u", "metadata": {"kind": "b"}},
            {"content": "I paid for the cycling club membership", "user_id": "u", "metadata": {"kind": "b"}},
        ]
    )  # fmt: skip
    query = "my bicycle needs a new chain"
    unfiltered = [h.item.id for h in cube.search(query, user_id="u", k=40)]
    assert not {it.id for it in far} & set(unfiltered)  # the filtered ones rank below 40 others
    hits = cube.search(query, user_id="u", k=5, filters={"kind": "b"})
    assert sorted(h.item.id for h in hits) == sorted(it.id for it in far)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert cube.search(query, user_id="u", k=5, filters={"kind": "c"}) == []


def test_records_of_the_earlier_layout_are_upgraded_on_open(open_cube, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(tmp_path / "old")
    fact = cube.add("Alice is allergic to hazelnuts", user_id="alice", memory_type="fact")
    # The earlier layout stored every view key and no lookup keys.
    old = record_view(fact)
    cube.backend.update_metadata(
        cube.backend.items, [fact.id],
        [{**old, **{k: None for k in (LOOKUP_SCOPE, LOOKUP_HASH)}}],
    )  # fmt: skip
    cube.backend.delete(cube.retriever.state_collection, ids=[RECORD_LAYOUT_ID])
    assert set(_stored(cube, fact.id)) == set(old)
    cube.close()

    cube = open_cube(tmp_path / "old")
    assert set(_stored(cube, fact.id)) == {
        "json",
        "user_id",
        "live_user_id",
        LOOKUP_SCOPE,
        LOOKUP_HASH,
    }
    again = cube.add("Alice is allergic to hazelnuts", user_id="alice", memory_type="fact")
    assert again.id == fact.id  # the exact duplicate is found through the upgraded record


def test_collections_sync_their_index_often_and_old_ones_are_switched(open_cube, tmp_path) -> None:  # type: ignore[no-untyped-def]
    def sync(collection) -> int:  # type: ignore[no-untyped-def]
        return collection.configuration["hnsw"]["sync_threshold"]

    cube = open_cube(tmp_path / "c")
    assert sync(cube.backend.items) == ITEMS_SYNC_THRESHOLD
    assert sync(cube.backend.audit) == sync(cube.backend.history) == SIDE_SYNC_THRESHOLD
    # A collection made before the setting existed has Chroma's default.
    cube.backend.items.modify(configuration={"hnsw": {"sync_threshold": 1000}})
    cube.close()
    cube = open_cube(tmp_path / "c")
    assert sync(cube.backend.client.get_collection(cube.backend.items.name)) == ITEMS_SYNC_THRESHOLD


def test_new_memories_are_added_and_replacements_upserted(cube: MemCube) -> None:
    calls: list[tuple[str, list[str]]] = []
    for name in ("add", "upsert"):
        real = getattr(cube.backend, name)

        def spy(collection, ids, *, _name=name, _real=real, **kw):  # type: ignore[no-untyped-def]
            if collection is cube.backend.items:
                calls.append((_name, list(ids)))
            return _real(collection, ids, **kw)

        setattr(cube.backend, name, spy)
    new = cube.add("a new memory", user_id="u")
    chosen = cube.add("a memory with a chosen id", user_id="u", id="mine")
    cube.add("the same id, new text", user_id="u", id="mine")
    assert calls == [("add", [new.id]), ("upsert", [chosen.id]), ("upsert", ["mine"])]
    assert cube.get("mine").content == "the same id, new text"
