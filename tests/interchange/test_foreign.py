"""Imports from MemTensor MemOS, LangGraph stores and mem0 produce searchable memories."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from memcube import LifecycleState, MemCube, MemoryType
from memcube.errors import ForeignFormatError, InvalidInputError, UnsafeArchiveError
from memcube.interchange import detect_format, read_memos
from tests.interchange._util import state

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "foreign"


def _import(cube: MemCube, name: str, **kw):
    _, report = MemCube.import_archive(FIXTURES / name, into=cube, **kw)
    return report


def _top(cube: MemCube, query: str, user: str) -> str:
    return cube.search(query, user_id=user, k=1)[0].item.content


@pytest.mark.parametrize(
    "name, fmt",
    [("memos_general", "memos"), ("memos_tree", "memos"), ("memos_tree/textual_memory.json", "memos"),
     ("langgraph_store.json", "langgraph"), ("mem0_memories.json", "mem0")],
)  # fmt: skip
def test_detect_format(name: str, fmt: str) -> None:
    assert detect_format(FIXTURES / name) == fmt


def test_memos_general_cube(open_cube) -> None:
    cube = open_cube()
    report = _import(cube, "memos_general")
    assert report.format == "memos" and report.added == 3 and report.reembedded
    assert ("7e6d5c4b-3a29-4188-97a6-b5c4d3e2f1a0", "deleted in MemOS") in report.skipped
    assert [name for name, _ in report.skipped_files] == ["activation_memory.pickle"]
    assert "never unpickled" in report.skipped_files[0][1]
    assert "peanuts" in _top(cube, "food allergy", "user03alice")
    assert "Dolomites" in _top(cube, "travel plans in the mountains", "user03alice")
    peanut = cube.get("a9a5c7f2-3d2b-4f6e-9f47-2b1d3c4e5f60")
    assert peanut.memory_type == MemoryType.FACT and peanut.importance == pytest.approx(0.95)
    assert peanut.session_id == "session-2025-06-01" and peanut.tags == ["health", "food"]
    assert peanut.event_time is not None and peanut.event_time.date().isoformat() == "2025-06-01"
    assert peanut.provenance.source == "memos"
    assert peanut.metadata["memos"]["entities"] == ["peanuts", "Thai food"]
    assert cube.search("milk", user_id="someone-else", k=3) == []


def test_memos_tree_cube_restores_history(tmp_path: Path) -> None:
    with MemCube.open(tmp_path / "c") as cube:
        report = _import(cube, "memos_tree")
        assert report.added == 3 and any("graph edges" in w for w in report.warnings)
        hist = cube.history("3f9a2c1e-8b7d-4e6f-a5b4-c3d2e1f0a9b8")
        assert [v.content[:30] for v in hist] == [
            "Project Atlas uses MySQL 8 for",
            "Project Atlas uses PostgreSQL ",
        ]
        assert [v.version for v in hist] == [1, 2] and hist[0].state == LifecycleState.SUPERSEDED
        assert hist[-1].provenance.message_ids == ["msg-101"]
        assert "PostgreSQL" in _top(cube, "which database does Atlas use", "dev_user")
        kinds = {it.content[:14]: it.memory_type for it in cube.items(user_id="dev_user")}
        assert (
            kinds["The developer "] == MemoryType.PROFILE
            and kinds["Currently debu"] == MemoryType.WORKING
        )


def test_memos_pickle_is_never_unpickled(tmp_path: Path) -> None:
    folder = tmp_path / "memos"
    shutil.copytree(FIXTURES / "memos_general", folder)
    marker = tmp_path / "PICKLE-WAS-EXECUTED"
    # A pickle that creates `marker` if anything ever loads it.
    trap = b"cbuiltins\nopen\n(V" + str(marker).encode() + b"\nVw\ntR."
    (folder / "activation_memory.pickle").write_bytes(trap)
    (folder / "parametric_memory.adapter").write_bytes(b"\0" * 16)
    with MemCube.open(tmp_path / "c") as cube:
        report = _import(cube, str(folder))
    assert not marker.exists()
    skipped = dict(report.skipped_files)
    assert "never unpickled" in skipped["activation_memory.pickle"]
    assert "parametric_memory.adapter" in skipped


def test_langgraph_store_dump(open_cube) -> None:
    cube = open_cube()
    report = _import(cube, "langgraph_store.json")
    assert report.format == "langgraph" and report.added == 4
    assert _top(cube, "dairy problems", "u-jordan") == "Jordan is lactose intolerant"
    assert (
        _top(cube, "what pet does she have", "u-priya")
        == "Priya adopted a rescue greyhound named Biscuit"
    )
    item = cube.search("lactose", user_id="u-jordan", k=1)[0].item
    assert item.provenance.source == "langgraph_store"
    assert item.provenance.detail == {"namespace": ["u-jordan", "memories"], "key": "food-1"}
    assert item.metadata["value"] == {"context": "dinner planning"}
    # Ids are stable: importing the same dump again adds nothing.
    again = _import(cube, "langgraph_store.json")
    assert again.added == 0 and len(again.skipped) == 4


def test_mem0_export(open_cube) -> None:
    cube = open_cube()
    report = _import(cube, "mem0_memories.json")
    assert report.format == "mem0" and report.added == 4
    assert (
        _top(cube, "favourite films", "alex") == "Loves sci-fi movies, especially Dune and Arrival"
    )
    assert _top(cube, "what sport", "sam") == "Training for the Berlin marathon in September"
    movie = cube.get("2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d")
    assert (movie.agent_id, movie.session_id, movie.tags) == (
        "movie-assistant",
        "run-2024-08-02",
        ["entertainment"],
    )
    assert movie.metadata == {"role": "user"} and movie.provenance.source == "mem0"
    assert movie.created_at.isoformat() == "2024-07-26T17:31:02.118201+00:00"
    assert cube.get("d4e5f6a7-b8c9-4d0e-8f1a-2b3c4d5e6f7a").state == LifecycleState.FROZEN


def test_default_user_for_foreign_records_without_one(tmp_path: Path) -> None:
    data = [{"id": "m1", "memory": "Likes jazz"}]
    (tmp_path / "m.json").write_text(json.dumps(data))
    with MemCube.open(tmp_path / "c") as cube:
        with pytest.raises(ForeignFormatError, match="user_id"):
            MemCube.import_archive(tmp_path / "m.json", into=cube, format="mem0")
        _, report = MemCube.import_archive(
            tmp_path / "m.json", into=cube, format="mem0", user_id="ivy"
        )
        assert report.added == 1 and cube.get("m1").user_id == "ivy"


@pytest.mark.parametrize(
    "payload, fmt, error",
    [
        ("{not json", "mem0", ForeignFormatError),
        ('{"results": 3}', "mem0", ForeignFormatError),
        ('[{"memory": 5, "user_id": "a"}]', "mem0", ForeignFormatError),
        ('[{"memory": "x", "user_id": "a", "metadata": [1]}]', "mem0", ForeignFormatError),
        ('[{"namespace": [], "key": "k", "value": {}}]', "langgraph", ForeignFormatError),
        ('[{"namespace": ["a"], "key": 1, "value": {}}]', "langgraph", ForeignFormatError),
        ('[{"memory": "x", "metadata": {"user_id": "a", "tags": "oops"}}]', "memos", None),
        ('{"nodes": [{"id": "n", "metadata": {}}]}', "memos", ForeignFormatError),
        ('[1, 2]', "auto", ForeignFormatError),
        ('"hello"', "langgraph", ForeignFormatError),
        ("[]", "mem0", None),
    ],
)  # fmt: skip
def test_malformed_foreign_exports(payload: str, fmt: str, error, tmp_path: Path) -> None:
    src = tmp_path / "export.json"
    src.write_text(payload)
    with MemCube.open(tmp_path / "c") as cube:
        cube.add("Judy paints", user_id="judy")
        before = state(cube)
        if error is None:
            _, report = MemCube.import_archive(src, into=cube, format=fmt, user_id="x")
            assert report.imported <= 1
        else:
            with pytest.raises(error):
                MemCube.import_archive(src, into=cube, format=fmt)
            assert state(cube) == before


def test_unsafe_memos_folders(tmp_path: Path) -> None:
    evil = tmp_path / "evil"
    shutil.copytree(FIXTURES / "memos_general", evil)
    cfg = json.loads((evil / "config.json").read_text())
    cfg["text_mem"]["config"]["memory_filename"] = "../../etc/passwd"
    (evil / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsafeArchiveError):
        read_memos(evil)
    linked = tmp_path / "linked"
    shutil.copytree(FIXTURES / "memos_general", linked)
    (linked / "textual_memory.json").unlink()
    (linked / "textual_memory.json").symlink_to(FIXTURES / "memos_general" / "textual_memory.json")
    with pytest.raises(UnsafeArchiveError):
        read_memos(linked)
    with pytest.raises(InvalidInputError):
        MemCube.import_archive(
            FIXTURES / "mem0_memories.json", into=tmp_path / "c", trusted_keys=["00" * 32]
        )
    assert not (tmp_path / "c").exists()
