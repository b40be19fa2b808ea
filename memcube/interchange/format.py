"""The Memory Interchange Protocol (MIP) archive format: member names, manifest and limits.

A MIP archive is one gzip-compressed tar file holding only regular files:

``items.jsonl``
    one JSON object per memory, ``{"id": ..., "versions": [v1, ..., current]}``; each version is a
    complete :class:`~memcube.items.MemoryItem` (header, payload and provenance), oldest first.
``activation/**.safetensors|json`` and ``adapters/**.safetensors|json``
    KV caches and LoRA adapters exactly as they sit in the cube folder: tensors as safetensors,
    their manifests (with the model fingerprint) as JSON. No other file type is ever carried.
``ranking.json`` (optional)
    the ranking profiles learned from feedback (:mod:`memcube.plaintext.ranking_profile`): plain
    JSON weights, vote tallies and the words of voted queries, validated and clipped on import.
``mip.json``
    the manifest: MIP version, producer, cube id, embedder id, item schema version, counts and the
    SHA-256 and size of every other member. Written last, so a reader checks it after streaming.
``mip.sig`` (optional)
    an Ed25519 signature of the exact bytes of ``mip.json``; since the manifest carries every
    member's digest, the signature covers the whole archive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memcube.errors import (
    MalformedArchiveError,
    UnexpectedMemberError,
    UnsafeArchiveError,
    UnsupportedArchiveVersionError,
)

#: ``major.minor``: a reader accepts any minor version of its major version and refuses a newer major.
MIP_VERSION = "1.0"
#: Version of the item records in ``items.jsonl`` (the :class:`MemoryItem` JSON schema).
ITEM_SCHEMA_VERSION = "1.0"
PRODUCER = "memos-integrations"

MANIFEST_MEMBER = "mip.json"
SIGNATURE_MEMBER = "mip.sig"
ITEMS_MEMBER = "items.jsonl"
RANKING_MEMBER = "ranking.json"
ACTIVATION_DIR = "activation"
ADAPTERS_DIR = "adapters"
PAYLOAD_DIRS = (ACTIVATION_DIR, ADAPTERS_DIR)
#: The only file types carried for caches and adapters: tensors and their JSON manifests.
PAYLOAD_SUFFIXES = (".safetensors", ".json")
#: Deepest payload path accepted, e.g. ``adapters/alice/v3/adapter.safetensors`` is 4.
MAX_PAYLOAD_DEPTH = 8
ARCHIVE_SUFFIX = ".mip.tar.gz"

# One path component: starts with a letter or digit (so never "." or ".." or hidden), then a
# conservative set of characters. Anything else is not part of the protocol.
_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+=,-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

MiB = 1 << 20
GiB = 1 << 30


@dataclass(frozen=True)
class ImportLimits:
    """Upper bounds an importer enforces before it trusts anything in an archive.

    Example:
        >>> ImportLimits(max_member_bytes=1 << 20).max_member_bytes
        1048576
    """

    max_members: int = 10_000
    max_manifest_bytes: int = 32 * MiB
    max_items_bytes: int = 2 * GiB
    max_line_bytes: int = 16 * MiB
    max_member_bytes: int = 8 * GiB
    max_total_bytes: int = 32 * GiB
    max_items: int = 5_000_000
    max_versions_per_item: int = 10_000


DEFAULT_LIMITS = ImportLimits()


def member_kind(name: str) -> str:
    """Classify an archive member name, or raise if the protocol does not allow it.

    Returns ``"manifest"``, ``"signature"``, ``"items"``, ``"activation"`` or ``"adapters"``.

    Raises:
        UnsafeArchiveError: absolute paths, ``..`` components, backslashes or NUL bytes.
        UnexpectedMemberError: any other name the protocol does not define.

    Example:
        >>> member_kind("adapters/alice/v1/adapter_model.safetensors")
        'adapters'
    """
    if not isinstance(name, str) or not name:
        raise UnexpectedMemberError("an archive member has an empty name.")
    if "\x00" in name or "\\" in name:
        raise UnsafeArchiveError(
            f"member {name!r} contains a NUL byte or a backslash; refusing it."
        )
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnsafeArchiveError(f"member {name!r} has an absolute path; refusing the archive.")
    parts = name.split("/")
    if ".." in parts:
        raise UnsafeArchiveError(
            f"member {name!r} climbs out of the archive with '..'; refusing it."
        )
    if name == MANIFEST_MEMBER:
        return "manifest"
    if name == SIGNATURE_MEMBER:
        return "signature"
    if name == ITEMS_MEMBER:
        return "items"
    if name == RANKING_MEMBER:
        return "ranking"
    if (
        parts[0] in PAYLOAD_DIRS
        and 2 <= len(parts) <= MAX_PAYLOAD_DEPTH
        and all(_COMPONENT.match(p) for p in parts[1:])
        and parts[-1].endswith(PAYLOAD_SUFFIXES)
    ):
        return parts[0]
    raise UnexpectedMemberError(
        f"member {name!r} is not part of a MIP archive (allowed: {MANIFEST_MEMBER}, "
        f"{SIGNATURE_MEMBER}, {ITEMS_MEMBER}, {RANKING_MEMBER}, activation/ and adapters/ "
        "*.safetensors or *.json)."
    )


class MemberEntry(BaseModel):
    """Digest and size of one archive member, as listed in the manifest."""

    model_config = ConfigDict(extra="forbid")

    sha256: str = Field(pattern=_SHA256.pattern)
    size: int = Field(ge=0)


class ArchiveManifest(BaseModel):
    """``mip.json``: what an archive holds and how to check it.

    Example:
        >>> m = ArchiveManifest(cube_id="c1", embedder_id="e", embedding_dimension=4)
        >>> m.mip_version
        '1.0'
    """

    # A newer minor version may add fields; keep them rather than refuse the archive.
    model_config = ConfigDict(extra="allow")

    mip_version: str = MIP_VERSION
    producer: dict[str, Any] = Field(default_factory=lambda: {"name": PRODUCER})
    created_at: datetime | None = None
    cube_id: str
    owner: str | None = None
    embedder_id: str
    embedding_dimension: int = Field(gt=0)
    item_schema_version: str = ITEM_SCHEMA_VERSION
    scope_user_id: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    members: dict[str, MemberEntry] = Field(default_factory=dict)


def _major(version: Any, what: str) -> int:
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        raise MalformedArchiveError(f"{what} {version!r} is not 'major.minor'.") from None
    if major < 0:
        raise MalformedArchiveError(f"{what} {version!r} is not 'major.minor'.")
    return major


def parse_manifest(raw: Any) -> ArchiveManifest:
    """Validate a decoded ``mip.json``; refuses a newer MIP or item-schema major version."""
    if not isinstance(raw, dict):
        raise MalformedArchiveError(f"{MANIFEST_MEMBER} must hold a JSON object.")
    if "mip_version" not in raw:
        raise MalformedArchiveError(
            f"{MANIFEST_MEMBER} has no mip_version; this is not a MIP archive."
        )
    if _major(raw["mip_version"], "mip_version") > _major(MIP_VERSION, "mip_version"):
        raise UnsupportedArchiveVersionError(
            f"the archive uses MIP {raw['mip_version']}; this memcube reads MIP {MIP_VERSION}. "
            "Upgrade memos-integrations to import it."
        )
    schema = raw.get("item_schema_version", ITEM_SCHEMA_VERSION)
    if _major(schema, "item_schema_version") > _major(ITEM_SCHEMA_VERSION, "item_schema_version"):
        raise UnsupportedArchiveVersionError(
            f"the archive's items use schema {schema}; this memcube reads {ITEM_SCHEMA_VERSION}. "
            "Upgrade memos-integrations to import it."
        )
    try:
        manifest = ArchiveManifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        raise MalformedArchiveError(
            f"{MANIFEST_MEMBER} is invalid at {loc!r}: {first['msg']}."
        ) from None
    for name in manifest.members:
        if member_kind(name) in ("manifest", "signature"):
            raise MalformedArchiveError(
                f"{MANIFEST_MEMBER} must not list {name!r} among its members."
            )
    return manifest
