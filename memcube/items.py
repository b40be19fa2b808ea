"""The memory unit: a header (who, where from, when, lifecycle, usage) plus a text payload."""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from memcube.errors import (
    ContentTooLargeError,
    EmptyContentError,
    InvalidInputError,
    InvalidMetadataError,
    InvalidUserIdError,
)

#: Longest accepted memory content, in characters. Memories are facts, turns and passages, not
#: whole books: split larger documents before adding them.
MAX_CONTENT_CHARS = 32_000
#: Longest accepted user / agent / session id.
MAX_ID_CHARS = 256
#: Deepest nesting accepted in free metadata.
MAX_METADATA_DEPTH = 8


class MemoryType(str, Enum):
    """What kind of memory an item is."""

    WORKING = "working"
    LONG_TERM = "long_term"
    PROFILE = "profile"
    EPISODIC = "episodic"
    FACT = "fact"
    PREFERENCE = "preference"
    DOCUMENT = "document"


class LifecycleState(str, Enum):
    """Where an item is in its life (MemOS: generated -> activated -> merged -> archived -> frozen)."""

    GENERATED = "generated"
    ACTIVATED = "activated"
    MERGED = "merged"
    ARCHIVED = "archived"
    FROZEN = "frozen"
    EXPIRED = "expired"
    SUPERSEDED = "superseded"


class WriteOutcome(str, Enum):
    """What an add did with the content it was given (:attr:`MemoryItem.outcome` of the item
    an add returns: the memory that now holds the content).

    * ``added``: stored as a new memory;
    * ``replaced``: stored under the caller's id, replacing the memory that had it;
    * ``merged``: it added nothing to an existing memory (the same words, or a paraphrase with
      no new number, date, name or other word of substance), which is returned with the
      newcomer recorded in its provenance (``provenance.detail["merged"]``); its wording stays
      searchable;
    * ``superseded``: a new value of an existing memory's subject: it became that memory's new
      version, the old value is kept in :meth:`~memcube.MemCube.history`;
    * ``outdated``: an older value of a subject than the current one: stored, already
      ``superseded``.
    """

    ADDED = "added"
    REPLACED = "replaced"
    MERGED = "merged"
    SUPERSEDED = "superseded"
    OUTDATED = "outdated"


#: States that a default search skips.
HIDDEN_STATES = frozenset(
    {LifecycleState.ARCHIVED, LifecycleState.EXPIRED, LifecycleState.SUPERSEDED}
)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """Naive datetimes are taken to be UTC; aware ones are converted."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def content_hash(content: str) -> str:
    """Hash used for exact-duplicate detection: whitespace-folded, case-folded SHA-256."""
    folded = " ".join(content.split()).casefold()
    return hashlib.sha256(folded.encode("utf-8")).hexdigest()


def new_id() -> str:
    return uuid.uuid4().hex


def keyed_id(*parts: str) -> str:
    """A deterministic memory id for a composite key, e.g. a LangGraph store's namespace
    labels plus its key: adapters that address memories by key map one key to one memory.

    Example:
        >>> keyed_id("alice", "prefs", "theme") == keyed_id("alice", "prefs", "theme")
        True
        >>> keyed_id("alice", "prefs", "theme") == keyed_id("alice", "prefs.theme")
        False
    """
    if not parts or any(not isinstance(p, str) for p in parts):
        raise InvalidInputError("keyed_id takes one or more strings.")
    return uuid.uuid5(uuid.NAMESPACE_URL, "memcube:" + json.dumps(list(parts))).hex


def is_encodable(text: str) -> bool:
    """False for strings that cannot be stored as UTF-8 (lone surrogates such as ``"\\ud800"``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_scope_id(value: str | None, what: str, *, required: bool = False) -> str | None:
    """Validate a user/agent/session id. Returns it unchanged or raises InvalidUserIdError."""
    if value is None:
        if required:
            raise InvalidUserIdError(f"{what} is required: pass {what}='...' (a non-empty string).")
        return None
    if not isinstance(value, str):
        raise InvalidUserIdError(f"{what} must be a string, got {type(value).__name__}.")
    if not value.strip():
        raise InvalidUserIdError(f"{what} must be a non-empty string.")
    if len(value) > MAX_ID_CHARS:
        raise InvalidUserIdError(f"{what} is {len(value)} characters; the limit is {MAX_ID_CHARS}.")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidUserIdError(f"{what} must not contain control characters.")
    if not is_encodable(value):
        raise InvalidUserIdError(f"{what} contains a lone surrogate and is not valid Unicode text.")
    return value


def _check_json_value(value: Any, path: str, depth: int) -> None:
    if depth > MAX_METADATA_DEPTH:
        raise InvalidMetadataError(
            f"metadata is nested deeper than {MAX_METADATA_DEPTH} at {path!r}."
        )
    if isinstance(value, str) and not is_encodable(value):
        raise InvalidMetadataError(f"metadata value at {path!r} is not valid Unicode text.")
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidMetadataError(
                f"metadata value at {path!r} is {value}; use finite numbers."
            )
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_json_value(v, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str) or not is_encodable(k):
                raise InvalidMetadataError(
                    f"metadata keys must be valid Unicode strings; got {k!r} at {path!r}."
                )
            _check_json_value(v, f"{path}.{k}", depth + 1)
        return
    raise InvalidMetadataError(
        f"metadata value at {path!r} has type {type(value).__name__}; "
        "use JSON values (str, int, float, bool, None, list, dict)."
    )


def check_metadata(metadata: Any) -> dict[str, Any]:
    """Validate free metadata: a dict of finite JSON values with string keys."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidMetadataError(f"metadata must be a dict, got {type(metadata).__name__}.")
    _check_json_value(metadata, "metadata", 0)
    return dict(metadata)


#: The fields a new memory is given by (``MemCube.add`` and the dicts of ``add_many``).
ADD_FIELDS = frozenset(
    {
        "content", "user_id", "agent_id", "session_id", "memory_type", "metadata", "tags",
        "event_time", "importance", "ttl", "expires_at", "provenance", "id",
    }
)  # fmt: skip
#: The fields ``MemCube.update`` changes (a new version).
UPDATE_FIELDS = (
    "content", "metadata", "tags", "importance", "memory_type", "event_time", "expires_at",
    "state", "provenance",
)  # fmt: skip
#: Every field a new version may change: :data:`UPDATE_FIELDS` plus the scope of the memory
#: within its user (a rollback restores them too).
VERSIONED_FIELDS = frozenset({*UPDATE_FIELDS, "agent_id", "session_id"})


#: Prefix of free-metadata keys the cube manages itself (shares, feedback votes).
RESERVED_PREFIX = "_mc_"
#: Free-metadata key prefix marking a per-item share (``_mc_share:<user>``).
SHARE_PREFIX = "_mc_share:"


def share_key(user_id: str) -> str:
    """The free-metadata key that marks a memory as shared with ``user_id``."""
    return f"{SHARE_PREFIX}{user_id}"


def check_reserved_metadata(metadata: dict[str, Any] | None) -> None:
    """Refuse caller metadata that tries to set keys the cube manages (``_mc_...``)."""
    for key in metadata or {}:
        if isinstance(key, str) and key.startswith(RESERVED_PREFIX):
            raise InvalidMetadataError(
                f"metadata key {key!r} is reserved for the cube (prefix {RESERVED_PREFIX!r}); "
                "use cube.share(...) and cube.feedback(...) instead."
            )


def reserved_metadata(item: MemoryItem) -> dict[str, Any]:
    """The cube-managed metadata of an item (carried over when a caller replaces metadata)."""
    return {k: v for k, v in item.metadata.items() if k.startswith(RESERVED_PREFIX)}


def free_metadata(item: MemoryItem) -> dict[str, Any]:
    """The caller's own metadata of an item (without the cube-managed keys)."""
    return {k: v for k, v in item.metadata.items() if not k.startswith(RESERVED_PREFIX)}


class Provenance(BaseModel):
    """Where a memory came from."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(
        default=None, description="e.g. 'api', 'message', 'langgraph_store', 'import'."
    )
    extractor: str | None = Field(default=None, description="Which reader/extractor produced it.")
    message_ids: list[str] = Field(
        default_factory=list, description="Ids of the messages/turns it came from."
    )
    merged_from: list[str] = Field(
        default_factory=list, description="Ids of memories merged into this one."
    )
    detail: dict[str, Any] = Field(default_factory=dict)


class MemoryItem(BaseModel):
    """One memory: header plus payload. Round-trips through JSON losslessly.

    Example:
        >>> item = MemoryItem(content="Alice lives in Paris", user_id="alice")
        >>> MemoryItem.model_validate_json(item.model_dump_json()) == item
        True
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str = Field(default_factory=new_id)
    content: str
    user_id: str
    agent_id: str | None = None
    session_id: str | None = None
    memory_type: MemoryType = MemoryType.LONG_TERM
    provenance: Provenance = Field(default_factory=Provenance)
    event_time: datetime | None = Field(
        default=None, description="When the remembered thing happened."
    )
    created_at: datetime = Field(default_factory=utcnow, description="When it was first recorded.")
    updated_at: datetime = Field(
        default_factory=utcnow, description="When this version was recorded."
    )
    version: int = Field(default=1, ge=1)
    state: LifecycleState = LifecycleState.GENERATED
    tags: list[str] = Field(default_factory=list)
    importance: float = Field(default=0.5, ge=0.0, le=1.0)
    expires_at: datetime | None = None
    access_count: int = Field(default=0, ge=0)
    last_accessed_at: datetime | None = None
    content_hash: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    _outcome: WriteOutcome | None = PrivateAttr(default=None)

    @property
    def outcome(self) -> WriteOutcome | None:
        """What the add that returned this item did (see :class:`WriteOutcome`); ``None`` on
        items read back from the cube. Not stored, and not part of equality."""
        return self._outcome

    def with_outcome(self, outcome: WriteOutcome) -> MemoryItem:
        """A copy of this item that reports ``outcome``."""
        out = self.model_copy()
        out._outcome = outcome
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MemoryItem):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]

    @field_validator("content")
    @classmethod
    def _content(cls, v: str) -> str:
        if not v or not v.strip():
            raise EmptyContentError("memory content is empty; pass some text.")
        if len(v) > MAX_CONTENT_CHARS:
            raise ContentTooLargeError(
                f"memory content is {len(v)} characters; the limit is {MAX_CONTENT_CHARS}. "
                "Split long documents into passages before adding them."
            )
        return v

    @field_validator("user_id")
    @classmethod
    def _user(cls, v: str) -> str:
        return check_scope_id(v, "user_id", required=True)  # type: ignore[return-value]

    @field_validator("agent_id", "session_id")
    @classmethod
    def _scope(cls, v: str | None, info: Any) -> str | None:
        return check_scope_id(v, info.field_name)

    @field_validator("event_time", "created_at", "updated_at", "expires_at", "last_accessed_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else as_utc(v)

    @field_validator("tags")
    @classmethod
    def _tags(cls, v: list[str]) -> list[str]:
        for t in v:
            if not t or len(t) > MAX_ID_CHARS or not is_encodable(t):
                raise InvalidMetadataError(
                    "tags must be non-empty Unicode strings of at most 256 characters."
                )
        return list(dict.fromkeys(v))

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, v: dict[str, Any]) -> dict[str, Any]:
        return check_metadata(v)

    @field_validator("importance")
    @classmethod
    def _importance(cls, v: float) -> float:
        if not math.isfinite(v):
            raise InvalidMetadataError("importance must be a finite number between 0 and 1.")
        return v

    @model_validator(mode="after")
    def _hash(self) -> MemoryItem:
        h = content_hash(self.content)
        if self.content_hash != h:
            object.__setattr__(self, "content_hash", h)
        return self

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= utcnow()

    @property
    def dialog_ids(self) -> list[str]:
        """Message/turn ids this memory carries (provenance), for evaluation and citation."""
        return list(self.provenance.message_ids)


def build_item(**fields: Any) -> MemoryItem:
    """Construct a MemoryItem, turning pydantic's ValidationError into a typed MemCubeError."""
    try:
        return MemoryItem(**fields)
    except ValidationError as exc:
        raise translate_validation_error(exc) from None


def translate_validation_error(exc: ValidationError) -> InvalidInputError:
    for err in exc.errors():
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, InvalidInputError):
            return ctx_error
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    if loc.startswith("metadata") or loc in ("tags", "importance", "provenance"):
        return InvalidMetadataError(f"invalid {loc}: {first.get('msg')}")
    return InvalidInputError(f"invalid {loc or 'item'}: {first.get('msg')}")


class SearchHit(BaseModel):
    """A search result: the memory and how well it matched (higher is better)."""

    model_config = ConfigDict(frozen=True)

    item: MemoryItem
    score: float
    #: Per-signal scores (e.g. ``dense``, ``lexical``), for inspection and tuning.
    signals: dict[str, float] = Field(default_factory=dict)
