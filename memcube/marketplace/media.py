"""The OCI artifact layout of a published cube: artifact types, layer media types, annotations.

A published cube is an OCI image manifest (``application/vnd.oci.image.manifest.v1+json``)
whose ``artifactType`` says what it is, whose config is the OCI empty descriptor, and whose
layers are the members of a MIP archive, byte for byte (uncompressed): ``items.jsonl``, each KV
cache and adapter file, ``mip.json`` and ``mip.sig``. Each layer names its member in
``org.opencontainers.image.title``. Because a layer *is* the member, its OCI digest is the
SHA-256 that the signed ``mip.json`` lists: the signature covers every layer, and a part that did
not change (a cache, an adapter) has the same digest and is not uploaded again.

A delta is the same layout with its own artifact type and an OCI ``subject`` naming the manifest
it applies on top of (its base); the signed ``mip.json`` names the same base.

Example:
    >>> layer_media_type("activation/ana/prefix.safetensors")
    'application/vnd.memcube.mip.tensors.v1'
"""

from __future__ import annotations

import hashlib

from memcube.interchange.format import member_kind

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_BLOB = b"{}"
EMPTY_DIGEST = "sha256:" + hashlib.sha256(EMPTY_BLOB).hexdigest()

#: A complete cube (or one user's / one topic's part of it).
CUBE_ARTIFACT = "application/vnd.memcube.cube.v1"
#: New and changed memories plus tombstones, on top of the manifest named by ``subject``.
DELTA_ARTIFACT = "application/vnd.memcube.cube.delta.v1"
#: A signed list of revoked publisher keys and artifact digests.
REVOCATIONS_ARTIFACT = "application/vnd.memcube.revocations.v1"
CUBE_ARTIFACTS = (CUBE_ARTIFACT, DELTA_ARTIFACT)

MEDIA_MANIFEST = "application/vnd.memcube.mip.manifest.v1+json"
MEDIA_SIGNATURE = "application/vnd.memcube.mip.signature.v1+json"
MEDIA_ITEMS = "application/vnd.memcube.mip.items.v1+jsonl"
MEDIA_TENSORS = "application/vnd.memcube.mip.tensors.v1"
MEDIA_PAYLOAD_MANIFEST = "application/vnd.memcube.mip.payload-manifest.v1+json"
MEDIA_RANKING = "application/vnd.memcube.mip.ranking.v1+json"
MEDIA_MEMBER = "application/vnd.memcube.mip.member.v1"
MEDIA_REVOCATIONS = "application/vnd.memcube.revocations.v1+json"

# Annotations (the OCI pre-defined keys where one exists).
TITLE = "org.opencontainers.image.title"
DESCRIPTION = "org.opencontainers.image.description"
LICENSES = "org.opencontainers.image.licenses"
CREATED = "org.opencontainers.image.created"
VENDOR = "org.opencontainers.image.vendor"
TERMS = "dev.memcube.terms"
PUBLISHER_KEY = "dev.memcube.publisher.key-id"
ITEMS = "dev.memcube.items"
VERSIONS = "dev.memcube.versions"
USERS = "dev.memcube.users"
EMBEDDER = "dev.memcube.embedder"
FINGERPRINTS = "dev.memcube.model-fingerprints"
MIP_VERSION = "dev.memcube.mip-version"
KIND = "dev.memcube.kind"
SEQUENCE = "dev.memcube.sequence"
BASE = "dev.memcube.base"
CHANGED = "dev.memcube.changed"
TOMBSTONES = "dev.memcube.tombstones"


def layer_media_type(member: str) -> str:
    """The media type of the layer that carries archive member ``member``."""
    kind = member_kind(member)
    if kind == "manifest":
        return MEDIA_MANIFEST
    if kind == "signature":
        return MEDIA_SIGNATURE
    if kind == "items":
        return MEDIA_ITEMS
    if kind in ("activation", "adapters"):
        return MEDIA_TENSORS if member.endswith(".safetensors") else MEDIA_PAYLOAD_MANIFEST
    if kind == "ranking":
        return MEDIA_RANKING
    return MEDIA_MEMBER  # a member a newer MIP minor version defines


__all__ = [
    "BASE",
    "CUBE_ARTIFACT",
    "CUBE_ARTIFACTS",
    "DELTA_ARTIFACT",
    "EMPTY_DIGEST",
    "OCI_MANIFEST",
    "REVOCATIONS_ARTIFACT",
    "layer_media_type",
]
