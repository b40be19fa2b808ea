"""Sharing: grants of one user's memories to another, and their revocation. The rules of who
may read and write what are :mod:`memcube.access`'s; this module writes grants and the per-item
marks that let searches find shared memories."""

from __future__ import annotations

from collections.abc import Sequence

from memcube.access import Access, Governance, Grant
from memcube.audit import AuditLog
from memcube.errors import AccessDeniedError, InvalidInputError, ItemNotFoundError
from memcube.items import check_scope_id, share_key
from memcube.plaintext.repository import ItemRepository, Replacement
from memcube.services.writes import Writes


class Sharing:
    """Shares of one cube."""

    def __init__(
        self, repository: ItemRepository, governance: Governance, writes: Writes, audit: AuditLog
    ) -> None:
        self.repository = repository
        self.governance = governance
        self.writes = writes
        self.audit = audit

    @staticmethod
    def check_parties(owner: str, with_user: str, user_id: str | None, what: str) -> None:
        """Both parties are valid ids, and the caller is the owner or the application."""
        check_scope_id(owner, "owner", required=True)
        check_scope_id(with_user, "with_user", required=True)
        check_scope_id(user_id, "user_id")
        if user_id is not None and user_id != owner:
            raise AccessDeniedError(
                f"only {owner!r} (or the application) may {what} their memories."
            )

    def share(
        self,
        owner: str,
        with_user: str,
        *,
        ids: Sequence[str] | None,
        access: str,
        user_id: str | None,
    ) -> list[Grant]:
        self.check_parties(owner, with_user, user_id, "share")
        if with_user == owner:
            raise InvalidInputError("a user cannot share memories with themselves.")
        try:
            acc = Access(access)
        except ValueError:
            raise InvalidInputError(f"access must be 'read' or 'write', got {access!r}.") from None
        if ids is None:
            grants = [Grant(owner=owner, grantee=with_user, access=acc)]
            self.governance.put_grants(grants)
            detail = {"owner": owner, "with": with_user, "access": acc.value, "scope": "cube"}
            self.audit.record("share", owner, (), {**detail, "by": _by(user_id)})
            return grants
        wanted = list(dict.fromkeys(ids))
        with self.repository.lock:
            found = self.repository.get(wanted)
            missing = [i for i in wanted if i not in found or found[i].user_id != owner]
            if missing:
                raise ItemNotFoundError(
                    f"no memories {missing} owned by {owner!r}; nothing was shared."
                )
            grants = [Grant(owner=owner, grantee=with_user, access=acc, item_id=i) for i in wanted]
            self.governance.put_grants(grants)
            changed: list[Replacement] = []
            for i in wanted:
                it = found[i]
                md = {**it.metadata, share_key(with_user): acc.value}
                changed.append((it.model_copy(update={"metadata": md}), it))
            self.writes.set_in_place(
                changed,
                "share",
                owner,
                owner=owner,
                with_user=with_user,
                access=acc.value,
                by=_by(user_id),
            )
        return grants

    def unshare(
        self, owner: str, with_user: str, *, ids: Sequence[str] | None, user_id: str | None
    ) -> int:
        self.check_parties(owner, with_user, user_id, "unshare")
        existing = self.governance.grants(owner=owner, grantee=with_user)
        if ids is not None:
            wanted = set(ids)
            existing = [g for g in existing if g.item_id in wanted]
        item_ids = [g.item_id for g in existing if g.item_id]
        with self.repository.lock:
            changed: list[Replacement] = []
            for it in self.repository.get(item_ids).values():
                meta = {k: v for k, v in it.metadata.items() if k != share_key(with_user)}
                changed.append((it.model_copy(update={"metadata": meta}), it))
            self.writes.set_in_place(
                changed, "unshare", owner, owner=owner, with_user=with_user, by=_by(user_id)
            )
            self.governance.delete_grants(existing)
        if not changed:
            detail = {"owner": owner, "with_user": with_user, "by": _by(user_id)}
            self.audit.record("unshare", owner, (), detail)
        return len(existing)


def _by(user_id: str | None) -> str:
    """Who made a share: the owner themselves, or the application on the owner's behalf (the
    audit actor is the owner either way: only the owner or the application may share)."""
    return "owner" if user_id is not None else "application"


__all__ = ["Sharing"]
