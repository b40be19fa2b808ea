"""Access control: who may read and write which memories.

Ownership
    Every memory belongs to the user it was added for (``item.user_id``). A call made with
    ``user_id="bob"`` acts *as* bob; a call with ``user_id=None`` is the application itself
    (administration: every memory, no checks).

Sharing (:meth:`MemCube.share` / :meth:`MemCube.unshare`)
    An owner shares chosen memories (``ids=[...]``) or all of their memories in the cube
    (``ids=None``, present and future) with another user, ``"read"`` or ``"write"``. Grants are
    kept in the cube's ``grants`` Chroma collection (so every process of a server deployment
    sees them; each process caches them for ``grant_cache_seconds``, default 1 s). A per-item
    grant is also marked on the item (free-metadata key ``_mc_share:<user>``), which is how
    searches find shared items without a second query.

Enforcement (in :class:`~memcube.MemCube`, so every adapter gets it)
    * reads by relevance or id (``search``, ``working_memory``, ``get``, ``get_many``,
      ``history``) see the user's own memories plus those shared with them;
    * listings (``items``, ``count``) show the user's own memories, plus shared ones with
      ``include_shared=True``;
    * writes to an existing memory (``update``, ``delete``, ``rollback``, ``freeze``,
      ``unfreeze``, ``feedback``, ``set_expiry``) need ownership or a ``"write"`` grant;
      a memory the user cannot read at all is reported as not found (its existence is not
      revealed), a read-only one raises :class:`~memcube.errors.AccessDeniedError`;
    * sharing and unsharing is for the owner (or the application) only;
    * new memories always belong to the user they are added for.

The audit log is :mod:`memcube.audit`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from memcube.errors import AccessDeniedError, ItemNotFoundError
from memcube.items import MemoryItem, share_key
from memcube.plaintext.backend import ChromaBackend


class Access(str, Enum):
    """What a grant allows."""

    READ = "read"
    WRITE = "write"


@dataclass(frozen=True)
class Grant:
    """One share: ``owner`` lets ``grantee`` read (or write) one item or all their memories."""

    owner: str
    grantee: str
    access: Access
    item_id: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def key(self) -> str:
        scope = f"item:{self.item_id}" if self.item_id else "cube"
        return json.dumps([scope, self.owner, self.grantee])


class Governance:
    """Grants, access checks and the ``where`` clause that scopes reads. Owned by a cube."""

    def __init__(self, backend: ChromaBackend, prefix: str, *, grant_cache_seconds: float = 1.0):
        self.backend = backend
        self.collection = backend.collection(f"{prefix}_grants", cosine=False)
        self.cache_seconds = grant_cache_seconds
        self._lock = threading.RLock()
        self._loaded_at = float("-inf")
        self._cube_grants: dict[str, dict[str, Access]] = {}  # grantee -> owner -> access
        self._item_grantees: set[str] = set()

    # ------------------------------------------------------------------ grant storage
    def _refresh(self, force: bool = False) -> None:
        with self._lock:
            if not force and time.monotonic() - self._loaded_at < self.cache_seconds:
                return
            res = self.backend.get(self.collection)
            cube: dict[str, dict[str, Access]] = {}
            items: set[str] = set()
            for md in res["metadatas"]:
                if md.get("item_id"):
                    items.add(md["grantee"])
                else:
                    cube.setdefault(md["grantee"], {})[md["owner"]] = Access(md["access"])
            self._cube_grants, self._item_grantees = cube, items
            self._loaded_at = time.monotonic()

    def grants(self, *, owner: str | None = None, grantee: str | None = None) -> list[Grant]:
        """Stored grants, optionally of one owner and/or to one grantee."""
        res = self.backend.get(self.collection)
        out = []
        for md in res["metadatas"]:
            if owner is not None and md["owner"] != owner:
                continue
            if grantee is not None and md["grantee"] != grantee:
                continue
            out.append(
                Grant(
                    owner=md["owner"],
                    grantee=md["grantee"],
                    access=Access(md["access"]),
                    item_id=md.get("item_id") or None,
                    created_at=datetime.fromtimestamp(md["ts"], timezone.utc),
                )
            )
        return sorted(out, key=lambda g: (g.created_at, g.key))

    def put_grants(self, grants: Sequence[Grant]) -> None:
        if not grants:
            return
        self.backend.upsert(
            self.collection,
            [g.key for g in grants],
            embeddings=None,
            documents=None,
            metadatas=[
                {
                    "owner": g.owner,
                    "grantee": g.grantee,
                    "access": g.access.value,
                    "item_id": g.item_id or "",
                    "ts": g.created_at.timestamp(),
                }
                for g in grants
            ],
        )
        self._refresh(force=True)

    def delete_grants(self, grants: Sequence[Grant]) -> None:
        if grants:
            self.backend.delete(self.collection, ids=[g.key for g in grants])
            self._refresh(force=True)

    # ------------------------------------------------------------------ checks
    def cube_access(self, owner: str, user_id: str) -> Access | None:
        """The whole-cube grant ``owner`` gave ``user_id``, if any."""
        self._refresh()
        return self._cube_grants.get(user_id, {}).get(owner)

    def access(self, item: MemoryItem, user_id: str | None) -> Access | None:
        """What ``user_id`` may do with ``item`` (``None``: nothing). The owner and the
        application (``user_id=None``) may do everything."""
        if user_id is None or item.user_id == user_id:
            return Access.WRITE
        granted = [self.cube_access(item.user_id, user_id)]
        value = item.metadata.get(share_key(user_id))
        if value in (Access.READ.value, Access.WRITE.value):
            granted.append(Access(value))
        if Access.WRITE in granted:
            return Access.WRITE
        if Access.READ in granted:
            return Access.READ
        return None

    def can_read(self, item: MemoryItem, user_id: str | None) -> bool:
        return self.access(item, user_id) is not None

    def check_write(self, item: MemoryItem, user_id: str | None) -> None:
        """Raise unless ``user_id`` may change ``item``."""
        acc = self.access(item, user_id)
        if acc is None:
            raise ItemNotFoundError(f"no memory with id {item.id!r} for user {user_id!r}.")
        if acc is not Access.WRITE:
            raise AccessDeniedError(
                f"user {user_id!r} may only read memory {item.id!r} (shared read-only by "
                f"{item.user_id!r}); ask the owner to share it with access='write'."
            )

    def check_owner(self, item: MemoryItem, user_id: str | None) -> None:
        if user_id is not None and item.user_id != user_id:
            if self.can_read(item, user_id):
                raise AccessDeniedError(
                    f"only the owner ({item.user_id!r}) may share or unshare memory {item.id!r}."
                )
            raise ItemNotFoundError(f"no memory with id {item.id!r} for user {user_id!r}.")

    def scope_clause(
        self, user_id: str, *, include_archived: bool, include_shared: bool
    ) -> dict[str, Any]:
        """The ``where`` clause of the memories ``user_id`` may read. Without grants it is the
        single equality clause of the core (as cheap as raw Chroma); grants add an ``$or``."""
        user_key = "user_id" if include_archived else "live_user_id"
        if not include_shared:
            return {user_key: {"$eq": user_id}}
        self._refresh()
        owners = sorted(self._cube_grants.get(user_id, {}))
        if owners:
            own: dict[str, Any] = {user_key: {"$in": [user_id, *owners]}}
        else:
            own = {user_key: {"$eq": user_id}}
        if user_id not in self._item_grantees:
            return own
        shared: dict[str, Any] = {
            f"md:{share_key(user_id)}": {"$in": [Access.READ.value, Access.WRITE.value]}
        }
        if not include_archived:
            shared = {"$and": [shared, {"live": {"$eq": True}}]}
        return {"$or": [own, shared]}


__all__ = ["Access", "Governance", "Grant"]
