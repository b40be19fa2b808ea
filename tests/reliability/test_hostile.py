"""Hostile input, property-based: every case gets a correct result or a typed MemCubeError, and
a rejected case changes nothing. Runs against embedded Chroma and the real server."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from memcube import MemCube
from memcube.errors import MemCubeError
from memcube.items import MemoryItem

#: Examples per property (each one embeds and touches Chroma); raise it for a deeper hunt.
EXAMPLES = int(os.environ.get("MEMCUBE_HYPOTHESIS_EXAMPLES", "20"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)

# Any code point, lone surrogates included (hypothesis leaves those out by default).
any_char = st.characters(codec=None, exclude_categories=())
any_text = st.text(any_char, max_size=40)
huge_text = st.builds(
    lambda ch, n: ch * n,
    st.sampled_from(["a", "é", "😀", "\x00", " ", "\ud800"]),
    st.sampled_from([1, 31_999, 32_000, 32_001, 100_000]),
)
floats = st.floats(allow_nan=True, allow_infinity=True)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), floats, any_text)
nested = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(any_text, inner, max_size=4)
    ),
    max_leaves=20,
)
weird_objects = st.sampled_from([object(), b"bytes", {1, 2}, (1, 2), 3j, Path("/etc/passwd")])
user_ids = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "\t",
            "alice",
            "../../etc/passwd",
            "/",
            "C:\\Windows\\System32",
            "~root",
            "alice' OR '1'='1",
            "'; DROP TABLE embeddings; --",
            '{"$ne": ""}',
            "$ne",
            "$or",
            "user_id",
            "*",
            "%",
            "\\",
            "a" * 256,
            "a" * 257,
            "null",
            "None",
            "\u202e\u0041",
            "ali\x00ce",
            "ali\nce",
            "\ud800",
            "😀",
        ]
    ),
    any_text,
    st.dictionaries(st.sampled_from(["$ne", "$in", "$gt"]), any_text, max_size=2),
    st.integers(),
    st.none(),
)


def snapshot(cube: MemCube) -> dict[str, Any]:
    """Everything stored, minus advisory usage counters (searches legitimately bump those)."""
    items = {
        it.id: it.model_dump(mode="json", exclude={"access_count", "last_accessed_at"})
        for it in cube.items(user_id=None, include_archived=True)
    }
    history = cube.backend.count(cube.backend.history)
    return {"items": items, "history": history}


def seed(cube: MemCube) -> list[MemoryItem]:
    rows = [
        ("alice", "Alice plays tennis on Sundays", {"color": "red", "n": 1}),
        ("alice", "Alice's sister lives in Porto", {"color": "blue", "n": 2}),
        ("alice", "Alice is allergic to peanuts", {"color": "red", "n": 3, "flag": True}),
        ("bob", "Bob plays tennis too", {"color": "red", "n": 1}),
        ("bob", "Bob's password hint is 'tennis'", {"color": "blue", "n": 5}),
    ]
    return [cube.add(c, user_id=u, metadata=m) for u, c, m in rows]


@pytest.mark.slow
def test_hostile_item_fields(cube: MemCube) -> None:
    seed(cube)
    outcomes = {"accepted": 0, "refused": 0}

    @settings(SETTINGS, max_examples=2 * EXAMPLES)
    @given(
        content=st.one_of(any_text, any_text, huge_text, weird_objects, st.none()),
        metadata=st.one_of(
            st.none(), st.dictionaries(any_text, nested, max_size=5), nested, weird_objects
        ),
        tags=st.one_of(st.none(), st.lists(any_text, max_size=3), any_text),
        importance=st.one_of(st.just(0.5), floats, st.integers(-1, 2), any_text),
        user_id=st.one_of(st.just("carol"), user_ids),
    )
    # Most random draws are hostile; these pin one accepted and one refused case every run.
    @example(
        content="carol keeps bees",
        metadata={"hive": 3},
        tags=["bees"],
        importance=0.7,
        user_id="carol",
    )
    @example(content="   ", metadata=None, tags=None, importance=0.5, user_id="carol")
    def check(content: Any, metadata: Any, tags: Any, importance: Any, user_id: Any) -> None:
        before = snapshot(cube)
        try:
            item = cube.add(
                content, user_id=user_id, metadata=metadata, tags=tags, importance=importance
            )
        except MemCubeError:
            outcomes["refused"] += 1
            assert snapshot(cube) == before
            return
        outcomes["accepted"] += 1
        # Accepted: stored exactly as returned, and nothing else changed. (pydantic's lax mode
        # decodes UTF-8 bytes into text; anything else must be a non-blank string.)
        text = content.decode("utf-8") if isinstance(content, bytes) else content
        assert isinstance(text, str) and text.strip()
        assert cube.get(item.id) == item
        assert item.content == text and item.user_id == user_id
        assert json.loads(json.dumps(item.metadata, allow_nan=False)) == item.metadata
        after = snapshot(cube)
        assert set(after["items"]) == set(before["items"]) | {item.id}
        assert all(after["items"][i] == before["items"][i] for i in before["items"])
        cube.delete(item.id, hard=True)

    check()
    assert outcomes["accepted"] and outcomes["refused"], outcomes


def filter_conditions() -> st.SearchStrategy[Any]:
    ops = st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"])
    value = st.one_of(st.sampled_from(["red", "blue", 1, 2, 3, True]), json_scalars)
    cond = st.one_of(
        value,
        st.dictionaries(ops, st.one_of(value, st.lists(value, max_size=3)), max_size=2),
        st.dictionaries(any_text, value, max_size=2),
    )
    key = st.one_of(
        st.sampled_from(
            [
                "color",
                "n",
                "flag",
                "user_id",
                "state",
                "memory_type",
                "version",
                "tags",
                "$and",
                "$or",
                "$where",
                "$not",
                "",
                "json",
                "md:color",
                "tag:x",
            ]
        ),
        any_text,
    )
    return st.recursive(
        st.dictionaries(key, cond, max_size=3),
        lambda inner: st.dictionaries(
            st.sampled_from(["$and", "$or"]), st.lists(inner, max_size=3), min_size=1, max_size=1
        ),
        max_leaves=6,
    )


@pytest.mark.slow
def test_hostile_filters_never_leak_or_change_anything(cube: MemCube) -> None:
    seeded = seed(cube)
    alice = {it.id for it in seeded if it.user_id == "alice"}
    before = snapshot(cube)

    @SETTINGS
    @given(filters=st.one_of(filter_conditions(), weird_objects, any_text, st.lists(any_text)))
    def check(filters: Any) -> None:
        for call in (
            lambda: [h.item for h in cube.search("tennis", user_id="alice", k=10, filters=filters)],
            lambda: list(cube.items(user_id="alice", filters=filters)),
        ):
            try:
                found = call()
            except MemCubeError:
                continue
            assert {it.id for it in found} <= alice, "a filter reached another user's memories"
        assert snapshot(cube) == before

    check()


def _eval(md: dict[str, Any], f: dict[str, Any]) -> bool:
    """Reference semantics of the simple filters generated below."""
    for key, cond in f.items():
        if key == "$or":
            if not any(_eval(md, c) for c in cond):
                return False
            continue
        op, value = next(iter(cond.items()))
        have = md.get(key)
        if op == "$eq":
            ok = have == value
        elif op == "$ne":
            ok = have != value
        elif op == "$gt":
            ok = have is not None and have > value
        elif op == "$lt":
            ok = have is not None and have < value
        else:  # $in
            ok = have in value
        if not ok:
            return False
    return True


@pytest.mark.slow
def test_valid_filters_return_exactly_the_matching_memories(cube: MemCube) -> None:
    seeded = seed(cube)
    alice = [it for it in seeded if it.user_id == "alice"]
    simple = st.one_of(
        st.builds(
            lambda op, v: {"color": {op: v}},
            st.sampled_from(["$eq", "$ne"]),
            st.sampled_from(["red", "blue", "green"]),
        ),
        st.builds(
            lambda op, v: {"n": {op: v}},
            st.sampled_from(["$eq", "$ne", "$gt", "$lt"]),
            st.integers(0, 6),
        ),
        st.builds(
            lambda v: {"color": {"$in": v}},
            st.lists(st.sampled_from(["red", "blue"]), min_size=1, max_size=2),
        ),
    )
    combined = st.one_of(
        simple,
        st.builds(lambda a, b: {**a, **b}, simple, simple),
        st.builds(lambda a, b: {"$or": [a, b]}, simple, simple),
    )

    @SETTINGS
    @given(filters=combined)
    def check(filters: dict[str, Any]) -> None:
        expected = {it.id for it in alice if _eval(it.metadata, filters)}
        assert {it.id for it in cube.items(user_id="alice", filters=filters)} == expected
        hits = cube.search("tennis", user_id="alice", k=10, filters=filters)
        assert {h.item.id for h in hits} == expected

    check()


@pytest.mark.slow
def test_hostile_user_ids_are_scoped_or_refused(cube: MemCube) -> None:
    seed(cube)
    outside = sorted(p.name for p in cube.path.parent.iterdir())

    @SETTINGS
    @given(user_id=user_ids)
    def check(user_id: Any) -> None:
        before = snapshot(cube)
        try:
            item = cube.add("a memory with a strange owner", user_id=user_id)
        except MemCubeError:
            assert snapshot(cube) == before
            for call in (
                lambda: cube.search("memory", user_id=user_id),
                lambda: cube.count(user_id=user_id),
                lambda: list(cube.items(user_id=user_id)),
            ):
                if user_id is None:  # None means "every user" for count/items, by design
                    break
                try:
                    result = call()
                except MemCubeError:
                    continue
                # Accepted for reading only if it is a valid id: then it owns nothing here.
                assert result in ([], 0), result
            return
        assert cube.get(item.id, user_id=user_id) == item
        hits = cube.search("strange owner", user_id=user_id, k=50)
        assert item.id in {h.item.id for h in hits}
        assert all(h.item.user_id == user_id for h in hits)
        owned = sum(1 for it in before["items"].values() if it["user_id"] == user_id)
        assert cube.count(user_id=user_id) == owned + 1
        for other in ("alice", "bob"):
            if other != user_id:
                assert item.id not in {h.item.id for h in cube.search("strange", user_id=other)}
        cube.delete(item.id, hard=True)
        assert snapshot(cube) == before

    check()
    # A path-like user id never becomes a path.
    assert sorted(p.name for p in cube.path.parent.iterdir()) == outside


@pytest.mark.slow
def test_hostile_langgraph_namespaces(cube: MemCube) -> None:
    store_mod = pytest.importorskip("langchain_memos.store")
    from langgraph.store.base import InvalidNamespaceError

    store = store_mod.MemCubeStore(cube)
    store.put(("alice", "memories"), "k0", {"content": "Alice likes tea"})
    label = st.one_of(
        st.sampled_from(
            ["", ".", "a.b", "*", "alice", "bob", "../x", "\x00", "$or", "langgraph", " ", "\ud800"]
        ),
        any_text,
        st.integers(),
        st.none(),
    )

    @SETTINGS
    @given(
        namespace=st.lists(label, max_size=4).map(tuple),
        key=st.one_of(any_text, st.integers()),
        value=st.one_of(st.dictionaries(any_text, nested, max_size=3), nested),
    )
    def check(namespace: Any, key: Any, value: Any) -> None:
        before = snapshot(cube)
        try:
            store.put(namespace, key, value)
        except (MemCubeError, InvalidNamespaceError):
            assert snapshot(cube) == before
            return
        got = store.get(namespace, key)
        if value is None:  # LangGraph: putting None deletes
            assert got is None
            return
        assert got is not None and got.value == value and tuple(got.namespace) == namespace
        store.delete(namespace, key)
        assert store.get(namespace, key) is None

    check()
    assert store.get(("alice", "memories"), "k0").value == {"content": "Alice likes tea"}


def test_nan_and_inf_never_reach_storage(cube: MemCube) -> None:
    before = snapshot(cube)
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(MemCubeError):
            cube.add("x", user_id="u", metadata={"v": bad})
        with pytest.raises(MemCubeError):
            cube.add("x", user_id="u", metadata={"deep": [{"v": bad}]})
        with pytest.raises(MemCubeError):
            cube.add("x", user_id="u", importance=bad)
        with pytest.raises(MemCubeError):
            cube.search("x", user_id="u", filters={"v": {"$gt": bad}})
    assert snapshot(cube) == before
