"""Governance: ownership, sharing (per item / whole cube, read / write), audit and redaction,
enforced in every read and write path of the cube (and so in the adapters that call it)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from memcube import (
    AccessDeniedError,
    InvalidInputError,
    InvalidMetadataError,
    ItemNotFoundError,
    MemCube,
)
from memcube.redaction import Redactor


def _alice(cube: MemCube) -> tuple[str, str]:
    a1 = cube.add(
        "Alice's bank PIN hint is her cat's birthday", user_id="alice", memory_type="fact"
    )
    a2 = cube.add("Alice plans a surprise party for Bob", user_id="alice")
    cube.add("Bob likes chess", user_id="bob")
    return a1.id, a2.id


def _bob_sees(cube: MemCube, ids: list[str]) -> dict[str, object]:
    """What bob can see of ``ids`` through every read path."""
    found: dict[str, object] = {}
    found["search"] = {
        h.item.id for h in cube.search("Alice party PIN", user_id="bob", k=10)
    } & set(ids)
    found["working_memory"] = {
        i.id for i in cube.working_memory("Alice party PIN", user_id="bob", token_budget=500)
    } & set(ids)
    found["items"] = {i.id for i in cube.items(user_id="bob", include_shared=True)} & set(ids)
    found["count"] = cube.count(user_id="bob", include_shared=True) - 1
    found["get_many"] = {i.id for i in cube.get_many(ids, user_id="bob")}
    readable = set()
    for i in ids:
        try:
            cube.get(i, user_id="bob")
            cube.history(i, user_id="bob")
            readable.add(i)
        except ItemNotFoundError:
            pass
    found["get"] = readable
    return found


def test_user_b_sees_nothing_of_a_through_any_path(cube: MemCube) -> None:
    ids = list(_alice(cube))
    seen = _bob_sees(cube, ids)
    assert seen == {
        "search": set(), "working_memory": set(), "items": set(), "count": 0,
        "get_many": set(), "get": set(),
    }  # fmt: skip
    # writes: not found (existence is not revealed), and nothing changed
    for call in (
        lambda: cube.update(ids[0], user_id="bob", content="hacked"),
        lambda: cube.delete(ids[0], user_id="bob"),
        lambda: cube.delete(ids[0], user_id="bob", hard=True),
        lambda: cube.rollback(ids[0], 1, user_id="bob"),
        lambda: cube.freeze(ids[0], user_id="bob"),
        lambda: cube.feedback(ids[0], useful=False, user_id="bob"),
        lambda: cube.set_expiry([ids[0]], user_id="bob", ttl=1),
        lambda: cube.history(ids[0], user_id="bob"),
    ):
        with pytest.raises(ItemNotFoundError):
            call()
    item = cube.get(ids[0])
    assert item.version == 1 and item.content.startswith("Alice's bank")
    # async twins go through the same checks
    assert asyncio.run(cube.asearch("Alice", user_id="bob")) and all(
        h.item.user_id == "bob" for h in asyncio.run(cube.asearch("Alice", user_id="bob"))
    )
    # the application (user_id=None) still sees everything
    assert cube.count() == 3


def test_item_share_read_only(cube: MemCube) -> None:
    pin, party = _alice(cube)
    grants = cube.share("alice", "bob", ids=[party], user_id="alice")
    assert [(g.owner, g.grantee, g.access.value, g.item_id) for g in grants] == [
        ("alice", "bob", "read", party)
    ]
    seen = _bob_sees(cube, [pin, party])
    assert seen["search"] == seen["working_memory"] == seen["get"] == seen["get_many"] == {party}
    assert seen["items"] == {party} and seen["count"] == 1
    # listings show only bob's own memories unless asked
    assert {i.user_id for i in cube.items(user_id="bob")} == {"bob"}
    with pytest.raises(AccessDeniedError):
        cube.update(party, user_id="bob", content="no party")
    with pytest.raises(AccessDeniedError):
        cube.delete(party, user_id="bob")
    with pytest.raises(AccessDeniedError):
        cube.share("alice", "carol", ids=[party], user_id="bob")  # only the owner shares
    # a third user still sees nothing
    assert not cube.search("party", user_id="carol")
    # the owner's own edits keep the share
    cube.update(
        party, user_id="alice", content="Alice plans a big surprise party", metadata={"x": 1}
    )
    assert cube.get(party, user_id="bob").content == "Alice plans a big surprise party"
    assert cube.unshare("alice", "bob", ids=[party], user_id="alice") == 1
    assert _bob_sees(cube, [pin, party])["get"] == set()
    assert not any(k.startswith("_mc_share") for k in cube.get(party).metadata)


def test_item_share_read_write_and_whole_cube(cube: MemCube) -> None:
    pin, party = _alice(cube)
    cube.share("alice", "bob", ids=[party], access="write")
    new = cube.update(party, user_id="bob", content="Party moved to Saturday")
    assert new.user_id == "alice" and new.version == 2  # ownership never moves
    assert [e.actor for e in cube.audit(item_id=party, op="update")] == ["bob"]
    with pytest.raises(ItemNotFoundError):
        cube.get(pin, user_id="bob")
    # whole cube, read-only: every memory of alice, present and future
    cube.share("alice", "carol")
    later = cube.add("Alice adopted a kitten", user_id="alice")
    carol = {h.item.id for h in cube.search("Alice", user_id="carol", k=10)}
    assert {pin, party, later.id} <= carol
    with pytest.raises(AccessDeniedError):
        cube.update(pin, user_id="carol", content="x")
    # upgrade to read-write, then revoke
    cube.share("alice", "carol", access="write")
    cube.feedback(pin, useful=True, user_id="carol")
    assert cube.shares(owner="alice", with_user="carol")[0].access.value == "write"
    cube.unshare("alice", "carol")
    assert not {h.item.id for h in cube.search("Alice", user_id="carol", k=10)} & {pin, party}
    # bad sharing requests change nothing
    with pytest.raises(InvalidInputError):
        cube.share("alice", "bob", access="admin")
    with pytest.raises(ItemNotFoundError):
        cube.share("alice", "bob", ids=["nope"])
    with pytest.raises(InvalidInputError):
        cube.share("alice", "alice")


def test_grants_are_seen_by_another_process_view(open_cube, backend, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if backend is None:
        pytest.skip("two cube objects on one path need a Chroma server")
    one = open_cube(tmp_path / "c", grant_cache_seconds=0.0)
    two = open_cube(tmp_path / "c", grant_cache_seconds=0.0)
    item = one.add("shared across processes", user_id="alice")
    assert not two.search("shared", user_id="bob")
    one.share("alice", "bob")
    assert [h.item.id for h in two.search("shared", user_id="bob")] == [item.id]


def test_reserved_metadata_is_refused(cube: MemCube) -> None:
    with pytest.raises(InvalidMetadataError):
        cube.add("x", user_id="u", metadata={"_mc_share:eve": "write"})
    a = cube.add("x", user_id="u")
    with pytest.raises(InvalidMetadataError):
        cube.update(a.id, user_id="u", metadata={"_mc_useful": 99})


def test_audit_log_records_who_what_when_which(cube: MemCube) -> None:
    a = cube.add("audited memory", user_id="alice")
    cube.search("audited", user_id="alice")
    cube.update(a.id, user_id="alice", content="audited memory v2")
    cube.get(a.id)
    cube.delete(a.id, user_id="alice")
    entries = cube.audit(item_id=a.id)
    assert [(e.actor, e.op) for e in entries] == [
        ("alice", "add"), ("alice", "search"), ("alice", "update"), ("*", "get"), ("alice", "delete"),
    ]  # fmt: skip
    assert entries[1].detail == {"query": "audited"}
    assert all(e.item_ids == (a.id,) for e in entries)
    assert entries[0].time <= entries[-1].time
    assert [e.op for e in cube.audit(actor="alice", op=["update", "delete"])] == [
        "update",
        "delete",
    ]
    assert cube.audit(since=entries[-1].time + timedelta(seconds=5)) == []
    assert len(cube.audit(limit=2)) == 2


def test_audit_entries_of_the_earlier_layout_still_read(cube: MemCube) -> None:
    # Entries once kept their item ids in the (full-text indexed) document.
    cube.backend.upsert(
        cube.backend.audit, ["1.000000-old"], embeddings=[[1.0]], documents=["id-1 id-2"],
        metadatas=[{"ts": 1.0, "actor": "alice", "op": "search", "n_items": 2,
                    "detail": '{"query": "q"}'}],
    )  # fmt: skip
    (old,) = cube.audit(item_id="id-2")
    assert (old.actor, old.op, old.item_ids, old.detail) == (
        "alice",
        "search",
        ("id-1", "id-2"),
        {"query": "q"},
    )


def test_redaction_is_opt_in_with_default_patterns(open_cube, tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = "reach me at ann@example.org, +1 415 555 0100, card 4111 1111 1111 1111"
    plain = open_cube(tmp_path / "plain")
    assert plain.add(text, user_id="u").content == text  # off by default
    red = open_cube(tmp_path / "red", redactor=True)
    item = red.add(text, user_id="u")
    assert item.content == "reach me at [EMAIL], [PHONE], card [CARD]"
    assert item.provenance.detail["redacted"] == {"EMAIL": 1, "CARD": 1, "PHONE": 1}
    assert red.update(item.id, user_id="u", content="new mail bob@example.com").content == (
        "new mail [EMAIL]"
    )
    turns = red.add_messages([{"role": "user", "content": "my email is x@y.io"}], user_id="u")
    assert turns[0].content == "my email is [EMAIL]"
    # dates and plain numbers are left alone
    assert Redactor().redact("on 2024-05-01 I paid 1200")[1] == {}
