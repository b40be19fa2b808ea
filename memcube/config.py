"""The cube manifest, ``<cube path>/cube.json``: what a cube is and which embedder built it."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memcube.atomic import atomic_write_text
from memcube.errors import CorruptManifestError, UnsupportedVersionError
from memcube.items import new_id, utcnow

MANIFEST_NAME = "cube.json"
#: ``major.minor``. A newer minor version opens; a newer major version is refused.
FORMAT_VERSION = "1.0"


class CubeManifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    format_version: str = FORMAT_VERSION
    cube_id: str = Field(default_factory=new_id)
    owner: str | None = None
    embedder_id: str
    embedding_dimension: int = Field(gt=0)
    created_at: datetime = Field(default_factory=utcnow)
    collection_prefix: str = "memcube"

    def write(self, cube_path: Path) -> None:
        atomic_write_text(cube_path / MANIFEST_NAME, self.model_dump_json(indent=2) + "\n")

    @classmethod
    def read(cls, cube_path: Path) -> CubeManifest | None:
        """Return the manifest, ``None`` if there is none, or raise a typed ManifestError."""
        path = cube_path / MANIFEST_NAME
        if not path.exists():
            return None
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptManifestError(
                f"{path} is not valid JSON ({exc}). Restore it from a backup or an export; "
                "the memories themselves are in the chroma/ folder beside it."
            ) from None
        if not isinstance(raw, dict):
            raise CorruptManifestError(f"{path} must hold a JSON object.")
        check_format_version(str(raw.get("format_version", "")), what=str(path))
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise CorruptManifestError(
                f"{path} failed validation: {exc.errors()[0]['msg']}"
            ) from None


def check_format_version(version: str, *, what: str, supported: str = FORMAT_VERSION) -> None:
    try:
        major = int(version.split(".")[0])
    except ValueError:
        raise CorruptManifestError(
            f"{what}: format_version {version!r} is not 'major.minor'."
        ) from None
    if major > int(supported.split(".")[0]):
        raise UnsupportedVersionError(
            f"{what} has format version {version}; this memcube reads {supported}. "
            "Upgrade memos-integrations to open it."
        )
