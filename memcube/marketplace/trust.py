"""Who is trusted to publish, and what has been revoked.

:class:`TrustStore` is a JSON file of publisher public keys (Ed25519, the same keys MIP signs
archives with) and of the revocation authorities whose lists a sync honors. It can be passed
wherever ``trusted_keys`` is expected.

A :class:`RevocationList` names revoked publisher key ids and revoked artifact digests. It is
published as its own OCI artifact (``application/vnd.memcube.revocations.v1``): one JSON layer and
one signature layer made with :func:`memcube.interchange.signing.sign_manifest`, the signature
scheme of MIP archives, checked with :func:`~memcube.interchange.signing.verify_signature`
against the authority keys.

Example:
    >>> import tempfile, pathlib
    >>> from memcube.interchange import generate_signing_key, key_id, public_key_of
    >>> store = TrustStore(pathlib.Path(tempfile.mkdtemp()) / "trust.json")
    >>> pub = public_key_of(generate_signing_key())
    >>> store.add(pub, name="Acme Docs") == key_id(pub)
    True
    >>> [p.name for p in store.publishers()]
    ['Acme Docs']
    >>> len(list(store))  # usable as trusted_keys
    1
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from memcube.atomic import atomic_write_text
from memcube.errors import InvalidInputError, MalformedArchiveError
from memcube.interchange.signing import (
    PrivateKeyLike,
    PublicKeyLike,
    key_id,
    load_public_key,
    sign_manifest,
    verify_signature,
)
from memcube.items import utcnow
from memcube.marketplace.reference import is_digest

REVOCATIONS_KIND = "memcube-revocations"


def public_key_text(key: PublicKeyLike) -> str:
    """``ed25519:<base64>`` of a public key (what a trust store and a subscription record)."""
    raw = load_public_key(key).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return "ed25519:" + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Publisher:
    """One trusted publisher key."""

    key_id: str
    public_key: str
    name: str | None = None
    authority: bool = False


class TrustStore:
    """Trusted publisher keys and revocation authorities, kept in a JSON file (written
    atomically). Iterating yields the publisher keys, so a store is a ``trusted_keys`` value."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self._entries: dict[str, Publisher] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            entries = doc["keys"]
            for raw in entries:
                pub = Publisher(
                    key_id=key_id(load_public_key(raw["public_key"])),
                    public_key=str(raw["public_key"]),
                    name=raw.get("name"),
                    authority=bool(raw.get("authority", False)),
                )
                self._entries[pub.key_id] = pub
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InvalidInputError(f"the trust store {self.path} is unreadable: {exc}.") from None

    def _save(self) -> None:
        doc = {"keys": [p.__dict__ for p in sorted(self._entries.values(), key=lambda p: p.key_id)]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(doc, indent=2) + "\n")

    def add(self, key: PublicKeyLike, *, name: str | None = None, authority: bool = False) -> str:
        """Trust ``key`` (as a publisher, or with ``authority=True`` as a signer of revocation
        lists); returns its key id."""
        pub = load_public_key(key)
        kid = key_id(pub)
        self._entries[kid] = Publisher(kid, public_key_text(pub), name, authority)
        self._save()
        return kid

    def remove(self, kid: str) -> bool:
        """Stop trusting a key id; ``False`` if it was not trusted."""
        gone = self._entries.pop(kid, None) is not None
        if gone:
            self._save()
        return gone

    def publishers(self) -> list[Publisher]:
        return [p for p in self._entries.values() if not p.authority]

    def authorities(self) -> list[Ed25519PublicKey]:
        return [load_public_key(p.public_key) for p in self._entries.values() if p.authority]

    def name_of(self, kid: str) -> str | None:
        entry = self._entries.get(kid)
        return entry.name if entry else None

    def __iter__(self) -> Iterator[Ed25519PublicKey]:
        return iter([load_public_key(p.public_key) for p in self.publishers()])


@dataclass(frozen=True)
class RevocationList:
    """Revoked publisher key ids and artifact (manifest) digests."""

    keys: frozenset[str] = frozenset()
    digests: frozenset[str] = frozenset()
    issued_at: datetime | None = None
    reasons: dict[str, str] = field(default_factory=dict)

    def revoked_key(self, kid: str | None) -> bool:
        return kid is not None and kid in self.keys

    def revoked_digest(self, digest: str) -> bool:
        return digest in self.digests

    def to_bytes(self) -> bytes:
        doc = {
            "kind": REVOCATIONS_KIND,
            "issued_at": (self.issued_at or utcnow()).isoformat(),
            "keys": sorted(self.keys),
            "digests": sorted(self.digests),
            "reasons": dict(sorted(self.reasons.items())),
        }
        return (json.dumps(doc, indent=2) + "\n").encode()

    def sign(self, key: PrivateKeyLike) -> tuple[bytes, bytes]:
        """The list's bytes and their signature record (MIP's ``mip.sig`` format)."""
        data = self.to_bytes()
        return data, sign_manifest(data, key)

    @classmethod
    def verified(
        cls, data: bytes, signature: bytes, authorities: Iterable[PublicKeyLike]
    ) -> RevocationList:
        """Parse a list after checking its signature against the authority keys.

        Raises:
            SignatureError: not signed by an authority, or altered.
            MalformedArchiveError: not a revocation list.
        """
        verify_signature(data, signature, list(authorities))
        try:
            doc: Any = json.loads(data)
            if not isinstance(doc, dict) or doc.get("kind") != REVOCATIONS_KIND:
                raise ValueError("kind is not memcube-revocations")
            keys = frozenset(str(k) for k in doc.get("keys", []))
            digests = frozenset(str(d) for d in doc.get("digests", []))
            if not all(is_digest(d) for d in digests):
                raise ValueError("a digest is not sha256:<hex>")
            issued = doc.get("issued_at")
            reasons = {str(k): str(v) for k, v in dict(doc.get("reasons", {})).items()}
            return cls(keys, digests, datetime.fromisoformat(issued) if issued else None, reasons)
        except (ValueError, TypeError) as exc:
            raise MalformedArchiveError(f"the revocation list is malformed: {exc}.") from None


__all__ = ["Publisher", "RevocationList", "TrustStore", "public_key_text"]
