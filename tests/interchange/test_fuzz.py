"""Fuzzing the importer: whatever the bytes, it either imports or raises a typed ArchiveError,
and a refused archive changes nothing."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from memcube import MemCube
from memcube.errors import ArchiveError
from memcube.interchange import ImportLimits, read_archive
from tests.helpers import HashEmbedder
from tests.interchange._util import build_archive, item_line, state

LIMITS = ImportLimits(max_member_bytes=1 << 16, max_total_bytes=1 << 18, max_members=50)
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

_seg = st.sampled_from(["activation", "adapters", "a", "v1", "..", ".", "", "cache.json", "w.safetensors",
                        "x.pickle", "/etc", "C:", "items.jsonl", "mip.json", "\\..", "ok-1.json", "é.json"])  # fmt: skip
names = st.lists(_seg, min_size=1, max_size=5).map("/".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=12,
)
versions = st.fixed_dictionaries(
    {"id": st.sampled_from(["i1", "i2", ""]), "content": st.text(max_size=30), "user_id": st.sampled_from(["alice", "", "b\x00"])},
    optional={"version": st.integers(-1, 4), "state": st.sampled_from(["generated", "archived", "bogus"]),
              "importance": st.floats(allow_nan=True), "metadata": json_values, "tags": json_values,
              "created_at": st.sampled_from(["2026-01-01T00:00:00Z", "yesterday", 5])},
)  # fmt: skip
records = st.fixed_dictionaries(
    {"id": st.sampled_from(["i1", "i2", 3]), "versions": st.lists(versions, max_size=3)}
)
# Mostly valid records with fuzzed text and metadata, so that imports also succeed.
good_records = st.builds(
    lambda i, text, md: {"id": f"g{i}", "versions": [{"id": f"g{i}", "content": text, "user_id": "kim", "metadata": md}]},
    st.integers(0, 10**9), st.text(min_size=1, max_size=40).filter(str.strip),
    st.dictionaries(st.text(max_size=6), json_values, max_size=3),
)  # fmt: skip


def _verify(path: Path) -> None:
    """read_archive must succeed or raise ArchiveError; anything else is a bug."""
    try:
        with read_archive(path, limits=LIMITS):
            pass
    except ArchiveError as exc:
        assert str(exc)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_random_bytes(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "a.tar.gz"
        p.write_bytes(data)
        with pytest.raises(ArchiveError):
            read_archive(p, limits=LIMITS)


_VALID: dict[str, bytes] = {}


def _valid_archive() -> bytes:
    if "a" not in _VALID:
        with tempfile.TemporaryDirectory() as d:
            p = build_archive(Path(d) / "v.tar.gz", [("items.jsonl", item_line(versions=3)),
                                                     ("activation/c.json", b'{"model_fingerprint": "m"}')],
                              compress=False)  # fmt: skip
            _VALID["a"] = p.read_bytes()
    return _VALID["a"]


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 10_000)))  # fmt: skip
def test_mutated_valid_archive(edits: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(_valid_archive())
    for pos, byte in edits:
        data[pos % len(data)] = byte
    if cut is not None:
        data = data[: cut % len(data)]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.tar"
        p.write_bytes(bytes(data))
        _verify(p)


@FUZZ
@given(members=st.lists(st.tuples(names, st.binary(max_size=64)), max_size=4),
       kinds=st.lists(st.sampled_from([tarfile.REGTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE,
                                       tarfile.FIFOTYPE]), max_size=3),
       lines=st.lists(records, max_size=3), listed=st.booleans())  # fmt: skip
def test_random_archive_structure(members, kinds, lines, listed) -> None:
    items = b"".join(json.dumps(r).encode() + b"\n" for r in lines)
    members = [("items.jsonl", items), *members]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "r.tar.gz"
        if listed:
            try:
                build_archive(p, members)
            except (ValueError, json.JSONDecodeError):
                assume(False)
        else:
            manifest = {"mip_version": "1.0", "cube_id": "c", "embedder_id": "e", "embedding_dimension": 3,
                        "members": {n: {"sha256": hashlib.sha256(b).hexdigest(), "size": len(b)} for n, b in members}}  # fmt: skip
            build_archive(p, members, manifest=manifest)
        if kinds:
            with tarfile.open(Path(d) / "k.tar", "w") as tar:
                for i, kind in enumerate(kinds):
                    info = tarfile.TarInfo(f"activation/k{i}.json")
                    info.type = kind
                    info.linkname = "../../etc/passwd"
                    tar.addfile(info)
                for n, b in members:
                    info = tarfile.TarInfo(n)
                    info.size = len(b)
                    tar.addfile(info, io.BytesIO(b))
            _verify(Path(d) / "k.tar")
        _verify(p)


@pytest.fixture(scope="module")
def fuzz_cube(tmp_path_factory: pytest.TempPathFactory):
    cube = MemCube.open(tmp_path_factory.mktemp("fuzz") / "cube", embedder=HashEmbedder())
    cube.add("Kim brews cider", user_id="kim")
    yield cube
    cube.close()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(st.one_of(records, good_records), min_size=1, max_size=3))
def test_fuzzed_records_import_or_change_nothing(fuzz_cube: MemCube, lines) -> None:
    items = b"".join(json.dumps(r).encode() + b"\n" for r in lines)
    before = state(fuzz_cube)
    with tempfile.TemporaryDirectory() as d:
        try:
            p = build_archive(Path(d) / "r.tar.gz", [("items.jsonl", items)])
        except ValueError:
            assume(False)
        try:
            _, report = MemCube.import_archive(p, into=fuzz_cube, on_conflict="skip")
        except ArchiveError:
            event("refused")
            assert state(fuzz_cube) == before
        else:
            event("imported")
            after = state(fuzz_cube)
            assert set(before) <= set(after) and len(after) - len(before) == report.added
