"""The JSON manifest stored next to every adapter version, and adapter-name rules.

A stored adapter version is a folder ``<cube>/adapters/<name>/v<N>/`` holding exactly three
files: PEFT's ``adapter_config.json`` and ``adapter_model.safetensors`` (so the folder is also a
valid PEFT adapter folder) and ``manifest.json`` (this module). Nothing in it is ever unpickled.

Example:
    >>> from memcube.parametric.manifest import check_adapter_name
    >>> check_adapter_name("alice-facts")
    'alice-facts'
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from memcube.errors import InvalidInputError
from memcube.items import check_metadata, utcnow
from memcube.provenance import Derivation
from memcube.runtime.model import ModelFingerprint

__all__ = [
    "CONFIG_FILE",
    "MANIFEST_FILE",
    "MANIFEST_FORMAT",
    "WEIGHTS_FILE",
    "AdapterManifest",
    "AdapterProvenance",
    "FileDigest",
    "check_adapter_name",
]

#: PEFT's adapter config file name.
CONFIG_FILE = "adapter_config.json"
#: PEFT's safetensors weights file name. ``adapter_model.bin`` (a pickle) is never read.
WEIGHTS_FILE = "adapter_model.safetensors"
#: memcube's manifest file name.
MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def check_adapter_name(name: Any) -> str:
    """Validate an adapter name: 1-64 characters, letters, digits, ``-`` and ``_``, starting with a
    letter or digit (it becomes a folder name and a PEFT module key).

    Raises:
        InvalidInputError: the name is not acceptable.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"adapter names are 1-64 characters of letters, digits, '-' and '_', starting with a "
            f"letter or digit; got {name!r}."
        )
    return name


class FileDigest(BaseModel):
    """Size and SHA-256 of one stored file; checked before the file is used."""

    model_config = ConfigDict(extra="forbid")

    sha256: str
    bytes: int


class AdapterProvenance(BaseModel):
    """What made an adapter: memories (by id and version), data, or an outside PEFT folder.

    Attributes:
        source: ``"peft_folder"``, ``"peft_model"`` or ``"distill"``.
        user_id: whose memories it holds, when it was distilled from memories.
        memory_ids: ids of the memories it was trained on (distillation).
        memory_versions: the version of each of those memories at training time.
        data: free JSON describing the data or training run (steps, loss, origin folder...).
    """

    model_config = ConfigDict(extra="forbid")

    source: str = "peft_folder"
    user_id: str | None = None
    memory_ids: list[str] = Field(default_factory=list)
    memory_versions: dict[str, int] = Field(default_factory=dict)
    data: dict[str, Any] = Field(default_factory=dict)

    @field_validator("data")
    @classmethod
    def _json_data(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_metadata(value)


class AdapterManifest(BaseModel):
    """Everything known about one stored adapter version.

    Example:
        >>> from memcube.runtime.model import ModelFingerprint
        >>> fp = ModelFingerprint(model_id="m", config_hash="a", dtype="torch.float32",
        ...                       tokenizer_hash="b", chat_template_hash="c", weights_hash="d")
        >>> m = AdapterManifest(name="alice", version=1, base_model=fp, rank=8, alpha=16.0,
        ...                     target_modules=["q_proj", "v_proj"])
        >>> m.ref
        'alice@v1'
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    format: int = MANIFEST_FORMAT
    name: str
    version: int = Field(ge=1)
    created_at: datetime = Field(default_factory=utcnow)
    base_model: ModelFingerprint
    peft_type: str = "LORA"
    rank: int = Field(ge=1)
    alpha: float
    target_modules: list[str]
    use_rslora: bool = False
    description: str | None = None
    provenance: AdapterProvenance = Field(default_factory=AdapterProvenance)
    files: dict[str, FileDigest] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    #: Set when the adapter was re-distilled on import from an adapter for another base model.
    derived: Derivation | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_adapter_name(value)

    @field_validator("metadata")
    @classmethod
    def _json_metadata(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_metadata(value)

    @property
    def ref(self) -> str:
        """``name@v<version>``: a readable, unique reference inside one cube."""
        return f"{self.name}@v{self.version}"

    @property
    def scaling(self) -> float:
        """The LoRA scale factor (``alpha / rank``, or ``alpha / sqrt(rank)`` with rsLoRA)."""
        return self.alpha / (self.rank**0.5 if self.use_rslora else self.rank)
