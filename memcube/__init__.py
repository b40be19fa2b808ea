"""MemCube: MemOS-style memory (plaintext, activation, parametric) with no framework attached.

Example:
    >>> import tempfile
    >>> from memcube import MemCube
    >>> cube = MemCube.open(tempfile.mkdtemp())
    >>> _ = cube.add("I'm allergic to peanuts", user_id="alice", memory_type="fact")
    >>> [h.item.content for h in cube.search("food allergies", user_id="alice", k=1)]
    ["I'm allergic to peanuts"]
    >>> cube.close()
"""

from memcube.config import CubeManifest
from memcube.cube import MemCube
from memcube.errors import (
    AccessDeniedError,
    BackendUnavailableError,
    ContentTooLargeError,
    CorruptManifestError,
    CubeClosedError,
    CubeLockedError,
    EmbedderMismatchError,
    EmptyContentError,
    ExtractionError,
    FrozenItemError,
    InvalidFilterError,
    InvalidInputError,
    InvalidMetadataError,
    InvalidSettingError,
    InvalidUserIdError,
    ItemNotFoundError,
    ManifestError,
    MemCubeError,
    ModelMismatchError,
    UnsupportedVersionError,
    VersionNotFoundError,
)
from memcube.extractors import LLMExtractor
from memcube.governance import AuditConfig, AuditEntry, Grant
from memcube.items import (
    MAX_CONTENT_CHARS,
    LifecycleState,
    MemoryItem,
    MemoryType,
    Provenance,
    SearchHit,
    WriteOutcome,
)
from memcube.lifecycle import LifecycleConfig
from memcube.plaintext.embedder import (
    Embedder,
    SentenceTransformerEmbedder,
    default_embedder,
    wrap_embedder,
)
from memcube.plaintext.retrieval import RetrievalConfig
from memcube.prompting import render_memories
from memcube.reader import ReadResult
from memcube.redaction import Redactor
from memcube.scheduler import SchedulerConfig

__all__ = [
    "MAX_CONTENT_CHARS",
    "AccessDeniedError",
    "AuditConfig",
    "AuditEntry",
    "Grant",
    "LLMExtractor",
    "LifecycleConfig",
    "ReadResult",
    "Redactor",
    "SchedulerConfig",
    "BackendUnavailableError",
    "ContentTooLargeError",
    "CorruptManifestError",
    "CubeClosedError",
    "CubeLockedError",
    "CubeManifest",
    "Embedder",
    "EmbedderMismatchError",
    "EmptyContentError",
    "ExtractionError",
    "FrozenItemError",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidMetadataError",
    "InvalidSettingError",
    "InvalidUserIdError",
    "ItemNotFoundError",
    "LifecycleState",
    "ManifestError",
    "MemCube",
    "MemCubeError",
    "MemoryItem",
    "MemoryType",
    "WriteOutcome",
    "ModelMismatchError",
    "Provenance",
    "RetrievalConfig",
    "SearchHit",
    "SentenceTransformerEmbedder",
    "UnsupportedVersionError",
    "VersionNotFoundError",
    "default_embedder",
    "render_memories",
    "wrap_embedder",
]
