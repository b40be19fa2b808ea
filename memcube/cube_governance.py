"""The governance methods of the :class:`memcube.MemCube` facade: sharing and the audit log
(rules in :mod:`memcube.access`, the work in :mod:`memcube.services.sharing`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from memcube.access import Grant
from memcube.audit import AuditEntry
from memcube.cube_base import CubeBase


class GovernanceMethods(CubeBase):
    """Shares and audit queries, mixed into :class:`memcube.MemCube`."""

    def share(
        self,
        owner: str,
        with_user: str,
        *,
        ids: Sequence[str] | None = None,
        access: str = "read",
        user_id: str | None = None,
    ) -> list[Grant]:
        """Share memories of ``owner`` with ``with_user``: the given ``ids``, or with
        ``ids=None`` every memory of ``owner`` in this cube (present and future). ``access`` is
        ``"read"`` or ``"write"``. ``user_id`` is who asks (the owner, or ``None`` for the
        application). Sharing again changes the access. See :mod:`memcube.governance`."""
        self._check_open()
        return self._sharing.share(owner, with_user, ids=ids, access=access, user_id=user_id)

    def unshare(
        self,
        owner: str,
        with_user: str,
        *,
        ids: Sequence[str] | None = None,
        user_id: str | None = None,
    ) -> int:
        """Revoke shares of ``owner`` to ``with_user``: the given items, or with ``ids=None``
        the whole-cube grant and every per-item grant. Returns how many grants were removed."""
        self._check_open()
        return self._sharing.unshare(owner, with_user, ids=ids, user_id=user_id)

    def shares(self, *, owner: str | None = None, with_user: str | None = None) -> list[Grant]:
        """The grants in force (of one owner and/or to one user)."""
        self._check_open()
        return self.governance.grants(owner=owner, grantee=with_user)

    def audit(
        self,
        *,
        actor: str | None = None,
        op: str | Sequence[str] | None = None,
        item_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Query the audit log: entries matching every given condition, oldest first (the
        newest ``limit`` of them). ``actor`` is a user id, or ``"*"`` for calls made without one.
        An administrative API: it is not scoped to a user."""
        self._check_open()
        return self.audit_log.query(
            actor=actor, op=op, item_id=item_id, since=since, until=until, limit=limit
        )
