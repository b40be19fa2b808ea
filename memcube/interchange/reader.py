"""Reading a MIP archive without trusting it.

Every check happens before anything is written anywhere but a private staging folder: member
names and types, sizes, the manifest and its version, the signature, every member's SHA-256 and
every memory record. Only a :class:`StagedArchive` that passed all of them reaches a cube.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from memcube.errors import (
    ArchiveTooLargeError,
    ChecksumMismatchError,
    MalformedArchiveError,
    UnexpectedMemberError,
    UnsafeArchiveError,
)
from memcube.interchange.format import (
    DEFAULT_LIMITS,
    ITEMS_MEMBER,
    MANIFEST_MEMBER,
    RANKING_MEMBER,
    ArchiveManifest,
    ImportLimits,
    member_kind,
    parse_manifest,
)
from memcube.interchange.payloads import PayloadUnit, group_units
from memcube.interchange.signing import PublicKeyLike, SignatureCheck, verify_signature
from memcube.items import MemoryItem

_CHUNK = 1 << 20


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(data: bytes | str, what: str) -> Any:
    """``json.loads`` that refuses NaN/Infinity and reports any failure as malformed input."""
    try:
        return json.loads(data, parse_constant=_reject_constant)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise MalformedArchiveError(f"{what} is not valid JSON: {exc}.") from None


def _validate_version(raw: Any, where: str) -> MemoryItem:
    if not isinstance(raw, dict):
        raise MalformedArchiveError(f"{where}: each version must be a JSON object.")
    try:
        return MemoryItem.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        raise MalformedArchiveError(f"{where}: invalid {loc or 'item'}: {first['msg']}.") from None
    except (ValueError, TypeError) as exc:  # typed errors raised inside validators
        raise MalformedArchiveError(f"{where}: {exc}") from None


def check_record(versions: Sequence[MemoryItem], where: str, limits: ImportLimits) -> None:
    """One memory's versions must share id and owner, with strictly rising version numbers."""
    if not versions:
        raise MalformedArchiveError(f"{where}: a memory needs at least one version.")
    if len(versions) > limits.max_versions_per_item:
        raise ArchiveTooLargeError(
            f"{where}: {len(versions)} versions; the limit is {limits.max_versions_per_item}."
        )
    first = versions[0]
    for prev, cur in zip(versions, versions[1:]):
        if cur.id != first.id or cur.user_id != first.user_id:
            raise MalformedArchiveError(
                f"{where}: all versions of a memory must share id and user_id."
            )
        if cur.version <= prev.version:
            raise MalformedArchiveError(
                f"{where}: versions must be listed oldest first, without repeats."
            )


def check_unique(records: Sequence[Sequence[MemoryItem]]) -> None:
    seen: set[str] = set()
    for versions in records:
        if versions[0].id in seen:
            raise MalformedArchiveError(f"memory id {versions[0].id!r} appears twice.")
        seen.add(versions[0].id)


def parse_items_jsonl(path: Path, limits: ImportLimits) -> list[list[MemoryItem]]:
    """Parse and validate ``items.jsonl``; raises MalformedArchiveError naming the line."""
    records: list[list[MemoryItem]] = []
    with open(path, "rb") as fh:
        lineno = 0
        while True:
            line = fh.readline(limits.max_line_bytes + 1)
            if not line:
                break
            lineno += 1
            where = f"{ITEMS_MEMBER} line {lineno}"
            if len(line) > limits.max_line_bytes:
                raise ArchiveTooLargeError(f"{where} is longer than {limits.max_line_bytes} bytes.")
            if not line.endswith(b"\n"):
                raise MalformedArchiveError(f"{where} is truncated (no final newline).")
            if not line.strip():
                raise MalformedArchiveError(f"{where} is empty; JSONL has one object per line.")
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError:
                raise MalformedArchiveError(f"{where} is not UTF-8.") from None
            raw = loads_strict(text, where)
            if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
                raise MalformedArchiveError(f"{where} must be an object with an 'id' string.")
            if not isinstance(raw.get("versions"), list):
                raise MalformedArchiveError(f"{where} must carry a 'versions' list.")
            versions = [_validate_version(v, where) for v in raw["versions"]]
            check_record(versions, where, limits)
            if versions[0].id != raw["id"]:
                raise MalformedArchiveError(f"{where}: 'id' differs from the versions' id.")
            records.append(versions)
            if len(records) > limits.max_items:
                raise ArchiveTooLargeError(
                    f"the archive holds more than {limits.max_items} memories."
                )
    check_unique(records)
    return records


@dataclass
class StagedArchive:
    """A fully verified archive, unpacked into a private staging folder.

    Use it as a context manager (or call :meth:`cleanup`) to remove the staging folder.
    """

    source: str
    manifest: ArchiveManifest
    records: list[list[MemoryItem]]
    units: list[PayloadUnit]
    signature: SignatureCheck
    staging: Path
    files: dict[str, Path] = field(default_factory=dict)
    #: The ``ranking.json`` document (ranking profiles), parsed but not yet validated.
    ranking: Any = None

    def read_json(self, name: str) -> Any:
        try:
            return json.loads(
                self.files[name].read_text(encoding="utf-8"), parse_constant=_reject_constant
            )
        except (OSError, ValueError, RecursionError):
            return None

    def cleanup(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def __enter__(self) -> StagedArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def _iter_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    while True:
        member = tar.next()
        if member is None:
            return
        yield member


_TAR_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError, UnicodeDecodeError)


def read_archive(
    path: str | os.PathLike[str],
    *,
    trusted_keys: Iterable[PublicKeyLike] | None = None,
    limits: ImportLimits = DEFAULT_LIMITS,
) -> StagedArchive:
    """Verify a MIP archive completely and stage its contents; nothing else is touched.

    Raises:
        MalformedArchiveError: not a tar/gzip file, no or bad manifest, malformed JSONL.
        UnsafeArchiveError: absolute or ``..`` paths, symlinks, hard links, devices.
        UnexpectedMemberError: members outside the protocol, duplicates, unlisted members.
        ArchiveTooLargeError: a member or the whole archive exceeds ``limits``.
        ChecksumMismatchError: a member differs from its manifest digest, or is missing.
        SignatureError: ``trusted_keys`` were given and the signature does not check out.
        UnsupportedArchiveVersionError: written with a newer MIP major version.
    """
    src = Path(path).expanduser()
    if not src.is_file():
        raise MalformedArchiveError(f"{src} is not a file; give the path of a .mip.tar.gz archive.")
    staging = Path(tempfile.mkdtemp(prefix="mip-import-"))
    try:
        return _read(src, staging, trusted_keys, limits)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _read(
    src: Path, staging: Path, trusted_keys: Iterable[PublicKeyLike] | None, limits: ImportLimits
) -> StagedArchive:
    staged: dict[str, Path] = {}
    digests: dict[str, tuple[str, int]] = {}
    total = 0
    try:
        tar = tarfile.open(src, mode="r:*")
    except _TAR_ERRORS as exc:
        raise MalformedArchiveError(f"{src} is not a readable tar/gzip archive ({exc}).") from None
    try:
        with tar:
            for index, member in enumerate(_iter_members(tar)):
                if index >= limits.max_members:
                    raise ArchiveTooLargeError(
                        f"the archive has more than {limits.max_members} members."
                    )
                name = member.name
                kind = member_kind(name)
                if member.issym() or member.islnk():
                    raise UnsafeArchiveError(
                        f"member {name!r} is a link; MIP archives hold regular files only."
                    )
                if not member.isfile():
                    raise UnsafeArchiveError(
                        f"member {name!r} is not a regular file (directory, device or FIFO)."
                    )
                if name in staged:
                    raise UnexpectedMemberError(f"member {name!r} appears twice in the archive.")
                cap = {
                    "manifest": limits.max_manifest_bytes,
                    "signature": limits.max_manifest_bytes,
                    "items": limits.max_items_bytes,
                    "ranking": limits.max_manifest_bytes,
                }.get(kind, limits.max_member_bytes)
                if member.size > cap:
                    raise ArchiveTooLargeError(
                        f"member {name!r} is {member.size} bytes; the limit is {cap}."
                    )
                total += member.size
                if total > limits.max_total_bytes:
                    raise ArchiveTooLargeError(
                        f"the archive unpacks to more than {limits.max_total_bytes} bytes."
                    )
                fh = tar.extractfile(member)
                if fh is None:  # pragma: no cover - isfile() members always have data
                    raise MalformedArchiveError(f"member {name!r} has no data.")
                out_path = staging / f"m{index:06d}"
                sha = hashlib.sha256()
                n = 0
                with open(out_path, "wb") as out:
                    while chunk := fh.read(_CHUNK):
                        n += len(chunk)
                        if n > member.size:
                            raise MalformedArchiveError(
                                f"member {name!r} is longer than its header says."
                            )
                        sha.update(chunk)
                        out.write(chunk)
                if n != member.size:
                    raise MalformedArchiveError(f"member {name!r} is truncated.")
                staged[name] = out_path
                digests[name] = (sha.hexdigest(), n)
    except _TAR_ERRORS as exc:
        raise MalformedArchiveError(
            f"{src} is damaged or not a tar/gzip archive ({exc})."
        ) from None

    if MANIFEST_MEMBER not in staged:
        raise MalformedArchiveError(f"{src} has no {MANIFEST_MEMBER}; it is not a MIP archive.")
    manifest_bytes = staged[MANIFEST_MEMBER].read_bytes()
    manifest = parse_manifest(loads_strict(manifest_bytes, MANIFEST_MEMBER))
    sig_path = staged.get("mip.sig")
    signature = verify_signature(
        manifest_bytes, sig_path.read_bytes() if sig_path else None, trusted_keys
    )
    present = {n for n in staged if member_kind(n) not in ("manifest", "signature")}
    listed = set(manifest.members)
    for name in sorted(present - listed):
        raise UnexpectedMemberError(
            f"member {name!r} is not listed in {MANIFEST_MEMBER}; refusing the archive."
        )
    for name in sorted(listed - present):
        raise ChecksumMismatchError(f"{MANIFEST_MEMBER} lists {name!r}, but the archive lacks it.")
    for name in sorted(listed):
        entry = manifest.members[name]
        digest, size = digests[name]
        if digest != entry.sha256 or size != entry.size:
            raise ChecksumMismatchError(
                f"member {name!r} does not match its SHA-256 in {MANIFEST_MEMBER}: the archive "
                "was altered or damaged. Do not import it; export it again."
            )
    if ITEMS_MEMBER not in staged:
        raise MalformedArchiveError(f"the archive has no {ITEMS_MEMBER}.")
    records = parse_items_jsonl(staged[ITEMS_MEMBER], limits)
    counts = manifest.counts
    n_versions = sum(len(r) for r in records)
    if (
        counts.get("items", len(records)) != len(records)
        or counts.get("versions", n_versions) != n_versions
    ):
        raise MalformedArchiveError(
            f"{MANIFEST_MEMBER} counts {counts.get('items')} memories / {counts.get('versions')} "
            f"versions, but {ITEMS_MEMBER} holds {len(records)} / {n_versions}."
        )
    for versions in records:
        if manifest.scope_user_id is not None and versions[0].user_id != manifest.scope_user_id:
            raise MalformedArchiveError(
                f"memory {versions[0].id!r} belongs to {versions[0].user_id!r}, but the archive "
                f"is scoped to user {manifest.scope_user_id!r}."
            )
    payload = sorted(n for n in present if member_kind(n) in ("activation", "adapters"))
    ranking = None
    if RANKING_MEMBER in staged:
        ranking = loads_strict(staged[RANKING_MEMBER].read_bytes(), RANKING_MEMBER)
    return StagedArchive(
        source=str(src),
        manifest=manifest,
        records=records,
        units=group_units(payload),
        signature=signature,
        staging=staging,
        files=staged,
        ranking=ranking,
    )
