"""The Memory Interchange Protocol (MIP): portable, verifiable cubes, and imports from other
memory systems.

Export a cube (items with full history and provenance, KV caches and adapters as safetensors
with their manifests, a SHA-256 manifest, optionally an Ed25519 signature) into one archive, and
import it anywhere, re-embedding when the target uses another embedder and attaching caches and
adapters only to the model they were built for.

Example:
    >>> import tempfile, pathlib
    >>> from memcube import MemCube
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> key = generate_signing_key()
    >>> with MemCube.open(d / "a") as cube:
    ...     _ = cube.add("Ana likes green tea", user_id="ana")
    ...     _ = cube.export(d / "a.mip.tar.gz", signing_key=key)
    >>> target, report = MemCube.import_archive(
    ...     d / "a.mip.tar.gz", into=d / "b", trusted_keys=[public_key_of(key)])
    >>> report.added, report.signature
    (1, 'verified')
    >>> target.search("what does ana drink?", user_id="ana", k=1)[0].item.content
    'Ana likes green tea'
    >>> target.close()
"""

import os
from collections.abc import Iterable

from memcube.interchange.compat import RULES, Decision, decide
from memcube.interchange.export import ExportReport, export_cube
from memcube.interchange.foreign import (
    FORMATS,
    ForeignBundle,
    detect_format,
    read_foreign,
    read_langgraph,
    read_mem0,
    read_memos,
)
from memcube.interchange.format import (
    ARCHIVE_SUFFIX,
    ITEM_SCHEMA_VERSION,
    MIP_VERSION,
    ArchiveManifest,
    ImportLimits,
    member_kind,
)
from memcube.interchange.importer import (
    ON_CONFLICT,
    DroppedPayload,
    ImportReport,
    import_archive,
    import_staged,
)
from memcube.interchange.payloads import find_fingerprint, fingerprint_digest
from memcube.interchange.reader import StagedArchive, read_archive
from memcube.interchange.rematerialize import REMATERIALIZE, Rematerialization
from memcube.interchange.signing import (
    PublicKeyLike,
    SignatureCheck,
    generate_signing_key,
    key_id,
    load_private_key,
    load_public_key,
    public_key_of,
    save_keypair,
)


def verify_archive(
    path: str | os.PathLike[str],
    *,
    trusted_keys: Iterable[PublicKeyLike] | None = None,
    limits: ImportLimits | None = None,
) -> ArchiveManifest:
    """Check an archive completely (checksums, signature, every record) without importing it.

    Returns its manifest; raises the same typed errors as an import.
    """
    with read_archive(path, trusted_keys=trusted_keys, limits=limits or ImportLimits()) as staged:
        return staged.manifest


__all__ = [
    "ARCHIVE_SUFFIX",
    "FORMATS",
    "ITEM_SCHEMA_VERSION",
    "MIP_VERSION",
    "ON_CONFLICT",
    "REMATERIALIZE",
    "RULES",
    "ArchiveManifest",
    "Decision",
    "DroppedPayload",
    "ExportReport",
    "ForeignBundle",
    "ImportLimits",
    "ImportReport",
    "Rematerialization",
    "SignatureCheck",
    "StagedArchive",
    "decide",
    "detect_format",
    "export_cube",
    "find_fingerprint",
    "fingerprint_digest",
    "generate_signing_key",
    "import_archive",
    "import_staged",
    "key_id",
    "load_private_key",
    "load_public_key",
    "member_kind",
    "public_key_of",
    "read_archive",
    "read_foreign",
    "read_langgraph",
    "read_mem0",
    "read_memos",
    "save_keypair",
    "verify_archive",
]
