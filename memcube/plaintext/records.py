"""How a MemoryItem is laid out in a Chroma record, and how user filters become ``where`` clauses.

The full item is kept losslessly as JSON under ``json``. Filters address a *flat view* of the
item (:func:`record_view`): header fields, ``md:<key>`` for free metadata scalars and
``tag:<tag>`` for tags. Chroma holds only the part of that view that reads are scoped by
(:data:`STORED_KEYS`: the owner, the owner of a visible memory, and item-by-item share grants),
because every metadata key costs Chroma on every write (measured against a raw record with one
key: the earlier 14-key layout upserted 1.5x slower, this one 1.1x). A ``where`` clause is run as its stored-key part in Chroma
(:func:`chroma_part`, a superset) and, when it names other keys, checked exactly in process on
the view (:func:`needs_check`, :func:`memcube.plaintext.wherefilter.matches`).

Memories the lifecycle deduplicates (types in ``LifecycleConfig.merge_types``) also carry three
lookup keys (:func:`lookup_keys`), so its duplicate and subject checks stay one Chroma read each.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from memcube.errors import InvalidFilterError
from memcube.items import HIDDEN_STATES, SHARE_PREFIX, MemoryItem, as_utc, is_encodable

#: Stands for "never expires" in the flat ``expires_ts`` field (year ~33658).
NO_EXPIRY_TS = 1.0e12

#: Item fields that filters address directly; any other key addresses free metadata.
HEADER_FILTER_FIELDS = {
    "user_id": "user_id",
    "agent_id": "agent_id",
    "session_id": "session_id",
    "memory_type": "memory_type",
    "state": "state",
    "version": "version",
    "importance": "importance",
    "content_hash": "content_hash",
    "access_count": "access_count",
}
COMPARISON_OPS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin"}

#: View keys Chroma holds (besides ``json``): what reads are scoped by.
STORED_KEYS = ("user_id", "live_user_id")
#: View keys of item-by-item share grants (``md:_mc_share:<user>``), also held by Chroma.
STORED_SHARE_PREFIX = f"md:{SHARE_PREFIX}"
#: Lifecycle lookup keys: owner and type of a visible memory, its content hash, its subject.
LOOKUP_SCOPE = "lc_scope"
LOOKUP_HASH = "lc_hash"
LOOKUP_SUBJECT = "lc_subject"


def ts(value: datetime | None) -> float | None:
    return None if value is None else as_utc(value).timestamp()


def record_view(item: MemoryItem) -> dict[str, Any]:
    """The flat view of ``item`` that ``where`` clauses address (includes the ``json`` record)."""
    md: dict[str, Any] = {
        "json": item.model_dump_json(),
        "user_id": item.user_id,
        "memory_type": item.memory_type.value,
        "state": item.state.value,
        "version": item.version,
        "importance": float(item.importance),
        "access_count": item.access_count,
        "content_hash": item.content_hash,
        "created_ts": ts(item.created_at),
        "updated_ts": ts(item.updated_at),
        # Time-range filters use when it happened, falling back to when it was recorded.
        "time_ts": ts(item.event_time or item.created_at),
        "expires_ts": ts(item.expires_at) if item.expires_at else NO_EXPIRY_TS,
    }
    # One equality clause ("this user's visible items") scopes a read as cheaply as raw
    # Chroma's user filter; a conjunction of state and user clauses costs Chroma noticeably more.
    if item.state not in HIDDEN_STATES:
        md["live"] = True
        md["live_user_id"] = item.user_id
    if item.agent_id is not None:
        md["agent_id"] = item.agent_id
    if item.session_id is not None:
        md["session_id"] = item.session_id
    for tag in item.tags:
        md[f"tag:{tag}"] = True
    for key, value in item.metadata.items():
        if isinstance(value, (str, bool, int, float)):
            md[f"md:{key}"] = value
    return md


def is_stored_key(key: str) -> bool:
    """Whether Chroma holds view key ``key`` (so a clause on it can run in Chroma)."""
    return key in STORED_KEYS or key.startswith(STORED_SHARE_PREFIX)


def lookup_scope(user_id: str, memory_type: str) -> str:
    return f"{user_id}\x1f{memory_type}"


def lookup_keys(item: MemoryItem, merge_types: frozenset[str]) -> dict[str, Any]:
    """The lifecycle lookup keys of a visible memory whose type is deduplicated."""
    if item.state in HIDDEN_STATES or item.memory_type.value not in merge_types:
        return {}
    keys: dict[str, Any] = {
        LOOKUP_SCOPE: lookup_scope(item.user_id, item.memory_type.value),
        LOOKUP_HASH: item.content_hash,
    }
    subject = item.metadata.get("subject")
    if isinstance(subject, str):
        keys[LOOKUP_SUBJECT] = subject
    return keys


def item_to_metadata(
    item: MemoryItem,
    previous: MemoryItem | None = None,
    *,
    merge_types: frozenset[str] = frozenset(),
    view: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Chroma metadata of ``item``: its JSON, the stored keys of its view and, for memory
    types in ``merge_types``, the lifecycle lookup keys. When it replaces ``previous``, keys that
    only the old record had are set to ``None``: Chroma merges metadata on update/upsert and
    deletes a key only when it is given as ``None``. ``view`` is ``record_view(item)`` when the
    caller has it already."""
    full = view if view is not None else record_view(item)
    md = {k: v for k, v in full.items() if k == "json" or is_stored_key(k)}
    md.update(lookup_keys(item, merge_types))
    if previous is not None:
        for key in item_to_metadata(previous, merge_types=merge_types):
            md.setdefault(key, None)
    return md


def chroma_part(where: dict[str, Any] | None) -> dict[str, Any] | None:
    """The part of ``where`` Chroma can run: its clauses on stored keys, as a condition every
    record ``where`` admits also meets (a superset). ``None`` when nothing is left.

    Example:
        >>> chroma_part({"$and": [{"live_user_id": {"$eq": "a"}}, {"md:city": {"$eq": "Oslo"}}]})
        {'live_user_id': {'$eq': 'a'}}
    """
    if not where:
        return None
    if len(where) > 1:
        return chroma_part({"$and": [{k: v} for k, v in where.items()]})
    ((key, cond),) = where.items()
    if key == "$and":
        return and_(*(chroma_part(c) for c in cond))
    if key == "$or":
        parts = [chroma_part(c) for c in cond]
        if any(p is None for p in parts):
            return None  # a branch Chroma cannot bound: every record may be admitted
        return parts[0] if len(parts) == 1 else {"$or": parts}
    return where if is_stored_key(key) else None


def needs_check(where: dict[str, Any] | None) -> bool:
    """Whether ``where`` names keys Chroma does not hold, so records Chroma returns for
    :func:`chroma_part` must be checked against ``where`` in process."""
    if not where:
        return False
    for key, cond in where.items():
        if key in ("$and", "$or"):
            if any(needs_check(c) for c in cond):
                return True
        elif not is_stored_key(key):
            return True
    return False


def metadata_to_item(md: dict[str, Any]) -> MemoryItem:
    return MemoryItem.model_validate_json(md["json"])


def and_(*clauses: dict[str, Any] | None) -> dict[str, Any] | None:
    """Combine ``where`` clauses; Chroma wants ``$and`` only for two or more."""
    parts = [c for c in clauses if c]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return {"$and": parts}


def _check_scalar(value: Any, key: str) -> None:
    if isinstance(value, str) and not is_encodable(value):
        raise InvalidFilterError(f"filter value for {key!r} is not valid Unicode text.")
    if isinstance(value, bool) or isinstance(value, (str, int)):
        return
    if isinstance(value, float) and math.isfinite(value):
        return
    raise InvalidFilterError(
        f"filter value for {key!r} must be a string, number or bool (finite), got {value!r}."
    )


def _field(key: str) -> str:
    if not isinstance(key, str) or not key or not is_encodable(key):
        raise InvalidFilterError(f"filter keys must be non-empty strings, got {key!r}.")
    if key.startswith("$"):
        raise InvalidFilterError(f"unknown filter operator {key!r}; use $and, $or or a field name.")
    if key == "tags":
        raise InvalidFilterError("filter tags with tags=[...] on search, not in filters.")
    return HEADER_FILTER_FIELDS.get(key, f"md:{key}")


def translate_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Turn ``{"city": "Paris", "year": {"$gte": 2020}, "$or": [...]}`` into a Chroma where.

    Keys name item header fields (``memory_type``, ``session_id``, ``importance``...) or free
    metadata keys. Operators: ``$eq $ne $gt $gte $lt $lte $in $nin``, combined with ``$and``/``$or``.
    """
    if filters is None:
        return None
    if not isinstance(filters, dict):
        raise InvalidFilterError(f"filters must be a dict, got {type(filters).__name__}.")
    clauses: list[dict[str, Any]] = []
    for key, cond in filters.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond:
                raise InvalidFilterError(f"{key} takes a non-empty list of filter dicts.")
            subs = [s for s in (translate_filters(c) for c in cond) if s]
            if len(subs) == 1:
                clauses.append(subs[0])
            elif subs:
                clauses.append({key: subs})
            continue
        field = _field(key)
        if isinstance(cond, dict):
            if not cond:
                raise InvalidFilterError(f"empty condition for {key!r}.")
            for op, value in cond.items():
                if op not in COMPARISON_OPS:
                    raise InvalidFilterError(
                        f"unknown operator {op!r} for {key!r}; use one of {sorted(COMPARISON_OPS)}."
                    )
                if op in ("$in", "$nin"):
                    if not isinstance(value, list) or not value:
                        raise InvalidFilterError(f"{op} for {key!r} takes a non-empty list.")
                    for v in value:
                        _check_scalar(v, key)
                else:
                    _check_scalar(value, key)
                    if op in ("$gt", "$gte", "$lt", "$lte") and not isinstance(value, (int, float)):
                        raise InvalidFilterError(f"{op} for {key!r} needs a number, got {value!r}.")
                clauses.append({field: {op: value}})
        else:
            _check_scalar(cond, key)
            clauses.append({field: {"$eq": cond}})
    return and_(*clauses)
