"""``cube.delete_all(user_id)``: every memory a user owns archived (or purged) in one operation."""

from __future__ import annotations

import pytest

from memcube import InvalidInputError, InvalidUserIdError, ItemNotFoundError, LifecycleState
from memcube.plaintext.repository import PAGE_SIZE
from tests.conftest import CubeFactory
from tests.helpers import HashEmbedder


def test_archives_own_memories_only_and_audits_once(open_cube: CubeFactory) -> None:
    cube = open_cube(embedder=HashEmbedder())
    mine = cube.add_many(
        [{"content": f"note number {i}"} for i in range(PAGE_SIZE + 5)], user_id="ann"
    )
    cube.freeze(mine[0].id)  # frozen memories are archived too, as by delete()
    cube.delete(mine[1].id)  # already archived: left as it is, not counted
    other = cube.add("bob's own note", user_id="bob")
    cube.share("bob", "ann", ids=[other.id], access="write")

    assert cube.delete_all("ann") == len(mine) - 1
    assert cube.count(user_id="ann") == 0
    assert cube.count(user_id="ann", include_archived=True) == len(mine)
    assert {it.state for it in cube.items(user_id="ann", include_archived=True)} == {
        LifecycleState.ARCHIVED
    }
    # A new version each, with the state it had kept in history.
    assert [v.state for v in cube.history(mine[0].id)] == [
        LifecycleState.FROZEN,
        LifecycleState.ARCHIVED,
    ]
    assert cube.get(mine[1].id).version == 2  # archived once, by delete()
    assert cube.search("note number 7", user_id="ann", include_shared=False) == []
    # Shared with ann, owned by bob: untouched.
    assert cube.get(other.id).state != LifecycleState.ARCHIVED

    (entry,) = cube.audit(op="delete_all")
    assert entry.actor == "ann" and entry.detail == {"hard": False, "count": len(mine) - 1}
    assert len(entry.item_ids) == len(mine) - 1 and mine[1].id not in entry.item_ids

    assert cube.delete_all("ann") == 0  # nothing left to archive
    assert len(cube.audit(op="delete_all")) == 1


def test_hard_purges_every_version(open_cube: CubeFactory) -> None:
    cube = open_cube(embedder=HashEmbedder())
    a = cube.add("ann likes rowing", user_id="ann")
    cube.update(a.id, content="ann likes sailing")
    b = cube.add("ann likes tea", user_id="ann")
    cube.delete(b.id)
    keep = cube.add("bob likes tea", user_id="bob")

    assert cube.delete_all("ann", hard=True) == 2
    assert cube.count(user_id="ann", include_archived=True) == 0
    for gone in (a.id, b.id):
        with pytest.raises(ItemNotFoundError):
            cube.history(gone)
    assert cube.get(keep.id).content == "bob likes tea"
    assert cube.search("tea", user_id="ann") == []
    (entry,) = cube.audit(op="delete_all")
    assert entry.detail == {"hard": True, "count": 2} and set(entry.item_ids) == {a.id, b.id}


def test_unknown_user_and_bad_arguments(open_cube: CubeFactory) -> None:
    cube = open_cube(embedder=HashEmbedder())
    cube.add("someone's note", user_id="ann")
    assert cube.delete_all("nobody") == 0 and cube.delete_all("nobody", hard=True) == 0
    assert cube.audit(op="delete_all") == []
    for bad in (None, "", "  ", 3):
        with pytest.raises(InvalidUserIdError):
            cube.delete_all(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        cube.delete_all("ann", hard="yes")  # type: ignore[arg-type]
    assert cube.count(user_id="ann") == 1


async def test_async_twin(open_cube: CubeFactory) -> None:
    cube = open_cube(embedder=HashEmbedder())
    cube.add("an async note", user_id="ann")
    assert await cube.adelete_all("ann", hard=True) == 1
    assert cube.count(user_id="ann", include_archived=True) == 0
