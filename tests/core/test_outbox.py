"""The outbox: bookkeeping writes (audit entries, retrieval markers) queued and written in the
background, one call per channel per interval."""

from __future__ import annotations

import threading
import time

import pytest

from memcube import InvalidInputError, MemCube
from memcube.outbox import LAZY_LIMIT, Outbox


def test_interval_zero_writes_before_put_returns() -> None:
    written: list[str] = []
    box = Outbox(interval=0)
    box.channel("audit", written.extend)
    box.put("audit", ["a", "b"])
    assert written == ["a", "b"]


def test_entries_of_one_interval_share_one_write() -> None:
    calls: list[list[int]] = []
    done = threading.Event()
    box = Outbox(interval=0.2)
    box.channel("audit", lambda batch: (calls.append(list(batch)), done.set()))
    for i in range(5):
        box.put("audit", [i])
    assert calls == []  # nothing written yet: the interval has not passed
    assert done.wait(5.0)
    assert calls == [[0, 1, 2, 3, 4]]
    box.close()


def test_a_failed_write_keeps_its_entries_in_order() -> None:
    written: list[int] = []
    fail = [True]

    def write(batch: list[int]) -> None:
        if fail[0]:
            raise ConnectionError("server away")
        written.extend(batch)

    box = Outbox(interval=0.05)
    box.channel("audit", write)
    box.put("audit", [1, 2])
    with pytest.raises(ConnectionError):
        box.flush()
    box.put("audit", [3])
    fail[0] = False
    box.flush()
    assert written == [1, 2, 3]
    box.close()


def test_close_writes_what_is_left_and_refuses_more() -> None:
    written: list[int] = []
    box = Outbox(interval=30)  # the thread would not write for 30 s on its own
    box.channel("audit", written.extend)
    box.put("audit", [7])
    t0 = time.monotonic()
    box.close()
    assert written == [7] and time.monotonic() - t0 < 1  # close cuts the wait short
    with pytest.raises(RuntimeError):
        box.put("audit", [8])


def test_bad_interval_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInputError):
        Outbox(interval=-1)
    with pytest.raises(InvalidInputError):
        MemCube.open(tmp_path / "c", publish_interval=float("nan"))


def test_audit_entries_reach_chroma_without_a_flush(cube: MemCube) -> None:
    item = cube.add("the outbox writes this entry in the background", user_id="u")
    deadline = time.monotonic() + 5.0
    while True:  # read the collection directly: AuditLog.query would flush first
        res = cube.backend.audit.get(include=["metadatas"])
        if any(item.id in md["entries"] for md in res["metadatas"]):
            break
        assert time.monotonic() < deadline, "the audit entry was never written"
        time.sleep(0.05)


def test_an_add_cannot_take_over_another_users_id(cube: MemCube) -> None:
    mine = cube.add("alice's memory", user_id="alice")
    before = cube.get(mine.id)
    with pytest.raises(InvalidInputError, match="another user"):
        cube.add_many(
            [
                {"content": "fine", "user_id": "bob"},
                {"content": "x", "user_id": "bob", "id": mine.id},
            ]
        )
    assert cube.get(mine.id) == before
    assert cube.count(user_id="bob") == 0


def test_an_add_with_a_stored_id_replaces_it_cleanly(cube: MemCube) -> None:
    first = cube.add("tagged memory", user_id="u", tags=["old"], id="fixed-id")
    assert [h.item.id for h in cube.search("tagged", user_id="u", tags=["old"])] == [first.id]
    cube.add("retagged memory", user_id="u", tags=["new"], id="fixed-id")
    assert cube.search("tagged", user_id="u", tags=["old"]) == []  # the old tag key is gone
    assert cube.search("retagged", user_id="u", tags=["new"])[0].item.content == "retagged memory"
    assert cube.count(user_id="u") == 1


def test_entries_that_are_not_urgent_wait_for_an_urgent_one() -> None:
    written: list[str] = []
    box = Outbox(interval=0)
    box.channel("audit", written.extend)
    box.put("audit", ["read-1", "read-2"], urgent=False)
    assert written == []  # a process that only reads sends no bookkeeping calls
    box.put("audit", ["write-1"])
    assert written == ["read-1", "read-2", "write-1"]
    box.put("audit", [f"read-{i}" for i in range(LAZY_LIMIT)], urgent=False)
    assert len(written) == 3 + LAZY_LIMIT  # ... until enough of them are queued


def test_a_channel_with_a_longer_interval_is_written_later() -> None:
    written: dict[str, float] = {}
    both = threading.Event()

    def writer(name: str):  # type: ignore[no-untyped-def]
        def write(batch: list[str]) -> None:
            written[name] = time.monotonic()
            if len(written) == 2:
                both.set()

        return write

    box = Outbox(interval=0.1)
    box.channel("markers", writer("markers"))
    box.channel("audit", writer("audit"), interval=0.6)
    t0 = time.monotonic()
    box.put("markers", ["user"])
    box.put("audit", ["entry"])
    assert both.wait(5.0)
    assert 0.1 <= written["markers"] - t0 and 0.6 <= written["audit"] - t0  # never early
    assert written["markers"] < written["audit"]
    box.close()


def test_a_channel_interval_never_shortens_the_outbox_interval() -> None:
    written: list[str] = []
    box = Outbox(interval=0)
    box.channel("audit", written.extend, interval=5.0)
    box.put("audit", ["now"])
    assert written == ["now"]  # interval 0: synchronous, whatever the channel asks


def test_bad_configs_are_refused_before_anything_is_created(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from memcube import AuditConfig, LifecycleConfig, SchedulerConfig

    for bad in (-1.0, float("nan"), 61, True):
        with pytest.raises(InvalidInputError, match="AuditConfig.interval"):
            MemCube.open(tmp_path / "c", audit=AuditConfig(interval=bad))
    with pytest.raises(InvalidInputError, match="SchedulerConfig.candidates"):
        MemCube.open(tmp_path / "c", scheduler=SchedulerConfig(candidates=0))
    with pytest.raises(InvalidInputError):
        MemCube.open(tmp_path / "c", lifecycle=LifecycleConfig(near_duplicate_threshold=2.0))
    assert not (tmp_path / "c").exists()  # refused before anything was created or locked
