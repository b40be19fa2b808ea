"""Core MemCube behaviour, run against embedded Chroma and a real Chroma server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from memcube import (
    MAX_CONTENT_CHARS,
    ContentTooLargeError,
    CorruptManifestError,
    CubeClosedError,
    EmbedderMismatchError,
    EmptyContentError,
    InvalidFilterError,
    InvalidInputError,
    InvalidMetadataError,
    InvalidUserIdError,
    ItemNotFoundError,
    LifecycleState,
    MemCube,
    MemCubeError,
    MemoryItem,
    MemoryType,
    Provenance,
    UnsupportedVersionError,
)
from tests.helpers import HashEmbedder, snapshot


def test_item_json_roundtrip_is_lossless() -> None:
    item = MemoryItem(
        content="Caroline went to the support group",
        user_id="caroline",
        agent_id="agent-1",
        session_id="s1",
        memory_type=MemoryType.EPISODIC,
        provenance=Provenance(source="message", extractor="turns", message_ids=["D1:3"]),
        event_time=datetime(2023, 5, 7, 13, 56, tzinfo=timezone.utc),
        tags=["group", "support"],
        importance=0.9,
        expires_at=datetime(2030, 1, 1, tzinfo=timezone.utc),
        metadata={"speaker": "Caroline", "nested": {"a": [1, 2.5, None, True]}},
    )
    again = MemoryItem.model_validate_json(item.model_dump_json())
    assert again == item
    assert again.content_hash == item.content_hash and len(item.content_hash) == 64
    assert again.event_time != again.created_at


def test_add_get_search_and_scope(cube: MemCube) -> None:
    a = cube.add("I live in Lisbon and work on robots", user_id="alice", memory_type="fact")
    cube.add("I prefer green tea", user_id="alice", memory_type=MemoryType.PREFERENCE)
    cube.add("I live in Rome", user_id="bob")
    got = cube.get(a.id)
    assert got == a
    hits = cube.search("which city does she live in", user_id="alice", k=5)
    assert [h.item.user_id for h in hits] == ["alice", "alice"]
    assert hits[0].item.id == a.id
    assert hits[0].score >= hits[1].score
    assert all(h.item.user_id == "bob" for h in cube.search("city", user_id="bob"))
    assert cube.search("anything", user_id="carol") == []
    with pytest.raises(ItemNotFoundError):
        cube.get(a.id, user_id="bob")
    assert cube.count() == 3 and cube.count(user_id="alice") == 2
    assert {i.content for i in cube.items(user_id="alice")} == {
        "I live in Lisbon and work on robots",
        "I prefer green tea",
    }


def test_add_many_dicts_and_items_with_progress(
    cube: MemCube, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = [{"content": f"memory number {i}", "tags": ["bulk"]} for i in range(30)]
    raw.append(MemoryItem(content="an explicit item", user_id="u1"))
    out = cube.add_many(raw, user_id="u1", batch_size=7, progress=True)
    assert len(out) == 31
    assert "memcube add" in capsys.readouterr().err
    assert cube.count(user_id="u1") == 31
    assert len(cube.get_many([o.id for o in out[:5]])) == 5
    assert len(list(cube.items(user_id="u1", batch_size=4))) == 31


def test_add_many_validates_everything_before_writing(cube: MemCube) -> None:
    bad = [{"content": "fine", "user_id": "u"}, {"content": "   ", "user_id": "u"}]
    with pytest.raises(EmptyContentError):
        cube.add_many(bad)
    with pytest.raises(InvalidInputError):
        cube.add_many([{"content": "no user"}])
    with pytest.raises(InvalidInputError):
        cube.add_many([{"content": "x", "user_id": "u", "colour": "red"}])
    assert cube.count() == 0


def test_update_versions_and_history(cube: MemCube) -> None:
    item = cube.add("I live in Berlin", user_id="u", metadata={"topic": "home"})
    v2 = cube.update(item.id, content="I live in Munich")
    v3 = cube.update(item.id, importance=0.9, tags=["home"])
    assert (v2.version, v3.version) == (2, 3)
    assert v3.content == "I live in Munich" and v3.metadata == {"topic": "home"}
    history = cube.history(item.id)
    assert [h.version for h in history] == [1, 2, 3]
    assert [h.content for h in history] == [
        "I live in Berlin",
        "I live in Munich",
        "I live in Munich",
    ]
    assert history[0].state == LifecycleState.SUPERSEDED
    assert cube.get_version(item.id, 1).content == "I live in Berlin"
    # the new content is what search finds now
    assert cube.search("Munich", user_id="u", k=1)[0].item.content == "I live in Munich"
    assert cube.count(user_id="u") == 1
    # fields removed by an update stop matching filters (Chroma merges metadata on update)
    assert cube.search("Munich", user_id="u", tags=["home"])
    cube.update(item.id, tags=[], metadata={})
    assert cube.search("Munich", user_id="u", tags=["home"]) == []
    assert cube.search("Munich", user_id="u", filters={"topic": "home"}) == []


def test_delete_archives_and_hard_delete_purges(cube: MemCube) -> None:
    keep = cube.add("I own a red bicycle", user_id="u")
    gone = cube.add("I own a blue car", user_id="u")
    cube.delete(keep.id)
    assert cube.get(keep.id).state == LifecycleState.ARCHIVED
    assert all(h.item.id != keep.id for h in cube.search("bicycle", user_id="u"))
    assert any(
        h.item.id == keep.id for h in cube.search("bicycle", user_id="u", include_archived=True)
    )
    assert cube.count(user_id="u") == 1 and cube.count(user_id="u", include_archived=True) == 2
    assert len(cube.history(keep.id)) == 2
    cube.update(gone.id, content="I own a green car")
    cube.delete(gone.id, hard=True)
    with pytest.raises(ItemNotFoundError):
        cube.get(gone.id)
    with pytest.raises(ItemNotFoundError):
        cube.history(gone.id)


def test_search_filters_types_tags_and_time(cube: MemCube) -> None:
    t0 = datetime(2023, 1, 1, tzinfo=timezone.utc)
    cube.add_many(
        [
            {
                "content": "trip to Japan",
                "memory_type": "episodic",
                "event_time": t0,
                "metadata": {"year": 2023, "kind": "trip"},
                "tags": ["travel"],
            },
            {
                "content": "trip to Peru",
                "memory_type": "episodic",
                "event_time": t0 + timedelta(days=400),
                "metadata": {"year": 2024, "kind": "trip"},
            },
            {
                "content": "likes trips to the mountains",
                "memory_type": "preference",
                "metadata": {"kind": "taste"},
            },
        ],
        user_id="u",
    )

    def contents(**kw: object) -> set[str]:
        return {h.item.content for h in cube.search("trip", user_id="u", k=10, **kw)}  # type: ignore[arg-type]

    assert contents(filters={"kind": "trip"}) == {"trip to Japan", "trip to Peru"}
    assert contents(filters={"year": {"$gte": 2024}}) == {"trip to Peru"}
    assert contents(filters={"$or": [{"year": 2023}, {"kind": "taste"}]}) == {
        "trip to Japan",
        "likes trips to the mountains",
    }
    assert contents(memory_types=["preference"]) == {"likes trips to the mountains"}
    assert contents(tags=["travel"]) == {"trip to Japan"}
    assert contents(time_range=(t0 + timedelta(days=1), t0 + timedelta(days=500))) == {
        "trip to Peru"
    }
    for bad in (
        {"year": {"$regex": "x"}},
        {"year": float("nan")},
        {"$or": []},
        {"year": {"$in": "2023"}},
        ["x"],
    ):
        with pytest.raises(InvalidFilterError):
            cube.search("trip", user_id="u", filters=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        cube.search("trip", user_id="u", memory_types=["dream"])


def test_ttl_expired_items_are_hidden(cube: MemCube) -> None:
    cube.add(
        "short-lived note",
        user_id="u",
        expires_at=datetime.now(timezone.utc) - timedelta(seconds=1),
    )
    cube.add("long-lived note", user_id="u", ttl=timedelta(days=1))
    assert [h.item.content for h in cube.search("note", user_id="u")] == ["long-lived note"]
    assert len(cube.search("note", user_id="u", include_archived=True)) == 2
    with pytest.raises(InvalidInputError):
        cube.add("x", user_id="u", ttl=-5)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"content": ""}, EmptyContentError),
        ({"content": " \n\t"}, EmptyContentError),
        ({"content": "x" * (MAX_CONTENT_CHARS + 1)}, ContentTooLargeError),
        ({"content": "ok", "metadata": {"n": float("nan")}}, InvalidMetadataError),
        ({"content": "ok", "metadata": {"when": datetime.now()}}, InvalidMetadataError),
        ({"content": "ok", "metadata": "not a dict"}, InvalidMetadataError),
        ({"content": "ok", "metadata": {1: "int key"}}, InvalidMetadataError),
        ({"content": "ok", "importance": 7}, InvalidMetadataError),
        ({"content": "ok", "user_id": ""}, InvalidUserIdError),
        ({"content": "ok", "user_id": "a\x00b"}, InvalidUserIdError),
        ({"content": "ok", "user_id": "u" * 300}, InvalidUserIdError),
        ({"content": "ok", "memory_type": "dream"}, InvalidInputError),
    ],
)
def test_bad_input_is_typed_and_changes_nothing(
    cube: MemCube, kwargs: dict, error: type[Exception]
) -> None:
    cube.add("existing", user_id="u")
    before = snapshot(cube)
    kwargs = {"user_id": "u", **kwargs}
    with pytest.raises(error) as info:
        cube.add(**kwargs)
    assert isinstance(info.value, MemCubeError)
    assert str(info.value)
    assert snapshot(cube) == before


def test_unknown_ids_and_bad_arguments(cube: MemCube) -> None:
    with pytest.raises(ItemNotFoundError):
        cube.get("nope")
    with pytest.raises(ItemNotFoundError):
        cube.update("nope", content="x")
    with pytest.raises(ItemNotFoundError):
        cube.delete("nope")
    item = cube.add("something", user_id="u")
    with pytest.raises(InvalidInputError):
        cube.update(item.id)
    with pytest.raises(EmptyContentError):
        cube.update(item.id, content="")
    assert cube.get(item.id).version == 1
    with pytest.raises(InvalidInputError):
        cube.search("", user_id="u")
    with pytest.raises(InvalidInputError):
        cube.search("x", user_id="u", k=0)
    with pytest.raises(InvalidUserIdError):
        cube.search("x", user_id="")


async def test_async_twins(cube: MemCube) -> None:
    item = await cube.aadd("async memory about sailing", user_id="u")
    await cube.aadd_many([{"content": "another async memory"}], user_id="u")
    hits, count = await asyncio.gather(
        cube.asearch("sailing", user_id="u", k=1), cube.acount(user_id="u")
    )
    assert hits[0].item.id == item.id and count == 2
    await cube.aupdate(item.id, content="async memory about rowing")
    assert [h.version for h in await cube.ahistory(item.id)] == [1, 2]
    await cube.adelete(item.id)
    assert (await cube.aget(item.id)).state == LifecycleState.ARCHIVED
    turns = await cube.aadd_messages([{"role": "user", "content": "hello from async"}], user_id="u")
    assert turns[0].memory_type == MemoryType.EPISODIC


def test_usage_counts_are_recorded(cube: MemCube) -> None:
    item = cube.add("the usage counter memory", user_id="u")
    cube.search("usage counter", user_id="u", k=1)
    cube.search("usage counter", user_id="u", k=1)
    cube.flush_usage()
    got = cube.get(item.id)
    assert got.access_count == 2 and got.last_accessed_at is not None
    assert got.version == 1  # usage is bookkeeping, not a new version


def test_usage_write_back_waits_for_its_interval(
    cube: MemCube, monkeypatch: pytest.MonkeyPatch
) -> None:
    import memcube.services.usage as cube_module

    item = cube.add("the throttled usage memory", user_id="u")
    monkeypatch.setattr(cube_module, "USAGE_FLUSH_EVERY", 2)
    cube.usage.flushed_at = cube_module.time.monotonic()  # just written back
    for _ in range(3):
        cube.search("throttled usage", user_id="u", k=1)
    assert not cube.usage.flushing and cube.get(item.id).access_count == 0  # still buffered
    monkeypatch.setattr(cube_module, "USAGE_FLUSH_SECONDS", 0.0)
    cube.search("throttled usage", user_id="u", k=1)  # due now: written back in the background
    deadline = cube_module.time.monotonic() + 10
    while cube.get(item.id).access_count != 4:
        assert cube_module.time.monotonic() < deadline, "usage was never written back"
        cube_module.time.sleep(0.05)


def test_opening_a_file_is_a_typed_error_that_changes_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "notes.txt"
    target.write_text("not a cube")
    with pytest.raises(InvalidInputError, match="is a file"):
        MemCube.open(target, embedder=HashEmbedder())
    assert target.read_text() == "not a cube"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_closed_cube_refuses(open_cube) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube()
    cube.close()
    cube.close()  # idempotent
    with pytest.raises(CubeClosedError):
        cube.add("x", user_id="u")


def test_persistence_across_processes(open_cube, tmp_path, backend) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "persist"
    cube = open_cube(path)
    item = cube.add(
        "I was born in Porto", user_id="u", event_time=datetime(1990, 5, 1, tzinfo=timezone.utc)
    )
    cube.update(item.id, content="I was born in Porto, Portugal")
    cube.close()
    script = (
        "import json,sys; from memcube import MemCube\n"
        f"c = MemCube.open({str(path)!r}, chroma_url={backend!r})\n"
        f"h = c.history({item.id!r}); hit = c.search('birthplace', user_id='u', k=1)[0]\n"
        "print(json.dumps({'versions': [x.content for x in h], 'hit': hit.item.content, "
        "'event': hit.item.event_time.isoformat(), 'count': c.count()}))\n"
        "c.close()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    assert data == {
        "versions": ["I was born in Porto", "I was born in Porto, Portugal"],
        "hit": "I was born in Porto, Portugal",
        "event": "1990-05-01T00:00:00+00:00",
        "count": 1,
    }


def test_manifest_and_embedder_checks(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c"
    with MemCube.open(path, owner="team") as cube:
        cube.add("kept", user_id="u")
        manifest = json.loads((path / "cube.json").read_text())
    assert manifest["owner"] == "team" and manifest["embedding_dimension"] == 384
    assert manifest["embedder_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    with pytest.raises(EmbedderMismatchError):
        MemCube.open(path, embedder=HashEmbedder())
    original = (path / "cube.json").read_text()
    (path / "cube.json").write_text("{not json")
    with pytest.raises(CorruptManifestError):
        MemCube.open(path)
    (path / "cube.json").write_text(json.dumps({**manifest, "format_version": "9.0"}))
    with pytest.raises(UnsupportedVersionError):
        MemCube.open(path)
    (path / "cube.json").write_text(original)
    with MemCube.open(path) as cube:  # errors released the lock and changed nothing
        assert [i.content for i in cube.items(user_id="u")] == ["kept"]


def test_custom_embedder_cube_needs_it_to_reopen(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "h"
    with MemCube.open(path, embedder=HashEmbedder()) as cube:
        cube.add("alpha beta", user_id="u")
    with pytest.raises(EmbedderMismatchError):
        MemCube.open(path)
    with MemCube.open(path, embedder=HashEmbedder()) as cube:
        assert cube.search("alpha", user_id="u")[0].item.content == "alpha beta"


def test_second_open_in_one_process_closes_the_stale_object(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # The notebook case: opening the folder again closes the earlier object (see test_reopen).
    with MemCube.open(tmp_path / "l") as first:
        second = MemCube.open(tmp_path / "l")
        with pytest.raises(CubeClosedError):
            first.count()
        second.close()
    MemCube.open(tmp_path / "l").close()


def test_add_messages_reads_turns(cube: MemCube) -> None:
    stamp = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)
    items = cube.add_messages(
        [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "My cat is called Miso", "id": "m1"},
            {"role": "assistant", "content": "Lovely name!", "id": "m2"},
        ],
        user_id="u",
        session_id="s1",
        timestamp=stamp,
    )
    turns = [i for i in items if i.memory_type == MemoryType.EPISODIC]
    assert [t.content for t in turns] == ["My cat is called Miso", "Lovely name!"]
    assert turns[0].event_time == stamp and turns[0].session_id == "s1"
    assert turns[0].provenance.message_ids == ["m1"]
    assert cube.working_memory("what is my cat's name", user_id="u", token_budget=200)
