"""Governance: who may read and write which memories (:mod:`memcube.access`: ownership,
sharing, enforcement) and the audit log of every operation (:mod:`memcube.audit`).

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
