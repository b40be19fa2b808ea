"""``MemCubeStore``: a LangGraph ``BaseStore`` whose items are ordinary cube memories.

Mapping of the store model onto the cube:

* **user**: ``namespace[user_label]`` (default: the first label) is the cube ``user_id`` that owns
  the item, so ``("alice", "memories")`` holds Alice's memories. Give ``user_id="alice"`` instead
  to put every namespace of this store under one user.
* **(namespace, key)** -> one memory whose id is ``MemCube.keyed_id("langgraph_store", user,
  *namespace, key)``. A second ``put`` writes a new version (the old one stays in
  ``cube.history``); ``delete`` archives it (or purges it with ``hard_delete=True``).
* **value** -> the memory's ``metadata`` (so ``get`` returns an equal dict); the memory's
  ``content`` (what is embedded, searched and rendered into prompts) is the text at the ``index``
  fields, else the first of ``content``/``text``/``memory``/``data`` that is a string, else the
  value as JSON.
* **namespace** -> tags ``langgraph_store`` and ``lgns:a``, ``lgns:a.b``, ... (labels cannot
  contain ``.``), plus ``provenance.detail["namespace"]`` and ``["key"]``.
* **search** with ``query`` ranks through ``cube.search``; without a query it lists through
  ``cube.items``. ``filter`` keys address top-level value fields (``$eq $ne $gt $gte $lt $lte``
  and plain equality on strings, numbers and bools; a missing field counts as "not equal").
  Filtering on nested values, lists or ``None``, or on a field named like a memory header field
  (``user_id``, ``version``, ``importance``, ``state``, ``tags``...), raises
  ``InvalidFilterError``. Every item is embedded (``index=False`` still stores searchable text).
  A prefix that does not name the user (e.g. ``()``) searches every user's store items in turn.
* **TTL** (minutes, as in LangGraph) -> the memory's ``expires_at``; reads refresh it in place
  through ``cube.set_expiry``. Expired memories are invisible to every read, here and elsewhere.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    InvalidNamespaceError,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    get_text_at_path,
    tokenize_path,
    validate_op_namespace,
)

from memcube import MemCube
from memcube.checks import is_int
from memcube.errors import InvalidFilterError, InvalidInputError, ItemNotFoundError
from memcube.items import LifecycleState, MemoryItem, MemoryType, Provenance, check_metadata
from memcube.plaintext.records import HEADER_FILTER_FIELDS

#: Tag carried by every memory written through a MemCubeStore.
STORE_TAG = "langgraph_store"
#: Provenance source of memories written through a MemCubeStore.
STORE_SOURCE = "langgraph_store"
#: Value fields tried, in order, for a memory's text when no index fields are configured.
TEXT_FIELDS = ("content", "text", "memory", "data")
_STORE_OPS = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"}


def namespace_tag(namespace: Sequence[str]) -> str:
    """The tag that marks memories in ``namespace`` and below (labels never contain ``.``)."""
    return "lgns:" + ".".join(namespace)


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path))
    else:
        raise InvalidInputError(f"unknown namespace match type {condition.match_type!r}.")
    return all(p == "*" or n == p for n, p in pairs)


class MemCubeStore(BaseStore):
    """A LangGraph store over a :class:`~memcube.MemCube` (see the module doc for the mapping).

    Args:
        cube: the open cube.
        user_id: put every namespace under this user; otherwise ``namespace[user_label]`` is
            the user.
        user_label: which namespace label names the user (default ``0``).
        index: default field paths (LangGraph path syntax) whose text becomes the memory content.
        memory_type: the memory type of store items (default ``long_term``).
        agent_id: recorded on every memory written.
        ttl_config: LangGraph TTL settings (``default_ttl`` in minutes, ``refresh_on_read``).
        hard_delete: ``delete`` purges the memory and its history instead of archiving it.

    Example:
        >>> import tempfile
        >>> from memcube import MemCube
        >>> cube = MemCube.open(tempfile.mkdtemp())
        >>> store = MemCubeStore(cube)
        >>> store.put(("alice", "memories"), "diet", {"text": "Alice is vegetarian"})
        >>> store.get(("alice", "memories"), "diet").value
        {'text': 'Alice is vegetarian'}
        >>> [r.key for r in store.search(("alice",), query="what does alice eat?")]
        ['diet']
        >>> cube.search("food", user_id="alice", k=1)[0].item.content
        'Alice is vegetarian'
        >>> cube.close()
    """

    supports_ttl: bool = True

    def __init__(
        self,
        cube: MemCube,
        *,
        user_id: str | None = None,
        user_label: int = 0,
        index: Sequence[str] | None = None,
        memory_type: MemoryType | str = MemoryType.LONG_TERM,
        agent_id: str | None = None,
        ttl_config: TTLConfig | None = None,
        hard_delete: bool = False,
    ) -> None:
        if not isinstance(cube, MemCube):
            raise InvalidInputError(f"MemCubeStore needs a MemCube, got {type(cube).__name__}.")
        if not is_int(user_label) or user_label < 0:
            raise InvalidInputError(
                f"user_label must be a label position >= 0, got {user_label!r}."
            )
        if isinstance(index, str):
            raise InvalidInputError("index takes a list of field paths, e.g. ['text'].")
        self.cube = cube
        self.user_id = user_id
        self.user_label = user_label
        self.index = list(index) if index else None
        self.memory_type = MemoryType(memory_type)
        self.agent_id = agent_id
        self.ttl_config = ttl_config
        self.hard_delete = hard_delete

    # ------------------------------------------------------------------ mapping helpers
    def _user(self, namespace: tuple[str, ...]) -> str:
        if self.user_id is not None:
            return self.user_id
        if len(namespace) <= self.user_label:
            raise InvalidNamespaceError(
                f"MemCubeStore reads the user id from namespace label {self.user_label}, but "
                f"{namespace!r} has no such label. Use namespaces like ('<user_id>', 'memories'), "
                "or create the store with user_id=... ."
            )
        return namespace[self.user_label]

    def _pinned_user(self, path: Sequence[str]) -> str | None:
        """The user a namespace prefix pins down, or None when it spans users."""
        if self.user_id is not None:
            return self.user_id
        if len(path) > self.user_label and path[self.user_label] != "*":
            return path[self.user_label]
        return None

    def _users(self, pinned: str | None) -> list[str]:
        return [pinned] if pinned is not None else self.cube.user_ids()

    def _id(self, user: str, namespace: tuple[str, ...], key: str) -> str:
        return MemCube.keyed_id(STORE_SOURCE, user, *namespace, key)

    def _content(self, value: dict[str, Any], index: Any) -> str:
        paths = index if isinstance(index, list) else self.index
        if paths:
            texts = [t for p in paths for t in get_text_at_path(value, tokenize_path(p)) if t]
            if texts:
                return "\n".join(texts)
        for name in TEXT_FIELDS:
            text = value.get(name)
            if isinstance(text, str) and text.strip():
                return text
        return json.dumps(value, ensure_ascii=False, sort_keys=True)

    @staticmethod
    def _filters(filter: dict[str, Any] | None) -> dict[str, Any] | None:
        if not filter:
            return None
        if not isinstance(filter, dict):
            raise InvalidFilterError(f"filter must be a dict, got {type(filter).__name__}.")
        for key, cond in filter.items():
            if key in HEADER_FILTER_FIELDS or key == "tags" or key.startswith("$"):
                raise InvalidFilterError(
                    f"MemCubeStore cannot filter on value field {key!r}: the name is reserved "
                    "by the memory header. Rename the field in stored values."
                )
            if isinstance(cond, dict):
                bad = set(cond) - _STORE_OPS
                if bad:
                    raise InvalidFilterError(
                        f"unsupported filter operators {sorted(bad)} for {key!r}; use "
                        f"{sorted(_STORE_OPS)}."
                    )
        return filter

    @staticmethod
    def _detail(item: MemoryItem) -> dict[str, Any]:
        return item.provenance.detail

    def _to_item(self, item: MemoryItem, score: float | None = None, ranked: bool = False) -> Item:
        detail = self._detail(item)
        fields = dict(
            namespace=tuple(detail["namespace"]),
            key=detail["key"],
            value=dict(item.metadata),
            created_at=item.created_at,
            updated_at=item.updated_at,
        )
        if ranked:
            return SearchItem(**fields, score=score)
        return Item(**fields)

    def _refresh(self, user: str, items: Iterable[MemoryItem]) -> None:
        by_ttl: dict[float, list[str]] = {}
        for it in items:
            minutes = self._detail(it).get("ttl_minutes")
            if minutes:
                by_ttl.setdefault(float(minutes), []).append(it.id)
        for minutes, ids in by_ttl.items():
            self.cube.set_expiry(ids, user_id=user, ttl=minutes * 60.0)

    # ------------------------------------------------------------------ ops
    def _get(self, op: GetOp) -> Item | None:
        user = self._user(op.namespace)
        try:
            item = self.cube.get(
                self._id(user, op.namespace, op.key), user_id=user, include_archived=False
            )
        except ItemNotFoundError:
            return None
        if item.is_expired:
            return None
        if op.refresh_ttl:
            self._refresh(user, [item])
        return self._to_item(item)

    def _search(self, op: SearchOp) -> list[SearchItem]:
        if op.limit < 0 or op.offset < 0:
            raise InvalidInputError("search limit and offset must be >= 0.")
        if op.limit == 0:
            return []
        prefix = tuple(op.namespace_prefix)
        tags = [namespace_tag(prefix)] if prefix else [STORE_TAG]
        filters = self._filters(op.filter)
        want = op.offset + op.limit
        found: list[tuple[str, MemoryItem, float | None]] = []
        users = self._users(self._pinned_user(prefix))
        if op.query:
            for user in users:
                for hit in self.cube.search(
                    op.query, user_id=user, k=want, filters=filters, tags=tags, include_shared=False
                ):
                    found.append((user, hit.item, hit.score))
            found.sort(key=lambda t: -(t[2] or 0.0))
        else:
            for user in users:
                for item in self.cube.items(user_id=user, filters=filters, tags=tags):
                    found.append((user, item, None))
                    if len(found) >= want:
                        break
                if len(found) >= want:
                    break
        page = found[op.offset : want]
        if op.refresh_ttl:
            for user in {u for u, _, _ in page}:
                self._refresh(user, [it for u, it, _ in page if u == user])
        return [self._to_item(it, score, ranked=True) for _, it, score in page]  # type: ignore[misc]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = tuple(op.match_conditions or ())
        pinned = None
        for cond in conditions:
            if cond.match_type == "prefix":
                pinned = self._pinned_user(tuple(cond.path))
                if pinned is not None:
                    break
        if self.user_id is not None:
            pinned = self.user_id
        seen: set[tuple[str, ...]] = set()
        for user in self._users(pinned):
            for item in self.cube.items(user_id=user, tags=[STORE_TAG]):
                seen.add(tuple(self._detail(item)["namespace"]))
        spaces = [ns for ns in seen if all(_matches(c, ns) for c in conditions)]
        if op.max_depth is not None:
            spaces = list({ns[: op.max_depth] for ns in spaces})
        spaces.sort()
        return spaces[op.offset : op.offset + op.limit]

    def _put_all(self, puts: dict[tuple[tuple[str, ...], str], PutOp]) -> None:
        new: list[dict[str, Any]] = []
        for (namespace, key), op in puts.items():
            user = self._user(namespace)
            item_id = self._id(user, namespace, key)
            if op.value is None:
                try:
                    self.cube.delete(item_id, user_id=user, hard=self.hard_delete)
                except ItemNotFoundError:
                    pass
                continue
            if not isinstance(op.value, Mapping):
                raise InvalidInputError(
                    f"store values are dicts, got {type(op.value).__name__} for key {key!r}."
                )
            value = check_metadata(dict(op.value))
            fields: dict[str, Any] = dict(
                content=self._content(value, op.index),
                metadata=value,
                tags=[STORE_TAG]
                + [namespace_tag(namespace[:i]) for i in range(1, len(namespace) + 1)],
                provenance=Provenance(
                    source=STORE_SOURCE,
                    detail={"namespace": list(namespace), "key": key, "ttl_minutes": op.ttl},
                ),
            )
            ttl_s = None if op.ttl is None else float(op.ttl) * 60.0
            try:
                current = self.cube.get(item_id, user_id=user, include_archived=True)
            except ItemNotFoundError:
                current = None
            if current is None:
                new.append(
                    dict(
                        fields,
                        id=item_id,
                        user_id=user,
                        agent_id=self.agent_id,
                        memory_type=self.memory_type,
                        ttl=ttl_s,
                    )
                )
                continue
            revive = current.state in (LifecycleState.ARCHIVED, LifecycleState.EXPIRED)
            self.cube.update(
                item_id,
                user_id=user,
                state=LifecycleState.GENERATED if revive else None,
                **fields,
            )
            if ttl_s is not None or current.expires_at is not None:
                self.cube.set_expiry([item_id], user_id=user, ttl=ttl_s)
        if new:
            self.cube.add_many(new, progress=False)

    # ------------------------------------------------------------------ BaseStore
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ops in order. As in LangGraph's stores, reads see the store as it was before the
        batch; puts are applied afterwards, the last put per (namespace, key) winning."""
        ops = list(ops)
        for op in ops:
            validate_op_namespace(op)
        results: list[Result] = []
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            elif isinstance(op, PutOp):
                puts.pop((tuple(op.namespace), op.key), None)
                puts[(tuple(op.namespace), op.key)] = op
                results.append(None)
            else:
                raise InvalidInputError(f"unknown store operation {type(op).__name__}.")
        self._put_all(puts)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async :meth:`batch` (the cube's I/O runs in a worker thread)."""
        return await asyncio.to_thread(self.batch, list(ops))

    def sweep_ttl(self) -> int:
        """Archive (or purge, with ``hard_delete``) store memories whose TTL has passed; returns
        how many. Expired memories are already invisible; this reclaims them."""
        swept = 0
        now = datetime.now().astimezone()
        for user in self.cube.user_ids():
            expired = [
                it
                for it in self.cube.items(user_id=user, tags=[STORE_TAG], include_archived=True)
                if it.expires_at is not None
                and it.expires_at <= now
                and it.state != LifecycleState.ARCHIVED
            ]
            for it in expired:
                self.cube.delete(it.id, user_id=user, hard=self.hard_delete)
                swept += 1
        return swept

    async def asweep_ttl(self) -> int:
        """Async :meth:`sweep_ttl`."""
        return await asyncio.to_thread(self.sweep_ttl)
