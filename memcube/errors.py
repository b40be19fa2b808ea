"""One exception hierarchy for everything the cube can refuse.

Every error says what went wrong *and* what to do about it. Each subclass also derives from the
closest built-in exception (``ValueError``, ``LookupError``, ``PermissionError``...) so callers
that already catch those keep working.
"""

from __future__ import annotations


class MemCubeError(Exception):
    """Root of every error raised by :mod:`memcube`."""


class InvalidInputError(MemCubeError, ValueError):
    """An argument was rejected before anything was written; the cube is unchanged."""


class EmptyContentError(InvalidInputError):
    """Memory content was empty or only whitespace."""


class ContentTooLargeError(InvalidInputError):
    """Memory content exceeds :data:`memcube.items.MAX_CONTENT_CHARS`."""


class InvalidMetadataError(InvalidInputError):
    """Metadata was not a JSON object of finite JSON values."""


class InvalidFilterError(InvalidInputError):
    """A search or store filter could not be understood."""


class InvalidUserIdError(InvalidInputError):
    """A user, agent or session id was empty, too long or contained control characters."""


class InvalidSettingError(InvalidInputError):
    """A generation setting (at construction or in one call) was refused; nothing was run."""


class ItemNotFoundError(MemCubeError, LookupError):
    """No memory with that id exists (or it is not visible to the caller)."""


class VersionNotFoundError(ItemNotFoundError):
    """The item exists, but not at the requested version."""


class ManifestError(MemCubeError):
    """The cube manifest (``cube.json``) is missing, corrupt or unsupported."""


class CorruptManifestError(ManifestError):
    """``cube.json`` could not be parsed or failed validation."""


class UnsupportedVersionError(ManifestError):
    """The cube (or archive) was written by a newer, incompatible format version."""


class EmbedderMismatchError(MemCubeError):
    """The cube was built with a different embedder than the one it is being opened with."""


class AccessDeniedError(MemCubeError, PermissionError):
    """The acting user may not read or write that memory."""


class FrozenItemError(MemCubeError):
    """The memory is frozen; unfreeze it before updating it."""


class CubeLockedError(MemCubeError):
    """Another process holds the write lock of this embedded cube."""


class CubeClosedError(MemCubeError):
    """The cube was closed; open it again with :meth:`memcube.MemCube.open`."""


class BackendUnavailableError(MemCubeError, ConnectionError):
    """The Chroma backend (usually a server) could not be reached after retrying."""


class ModelMismatchError(MemCubeError):
    """A KV cache or adapter was built for a different model than the one it is loaded into."""


class UnknownModelError(ModelMismatchError):
    """A KV cache or adapter names a model that cannot be identified (no full fingerprint), so no
    compatibility rule can decide how to bring it to another model; nothing was changed."""


class StaleChunkError(MemCubeError, ValueError):
    """A stored KV chunk belongs to another version (or other token ids) of its memory; it is
    never served. Rebuild it from the memory's current text."""


class UnsupportedRopeError(MemCubeError, NotImplementedError):
    """KV blending cannot re-encode positions for this model's rotary embedding (or layout); use
    exact prefix caching or plain text for it."""


class ExtractionError(MemCubeError):
    """A memory extractor produced output that could not be used (the raw turn is still kept)."""


class ArchiveError(MemCubeError):
    """An interchange archive (or a foreign memory export) was refused; nothing was written."""


class MalformedArchiveError(ArchiveError, ValueError):
    """The archive is not a readable MIP archive: bad tar/gzip, bad manifest, malformed JSONL."""


class UnsafeArchiveError(ArchiveError):
    """A member would escape the target (absolute path, ``..``), or is a link or device."""


class UnexpectedMemberError(ArchiveError):
    """The archive holds a member the protocol does not allow, a duplicate, or one the manifest
    does not list."""


class ArchiveTooLargeError(ArchiveError):
    """A member, or the archive as a whole, exceeds the import size limits."""


class ChecksumMismatchError(ArchiveError):
    """A member's SHA-256 or size differs from the manifest: the archive was altered."""


class SignatureError(ArchiveError):
    """The archive's Ed25519 signature is missing, from an untrusted key, or does not verify."""


class UntrustedPayloadError(SignatureError):
    """An import demanded that every cache and adapter be signed by a trusted key, and one is not
    (unsigned archive, or a derived payload without a valid trusted derivation signature)."""


class UnsupportedArchiveVersionError(ArchiveError, UnsupportedVersionError):
    """The archive was written with a newer, incompatible MIP major version."""


class ForeignFormatError(MalformedArchiveError):
    """A MemOS, LangGraph or mem0 export did not have the expected shape."""


class BackendError(MemCubeError):
    """Chroma refused or failed an operation for a reason other than being unreachable (the
    message carries Chroma's own). Nothing acknowledged before it is affected."""


class MarketplaceError(MemCubeError):
    """Publishing to, or pulling and syncing from, an OCI registry was refused or failed; nothing
    was applied to the target cube."""


class InvalidReferenceError(MarketplaceError, InvalidInputError):
    """An ``oci://host/namespace/name:tag`` reference could not be understood."""


class RegistryError(MarketplaceError):
    """The registry answered with an error the client cannot work around."""


class RegistryUnavailableError(RegistryError, ConnectionError):
    """The registry could not be reached, or dropped the connection, after retrying."""


class RegistryAuthError(RegistryError, PermissionError):
    """The registry refused the credentials (or asked for some and none were found)."""


class ArtifactNotFoundError(RegistryError, LookupError):
    """No repository, tag or digest of that name exists in the registry."""


class NotACubeArtifactError(MarketplaceError, ValueError):
    """The artifact is not a memory cube (another artifact type or an image)."""


class ManifestDigestError(ChecksumMismatchError):
    """The registry returned a manifest whose SHA-256 differs from the digest asked for."""


class LayerDigestError(ChecksumMismatchError):
    """A downloaded layer's SHA-256 or size differs from its descriptor: it was tampered with."""


class ArtifactTooLargeError(ArchiveTooLargeError):
    """The artifact (or one of its layers) is larger than the pull's size limit."""


class LicenseNotAcceptedError(MarketplaceError, PermissionError):
    """The cube's license was not among those the caller accepted."""


class RevokedError(SignatureError):
    """The artifact was signed by a revoked key, or its digest is on the revocation list.
    ``revoked_items``: ids of memories already in the cube that came from revoked keys or
    versions (filled in by a sync)."""

    revoked_items: list[str]

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.revoked_items = []


class DeltaBaseError(MarketplaceError):
    """A delta's base version was never applied to the target (or cannot be found)."""


class ChannelMovedError(MarketplaceError):
    """The channel's head is not the version this publisher last saw: sync before publishing."""
