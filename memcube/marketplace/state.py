"""What a cube remembers about the channels it publishes to and follows, in
``<cube>/marketplace/``: never credentials, only references, public keys and digests.

``subscriptions.json``
    one record per followed channel: its reference, the trusted publisher keys, the licenses
    accepted, the conflict policy, the owner the memories are mounted under and the readers
    they are shared with, and the revocation list to honor.
``channels/<id>.json``
    per channel: the last applied or published manifest (``head``) and its sequence number, the
    digests applied so far, and the fingerprint of each memory and payload file as of ``head``
    (what a delta is computed against, and how a local edit is told from a publisher's).

Example:
    >>> from memcube.items import MemoryItem
    >>> a = MemoryItem(content="likes tea", user_id="ana")
    >>> item_digest(a) == item_digest(a.model_copy(update={"user_id": "kb", "access_count": 3}))
    True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from memcube.atomic import atomic_write_text
from memcube.errors import InvalidInputError
from memcube.items import MemoryItem, free_metadata

FOLDER = "marketplace"
SUBSCRIPTIONS = "subscriptions.json"


def item_digest(item: MemoryItem) -> str:
    """A fingerprint of what a memory says (content, caller metadata, tags, importance, type,
    times, state), independent of its owner id, provenance, shares and usage counts: equal on
    the publisher's and the subscriber's side for the same memory."""
    doc = {
        "content": item.content,
        "metadata": free_metadata(item),
        "tags": sorted(item.tags),
        "importance": item.importance,
        "memory_type": item.memory_type.value,
        "event_time": item.event_time.isoformat() if item.event_time else None,
        "expires_at": item.expires_at.isoformat() if item.expires_at else None,
        "state": item.state.value,
    }
    data = json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(data.encode()).hexdigest()[:32]


def _channel_file(root: Path, channel: str) -> Path:
    return (
        root / FOLDER / "channels" / (hashlib.sha256(channel.encode()).hexdigest()[:24] + ".json")
    )


@dataclass
class ChannelState:
    """Where a cube stands on one channel."""

    reference: str
    head: str | None = None
    sequence: int = 0
    applied: list[str] = field(default_factory=list)
    items: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path, channel: str) -> ChannelState:
        path = _channel_file(root, channel)
        if not path.exists():
            return cls(reference=channel)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return cls(**doc)
        except (OSError, ValueError, TypeError) as exc:
            raise InvalidInputError(f"the channel state {path} is unreadable: {exc}.") from None

    def save(self, root: Path) -> None:
        path = _channel_file(root, self.reference)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(asdict(self), separators=(",", ":")) + "\n")


@dataclass
class Subscription:
    """One followed channel (see the module docstring)."""

    reference: str
    trusted_keys: list[str]
    accept_license: list[str] = field(default_factory=list)
    on_conflict: str = "skip"
    as_user: str | None = None
    share_with: list[str] = field(default_factory=list)
    revocations: str | None = None
    revocation_keys: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_subscriptions(root: Path) -> list[Subscription]:
    path = root / FOLDER / SUBSCRIPTIONS
    if not path.exists():
        return []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return [Subscription(**raw) for raw in doc["subscriptions"]]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise InvalidInputError(f"{path} is unreadable: {exc}.") from None


def save_subscriptions(root: Path, subs: list[Subscription]) -> None:
    path = root / FOLDER / SUBSCRIPTIONS
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"subscriptions": [s.to_dict() for s in subs]}
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


__all__ = [
    "ChannelState",
    "Subscription",
    "item_digest",
    "load_subscriptions",
    "save_subscriptions",
]
