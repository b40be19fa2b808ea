"""Ed25519 signing of MIP archives (via ``cryptography``).

The signature covers the exact bytes of ``mip.json``, which lists the SHA-256 of every other
member, so one signature vouches for the whole archive.

Example:
    >>> key = generate_signing_key()
    >>> sig = sign_manifest(b'{"mip_version": "1.0"}', key)
    >>> verify_signature(b'{"mip_version": "1.0"}', sig, [public_key_of(key)]).verified
    True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from memcube.errors import InvalidInputError, MalformedArchiveError, SignatureError

ALGORITHM = "ed25519"

PrivateKeyLike = Ed25519PrivateKey | bytes | str | Path
PublicKeyLike = Ed25519PublicKey | Ed25519PrivateKey | bytes | str | Path


def generate_signing_key() -> Ed25519PrivateKey:
    """A new Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def _raw_public(pub: Ed25519PublicKey) -> bytes:
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(pub: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(_raw_public(pub)).hexdigest()[:16]


def _decode_text_key(text: str) -> bytes | None:
    text = text.strip()
    if text.startswith("ed25519:"):
        text = text[len("ed25519:") :]
    for decode in (bytes.fromhex, lambda s: base64.b64decode(s, validate=True)):
        try:
            raw = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(raw) == 32:
            return raw
    return None


def _key_bytes(key: bytes | str | Path) -> bytes:
    if isinstance(key, Path) or (isinstance(key, str) and os.path.isfile(key)):
        try:
            return Path(key).read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"cannot read key file {key}: {exc}.") from None
    if isinstance(key, str):
        raw = _decode_text_key(key)
        if raw is not None:
            return raw
        return key.encode()
    return bytes(key)


def load_private_key(key: PrivateKeyLike) -> Ed25519PrivateKey:
    """An Ed25519 private key from a key object, 32 raw bytes, PEM bytes or a PEM file path."""
    if isinstance(key, Ed25519PrivateKey):
        return key
    data = _key_bytes(key)
    if len(data) == 32:
        return Ed25519PrivateKey.from_private_bytes(data)
    try:
        loaded = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"signing_key is not an unencrypted Ed25519 PEM key or 32 raw bytes ({exc}). "
            "Create one with `memcube keygen KEYFILE`."
        ) from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise InvalidInputError("signing_key must be an Ed25519 key (MIP signs with Ed25519 only).")
    return loaded


def load_public_key(key: PublicKeyLike) -> Ed25519PublicKey:
    """An Ed25519 public key from a key object (public or private), 32 raw bytes, a hex/base64
    string, PEM bytes or a PEM file path."""
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    data = _key_bytes(key)
    if len(data) == 32:
        return Ed25519PublicKey.from_public_bytes(data)
    text = data.decode("utf-8", "replace")
    raw = _decode_text_key(text) if "-----BEGIN" not in text else None
    if raw is not None:
        return Ed25519PublicKey.from_public_bytes(raw)
    try:
        loaded: Any = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        try:
            loaded = serialization.load_pem_private_key(data, password=None).public_key()
        except (ValueError, TypeError) as exc:
            raise InvalidInputError(
                f"trusted key is not an Ed25519 public key (PEM, 32 raw bytes, hex or base64): {exc}."
            ) from None
    if not isinstance(loaded, Ed25519PublicKey):
        raise InvalidInputError("trusted keys must be Ed25519 public keys.")
    return loaded


def public_key_of(key: PrivateKeyLike) -> Ed25519PublicKey:
    """The public half of a signing key."""
    return load_private_key(key).public_key()


def save_keypair(key: Ed25519PrivateKey, path: str | Path) -> tuple[Path, Path]:
    """Write ``path`` (private key, PEM, mode 0600) and ``path.pub`` (public key, PEM)."""
    priv_path = Path(path)
    pub_path = priv_path.with_name(priv_path.name + ".pub")
    if priv_path.exists() or pub_path.exists():
        raise InvalidInputError(f"{priv_path} or {pub_path} already exists; choose another name.")
    priv_path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(priv_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return priv_path, pub_path


def sign_manifest(manifest_bytes: bytes, key: PrivateKeyLike) -> bytes:
    """The ``mip.sig`` member for ``manifest_bytes``."""
    private = load_private_key(key)
    pub = private.public_key()
    doc = {
        "algorithm": ALGORITHM,
        "signed_member": "mip.json",
        "key_id": key_id(pub),
        "public_key": base64.b64encode(_raw_public(pub)).decode(),
        "signature": base64.b64encode(private.sign(manifest_bytes)).decode(),
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


@dataclass(frozen=True)
class SignatureCheck:
    """Outcome of checking an archive's signature."""

    signed: bool
    verified: bool
    key_id: str | None = None

    @property
    def status(self) -> str:
        if not self.signed:
            return "unsigned"
        return "verified" if self.verified else "signed, not checked against trusted keys"


def verify_signature(
    manifest_bytes: bytes,
    signature_bytes: bytes | None,
    trusted_keys: Iterable[PublicKeyLike] | None,
) -> SignatureCheck:
    """Check ``mip.sig`` against ``mip.json``.

    With ``trusted_keys`` the archive must be signed by one of them. Without, a present signature
    must still verify against the key it names (catching a damaged manifest), but it proves
    nothing about who made the archive, and the result says so.

    Raises:
        SignatureError: unsigned archive when keys were given, unknown key, or a bad signature.
        MalformedArchiveError: ``mip.sig`` cannot be parsed.
    """
    trusted = None if trusted_keys is None else [load_public_key(k) for k in trusted_keys]
    if trusted is not None and not trusted:
        raise InvalidInputError("trusted_keys is empty; pass at least one key or None.")
    if signature_bytes is None:
        if trusted is not None:
            raise SignatureError(
                "the archive is not signed, but trusted_keys were given. Ask its producer for a "
                "signed export (`memcube export --sign KEY`), or import without trusted keys."
            )
        return SignatureCheck(signed=False, verified=False)
    try:
        doc = json.loads(signature_bytes.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("algorithm") != ALGORITHM:
            raise ValueError(f"algorithm must be {ALGORITHM!r}")
        raw_pub = base64.b64decode(doc["public_key"], validate=True)
        sig = base64.b64decode(doc["signature"], validate=True)
        pub = Ed25519PublicKey.from_public_bytes(raw_pub)
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise MalformedArchiveError(
            f"mip.sig is not a valid Ed25519 signature record ({exc})."
        ) from None
    if trusted is not None and raw_pub not in {_raw_public(k) for k in trusted}:
        raise SignatureError(
            f"the archive was signed by key {key_id(pub)}, which is not among the trusted keys. "
            "Add the producer's public key to trusted_keys if you trust it."
        )
    try:
        pub.verify(sig, manifest_bytes)
    except InvalidSignature:
        raise SignatureError(
            "the archive's signature does not match its manifest: it was altered after signing. "
            "Do not import it; ask for a fresh export."
        ) from None
    return SignatureCheck(signed=True, verified=trusted is not None, key_id=key_id(pub))
