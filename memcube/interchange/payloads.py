"""Caches and adapters inside an archive: how files group into units, and whose model they fit.

A *unit* is what is attached or dropped as a whole: a ``NAME.safetensors`` with its
``NAME.json`` manifest, or otherwise every payload file of one folder (e.g.
``adapters/alice/v2/``). A unit is attached to a target only when the model fingerprint in its
JSON manifest equals the target's.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from memcube.errors import InvalidInputError

#: Manifest keys holding a model fingerprint's digest string (checked first).
DIGEST_KEYS = ("fingerprint_digest", "model_fingerprint_digest", "base_model_fingerprint_digest")
#: Manifest keys that name the model a cache or adapter was built for, most specific first.
#: ``fingerprint`` is what :mod:`memcube.activation` writes, ``base_model`` what
#: :mod:`memcube.parametric` writes (a :class:`~memcube.runtime.model.ModelFingerprint`).
FINGERPRINT_KEYS = (
    "model_fingerprint",
    "base_model_fingerprint",
    "fingerprint",
    "base_fingerprint",
    "base_model",
)
_MODEL_FINGERPRINT_FIELDS = {
    "config_hash",
    "dtype",
    "tokenizer_hash",
    "chat_template_hash",
    "weights_hash",
}
#: Manifest sections searched (one level deep) when the top level names no fingerprint.
FINGERPRINT_SECTIONS = ("model", "base_model", "manifest", "meta")
_MANIFEST_SUFFIXES = (".manifest", "_manifest", "-manifest")


def fingerprint_digest(value: Any) -> str | None:
    """Reduce a model fingerprint to one comparable string.

    A string is taken as is; a mapping uses its ``digest``/``sha256``/``hash`` entry; a mapping
    with the fields of :class:`~memcube.runtime.model.ModelFingerprint` gets that class's own
    ``digest``; any other mapping the SHA-256 of its canonical JSON; an object with a ``digest`` attribute or ``model_dump()`` /
    ``to_dict()`` is reduced the same way.

    Example:
        >>> fingerprint_digest({"model_id": "m", "config_hash": "ab"}) == fingerprint_digest(
        ...     {"config_hash": "ab", "model_id": "m"})
        True
    """
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, dict):
        for key in ("digest", "sha256", "hash"):
            found = value.get(key)
            if isinstance(found, str) and found:
                return found
        if _MODEL_FINGERPRINT_FIELDS <= set(value):
            from pydantic import ValidationError

            from memcube.runtime.model import ModelFingerprint

            try:
                return ModelFingerprint.model_validate(value).digest
            except ValidationError:
                pass
        blob = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
        return hashlib.sha256(blob.encode()).hexdigest()
    digest = getattr(value, "digest", None)
    if isinstance(digest, str) and digest:
        return digest
    for method in ("model_dump", "to_dict"):
        fn = getattr(value, method, None)
        if callable(fn):
            return fingerprint_digest(fn())
    raise InvalidInputError(
        f"model_fingerprint must be a digest string or a mapping, got {type(value).__name__}."
    )


def find_fingerprint(doc: Any) -> str | None:
    """The model fingerprint named by a cache/adapter manifest, or ``None``."""
    if not isinstance(doc, dict):
        return None
    for scope in [doc, *(doc[s] for s in FINGERPRINT_SECTIONS if isinstance(doc.get(s), dict))]:
        for key in DIGEST_KEYS:
            digest = scope.get(key)
            if isinstance(digest, str) and digest:
                return digest
        for key in FINGERPRINT_KEYS:
            fingerprint = scope.get(key)
            if isinstance(fingerprint, (str, dict)) and fingerprint:
                return fingerprint_digest(fingerprint)
    return None


def find_owner(doc: Any) -> tuple[str | None, list[str]]:
    """``(user_id, item_ids)`` a manifest attributes its cache/adapter to, when it says so."""
    if not isinstance(doc, dict):
        return None, []
    user = doc.get("user_id")
    prov = doc.get("provenance")
    if user is None and isinstance(prov, dict):
        user = prov.get("user_id")
    ids: list[str] = []
    for source in (doc, prov if isinstance(prov, dict) else {}):
        for key in ("item_ids", "memory_ids", "items"):
            val = source.get(key)
            if isinstance(val, list):
                ids.extend(v for v in val if isinstance(v, str))
    return (user if isinstance(user, str) else None), ids


@dataclass
class PayloadUnit:
    """Files attached or dropped together."""

    kind: str
    key: str
    files: list[str] = field(default_factory=list)

    @property
    def manifests(self) -> list[str]:
        return [f for f in self.files if f.endswith(".json")]


def _stem(name: str) -> str:
    stem = name[: -len(".json")]
    for suffix in _MANIFEST_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def group_units(names: Iterable[str]) -> list[PayloadUnit]:
    """Group payload paths (``activation/...``, ``adapters/...``, posix) into units.

    Example:
        >>> [u.key for u in group_units(["activation/c1.safetensors", "activation/c1.json",
        ...                              "adapters/a/v1/w.safetensors", "adapters/a/v1/m.json"])]
        ['activation/c1', 'adapters/a/v1']
    """
    by_dir: dict[str, list[str]] = defaultdict(list)
    for name in names:
        by_dir[posixpath.dirname(name)].append(posixpath.basename(name))
    units: list[PayloadUnit] = []
    for directory in sorted(by_dir):
        files = set(by_dir[directory])
        kind = directory.split("/")[0]
        for j in sorted(f for f in files if f.endswith(".json")):
            tensor = _stem(j) + ".safetensors"
            if tensor in files and j in files:
                units.append(
                    PayloadUnit(
                        kind,
                        f"{directory}/{_stem(j)}",
                        [f"{directory}/{tensor}", f"{directory}/{j}"],
                    )
                )
                files -= {tensor, j}
        if files:
            units.append(PayloadUnit(kind, directory, [f"{directory}/{f}" for f in sorted(files)]))
    return units


def unit_fingerprint(unit: PayloadUnit, read_json: Callable[[str], Any]) -> str | None:
    """The first model fingerprint named by any of the unit's JSON manifests."""
    for name in unit.manifests:
        fp = find_fingerprint(read_json(name))
        if fp:
            return fp
    return None
