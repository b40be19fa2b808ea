"""Governance: who may read and write which memories, and an audit log of every operation.

Ownership
    Every memory belongs to the user it was added for (``item.user_id``). A call made with
    ``user_id="bob"`` acts *as* bob; a call with ``user_id=None`` is the application itself
    (administration: every memory, no checks).

Sharing (:meth:`MemCube.share` / :meth:`MemCube.unshare`)
    An owner shares chosen memories (``ids=[...]``) or all of their memories in the cube
    (``ids=None``, present and future) with another user, ``"read"`` or ``"write"``. See
    :mod:`memcube.access` for grants and enforcement.

Audit (:meth:`MemCube.audit`)
    Every operation is recorded as an :class:`AuditEntry` (who, what, when, which items); see
    :mod:`memcube.audit`.

This module gathers the names of both, the public place to import them from.
"""

from __future__ import annotations

from memcube.access import Access, Governance, Grant
from memcube.audit import ADMIN_ACTOR, AuditConfig, AuditEntry, AuditLog
from memcube.items import (
    RESERVED_PREFIX,
    SHARE_PREFIX,
    check_reserved_metadata,
    reserved_metadata,
    share_key,
)

__all__ = [
    "ADMIN_ACTOR",
    "RESERVED_PREFIX",
    "SHARE_PREFIX",
    "Access",
    "AuditConfig",
    "AuditEntry",
    "AuditLog",
    "Governance",
    "Grant",
    "check_reserved_metadata",
    "reserved_metadata",
    "share_key",
]
