"""Turning a MIP archive into OCI layers and back (see :mod:`memcube.marketplace.media`).

Example:
    >>> import tempfile, pathlib
    >>> from memcube import MemCube
    >>> from memcube.interchange import export_cube
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with MemCube.open(d / "cube") as cube:
    ...     _ = cube.add("Ana likes green tea", user_id="ana")
    ...     _ = export_cube(cube, d / "a.mip.tar", compress=False)
    >>> [layer.name for layer in split_archive(d / "a.mip.tar", d / "layers")]
    ['items.jsonl', 'mip.json']
"""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memcube.errors import (
    ArtifactTooLargeError,
    MalformedArchiveError,
    NotACubeArtifactError,
    UnexpectedMemberError,
)
from memcube.interchange.format import ITEMS_MEMBER, MANIFEST_MEMBER, SIGNATURE_MEMBER, member_kind
from memcube.marketplace import media
from memcube.marketplace.reference import is_digest

_CHUNK = 1 << 20


@dataclass(frozen=True)
class Layer:
    """One archive member as an OCI layer."""

    name: str
    digest: str
    size: int
    media_type: str
    path: Path | None = None

    def descriptor(self) -> dict[str, Any]:
        return {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
            "annotations": {media.TITLE: self.name},
        }


def _order(name: str) -> tuple[int, str]:
    kind = member_kind(name)
    rank = {"items": 0, "manifest": 2, "signature": 3}.get(kind, 1)
    return rank, name


def split_archive(archive: Path, out_dir: Path) -> list[Layer]:
    """Write each member of an (uncompressed) MIP tar to ``out_dir`` and describe it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    layers: list[Layer] = []
    with tarfile.open(archive, mode="r:") as tar:
        for index, member in enumerate(tar):
            member_kind(member.name)
            if not member.isfile():
                raise MalformedArchiveError(f"member {member.name!r} is not a regular file.")
            fh = tar.extractfile(member)
            if fh is None:  # pragma: no cover - regular files always have data
                raise MalformedArchiveError(f"member {member.name!r} has no data.")
            path = out_dir / f"layer{index:06d}"
            sha = hashlib.sha256()
            with open(path, "wb") as out:
                while chunk := fh.read(_CHUNK):
                    sha.update(chunk)
                    out.write(chunk)
            layers.append(
                Layer(
                    name=member.name,
                    digest="sha256:" + sha.hexdigest(),
                    size=member.size,
                    media_type=media.layer_media_type(member.name),
                    path=path,
                )
            )
    return sorted(layers, key=lambda layer: _order(layer.name))


def build_manifest(
    layers: Sequence[Layer],
    *,
    artifact_type: str,
    annotations: Mapping[str, str],
    subject: Mapping[str, Any] | None = None,
) -> bytes:
    """The OCI image manifest (exact bytes) of an artifact made of ``layers``."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": media.OCI_EMPTY, "digest": media.EMPTY_DIGEST, "size": 2},
        "layers": [layer.descriptor() for layer in layers],
    }
    if subject is not None:
        doc["subject"] = dict(subject)
    doc["annotations"] = dict(annotations)
    return json.dumps(doc, indent=2, sort_keys=False).encode()


@dataclass(frozen=True)
class ArtifactManifest:
    """A parsed, checked manifest of a published cube or delta."""

    digest: str
    raw: bytes
    artifact_type: str
    layers: tuple[Layer, ...]
    annotations: dict[str, str]
    subject: str | None

    @property
    def is_delta(self) -> bool:
        return self.artifact_type == media.DELTA_ARTIFACT

    @property
    def total_size(self) -> int:
        return sum(layer.size for layer in self.layers)

    def layer(self, name: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.name == name), None)


def _str_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise MalformedArchiveError(f"the manifest's {what} must map strings to strings.")
    return dict(value)


def parse_artifact_manifest(
    raw: bytes, digest: str, *, allowed: Sequence[str] = media.CUBE_ARTIFACTS
) -> ArtifactManifest:
    """Check an OCI manifest is a cube (or delta, or revocation list) artifact whose layers are
    MIP members, each named once.

    Raises:
        NotACubeArtifactError: another artifact type, or an image.
        MalformedArchiveError: not a valid OCI manifest.
        UnexpectedMemberError: a layer names no member, a member outside MIP, or one twice.
    """
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedArchiveError(f"the manifest is not JSON: {exc}.") from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise MalformedArchiveError("the manifest is not an OCI image manifest (schemaVersion 2).")
    kind = doc.get("artifactType")
    if kind not in allowed:
        raise NotACubeArtifactError(
            f"the artifact's type is {kind!r}, not one of {tuple(allowed)}: it is not a "
            "published memory cube."
        )
    layers_raw = doc.get("layers")
    if not isinstance(layers_raw, list) or not layers_raw:
        raise MalformedArchiveError("the manifest lists no layers.")
    layers: list[Layer] = []
    seen: set[str] = set()
    for entry in layers_raw:
        if not isinstance(entry, dict):
            raise MalformedArchiveError("a layer descriptor is not an object.")
        notes = _str_map(entry.get("annotations"), "layer annotations")
        name = notes.get(media.TITLE)
        dig, size, mt = entry.get("digest"), entry.get("size"), entry.get("mediaType")
        if not isinstance(dig, str) or not is_digest(dig):
            raise MalformedArchiveError(f"layer {name!r} has no sha256 digest.")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise MalformedArchiveError(f"layer {name!r} has no valid size.")
        if name is None:
            raise UnexpectedMemberError("a layer does not name its archive member (title).")
        if kind != media.REVOCATIONS_ARTIFACT:
            member_kind(name)
            if mt != media.layer_media_type(name):
                raise UnexpectedMemberError(
                    f"layer {name!r} has media type {mt!r}, not {media.layer_media_type(name)!r}."
                )
        if name in seen:
            raise UnexpectedMemberError(f"layer {name!r} appears twice.")
        seen.add(name)
        layers.append(Layer(name=name, digest=dig, size=size, media_type=str(mt)))
    if kind != media.REVOCATIONS_ARTIFACT and MANIFEST_MEMBER not in seen:
        raise MalformedArchiveError(f"the artifact has no {MANIFEST_MEMBER} layer.")
    subject = doc.get("subject")
    subject_digest = None
    if subject is not None:
        if not isinstance(subject, dict) or not is_digest(str(subject.get("digest", ""))):
            raise MalformedArchiveError("the manifest's subject is not a descriptor.")
        subject_digest = str(subject["digest"])
    if (kind == media.DELTA_ARTIFACT) != (subject_digest is not None):
        raise MalformedArchiveError("a delta needs a subject (its base), and only a delta has one.")
    return ArtifactManifest(
        digest=digest,
        raw=raw,
        artifact_type=str(kind),
        layers=tuple(layers),
        annotations=_str_map(doc.get("annotations"), "annotations"),
        subject=subject_digest,
    )


def check_size(manifest: ArtifactManifest, max_bytes: int) -> None:
    """Refuse an artifact larger than ``max_bytes`` before any layer is downloaded."""
    if manifest.total_size > max_bytes:
        raise ArtifactTooLargeError(
            f"the artifact {manifest.digest[:19]}... is {manifest.total_size} bytes; this pull "
            f"allows {max_bytes} (max_bytes). Nothing was downloaded or applied."
        )


def assemble_archive(files: Mapping[str, Path], dest: Path) -> Path:
    """Write verified layer files back into an uncompressed MIP tar (members in protocol order)."""
    with tarfile.open(dest, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files, key=_order):
            info = tarfile.TarInfo(name)
            info.size = files[name].stat().st_size
            info.mode = 0o644
            with open(files[name], "rb") as fh:
                tar.addfile(info, fh)
    return dest


__all__ = [
    "ITEMS_MEMBER",
    "SIGNATURE_MEMBER",
    "ArtifactManifest",
    "Layer",
    "assemble_archive",
    "build_manifest",
    "check_size",
    "parse_artifact_manifest",
    "split_archive",
]
