"""Where a KV cache or an adapter came from, and how a derived one was made.

Every activation and parametric payload records its :class:`PayloadSource`: the memories (id,
version, content hash) it was built from, the rendered text, a hash of its token ids, the chat
template hash, and for adapters the training recipe. The source is what lets another cube, on
another model, rebuild the payload (:mod:`memcube.interchange.compat`); it sits in the payload's
JSON manifest, so an archive signature covers it.

A payload made on import from another model's payload carries a :class:`Derivation`: the source
payload's digest, both model fingerprints and the method, signed by the importing cube's key
when one was given.

Example:
    >>> src = PayloadSource(user_id="ann", memories=[MemorySource(id="m1", version=2,
    ...                     content_sha256="ab")], text_sha256=text_digest("I live in Porto."))
    >>> src.memory_ids
    ['m1']
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "DERIVATION_METHODS",
    "Derivation",
    "MemorySource",
    "PayloadSource",
    "text_digest",
]

#: How a payload can be derived from one built for another model.
DERIVATION_METHODS = ("recompute", "rebuild", "redistill")
DerivationMethod = Literal["recompute", "rebuild", "redistill"]


def text_digest(text: str) -> str:
    """SHA-256 of text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class MemorySource(BaseModel):
    """One memory a payload was built from, exactly as it was then."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    version: int
    content_sha256: str


class PayloadSource(BaseModel):
    """What a cache or adapter was built from.

    Attributes:
        user_id: whose memories.
        memories: the memories, in block order for a cache.
        text: the rendered memory text a cache covers (the block, without the template head).
        text_sha256: its SHA-256.
        token_ids_sha256: SHA-256 of the token ids (little-endian int64), for caches.
        template_hash: the chat template's hash on the source model.
        token_budget: the activation budget (tokens) the block was chosen for.
        recipe: how an adapter was trained (settings, data generator), JSON.
    """

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = None
    memories: list[MemorySource] = Field(default_factory=list)
    text: str | None = None
    text_sha256: str | None = None
    token_ids_sha256: str | None = None
    template_hash: str | None = None
    token_budget: int | None = None
    recipe: dict[str, Any] = Field(default_factory=dict)

    @property
    def memory_ids(self) -> list[str]:
        return [m.id for m in self.memories]


class Derivation(BaseModel):
    """How a payload was derived from another model's payload on import.

    ``signature`` (Ed25519, base64) covers :meth:`signed_bytes`: every other field and the
    SHA-256 of the derived payload's tensors, so neither can be changed without detection.
    """

    model_config = ConfigDict(extra="forbid")

    method: DerivationMethod
    source_digest: str
    source_fingerprint: str
    target_fingerprint: str
    payload_sha256: str
    derived_at: datetime
    signer_key_id: str | None = None
    public_key: str | None = None
    signature: str | None = None

    def signed_bytes(self) -> bytes:
        """The canonical bytes a derivation signature covers."""
        body = self.model_dump(mode="json", exclude={"signer_key_id", "public_key", "signature"})
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
