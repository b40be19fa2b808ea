"""MemCubeStore against LangGraph's own InMemoryStore: the same assertions run on both, so any
divergence from what InMemoryStore guarantees shows up here. MemCubeStore runs on embedded Chroma
and on a real Chroma server (``open_cube``)."""

from __future__ import annotations

import asyncio
import time

import pytest
from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from langchain_memos import MemCubeRetriever, MemCubeStore
from memcube import MemCube
from memcube.errors import InvalidFilterError, InvalidInputError


class CubeEmbeddings:
    """The cube's embedder as LangChain embeddings, so InMemoryStore ranks with the same model."""

    def __init__(self, cube: MemCube) -> None:
        self.embedder = cube.embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [list(v) for v in self.embedder.embed_documents(texts)]

    def embed_query(self, text: str) -> list[float]:
        return list(self.embedder.embed_query(text))

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_documents(texts)

    async def aembed_query(self, text: str) -> list[float]:
        return self.embed_query(text)


@pytest.fixture(params=["InMemoryStore", "MemCubeStore"])
def store(request: pytest.FixtureRequest, open_cube, backend) -> BaseStore:
    cube = open_cube()
    if request.param == "InMemoryStore":
        if backend is not None:
            pytest.skip("InMemoryStore has no storage backend; it runs once, in the embedded leg")
        from langchain_core.embeddings import Embeddings

        class _E(CubeEmbeddings, Embeddings):
            pass

        return InMemoryStore(index={"dims": 384, "embed": _E(cube), "fields": ["text"]})
    return MemCubeStore(cube, index=["text"])


@pytest.fixture
def cube_store(open_cube) -> MemCubeStore:
    return MemCubeStore(open_cube())


DOCS = {
    ("alice", "memories"): {
        "diet": {"text": "Alice is a vegetarian and never eats meat", "n": 1, "kind": "food"},
        "city": {"text": "Alice lives in Lisbon near the river", "n": 2, "kind": "place"},
        "pet": {"text": "Alice has a grey cat named Miso", "n": 3, "kind": "pet"},
    },
    ("alice", "prefs", "ui"): {"theme": {"text": "Alice prefers dark mode", "n": 4}},
    ("bob", "memories"): {"diet": {"text": "Bob loves grilled fish", "n": 5, "kind": "food"}},
}


def load(store: BaseStore) -> None:
    store.batch(
        [PutOp(ns, key, value) for ns, items in DOCS.items() for key, value in items.items()]
    )


def keys(results) -> set[tuple[tuple[str, ...], str]]:
    return {(tuple(r.namespace), r.key) for r in results}


# ---------------------------------------------------------------------------------- key/value
def test_put_get_round_trip(store: BaseStore) -> None:
    value = {
        "text": "Alice speaks Portuguese — and some 日本語",
        "count": 3,
        "ratio": 0.25,
        "flag": True,
        "nothing": None,
        "nested": {"list": [1, "two", {"three": 3.0}], "empty": {}},
    }
    store.put(("alice", "memories"), "lang", value)
    got = store.get(("alice", "memories"), "lang")
    assert got is not None
    assert got.value == value
    assert got.key == "lang" and tuple(got.namespace) == ("alice", "memories")
    assert got.created_at <= got.updated_at
    assert store.get(("alice", "memories"), "missing") is None
    assert store.get(("alice", "other"), "lang") is None
    assert store.get(("bob", "memories"), "lang") is None


def test_overwrite_replaces_value(store: BaseStore) -> None:
    store.put(("alice", "memories"), "k", {"text": "first", "a": 1})
    first = store.get(("alice", "memories"), "k")
    store.put(("alice", "memories"), "k", {"text": "second"})
    second = store.get(("alice", "memories"), "k")
    assert second.value == {"text": "second"}
    assert second.updated_at >= first.updated_at
    assert [r.key for r in store.search(("alice",))] == ["k"]


def test_delete(store: BaseStore) -> None:
    load(store)
    store.delete(("alice", "memories"), "diet")
    assert store.get(("alice", "memories"), "diet") is None
    assert (("alice", "memories"), "diet") not in keys(store.search(("alice",)))
    assert (("bob", "memories"), "diet") in keys(store.search(("bob",)))
    store.delete(("alice", "memories"), "never-existed")  # no error
    store.put(("alice", "memories"), "diet", {"text": "Alice eats fish again"})
    assert store.get(("alice", "memories"), "diet").value == {"text": "Alice eats fish again"}


def test_batch_reads_see_state_before_puts(store: BaseStore) -> None:
    store.put(("alice", "memories"), "k", {"text": "old"})
    results = store.batch(
        [
            PutOp(("alice", "memories"), "k", {"text": "new"}),
            GetOp(("alice", "memories"), "k"),
            PutOp(("alice", "memories"), "k2", {"text": "other"}),
            PutOp(("alice", "memories"), "k2", {"text": "other, last put wins"}),
            SearchOp(("alice",)),
            ListNamespacesOp(),
        ]
    )
    assert results[0] is None and results[2] is None and results[3] is None
    assert results[1].value == {"text": "old"}
    assert [r.key for r in results[4]] == ["k"]
    assert results[5] == [("alice", "memories")]
    assert store.get(("alice", "memories"), "k").value == {"text": "new"}
    assert store.get(("alice", "memories"), "k2").value == {"text": "other, last put wins"}


def test_invalid_namespaces_are_refused(store: BaseStore) -> None:
    for bad in [(), ("a.b", "x"), ("alice", ""), ("langgraph", "x")]:
        with pytest.raises(InvalidNamespaceError):
            store.put(bad, "k", {"text": "x"})
    if isinstance(store, MemCubeStore):  # InMemoryStore does not check ops given to batch()
        with pytest.raises(InvalidNamespaceError):
            store.batch([GetOp(("alice", "a.b"), "k")])
    assert store.list_namespaces() == []


# ---------------------------------------------------------------------------------- search
def test_search_without_query_scopes_and_paginates(store: BaseStore) -> None:
    load(store)
    alice = keys(store.search(("alice",), limit=10))
    assert alice == {
        (("alice", "memories"), "diet"),
        (("alice", "memories"), "city"),
        (("alice", "memories"), "pet"),
        (("alice", "prefs", "ui"), "theme"),
    }
    assert keys(store.search(("alice", "prefs"))) == {(("alice", "prefs", "ui"), "theme")}
    assert len(store.search((), limit=10)) == 5
    pages = [store.search(("alice",), limit=2, offset=o) for o in (0, 2, 4)]
    assert [len(p) for p in pages] == [2, 2, 0]
    assert set().union(*(keys(p) for p in pages)) == alice
    assert all(r.score is None for r in pages[0])
    assert store.search(("carol",)) == []


def test_search_with_query_ranks_by_meaning(store: BaseStore) -> None:
    load(store)
    results = store.search(("alice",), query="what pet animal does she own?", limit=4)
    assert results[0].key == "pet"
    scores = [r.score for r in results]
    assert all(s is not None for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert store.search(("alice",), query="vegetarian food", limit=1)[0].key == "diet"
    assert (
        store.search(("bob",), query="vegetarian food", limit=1)[0].value["text"].startswith("Bob")
    )
    page = store.search(("alice",), query="what pet animal does she own?", limit=2, offset=1)
    assert [r.key for r in page] == [r.key for r in results[1:3]]


FILTER_CASES = [
    ({"kind": "food"}, {"diet", "diet@bob"}),
    ({"kind": {"$eq": "place"}}, {"city"}),
    ({"n": {"$gt": 2}}, {"pet", "theme", "diet@bob"}),
    ({"n": {"$gte": 2}}, {"city", "pet", "theme", "diet@bob"}),
    ({"n": {"$lt": 2}}, {"diet"}),
    ({"n": {"$lte": 2}}, {"diet", "city"}),
    ({"n": {"$gte": 2, "$lt": 5}}, {"city", "pet", "theme"}),
    ({"kind": {"$ne": "food"}, "n": {"$lte": 3}}, {"city", "pet"}),
    ({"kind": "food", "n": 5}, {"diet@bob"}),
    ({"kind": {"$ne": "food"}}, {"city", "pet", "theme"}),  # a missing field is "not equal"
]


def test_search_filters(store: BaseStore) -> None:
    load(store)

    def name(r) -> str:
        return r.key if r.namespace[0] == "alice" else f"{r.key}@{r.namespace[0]}"

    for flt, expected in FILTER_CASES:
        assert {name(r) for r in store.search((), filter=flt, limit=20)} == expected, flt
        with_query = store.search((), query="food and eating", filter=flt, limit=20)
        assert {name(r) for r in with_query} == expected, flt
    alice_food = store.search(("alice",), query="food", filter={"kind": "food"}, limit=5)
    assert [r.key for r in alice_food] == ["diet"]


def test_list_namespaces(store: BaseStore) -> None:
    load(store)
    store.put(("alice", "prefs", "audio"), "volume", {"text": "Alice likes it quiet"})
    everything = [
        ("alice", "memories"),
        ("alice", "prefs", "audio"),
        ("alice", "prefs", "ui"),
        ("bob", "memories"),
    ]
    assert store.list_namespaces() == everything
    assert store.list_namespaces(prefix=("alice",)) == everything[:3]
    assert store.list_namespaces(prefix=("alice", "prefs")) == everything[1:3]
    assert store.list_namespaces(prefix=("*", "memories")) == [everything[0], everything[3]]
    assert store.list_namespaces(suffix=("memories",)) == [everything[0], everything[3]]
    assert store.list_namespaces(suffix=("prefs", "*")) == everything[1:3]
    assert store.list_namespaces(prefix=("alice",), suffix=("ui",)) == [everything[2]]
    assert store.list_namespaces(max_depth=1) == [("alice",), ("bob",)]
    assert store.list_namespaces(prefix=("alice",), max_depth=2) == [
        ("alice", "memories"),
        ("alice", "prefs"),
    ]
    assert store.list_namespaces(limit=2, offset=1) == everything[1:3]
    if isinstance(store, MemCubeStore):  # InMemoryStore keeps listing emptied namespaces
        store.delete(("bob", "memories"), "diet")
        assert ("bob", "memories") not in store.list_namespaces()


async def test_async_twins(store: BaseStore) -> None:
    await store.aput(("alice", "memories"), "a", {"text": "Alice runs marathons", "n": 1})
    await store.aput(("alice", "memories"), "b", {"text": "Alice collects vinyl records", "n": 2})
    assert (await store.aget(("alice", "memories"), "a")).value["n"] == 1
    found = await store.asearch(("alice",), query="running sport", limit=1)
    assert found[0].key == "a"
    assert [r.key for r in await store.asearch(("alice",), filter={"n": {"$gt": 1}})] == ["b"]
    assert await store.alist_namespaces() == [("alice", "memories")]
    await store.adelete(("alice", "memories"), "a")
    assert await store.aget(("alice", "memories"), "a") is None
    got = await asyncio.gather(*(store.aget(("alice", "memories"), k) for k in "ab"))
    assert got[0] is None and got[1].value["n"] == 2


def test_ttl_support_is_declared(store: BaseStore) -> None:
    if isinstance(store, InMemoryStore):
        with pytest.raises(NotImplementedError):
            store.put(("alice", "memories"), "k", {"text": "x"}, ttl=1.0)
    else:
        assert store.supports_ttl
        store.put(("alice", "memories"), "k", {"text": "x"}, ttl=10.0)
        assert store.get(("alice", "memories"), "k").value == {"text": "x"}


# ---------------------------------------------------------------------------------- MemCube only
def test_ttl_expiry_and_refresh(cube_store: MemCubeStore) -> None:
    store, cube, ns = cube_store, cube_store.cube, ("alice", "tmp")

    def expires(key: str):
        return cube.get(MemCube.keyed_id("langgraph_store", "alice", *ns, key)).expires_at

    store.put(ns, "short", {"text": "expires soon"}, ttl=0.5 / 60)  # half a second
    store.put(ns, "kept", {"text": "refreshed by reads"}, ttl=10.0)
    store.put(ns, "forever", {"text": "no ttl"}, ttl=10.0)
    store.put(ns, "forever", {"text": "no ttl"})  # overwriting without ttl clears the expiry
    assert expires("forever") is None
    before = expires("kept")
    assert store.get(ns, "kept", refresh_ttl=False) is not None
    assert store.search(ns, refresh_ttl=False)
    assert expires("kept") == before
    time.sleep(0.6)
    assert store.get(ns, "short") is None  # expired
    assert store.get(ns, "kept") is not None
    after_get = expires("kept")
    assert after_get > before  # the read refreshed the ttl
    store.search(ns, query="refreshed")
    assert expires("kept") > after_get  # so does a search
    assert {r.key for r in store.search(ns)} == {"kept", "forever"}
    assert {r.key for r in store.search(ns, query="expires soon")} == {"kept", "forever"}
    assert store.sweep_ttl() == 1
    assert cube.get(MemCube.keyed_id("langgraph_store", "alice", *ns, "short")).state == "archived"


def test_default_ttl_from_config(open_cube) -> None:
    cube = open_cube()
    store = MemCubeStore(cube, ttl_config={"default_ttl": 0.5 / 60, "refresh_on_read": False})
    store.put(("alice", "x"), "k", {"text": "half a second"})
    item = cube.get(MemCube.keyed_id("langgraph_store", "alice", "alice", "x", "k"))
    assert item.expires_at is not None
    time.sleep(0.6)
    assert store.get(("alice", "x"), "k") is None


def test_store_items_are_ordinary_memories(cube_store: MemCubeStore) -> None:
    cube = cube_store.cube
    cube_store.put(("alice", "memories"), "diet", {"text": "Alice is vegetarian", "kind": "food"})
    cube_store.put(("alice", "memories"), "diet", {"text": "Alice is vegan", "kind": "food"})
    hit = cube.search("what does alice eat", user_id="alice", k=1)[0]
    assert hit.item.content == "Alice is vegan"
    assert hit.item.metadata == {"text": "Alice is vegan", "kind": "food"}
    assert hit.item.provenance.source == "langgraph_store"
    assert [v.content for v in cube.history(hit.item.id)] == [
        "Alice is vegetarian",
        "Alice is vegan",
    ]
    assert cube.search("what does alice eat", user_id="bob", k=5) == []
    docs = MemCubeRetriever(cube=cube, user_id="alice", k=1).invoke("diet")
    assert docs[0].metadata["metadata"]["kind"] == "food"
    # and the other way round: the cube's own memories are not store items
    cube.add("Alice was born in 1990", user_id="alice")
    assert [r.key for r in cube_store.search(("alice",))] == ["diet"]


def test_value_without_text_field_is_stored_as_json(cube_store: MemCubeStore) -> None:
    cube_store.put(("alice", "prefs"), "ui", {"theme": "dark", "font_size": 14})
    item = cube_store.cube.get(MemCube.keyed_id("langgraph_store", "alice", "alice", "prefs", "ui"))
    assert item.content == '{"font_size": 14, "theme": "dark"}'
    cube_store.put(("alice", "prefs"), "bio", {"about": {"line": "Cellist"}}, index=["about.line"])
    assert cube_store.search(("alice",), query="musician playing cello", limit=1)[0].key == "bio"


def test_fixed_user_and_user_label(open_cube) -> None:
    cube = open_cube()
    fixed = MemCubeStore(cube, user_id="alice")
    fixed.put(("memories",), "k", {"text": "Alice plays chess"})
    assert cube.search("board games", user_id="alice", k=1)[0].item.content == "Alice plays chess"
    by_label = MemCubeStore(cube, user_label=1)
    by_label.put(("users", "bob"), "k", {"text": "Bob plays go"})
    assert cube.count(user_id="bob") == 1
    with pytest.raises(InvalidNamespaceError):
        by_label.put(("users",), "k", {"text": "no user label"})
    assert by_label.list_namespaces(prefix=("users", "bob")) == [("users", "bob")]


def test_bad_input_is_refused_and_changes_nothing(cube_store: MemCubeStore) -> None:
    with pytest.raises(InvalidInputError):
        cube_store.put(("alice", "m"), "k", {"when": object()})
    with pytest.raises(InvalidFilterError):
        cube_store.search(("alice",), filter={"version": 2})
    with pytest.raises(InvalidFilterError):
        cube_store.search(("alice",), filter={"n": {"$in": [1]}})
    with pytest.raises(InvalidInputError):
        MemCubeStore(cube_store.cube, user_label=-1)
    assert cube_store.cube.count() == 0
    assert cube_store.list_namespaces() == []


def test_persists_across_reopen(open_cube, tmp_path) -> None:
    path = tmp_path / "persist"
    cube = open_cube(path)
    MemCubeStore(cube).put(("alice", "memories"), "k", {"text": "Alice speaks Greek", "n": 7})
    cube.close()
    store = MemCubeStore(open_cube(path))
    assert store.get(("alice", "memories"), "k").value == {"text": "Alice speaks Greek", "n": 7}
    assert store.search(("alice",), query="languages", limit=1)[0].key == "k"
