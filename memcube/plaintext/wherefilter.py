"""Evaluate a ``where`` clause against a record's flat view, in process.

Chroma holds only a record's JSON and scope keys (:mod:`memcube.plaintext.records`), so every
other condition of the cube's ``where`` clauses (lifecycle state, expiry, tags, user filters) is
decided here: on the retriever's cached records, and on the records a Chroma read returns for
the clause's stored-key part. Equality and membership (the scope clauses)
are exact; a missing key counts as a match only under ``$ne`` / ``$nin`` (a user-filter nuance,
never a scope one: scope clauses never use those operators).

Example:
    >>> where = {"$and": [{"user_id": {"$eq": "alice"}}, {"state": {"$nin": ["archived"]}}]}
    >>> matches(where, {"user_id": "alice", "state": "generated"})
    True
    >>> matches(where, {"user_id": "bob", "state": "generated"})
    False
"""

from __future__ import annotations

from typing import Any

_MISSING = object()


def _compare(op: str, have: Any, want: Any) -> bool:
    if have is _MISSING:
        return op in ("$ne", "$nin")
    try:
        if op == "$eq":
            return bool(have == want)
        if op == "$ne":
            return bool(have != want)
        if op == "$in":
            return have in want
        if op == "$nin":
            return have not in want
        if isinstance(have, bool) or isinstance(want, bool):
            return False
        if op == "$gt":
            return bool(have > want)
        if op == "$gte":
            return bool(have >= want)
        if op == "$lt":
            return bool(have < want)
        if op == "$lte":
            return bool(have <= want)
    except TypeError:
        return False
    # An operator this evaluator does not know cannot come from translate_filters; refuse it.
    return False


def matches(where: dict[str, Any] | None, md: dict[str, Any]) -> bool:
    """Whether flat metadata ``md`` satisfies the Chroma ``where`` clause."""
    if not where:
        return True
    for key, cond in where.items():
        if key == "$and":
            if not all(matches(c, md) for c in cond):
                return False
        elif key == "$or":
            if not any(matches(c, md) for c in cond):
                return False
        elif isinstance(cond, dict):
            have = md.get(key, _MISSING)
            for op, want in cond.items():
                if not _compare(op, have, want):
                    return False
        else:
            if md.get(key, _MISSING) != cond:
                return False
    return True


#: Record fields that name the owner of a record.
OWNER_FIELDS = ("user_id", "live_user_id")


def scope_owners(where: dict[str, Any] | None) -> set[str] | None:
    """The owners (``user_id`` values) a ``where`` clause restricts records to, or ``None`` when
    it does not bound them (an ``$or`` branch without an owner clause, or no owner clause).

    Example:
        >>> sorted(scope_owners({"$and": [{"live_user_id": {"$in": ["a", "b"]}}, {"x": 1}]}))
        ['a', 'b']
        >>> scope_owners({"$or": [{"user_id": "a"}, {"md:share": {"$eq": "read"}}]}) is None
        True
    """
    if not where or not isinstance(where, dict):
        return None
    if len(where) > 1:
        return scope_owners({"$and": [{k: v} for k, v in where.items()]})
    ((key, cond),) = where.items()
    if key == "$and":
        owners: set[str] | None = None
        for clause in cond:
            part = scope_owners(clause)
            if part is not None:
                owners = part if owners is None else owners & part
        return owners
    if key == "$or":
        union: set[str] = set()
        for clause in cond:
            part = scope_owners(clause)
            if part is None:
                return None
            union |= part
        return union
    if key not in OWNER_FIELDS:
        return None
    if isinstance(cond, str):
        return {cond}
    if isinstance(cond, dict) and len(cond) == 1:
        ((op, value),) = cond.items()
        if op == "$eq" and isinstance(value, str):
            return {value}
        if op == "$in" and isinstance(value, list) and all(isinstance(v, str) for v in value):
            return set(value)
    return None
