"""Imports from other memory systems: MemTensor MemOS cube folders, LangGraph store dumps and
mem0 memory exports.

Each reader turns the foreign records into validated :class:`~memcube.items.MemoryItem`
versions (the same checks a MIP archive's ``items.jsonl`` goes through) before anything is
written. Foreign vectors are never reused: the target cube embeds the text with its own model.
Nothing is ever unpickled: a MemOS ``activation_memory.pickle`` is reported and skipped.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from dateutil import parser as dateparser

from memcube.checks import is_number
from memcube.errors import (
    ArchiveTooLargeError,
    EmptyContentError,
    ForeignFormatError,
    InvalidInputError,
    MemCubeError,
    UnsafeArchiveError,
)
from memcube.interchange.format import DEFAULT_LIMITS, ImportLimits
from memcube.interchange.reader import check_record, check_unique
from memcube.items import (
    MAX_ID_CHARS,
    LifecycleState,
    MemoryItem,
    MemoryType,
    Provenance,
    as_utc,
    build_item,
    utcnow,
)

FORMATS = ("mip", "memos", "langgraph", "mem0")

#: MemOS ``metadata.type`` and tree ``memory_type`` values, as MemCube memory types.
_MEMOS_TYPES = {
    "fact": MemoryType.FACT,
    "event": MemoryType.EPISODIC,
    "opinion": MemoryType.PREFERENCE,
    "procedure": MemoryType.LONG_TERM,
    "WorkingMemory": MemoryType.WORKING,
    "LongTermMemory": MemoryType.LONG_TERM,
    "UserMemory": MemoryType.PROFILE,
    "OuterMemory": MemoryType.DOCUMENT,
    "RawFileMemory": MemoryType.DOCUMENT,
}
_MEMOS_STATES = {
    "activated": LifecycleState.ACTIVATED,
    "resolving": LifecycleState.ACTIVATED,
    "archived": LifecycleState.ARCHIVED,
}
#: MemOS metadata kept under ``metadata["memos"]``; embeddings and bulky history are not.
_MEMOS_KEEP = (
    "key", "type", "source", "confidence", "entities", "visibility", "background", "memory_type",
    "status", "info", "usage", "file_ids", "preference_type", "preference", "memory_time",
)  # fmt: skip
#: Files a MemOS cube folder may hold besides config.json and its textual memory.
_MEMOS_SKIP_REASONS = {
    ".pickle": "pickled activation memory (KV cache): never unpickled, since unpickling runs code. "
    "Rebuild activation memory from the imported plaintext.",
    ".pkl": "pickled file: never unpickled, since unpickling runs code.",
    ".adapter": "MemOS parametric memory: not a safetensors LoRA with a base-model fingerprint; "
    "retrain or convert it.",
}
#: Namespace labels that name a kind of memory rather than its owner.
_GENERIC_LABELS = {"memories", "memory", "users", "user", "profile", "profiles", "facts", "episodes",
                   "preferences", "semantic", "episodic", "procedural", "notes", "data"}  # fmt: skip

_T = TypeVar("_T")


@dataclass
class ForeignBundle:
    """Validated memories read from a foreign export, plus what was left out and why."""

    format: str
    records: list[list[MemoryItem]]
    embedder: str | None = None
    skipped_items: list[tuple[str, str]] = field(default_factory=list)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- helpers
def _read_json_file(path: Path, limits: ImportLimits, what: str) -> Any:
    if path.is_symlink():
        raise UnsafeArchiveError(f"{path} is a symlink; import the file it points to directly.")
    if not path.is_file():
        raise ForeignFormatError(f"{path} is missing or not a regular file ({what}).")
    size = path.stat().st_size
    if size > limits.max_items_bytes:
        raise ArchiveTooLargeError(
            f"{path} is {size} bytes; the limit is {limits.max_items_bytes}."
        )
    try:
        return json.loads(path.read_bytes().decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise ForeignFormatError(f"{path} is not valid JSON ({what}): {exc}.") from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _time(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if is_number(value):
        try:
            return datetime.fromtimestamp(float(value) / (1000 if value > 1e11 else 1)).astimezone()
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str):
        return None
    try:
        return as_utc(dateparser.isoparse(value))
    except (ValueError, OverflowError):
        try:
            return as_utc(dateparser.parse(value))
        except (ValueError, OverflowError, TypeError):
            return None


def _json_safe(value: Any, depth: int = 0) -> Any:
    """Keep JSON values a MemoryItem accepts; drop the rest (deep nesting, odd types)."""
    if depth > 6:
        return None
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, list):
        return [_json_safe(v, depth + 1) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_safe(v, depth + 1) for k, v in value.items()}
    return None


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _nonempty_str(value: Any) -> str | None:
    """``value`` if it is a non-empty string, else ``None``."""
    return value if isinstance(value, str) and value else None


def _int_or(value: Any, default: int) -> int:
    """``value`` if ``isinstance(value, int)`` (so also ``true``/``false``), else ``default``."""
    return value if isinstance(value, int) else default


def _lookup(table: dict[str, _T], key: Any) -> _T | None:
    """``table[key]`` for a string ``key`` it holds, else ``None`` (also for non-string keys)."""
    return table.get(key) if isinstance(key, str) else None


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [t for t in value if isinstance(t, str) and t.strip() and len(t) <= MAX_ID_CHARS]


def _scope(value: Any) -> str | None:
    if (
        isinstance(value, str)
        and value.strip()
        and len(value) <= MAX_ID_CHARS
        and value.isprintable()
    ):
        return value
    return None


def _item(where: str, **fields: Any) -> MemoryItem:
    try:
        return build_item(**{k: v for k, v in fields.items() if v is not None})
    except EmptyContentError:
        raise
    except MemCubeError as exc:
        raise ForeignFormatError(f"{where}: {exc}") from None


def _finish(bundle: ForeignBundle, limits: ImportLimits) -> ForeignBundle:
    for versions in bundle.records:
        check_record(versions, f"memory {versions[0].id!r}", limits)
    if len(bundle.records) > limits.max_items:
        raise ArchiveTooLargeError(f"the export holds more than {limits.max_items} memories.")
    check_unique(bundle.records)
    return bundle


def _records(payload: Any, keys: tuple[str, ...], what: str) -> list[Any]:
    if isinstance(payload, dict):
        for key in keys:
            found = payload.get(key)
            if isinstance(found, list):
                return found
        raise ForeignFormatError(f"{what}: expected a JSON list, or an object with {list(keys)}.")
    if not isinstance(payload, list):
        raise ForeignFormatError(f"{what}: expected a JSON list of memories.")
    return payload


# ----------------------------------------------------------------------------- MemOS
def _memos_node(entry: Any, i: int) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ForeignFormatError(f"MemOS memory #{i} is not a JSON object.")
    payload = entry.get("payload")
    node: dict[str, Any] = payload if isinstance(payload, dict) else entry
    if not isinstance(node.get("memory"), str):
        raise ForeignFormatError(f"MemOS memory #{i} has no 'memory' text.")
    if node.get("metadata") is not None and not isinstance(node["metadata"], dict):
        raise ForeignFormatError(f"MemOS memory #{i}: 'metadata' must be an object.")
    return node


def read_memos(
    path: str | os.PathLike[str],
    *,
    user_id: str | None = None,
    limits: ImportLimits = DEFAULT_LIMITS,
) -> ForeignBundle:
    """Read a MemTensor MemOS cube folder (``config.json`` + ``textual_memory.json``).

    Supports the three textual-memory dumps MemOS writes: a list of vector-DB records
    (``{"id", "vector", "payload": {"id", "memory", "metadata"}}``, ``general_text``), a list of
    ``TextualMemoryItem`` dicts (``naive_text``) and a graph ``{"nodes": [...], "edges": [...]}``
    (``tree_text``). ``metadata.history`` (archived contents) becomes older versions.
    Pickles (``activation_memory.pickle``) and other files are reported in ``skipped_files``.
    """
    root = Path(path).expanduser()
    if root.is_file():  # a bare textual_memory.json
        root, files = root.parent, [root.name]
        config: dict[str, Any] = {}
    else:
        if not root.is_dir():
            raise ForeignFormatError(f"{root} is not a MemOS cube folder.")
        files = sorted(p.name for p in root.iterdir())
        config = {}
        if "config.json" in files:
            cfg = _read_json_file(root / "config.json", limits, "MemOS config.json")
            if not isinstance(cfg, dict):
                raise ForeignFormatError(f"{root / 'config.json'} must hold a JSON object.")
            config = cfg
    text_cfg = _obj(config.get("text_mem"))
    inner = _obj(text_cfg.get("config"))
    mem_name = inner.get("memory_filename", "textual_memory.json") if config else files[0]
    if (
        not isinstance(mem_name, str)
        or "/" in mem_name
        or "\\" in mem_name
        or mem_name.startswith(".")
    ):
        raise UnsafeArchiveError(
            f"config.json names memory file {mem_name!r}; it must be a plain file name."
        )
    bundle = ForeignBundle(format="memos", records=[])
    emb_cfg = _obj(_obj(inner.get("embedder")).get("config"))
    if emb_cfg.get("model_name_or_path"):
        bundle.embedder = str(emb_cfg["model_name_or_path"])
        bundle.warnings.append(
            f"MemOS vectors ({bundle.embedder}) were not reused; memories were re-embedded."
        )
    for name in files:
        if name in ("config.json", mem_name):
            continue
        full = root / name
        if full.is_symlink():
            raise UnsafeArchiveError(f"{full} is a symlink; refusing the MemOS folder.")
        reason = next((r for s, r in _MEMOS_SKIP_REASONS.items() if name.endswith(s)), None)
        bundle.skipped_files.append((name, reason or "not part of MemOS textual memory; skipped"))
    if mem_name not in files:
        raise ForeignFormatError(f"{root} has no {mem_name}; nothing to import.")
    data = _read_json_file(root / mem_name, limits, "MemOS textual memory")
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if isinstance(nodes, list):
        edges = data.get("edges")
        if isinstance(edges, list) and edges:
            bundle.warnings.append(
                f"{len(edges)} MemOS graph edges were not imported (a MemCube keeps no graph)."
            )
        entries: list[Any] = nodes
    else:
        entries = _records(data, ("memories", "items"), f"{mem_name}")
    default_user = user_id or _scope(config.get("user_id"))
    cube_id = config.get("cube_id")
    if not isinstance(cube_id, str):
        cube_id = None
    backend = text_cfg.get("backend")
    if not isinstance(backend, str):
        backend = None
    for i, entry in enumerate(entries):
        node = _memos_node(entry, i)
        md = _obj(node.get("metadata"))  # _memos_node checked it is an object or null
        mid = _nonempty_str(node.get("id")) or uuid.uuid4().hex
        owner = _scope(md.get("user_id")) or default_user
        if owner is None:
            raise ForeignFormatError(
                f"MemOS memory {mid!r} names no user; pass user_id=... to import it."
            )
        if md.get("status") == "deleted":
            bundle.skipped_items.append((mid, "deleted in MemOS"))
            continue
        if not node["memory"].strip():
            bundle.skipped_items.append((mid, "empty memory text"))
            continue
        mtype = _lookup(_MEMOS_TYPES, md.get("memory_type"))
        if mtype is None:
            mtype = _lookup(_MEMOS_TYPES, md.get("type"))
        if md.get("preference_type"):
            mtype = MemoryType.PREFERENCE
        conf = md.get("confidence")
        importance = (
            min(max(float(conf) / 100.0, 0.0), 1.0) if is_number(conf) and conf == conf else None
        )
        sources = md.get("sources")
        if not isinstance(sources, list):
            sources = []
        message_ids = [
            s["message_id"]
            for s in sources
            if isinstance(s, dict) and isinstance(s.get("message_id"), str)
        ]
        memos_md = {
            k: _json_safe(md[k]) for k in _MEMOS_KEEP if k in md and md[k] not in (None, [], {}, "")
        }
        created = _time(md.get("created_at")) or _time(md.get("updated_at")) or utcnow()
        updated = _time(md.get("updated_at")) or created
        common = dict(
            id=mid, user_id=owner, session_id=_scope(md.get("session_id")), memory_type=mtype,
            tags=_tags(md.get("tags")), event_time=_time(md.get("memory_time")),
            created_at=created,
        )  # fmt: skip
        versions: list[MemoryItem] = []
        history: list[dict[str, Any]] = [
            h
            for h in md.get("history") or []
            if isinstance(h, dict) and isinstance(h.get("memory"), str) and h["memory"].strip()
        ]
        history.sort(key=lambda h: _int_or(h.get("version"), 0))
        for n, h in enumerate(history, 1):
            versions.append(_item(
                f"MemOS memory {mid!r} history #{n}", content=h["memory"], version=n,
                state=LifecycleState.SUPERSEDED, updated_at=_time(h.get("created_at")) or created,
                metadata={"memos": {"update_type": h.get("update_type")}} if isinstance(h.get("update_type"), str) else None,
                provenance=Provenance(source="memos", detail={"memos_id": mid, "cube_id": cube_id}),
                **common,
            ))  # fmt: skip
        version = max(_int_or(md.get("version"), 1), len(versions) + 1)
        try:
            versions.append(_item(
                f"MemOS memory {mid!r}", content=node["memory"], version=version, importance=importance,
                state=_lookup(_MEMOS_STATES, md.get("status")) or LifecycleState.ACTIVATED, updated_at=updated,
                metadata={"memos": memos_md} if memos_md else None,
                provenance=Provenance(source="memos", extractor=backend, message_ids=message_ids,
                                      detail={"memos_id": mid, "cube_id": cube_id}),
                **common,
            ))  # fmt: skip
        except EmptyContentError:
            bundle.skipped_items.append((mid, "empty memory text"))
            continue
        bundle.records.append(versions)
    return _finish(bundle, limits)


# ----------------------------------------------------------------------------- LangGraph
def _langgraph_text(value: dict[str, Any]) -> tuple[str | None, str | None]:
    """The text of a store value, and which field held it."""
    for key in ("content", "text", "memory", "data", "page_content"):
        v = value.get(key)
        if isinstance(v, str) and v.strip():
            return v, key
        if isinstance(v, dict):  # LangMem: {"kind": "Memory", "content": {"content": "..."}}
            for inner in ("content", "text", "memory"):
                if isinstance(v.get(inner), str) and v[inner].strip():
                    return v[inner], key
    return None, None


def _owner_from_namespace(ns: list[str]) -> str | None:
    for i, label in enumerate(ns):
        if label in ("users", "user") and i + 1 < len(ns):
            return ns[i + 1]
    specific = [label for label in ns if label not in _GENERIC_LABELS]
    return specific[0] if specific else None


def read_langgraph(
    path: str | os.PathLike[str],
    *,
    user_id: str | None = None,
    limits: ImportLimits = DEFAULT_LIMITS,
) -> ForeignBundle:
    """Read a JSON dump of LangGraph store items, e.g.
    ``json.dump([it.dict() for it in store.search(("memories",), limit=1000)], f)``.

    Each item (``namespace``, ``key``, ``value``, ``created_at``, ``updated_at``) becomes one
    memory. The text comes from ``value["content"]`` (or ``text``/``memory``/``data``, or
    LangMem's ``{"content": {"content": ...}}``); other values are serialized as JSON. The owner is
    ``user_id`` if given, else the namespace label after ``"users"``, else its first label that
    is not a generic word like ``"memories"``. Ids are stable: re-importing the dump with
    ``on_conflict="skip"`` adds nothing twice.
    """
    src = Path(path).expanduser()
    data = _read_json_file(src, limits, "LangGraph store dump")
    entries = _records(data, ("items", "results"), "LangGraph store dump")
    bundle = ForeignBundle(format="langgraph", records=[])
    for i, e in enumerate(entries):
        if (
            not isinstance(e, dict)
            or not isinstance(e.get("key"), str)
            or not isinstance(e.get("value"), dict)
        ):
            raise ForeignFormatError(
                f"LangGraph item #{i} needs 'namespace', 'key' (string) and 'value' (object)."
            )
        ns = e.get("namespace")
        if isinstance(ns, str):
            ns = ns.split(".")
        if not isinstance(ns, list) or not ns or not all(isinstance(x, str) and x for x in ns):
            raise ForeignFormatError(
                f"LangGraph item #{i}: 'namespace' must be a non-empty list of strings."
            )
        mid = uuid.uuid5(
            uuid.NAMESPACE_URL, "langgraph-store:" + "\x1f".join(ns) + "\x1e" + e["key"]
        ).hex
        owner = user_id or _scope(_owner_from_namespace(ns))
        if owner is None:
            raise ForeignFormatError(
                f"LangGraph item #{i} ({'/'.join(ns)}) names no user; pass user_id=... to import it."
            )
        value = e["value"]
        text, field_name = _langgraph_text(value)
        if text is None:
            text = json.dumps(_json_safe(value), ensure_ascii=False, sort_keys=True)
        extra = {k: _json_safe(v) for k, v in value.items() if k != field_name}
        md: dict[str, Any] = {"namespace": "/".join(ns), "key": e["key"]}
        if extra and text != json.dumps(_json_safe(value), ensure_ascii=False, sort_keys=True):
            md["value"] = extra
        created = _time(e.get("created_at"))
        try:
            item = _item(
                f"LangGraph item #{i}", id=mid, content=text, user_id=owner, metadata=md,
                created_at=created, updated_at=_time(e.get("updated_at")) or created,
                provenance=Provenance(source="langgraph_store", detail={"namespace": ns, "key": e["key"]}),
            )  # fmt: skip
        except EmptyContentError:
            bundle.skipped_items.append((mid, "empty value"))
            continue
        bundle.records.append([item])
    return _finish(bundle, limits)


# ----------------------------------------------------------------------------- mem0
def read_mem0(
    path: str | os.PathLike[str],
    *,
    user_id: str | None = None,
    limits: ImportLimits = DEFAULT_LIMITS,
) -> ForeignBundle:
    """Read a mem0 memories export: the JSON list (or ``{"results": [...]}``) that
    ``Memory.get_all`` / the platform API return, each with ``id``, ``memory``, ``user_id``,
    optional ``agent_id``/``run_id``, ``metadata``, ``categories``, ``created_at``,
    ``updated_at``, ``immutable`` and ``expiration_date``.

    ``run_id`` becomes the session, ``categories`` the tags, ``immutable`` memories are frozen.
    """
    src = Path(path).expanduser()
    data = _read_json_file(src, limits, "mem0 export")
    entries = _records(data, ("results", "memories"), "mem0 export")
    bundle = ForeignBundle(format="mem0", records=[])
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or not isinstance(e.get("memory"), str):
            raise ForeignFormatError(f"mem0 memory #{i} needs a 'memory' string.")
        mid = _nonempty_str(e.get("id")) or uuid.uuid4().hex
        owner = _scope(e.get("user_id")) or user_id
        if owner is None:
            raise ForeignFormatError(
                f"mem0 memory {mid!r} has no user_id; pass user_id=... to import it."
            )
        if e.get("metadata") is not None and not isinstance(e["metadata"], dict):
            raise ForeignFormatError(f"mem0 memory {mid!r}: 'metadata' must be an object.")
        md = dict(_json_safe(e.get("metadata") or {}))
        for key in ("role", "actor_id"):
            if isinstance(e.get(key), str):
                md[key] = e[key]
        created = _time(e.get("created_at"))
        try:
            item = _item(
                f"mem0 memory {mid!r}", id=mid, content=e["memory"], user_id=owner,
                agent_id=_scope(e.get("agent_id")), session_id=_scope(e.get("run_id")),
                tags=_tags(e.get("categories")), metadata=md or None, created_at=created,
                updated_at=_time(e.get("updated_at")) or created,
                expires_at=_time(e.get("expiration_date")),
                state=LifecycleState.FROZEN if e.get("immutable") is True else None,
                provenance=Provenance(source="mem0", detail={"mem0_id": mid, "hash": e.get("hash") if isinstance(e.get("hash"), str) else None}),
            )  # fmt: skip
        except EmptyContentError:
            bundle.skipped_items.append((mid, "empty memory text"))
            continue
        bundle.records.append([item])
    return _finish(bundle, limits)


# ----------------------------------------------------------------------------- dispatch
_READERS = {"memos": read_memos, "langgraph": read_langgraph, "mem0": read_mem0}


def detect_format(path: str | os.PathLike[str]) -> str:
    """Guess ``"mip"``, ``"memos"``, ``"langgraph"`` or ``"mem0"`` from a path's contents."""
    p = Path(path).expanduser()
    if p.is_dir():
        if (p / "config.json").is_file() or (p / "textual_memory.json").is_file():
            return "memos"
        raise ForeignFormatError(
            f"{p} is a folder but not a MemOS cube (no config.json); pass a file or format=..."
        )
    if not p.is_file():
        raise InvalidInputError(f"{p} does not exist.")
    with open(p, "rb") as fh:
        head = fh.read(512)
    if head[:2] == b"\x1f\x8b" or head[257:262] == b"ustar":
        return "mip"
    stripped = head.lstrip()
    if stripped[:1] not in (b"[", b"{"):
        raise ForeignFormatError(f"{p} is neither a MIP archive nor a JSON export; pass format=...")
    data = _read_json_file(p, DEFAULT_LIMITS, "export")
    if isinstance(data, dict):
        if isinstance(data.get("nodes"), list):
            return "memos"
        if isinstance(data.get("items"), list):
            data = data["items"]
        else:
            data = data.get("results") or data.get("memories")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        first = data[0]
        if {"namespace", "key", "value"} <= set(first):
            return "langgraph"
        if "payload" in first and isinstance(first["payload"], dict):
            return "memos"
        if "memory" in first:
            md = first.get("metadata")
            memos_keys = {
                "status",
                "memory_type",
                "sources",
                "visibility",
                "memory_time",
                "key",
                "type",
            }
            if (
                set(first) <= {"id", "memory", "metadata"}
                and isinstance(md, dict)
                and memos_keys & set(md)
            ):
                return "memos"
            return "mem0"
    raise ForeignFormatError(
        f"cannot tell what {p} is; pass format='memos', 'langgraph' or 'mem0'."
    )


def read_foreign(
    path: str | os.PathLike[str],
    fmt: str,
    *,
    user_id: str | None = None,
    limits: ImportLimits = DEFAULT_LIMITS,
) -> ForeignBundle:
    """Read a foreign export with the reader for ``fmt``."""
    if fmt not in _READERS:
        raise InvalidInputError(f"format must be one of {('auto', *FORMATS)}, got {fmt!r}.")
    if user_id is not None and _scope(user_id) is None:
        raise InvalidInputError(f"user_id {user_id!r} is not a valid user id.")
    return _READERS[fmt](path, user_id=user_id, limits=limits)
