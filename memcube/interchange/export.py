"""Writing a cube into a MIP archive."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from memcube.atomic import fsync_dir
from memcube.errors import InvalidInputError
from memcube.interchange.format import (
    ITEM_SCHEMA_VERSION,
    ITEMS_MEMBER,
    MANIFEST_MEMBER,
    MIP_VERSION,
    PAYLOAD_DIRS,
    PAYLOAD_SUFFIXES,
    PRODUCER,
    RANKING_MEMBER,
    SIGNATURE_MEMBER,
    ArchiveManifest,
    MemberEntry,
    member_kind,
)
from memcube.interchange.payloads import find_owner, group_units
from memcube.interchange.signing import PrivateKeyLike, key_id, load_private_key, sign_manifest
from memcube.items import check_scope_id, utcnow
from memcube.ports import RankingSource

if TYPE_CHECKING:
    from memcube.ports import ExportSource

#: ``progress(stage, done, total)``; ``total`` is ``None`` while unknown.
ProgressFn = Callable[[str, int, "int | None"], None]
_CHUNK = 1 << 20


@dataclass
class ExportReport:
    """What :func:`export_cube` wrote."""

    path: str
    cube_id: str
    user_id: str | None
    items: int
    versions: int
    users: int
    activation_files: int
    adapter_files: int
    bytes: int
    sha256: str
    signed: bool
    key_id: str | None = None
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    #: Ranking profiles carried (``ranking.json``: learned from feedback).
    ranking_profiles: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _HashingReader(io.RawIOBase):
    """Feeds a file into tarfile while hashing exactly the bytes written."""

    def __init__(self, fh: BinaryIO) -> None:
        self.fh = fh
        self.sha = hashlib.sha256()
        self.n = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.sha.update(data)
        self.n += len(data)
        return data


def _tarinfo(name: str, size: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> MemberEntry:
    tar.addfile(_tarinfo(name, len(data), mtime), io.BytesIO(data))
    return MemberEntry(sha256=hashlib.sha256(data).hexdigest(), size=len(data))


def _add_file(tar: tarfile.TarFile, name: str, path: Path, mtime: float) -> MemberEntry:
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        reader = _HashingReader(fh)
        tar.addfile(_tarinfo(name, size, mtime), reader)
    return MemberEntry(sha256=reader.sha.hexdigest(), size=size)


def _payload_files(cube_path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Relative posix paths of the cache/adapter files to carry, and those left out (why)."""
    keep: list[str] = []
    skipped: list[tuple[str, str]] = []
    for top in PAYLOAD_DIRS:
        base = cube_path / top
        if not base.is_dir() or base.is_symlink():
            continue
        for root, dirs, files in os.walk(base, followlinks=False):
            for d in list(dirs):
                if (Path(root) / d).is_symlink():
                    skipped.append(((Path(root) / d).relative_to(cube_path).as_posix(), "symlink"))
                    dirs.remove(d)
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for f in files:
                full = Path(root) / f
                rel = full.relative_to(cube_path).as_posix()
                if f.startswith(
                    "."
                ):  # locks and in-flight temporary files: internal, never exported
                    continue
                if full.is_symlink():
                    skipped.append((rel, "symlink: MIP carries regular files only"))
                elif not f.endswith(PAYLOAD_SUFFIXES):
                    skipped.append((rel, "not safetensors or JSON: never exported"))
                else:
                    try:
                        member_kind(rel)
                    except Exception as exc:  # an odd name: leave it out rather than fail
                        skipped.append((rel, str(exc)))
                    else:
                        keep.append(rel)
    return sorted(keep), skipped


def export_cube(
    cube: ExportSource,
    path: str | os.PathLike[str],
    *,
    user_id: str | None = None,
    signing_key: PrivateKeyLike | None = None,
    progress: ProgressFn | None = None,
    compress: bool = True,
    manifest_extra: Mapping[str, Any] | None = None,
) -> ExportReport:
    """Write ``cube`` (or one user's part of it) to a single MIP archive at ``path``.

    The archive holds every memory with its full version history and provenance, the cube's KV
    caches and adapters (safetensors and JSON only), and a manifest with the SHA-256 of every
    member, optionally signed with Ed25519. It is written to a temporary file and renamed into
    place, so ``path`` never holds half an archive.

    With ``user_id`` only that user's memories are exported, and only the caches/adapters whose
    manifest attributes them to that user (by ``user_id`` or by the memory ids they hold).

    ``compress=False`` writes a plain tar (what :mod:`memcube.marketplace` splits into layers);
    ``manifest_extra`` adds fields to ``mip.json`` (covered by the signature), e.g. a delta's
    base and tombstones.

    Example:
        >>> import tempfile, pathlib
        >>> from memcube import MemCube
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> with MemCube.open(d / "cube") as cube:
        ...     _ = cube.add("Ana likes green tea", user_id="ana")
        ...     export_cube(cube, d / "ana.mip.tar.gz").items
        1
    """
    check_scope_id(user_id, "user_id")
    signer = load_private_key(signing_key) if signing_key is not None else None
    target = Path(path).expanduser().resolve()
    if target.is_dir():
        raise InvalidInputError(
            f"{target} is a folder; give the archive a file name, e.g. cube.mip.tar.gz."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    mtime = time.time()
    report_skipped: list[tuple[str, str]] = []
    members: dict[str, MemberEntry] = {}

    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with tempfile.TemporaryDirectory(prefix="mip-export-") as staging:
            # 1. items.jsonl, staged so its digest is known before it enters the tar.
            items_path = Path(staging) / ITEMS_MEMBER
            n_items = n_versions = 0
            users: set[str] = set()
            exported_ids: set[str] = set()
            total = cube.count(user_id=user_id, include_archived=True)
            with open(items_path, "w", encoding="utf-8", newline="\n") as out:
                for item in cube.items(user_id=user_id, include_archived=True):
                    versions = cube.history(item.id)
                    record = {
                        "id": item.id,
                        "versions": [v.model_dump(mode="json") for v in versions],
                    }
                    out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
                    n_items += 1
                    n_versions += len(versions)
                    users.add(item.user_id)
                    exported_ids.add(item.id)
                    if progress:
                        progress("items", n_items, total)

            # 2. caches and adapters, chosen by unit so a tensor never travels without its manifest.
            payload, skipped = _payload_files(cube.path)
            report_skipped.extend(skipped)
            chosen: list[str] = []
            for unit in group_units(payload):
                if user_id is not None:
                    owner: str | None = None
                    ids: list[str] = []
                    for name in unit.manifests:
                        try:
                            doc = json.loads((cube.path / name).read_text(encoding="utf-8"))
                        except (OSError, ValueError):
                            doc = None
                        doc_owner, doc_ids = find_owner(doc)
                        owner = owner or doc_owner
                        ids.extend(doc_ids)
                    mine = owner == user_id or (owner is None and ids and set(ids) <= exported_ids)
                    if not mine:
                        report_skipped.extend(
                            (f, f"not attributable to user {user_id!r}") for f in unit.files
                        )
                        continue
                chosen.extend(unit.files)

            if compress:
                opened = tarfile.open(tmp, mode="w:gz", format=tarfile.PAX_FORMAT)
            else:
                opened = tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT)
            with opened as tar:
                members[ITEMS_MEMBER] = _add_file(tar, ITEMS_MEMBER, items_path, mtime)
                ranking = cube.export_ranking(user_id) if isinstance(cube, RankingSource) else None
                if ranking is not None:
                    data = json.dumps(ranking, sort_keys=True).encode()
                    members[RANKING_MEMBER] = _add_bytes(tar, RANKING_MEMBER, data, mtime)
                for i, name in enumerate(chosen, 1):
                    members[name] = _add_file(tar, name, cube.path / name, mtime)
                    if progress:
                        progress("caches and adapters", i, len(chosen))
                m = cube.manifest
                manifest = ArchiveManifest(
                    mip_version=MIP_VERSION,
                    producer={"name": PRODUCER, "version": _producer_version()},
                    created_at=utcnow(),
                    cube_id=m.cube_id,
                    owner=m.owner,
                    embedder_id=m.embedder_id,
                    embedding_dimension=m.embedding_dimension,
                    item_schema_version=ITEM_SCHEMA_VERSION,
                    scope_user_id=user_id,
                    counts={
                        "items": n_items,
                        "versions": n_versions,
                        "users": len(users),
                        "activation_files": sum(1 for c in chosen if c.startswith("activation/")),
                        "adapter_files": sum(1 for c in chosen if c.startswith("adapters/")),
                    },
                    members=members,
                    **dict(manifest_extra or {}),
                )
                manifest_bytes = (manifest.model_dump_json(indent=2) + "\n").encode()
                _add_bytes(tar, MANIFEST_MEMBER, manifest_bytes, mtime)
                if signer is not None:
                    _add_bytes(tar, SIGNATURE_MEMBER, sign_manifest(manifest_bytes, signer), mtime)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)
    sha = hashlib.sha256()
    with open(target, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            sha.update(chunk)
    return ExportReport(
        path=str(target),
        cube_id=cube.cube_id,
        user_id=user_id,
        items=n_items,
        versions=n_versions,
        users=len(users),
        activation_files=manifest.counts["activation_files"],
        adapter_files=manifest.counts["adapter_files"],
        bytes=target.stat().st_size,
        sha256=sha.hexdigest(),
        signed=signer is not None,
        key_id=key_id(signer.public_key()) if signer is not None else None,
        skipped_files=report_skipped,
        ranking_profiles=len(ranking["users"]) if ranking is not None else 0,
    )


def _producer_version() -> str:
    try:
        from importlib.metadata import version

        return version("memos-integrations")
    except Exception:  # not installed as a distribution (e.g. a source checkout on sys.path)
        return "unknown"
