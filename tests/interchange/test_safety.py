"""Hostile and broken archives are refused with a typed error, leaving the target unchanged."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from memcube import MemCube
from memcube.errors import (
    ArchiveError,
    ArchiveTooLargeError,
    ChecksumMismatchError,
    InvalidInputError,
    MalformedArchiveError,
    MemCubeError,
    SignatureError,
    UnexpectedMemberError,
    UnsafeArchiveError,
    UnsupportedArchiveVersionError,
    UnsupportedVersionError,
)
from memcube.interchange import ImportLimits, generate_signing_key, public_key_of, read_archive
from tests.interchange._util import build_archive, item_line, payload_files, repack, state


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def _special(name: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info


ITEMS = ("items.jsonl", item_line())
CASES = {
    "traversal": ([ITEMS, ("../evil.json", b"{}")], UnsafeArchiveError),
    "nested traversal": ([ITEMS, ("activation/../../evil.json", b"{}")], UnsafeArchiveError),
    "absolute path": ([ITEMS, ("/tmp/evil.json", b"{}")], UnsafeArchiveError),
    "windows absolute path": ([ITEMS, ("C:/evil.json", b"{}")], UnsafeArchiveError),
    "backslash": ([ITEMS, ("activation\\..\\evil.json", b"{}")], UnsafeArchiveError),
    "unexpected top-level file": ([ITEMS, ("run.py", b"print(1)")], UnexpectedMemberError),
    "pickle in activation": ([ITEMS, ("activation/cache.pickle", b"x")], UnexpectedMemberError),
    "torch file in adapters": (
        [ITEMS, ("adapters/a/v1/adapter_model.bin", b"x")],
        UnexpectedMemberError,
    ),
    "hidden file": ([ITEMS, ("activation/.hidden.json", b"{}")], UnexpectedMemberError),
    "no items": ([("activation/c.json", b"{}")], MalformedArchiveError),
}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory):
    """One target for the module: every refusal must leave it exactly as it was."""
    cube = MemCube.open(tmp_path_factory.mktemp("safety") / "target")
    cube.add("Dana keeps bees on her roof", user_id="dana")
    yield cube
    cube.close()


def _assert_refused(
    archive: Path, cube: MemCube, error: type[BaseException], **kwargs
) -> ArchiveError:
    before, files = state(cube), payload_files(cube.path)
    with pytest.raises(error) as info:
        MemCube.import_archive(archive, into=cube, **kwargs)
    assert isinstance(info.value, MemCubeError) and str(info.value)
    assert state(cube) == before and payload_files(cube.path) == files
    return info.value  # type: ignore[return-value]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_member_names(case: str, target: MemCube, tmp_path: Path) -> None:
    members, error = CASES[case]
    _assert_refused(build_archive(tmp_path / "a.tar.gz", members), target, error)


@pytest.mark.parametrize(
    "info, error",
    [
        (_link("activation/link.json", "/etc/passwd", tarfile.SYMTYPE), UnsafeArchiveError),
        (_link("activation/hard.json", "items.jsonl", tarfile.LNKTYPE), UnsafeArchiveError),
        (_special("activation/dev.json", tarfile.CHRTYPE), UnsafeArchiveError),
        (_special("activation/fifo.json", tarfile.FIFOTYPE), UnsafeArchiveError),
        (_special("activation/sub.json", tarfile.DIRTYPE), UnsafeArchiveError),
    ],
    ids=["symlink", "hardlink", "device", "fifo", "directory"],
)
def test_links_and_special_files(
    info: tarfile.TarInfo, error: type, target: MemCube, tmp_path: Path
) -> None:
    _assert_refused(build_archive(tmp_path / "a.tar.gz", extra_infos=[info]), target, error)


def test_duplicate_and_unlisted_members(target: MemCube, tmp_path: Path) -> None:
    a = build_archive(tmp_path / "dup.tar.gz", unlisted=[("items.jsonl", item_line())])
    _assert_refused(a, target, UnexpectedMemberError)
    a = build_archive(tmp_path / "unlisted.tar.gz", unlisted=[("activation/c.json", b"{}")])
    err = _assert_refused(a, target, UnexpectedMemberError)
    assert "not listed" in str(err)


def test_oversized_members_and_archives(target: MemCube, tmp_path: Path) -> None:
    big = [ITEMS, ("activation/c.safetensors", b"\0" * 5000)]
    a = build_archive(tmp_path / "big.tar.gz", big)
    _assert_refused(a, target, ArchiveTooLargeError, limits=ImportLimits(max_member_bytes=4096))
    _assert_refused(a, target, ArchiveTooLargeError, limits=ImportLimits(max_total_bytes=4096))
    _assert_refused(a, target, ArchiveTooLargeError, limits=ImportLimits(max_members=2))
    _assert_refused(a, target, ArchiveTooLargeError, limits=ImportLimits(max_items_bytes=10))
    long_line = item_line("x" * 3000)
    _assert_refused(build_archive(tmp_path / "line.tar.gz", [("items.jsonl", long_line)]), target,
                    ArchiveTooLargeError, limits=ImportLimits(max_line_bytes=1000))  # fmt: skip


def test_checksum_mismatch_when_a_member_is_tampered(target: MemCube, tmp_path: Path) -> None:
    good = build_archive(
        tmp_path / "good.tar.gz", [ITEMS, ("activation/c.json", b'{"model_fingerprint": "x"}')]
    )
    bad = repack(good, tmp_path / "bad.tar.gz",
                 lambda n, d: d.replace(b"Alice likes tea", b"Alice hates tea") if n == "items.jsonl" else d)  # fmt: skip
    err = _assert_refused(bad, target, ChecksumMismatchError)
    assert "items.jsonl" in str(err) and "altered" in str(err)
    missing = repack(
        good, tmp_path / "missing.tar.gz", lambda n, d: None if n.startswith("activation") else d
    )
    _assert_refused(missing, target, ChecksumMismatchError)


def test_real_export_tampered_and_truncated(target: MemCube, tmp_path: Path) -> None:
    with MemCube.open(tmp_path / "src") as src:
        src.add("Eve sails a small boat", user_id="eve")
        src.export(tmp_path / "e.mip.tar.gz")
    data = (tmp_path / "e.mip.tar.gz").read_bytes()
    (tmp_path / "trunc.tar.gz").write_bytes(data[: len(data) // 2])
    _assert_refused(tmp_path / "trunc.tar.gz", target, MalformedArchiveError)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (tmp_path / "flip.tar.gz").write_bytes(bytes(flipped))
    _assert_refused(tmp_path / "flip.tar.gz", target, ArchiveError)
    (tmp_path / "junk.bin").write_bytes(b"\x1f\x8bnot really gzip")
    _assert_refused(tmp_path / "junk.bin", target, MalformedArchiveError)


def test_signatures(target: MemCube, tmp_path: Path) -> None:
    key, other = generate_signing_key(), generate_signing_key()
    signed = build_archive(
        tmp_path / "s.tar.gz", [("items.jsonl", item_line(id="signed-1"))], sign_with=key
    )
    # Unsigned archive but trusted keys required.
    unsigned = build_archive(tmp_path / "u.tar.gz")
    err = _assert_refused(unsigned, target, SignatureError, trusted_keys=[public_key_of(key)])
    assert "not signed" in str(err)
    # Signed by a key that is not trusted.
    err = _assert_refused(signed, target, SignatureError, trusted_keys=[public_key_of(other)])
    assert "not among the trusted keys" in str(err)

    # Manifest changed after signing (and members re-hashed consistently): signature breaks.
    def forge(name: str, data: bytes) -> bytes:
        if name == "items.jsonl":
            return data.replace(b"tea", b"gin")
        if name == "mip.json":
            m = json.loads(data)
            new = item_line(id="signed-1").replace(b"tea", b"gin")
            m["members"]["items.jsonl"] = {
                "sha256": hashlib.sha256(new).hexdigest(),
                "size": len(new),
            }
            return json.dumps(m).encode()
        return data

    forged = repack(signed, tmp_path / "f.tar.gz", forge)
    err = _assert_refused(forged, target, SignatureError, trusted_keys=[public_key_of(key)])
    assert "altered after signing" in str(err)
    # Without trusted keys a broken signature is still refused (it can only mean damage).
    _assert_refused(forged, target, SignatureError)
    # The genuine archive passes with the right key.
    _, report = MemCube.import_archive(signed, into=target, trusted_keys=[public_key_of(key)])
    assert report.signature == "verified" and report.added == 1


def test_future_major_version(target: MemCube, tmp_path: Path) -> None:
    a = build_archive(tmp_path / "v2.tar.gz", manifest_overrides={"mip_version": "2.0"})
    err = _assert_refused(a, target, UnsupportedArchiveVersionError)
    assert isinstance(err, UnsupportedVersionError) and "Upgrade" in str(err)
    a = build_archive(tmp_path / "s2.tar.gz", manifest_overrides={"item_schema_version": "7.1"})
    _assert_refused(a, target, UnsupportedArchiveVersionError)
    # A newer minor version with extra fields is fine.
    a = build_archive(
        tmp_path / "v1_9.tar.gz",
        [("items.jsonl", item_line(id="minor-1"))],
        manifest_overrides={"mip_version": "1.9", "future_field": [1]},
    )
    _, report = MemCube.import_archive(a, into=target)
    assert report.added == 1


def _v(**kw) -> dict:
    return {"id": "i1", "content": "Alice likes tea", "user_id": "alice", **kw}


MALFORMED = {
    "not json": b"{not json}\n",
    "not an object": b"[1, 2]\n",
    "no versions": b'{"id": "i1"}\n',
    "empty versions": b'{"id": "i1", "versions": []}\n',
    "empty content": (json.dumps({"id": "i1", "versions": [_v(content="  ")]}) + "\n").encode(),
    "unknown field": (json.dumps({"id": "i1", "versions": [_v(evil=1)]}) + "\n").encode(),
    "NaN importance": b'{"id": "i1", "versions": [{"id": "i1", "content": "x", "user_id": "a", "importance": NaN}]}\n',
    "id mismatch": (json.dumps({"id": "i2", "versions": [_v()]}) + "\n").encode(),
    "versions out of order": (
        json.dumps({"id": "i1", "versions": [_v(version=2), _v(version=1)]}) + "\n"
    ).encode(),
    "user changes": (
        json.dumps({"id": "i1", "versions": [_v(), _v(version=2, user_id="bob")]}) + "\n"
    ).encode(),
    "duplicate id": item_line() + item_line(),
    "blank line": item_line() + b"\n",
    "no final newline": item_line().rstrip(b"\n"),
    "not utf-8": b'{"id": "\xff"}\n',
    "control char user": (
        json.dumps({"id": "i1", "versions": [_v(user_id="a\u0000b")]}) + "\n"
    ).encode(),
    "deep nesting": b'{"id": "i1", "versions": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n",
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_jsonl(case: str, target: MemCube, tmp_path: Path) -> None:
    data = MALFORMED[case]
    manifest = {
        "mip_version": "1.0", "cube_id": "c", "embedder_id": "e", "embedding_dimension": 4,
        "members": {"items.jsonl": {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}},
    }  # fmt: skip
    a = build_archive(tmp_path / "m.tar.gz", [("items.jsonl", data)], manifest=manifest)
    _assert_refused(a, target, MalformedArchiveError)


def test_manifest_problems(target: MemCube, tmp_path: Path) -> None:
    a = build_archive(
        tmp_path / "c.tar.gz", manifest_overrides={"counts": {"items": 5, "versions": 5}}
    )
    _assert_refused(a, target, MalformedArchiveError)
    a = build_archive(tmp_path / "n.tar.gz", manifest_overrides={"embedding_dimension": -1})
    _assert_refused(a, target, MalformedArchiveError)
    a = build_archive(tmp_path / "s.tar.gz", manifest_overrides={"scope_user_id": "bob"})
    _assert_refused(a, target, MalformedArchiveError)
    a = build_archive(tmp_path / "x.tar.gz", manifest={"hello": "world"})
    _assert_refused(a, target, MalformedArchiveError)
    with tarfile.open(tmp_path / "nomanifest.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("items.jsonl")
        data = item_line()
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    _assert_refused(tmp_path / "nomanifest.tar.gz", target, MalformedArchiveError)


def test_refused_archive_creates_no_target(tmp_path: Path) -> None:
    bad = build_archive(tmp_path / "bad.tar.gz", [ITEMS, ("../x.json", b"{}")])
    with pytest.raises(UnsafeArchiveError):
        MemCube.import_archive(bad, into=tmp_path / "never")
    assert not (tmp_path / "never").exists()
    with pytest.raises(InvalidInputError):
        MemCube.import_archive(bad, into=tmp_path / "never", on_conflict="merge")  # type: ignore[arg-type]
    assert not (tmp_path / "never").exists()


def test_tampered_archive_leaves_cube_unchanged_in_both_modes(open_cube, tmp_path: Path) -> None:
    src = open_cube(tmp_path / "src")
    src.add("Frank repairs old radios", user_id="frank")
    src.export(tmp_path / "f.mip.tar.gz")
    bad = repack(tmp_path / "f.mip.tar.gz", tmp_path / "bad.tar.gz",
                 lambda n, d: d.replace(b"radios", b"drones") if n == "items.jsonl" else d)  # fmt: skip
    dst = open_cube(tmp_path / "dst")
    dst.add("Grace grows tomatoes", user_id="grace")
    _assert_refused(bad, dst, ChecksumMismatchError)
    assert dst.count(include_archived=True) == 1
    # The genuine archive imports into the same target.
    _, report = MemCube.import_archive(tmp_path / "f.mip.tar.gz", into=dst)
    assert (
        report.added == 1
        and dst.search("radio repair", user_id="frank", k=1)[0].item.content
        == "Frank repairs old radios"
    )


def test_staging_is_removed(tmp_path: Path) -> None:
    a = build_archive(tmp_path / "a.tar.gz")
    with read_archive(a) as staged:
        staging = staged.staging
        assert staging.is_dir()
    assert not staging.exists()
