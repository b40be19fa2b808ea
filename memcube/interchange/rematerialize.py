"""Carrying out the compatibility rules (:mod:`memcube.interchange.compat`) on import: KV
caches recomputed or rebuilt, adapters re-distilled, on the importing cube's model.

The importer plans (:func:`plan_unit`) before anything is written; the work itself runs after
the memories are in the target cube, now or on first use (``rematerialize="lazy"``: the plans,
with the source files they need, wait in ``<cube>/rematerialize/``, and
:func:`run_pending` carries them out when the cube is first used with the target model).

Every derived payload records a :class:`~memcube.provenance.Derivation` (source payload digest,
both fingerprints, method), signed with the importing cube's key when one is given.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ValidationError

from memcube.atomic import atomic_write_text
from memcube.errors import InvalidInputError, MemCubeError, UnknownModelError
from memcube.interchange.compat import Rule, decide
from memcube.interchange.payloads import PayloadUnit
from memcube.items import MemoryItem
from memcube.provenance import Derivation, MemorySource, PayloadSource, text_digest
from memcube.runtime.model import ModelFingerprint

if TYPE_CHECKING:  # pragma: no cover - typing only
    from memcube.interchange.reader import StagedArchive
    from memcube.runtime.engine import Runtime

__all__ = [
    "REMATERIALIZE",
    "PayloadPlan",
    "check_identifiable",
    "has_pending",
    "Rematerialization",
    "plan_unit",
    "run_pending",
    "run_plans",
]

Rematerialize = Literal["now", "lazy", "never"]
REMATERIALIZE: tuple[Rematerialize, ...] = ("now", "lazy", "never")
PENDING_DIR = "rematerialize"
_PENDING_FILE = "pending.json"
#: Teacher: answers a question closed-book with the source model and its adapter.
Teacher = Callable[[str], str]

log = logging.getLogger(__name__)


@dataclass
class Rematerialization:
    """One cache or adapter brought to the target model (or waiting to be), for the report."""

    unit: str
    kind: str
    rule: Rule
    reason: str
    status: str = "planned"  # "done", "pending" (lazy), "skipped" (never), "failed"
    result: str | None = None
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class PayloadPlan:
    """What re-materializing one payload needs, JSON-serializable (lazy plans are stored)."""

    unit: str
    kind: str
    rule: Rule
    reason: str
    user_id: str | None
    memories: list[dict[str, Any]]
    source_digest: str
    source_fingerprint: dict[str, Any]
    target_fingerprint: str
    token_ids: list[int] = field(default_factory=list)
    token_budget: int | None = None
    adapter_name: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PayloadPlan:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def unit_digest(staged: StagedArchive, unit: PayloadUnit) -> str:
    """SHA-256 over the unit's member names and their archive digests (what the signature
    covers): the identity of a source payload."""
    rows = sorted(f"{name}:{staged.manifest.members[name].sha256}" for name in unit.files)
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _full_fingerprint(doc: Mapping[str, Any], key: str) -> ModelFingerprint | None:
    value = doc.get(key)
    if not isinstance(value, dict):
        return None
    try:
        return ModelFingerprint.model_validate(value)
    except ValidationError:
        return None


def _check_memories(
    memories: Sequence[MemorySource], records: Mapping[str, Sequence[MemoryItem]]
) -> str:
    """What is wrong with the recorded source memories, given the archive's records ("" when
    every one is there, at its recorded version, with its recorded text)."""
    if not memories:
        return "it records no source memories, so it cannot be rebuilt for another model"
    for m in memories:
        versions = {v.version: v for v in records.get(m.id, ())}
        item = versions.get(m.version)
        if item is None:
            return f"its source memory {m.id} (version {m.version}) is not in the archive"
        if m.content_sha256 and text_digest(item.content) != m.content_sha256:
            return (
                f"its source memory {m.id} (version {m.version}) differs from the text it "
                "recorded: the archive's source record was tampered with or is inconsistent"
            )
    return ""


def unit_manifest(staged: StagedArchive, unit: PayloadUnit) -> dict[str, Any] | None:
    """The unit's memcube manifest: the JSON that names its model (an adapter folder also
    holds PEFT's ``adapter_config.json``)."""
    for name in unit.manifests:
        doc = staged.read_json(name)
        if isinstance(doc, dict) and ("fingerprint" in doc or "base_model" in doc):
            return doc
    return None


def check_identifiable(staged: StagedArchive) -> None:
    """Refuse an archive with a payload that records its source but no full model fingerprint.

    Raises:
        UnknownModelError: such a payload (nothing is imported).
    """
    for unit in staged.units:
        manifest = unit_manifest(staged, unit)
        if not isinstance(manifest, dict):
            continue
        if unit.kind == "activation" and isinstance(manifest.get("source"), dict):
            key = "fingerprint"
        elif isinstance(manifest.get("provenance"), dict) and (
            manifest["provenance"].get("source") == "distill"
        ):
            key = "base_model"
        else:
            continue
        if _full_fingerprint(manifest, key) is None:
            raise UnknownModelError(
                f"{unit.key} records its source but not a full model fingerprint, so no "
                "compatibility rule can match it to a model; nothing was imported. Re-export it "
                "from a current memcube."
            )


def plan_unit(
    staged: StagedArchive,
    unit: PayloadUnit,
    target: ModelFingerprint,
    records: Mapping[str, Sequence[MemoryItem]],
) -> PayloadPlan | None:
    """The plan for a unit built for another model, or ``None`` for a unit without a source
    record (a payload written before sources were recorded: the importer drops it).

    Raises:
        UnknownModelError: the unit records a source but no full model fingerprint.
    """
    manifest = unit_manifest(staged, unit)
    if not isinstance(manifest, dict):
        return None
    if unit.kind == "activation":
        raw = manifest.get("source")
        if not isinstance(raw, dict):
            return None
        try:
            source = PayloadSource.model_validate(raw)
        except ValidationError as exc:
            raise InvalidInputError(f"{unit.key}: unreadable source record ({exc})") from None
        fp = _full_fingerprint(manifest, "fingerprint")
        memories = list(source.memories)
        user_id = source.user_id or manifest.get("user_id")
        adapter_name = None
        recipe: dict[str, Any] = {}
    else:
        prov = manifest.get("provenance")
        if not isinstance(prov, dict) or prov.get("source") != "distill":
            return None
        fp = _full_fingerprint(manifest, "base_model")
        versions = prov.get("memory_versions") or {}
        memories = [
            MemorySource(id=str(i), version=int(versions.get(i, 1)), content_sha256="")
            for i in prov.get("memory_ids") or []
        ]
        user_id = prov.get("user_id")
        adapter_name = str(manifest.get("name") or unit.key.split("/")[1])
        recipe = dict(prov.get("data") or {})
        source = PayloadSource(user_id=user_id, memories=memories, recipe=recipe)
    if fp is None:
        raise UnknownModelError(
            f"{unit.key} records its source but not a full model fingerprint, so it cannot be "
            "matched to any model; nothing was imported. Re-export it from a current memcube."
        )
    kind = "activation" if unit.kind == "activation" else "adapter"
    problem = _check_memories(memories, records)
    decision = decide(kind, fp, target, source_ok=not problem, source_problem=problem)
    token_ids: list[int] = []
    if decision.rule == "recompute":
        token_ids = _token_ids(staged, unit)
        if source.token_ids_sha256 and _ids_sha256(token_ids) != source.token_ids_sha256:
            decision = decide(
                kind,
                fp,
                target,
                source_ok=False,
                source_problem="its token ids differ from the ones its source recorded",
            )
            token_ids = []
    return PayloadPlan(
        unit=unit.key,
        kind=unit.kind,
        rule=decision.rule,
        reason=decision.reason,
        user_id=user_id if isinstance(user_id, str) else None,
        memories=[m.model_dump() for m in memories],
        source_digest=unit_digest(staged, unit),
        source_fingerprint=fp.model_dump(),
        target_fingerprint=target.digest,
        token_ids=token_ids,
        token_budget=source.token_budget,
        adapter_name=adapter_name,
        recipe=recipe,
        files=list(unit.files),
    )


def _ids_sha256(ids: Sequence[int]) -> str:
    import numpy as np

    return hashlib.sha256(np.asarray(list(ids), dtype="<i8").tobytes()).hexdigest()


def _token_ids(staged: StagedArchive, unit: PayloadUnit) -> list[int]:
    from safetensors import safe_open

    tensors = next(f for f in unit.files if f.endswith(".safetensors"))
    with safe_open(str(staged.files[tensors]), framework="pt") as fh:
        if "prefix_ids" not in fh.keys():  # noqa: SIM118 - safe_open has no __contains__
            return []
        return [int(i) for i in fh.get_tensor("prefix_ids").tolist()]


# ---------------------------------------------------------------------- carrying plans out
def _sign(derivation: Derivation, signing_key: Any) -> Derivation:
    if signing_key is None:
        return derivation
    from cryptography.hazmat.primitives import serialization

    from memcube.interchange.signing import key_id, load_private_key

    private = load_private_key(signing_key)
    pub = private.public_key()
    raw = pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return derivation.model_copy(
        update={
            "signer_key_id": key_id(pub),
            "public_key": base64.b64encode(raw).decode(),
            "signature": base64.b64encode(private.sign(derivation.signed_bytes())).decode(),
        }
    )


def verify_derivation(doc: Any, trusted_keys: Sequence[Any], payload_sha256: str) -> str:
    """Why the derivation record ``doc`` is not signed by a trusted key over this payload
    (``""`` when it is)."""
    from cryptography.exceptions import InvalidSignature

    from memcube.interchange.signing import load_public_key

    try:
        derivation = Derivation.model_validate(doc)
    except ValidationError:
        return "its derivation record is unreadable"
    if not derivation.signature or not derivation.public_key:
        return "it was derived on import and its derivation is not signed"
    if derivation.payload_sha256 != payload_sha256:
        return "its tensors differ from the ones its derivation signature covers"
    raw = base64.b64decode(derivation.public_key)
    from cryptography.hazmat.primitives import serialization

    keys = [load_public_key(k) for k in trusted_keys]
    match = [
        k
        for k in keys
        if k.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw
    ]
    if not match:
        return f"its derivation was signed by key {derivation.signer_key_id}, which is not trusted"
    try:
        match[0].verify(base64.b64decode(derivation.signature), derivation.signed_bytes())
    except InvalidSignature:
        return "its derivation signature does not match the record"
    return ""


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _derivation(plan: PayloadPlan, payload: Path, signing_key: Any) -> Derivation:
    method = plan.rule
    assert method in ("recompute", "rebuild", "redistill")
    derivation = Derivation(
        method=method,
        source_digest=plan.source_digest,
        source_fingerprint=ModelFingerprint.model_validate(plan.source_fingerprint).digest,
        target_fingerprint=plan.target_fingerprint,
        payload_sha256=_file_sha256(payload),
        derived_at=datetime.now(timezone.utc),
    )
    return _sign(derivation, signing_key)


def _recorded_items(cube: Any, plan: PayloadPlan) -> list[MemoryItem]:
    """The plan's memories as they were recorded (the version the source was built from)."""
    items: list[MemoryItem] = []
    for m in plan.memories:
        versions = {v.version: v for v in cube.history(m["id"])}
        item = versions.get(int(m["version"]))
        if item is None:
            raise MemCubeError(f"memory {m['id']} version {m['version']} is not in the cube")
        items.append(item)
    return items


def _cache(cube: Any, runtime: Runtime, plan: PayloadPlan, signing_key: Any) -> str:
    from memcube.activation.layout import BlockLayouts
    from memcube.activation.memory import activation_memory, block_source, counter_name, warm
    from memcube.scheduler import BlockEntry

    items = _recorded_items(cube, plan)
    user_id = plan.user_id or items[0].user_id
    mem = activation_memory(cube, runtime)
    if plan.rule == "recompute":
        source = block_source(runtime, user_id, items, plan.token_ids, plan.token_budget)
        mem.store.get_or_build(
            plan.token_ids, user_id=user_id, item_ids=[it.id for it in items], source=source
        )
        key = mem.store.key_for(plan.token_ids)
    else:
        found = warm(cube, runtime, user_id, items, plan.token_budget)
        assert found is not None
        key = found
    if plan.token_budget:
        BlockLayouts(cube.path).adopt(
            user_id,
            token_budget=plan.token_budget,
            counter=counter_name(runtime),
            entries=[BlockEntry(it.id, it.version) for it in items],
        )
    mem.store.record_derivation(key, _derivation(plan, mem.store.tensors_path(key), signing_key))
    return key


def _adapter(
    cube: Any,
    runtime: Runtime,
    plan: PayloadPlan,
    signing_key: Any,
    teacher: Teacher | None,
    progress: bool,
) -> str:
    name = plan.adapter_name or "imported"
    ids = [m["id"] for m in plan.memories]
    user_id = plan.user_id or _recorded_items(cube, plan)[0].user_id
    manifest = cube.parametric.distill(
        name,
        user_id=user_id,
        items=ids,
        runtime=runtime,
        config=recorded_recipe(plan.recipe),
        teacher=teacher,
        progress=progress,
        description=f"re-distilled on import from {plan.unit}",
    )
    folder = cube.parametric.path(manifest.name, manifest.version)
    derivation = _derivation(plan, Path(folder) / "adapter_model.safetensors", signing_key)
    cube.parametric.store.record_derivation(manifest.name, manifest.version, derivation)
    return str(manifest.ref)


def recorded_recipe(recipe: Mapping[str, Any]) -> Any:
    """The source adapter's training settings as a ``DistillConfig`` (the run's figures, such as
    its losses, and fields this version does not know are left out); ``None`` when it recorded
    none, or none that this version accepts (the target then trains with the defaults)."""
    import dataclasses

    from memcube.parametric.distill import DistillConfig

    known = {f.name for f in dataclasses.fields(DistillConfig)}
    settings = {k: v for k, v in recipe.items() if k in known and v is not None}
    if not settings:
        return None
    try:
        return DistillConfig(**settings)
    except (InvalidInputError, TypeError, ValueError):
        return None


def run_plans(
    cube: Any,
    runtime: Runtime,
    plans: Sequence[PayloadPlan],
    *,
    signing_key: Any = None,
    teachers: Mapping[str, Teacher] | None = None,
    progress: bool = True,
) -> list[Rematerialization]:
    """Carry ``plans`` out on ``cube`` with ``runtime``'s model. A failure is reported in its
    record (``status="failed"``, ``detail["error"]``) and does not stop the others: the
    memories are already imported, and a cache or adapter can be rebuilt from them later.
    ``teachers`` maps a plan's unit to its teacher."""
    from tqdm.auto import tqdm

    done: list[Rematerialization] = []
    bar = tqdm(total=len(plans), desc="rematerialize", unit="payload", disable=not progress)
    try:
        for plan in plans:
            out = Rematerialization(plan.unit, plan.kind, plan.rule, plan.reason)
            start = time.perf_counter()
            try:
                if plan.kind == "activation":
                    out.result = _cache(cube, runtime, plan, signing_key)
                else:
                    teacher = (teachers or {}).get(plan.unit)
                    out.result = _adapter(cube, runtime, plan, signing_key, teacher, progress)
                    out.detail["teacher"] = teacher is not None
                out.status = "done"
            except Exception as exc:  # noqa: BLE001 - the memories are in: report, go on
                log.warning("could not %s %s: %s", plan.rule, plan.unit, exc)
                out.status, out.detail["error"] = "failed", f"{type(exc).__name__}: {exc}"
            out.seconds = round(time.perf_counter() - start, 3)
            done.append(out)
            bar.update(1)
    finally:
        bar.close()
    return done


def load_teacher(
    plan: PayloadPlan,
    files: Mapping[str, Path],
    *,
    models: Mapping[str, str | Path] | None = None,
    max_new_tokens: int = 32,
) -> Teacher | None:
    """A teacher for re-distilling ``plan``'s adapter: its source model (a bundled model of
    that name, or ``models[model_id]``, a local folder), with the source adapter, answering
    closed-book. ``None`` when the source model is not available here (or is not the exact
    model the adapter was trained on): re-distillation then learns from the memories alone.
    ``files`` maps the unit's archive names to readable files."""
    from memcube.parametric.manager import AdapterManager
    from memcube.parametric.store import AdapterStore
    from memcube.runtime.chat import ChatMessage
    from memcube.runtime.engine import GenerationOptions, Runtime
    from memcube.runtime.model import BUNDLED_MODELS

    source_fp = ModelFingerprint.model_validate(plan.source_fingerprint)
    location = (models or {}).get(source_fp.model_id)
    if location is None and source_fp.model_id.lower() in BUNDLED_MODELS:
        location = source_fp.model_id
    if location is None:
        return None
    try:
        runtime = Runtime.shared(location)
    except MemCubeError:
        return None
    if not runtime.fingerprint.matches(source_fp):
        return None
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="memcube-teacher-"))
    for name, path in files.items():
        if name in plan.files:
            dst = folder / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dst)
    try:
        version_dir = Path(plan.unit)  # adapters/<name>/v<N>
        store = AdapterStore(folder / "adapters")
        manager = AdapterManager.for_model(runtime.model, runtime.tokenizer, lock=runtime.lock)
        key = manager.load(store, version_dir.parent.name, int(version_dir.name.lstrip("v")))
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the weights are resident now
    options = GenerationOptions(max_new_tokens=max_new_tokens)

    def teach(question: str) -> str:
        prompt = runtime.prompt([ChatMessage("user", question)])
        return runtime.generate(prompt, options, adapter=key).text.strip()

    return teach


# ---------------------------------------------------------------------- lazy plans
def save_pending(cube_path: Path, staged: StagedArchive, plans: Sequence[PayloadPlan]) -> None:
    """Keep ``plans`` (and the source files a teacher may need) for :func:`run_pending`."""
    folder = cube_path / PENDING_DIR
    folder.mkdir(parents=True, exist_ok=True)
    pending = load_pending(cube_path)
    for plan in plans:
        for name in plan.files:
            dst = folder / plan.source_digest / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(staged.files[name], dst)
        pending = [p for p in pending if p.unit != plan.unit] + [plan]
    atomic_write_text(folder / _PENDING_FILE, json.dumps([asdict(p) for p in pending]))


def has_pending(cube_path: Path) -> bool:
    """Whether a cube holds lazy plans (one ``stat``: cheap enough for every call)."""
    return (Path(cube_path) / PENDING_DIR / _PENDING_FILE).is_file()


def load_pending(cube_path: Path) -> list[PayloadPlan]:
    """The stored lazy plans of a cube."""
    path = cube_path / PENDING_DIR / _PENDING_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, list):
        return []
    return [PayloadPlan.from_dict(d) for d in data if isinstance(d, dict)]


def pending_source_folder(cube_path: Path, plan: PayloadPlan) -> Path:
    """Where a lazy plan's source files were kept."""
    return cube_path / PENDING_DIR / plan.source_digest


def run_pending(
    cube: Any,
    runtime: Runtime,
    *,
    user_id: str | None = None,
    kind: str | None = None,
    signing_key: Any = None,
    teachers: Mapping[str, Teacher] | None = None,
    progress: bool = True,
) -> list[Rematerialization]:
    """Carry out the lazy plans meant for ``runtime``'s model (of one user and kind, or all),
    and forget them. Plans for another model stay."""
    path = Path(cube.path)
    pending = load_pending(path)
    digest = runtime.fingerprint.digest
    mine = [
        p
        for p in pending
        if p.target_fingerprint == digest
        and (user_id is None or p.user_id == user_id)
        and (kind is None or p.kind == kind)
    ]
    if not mine:
        return []
    teachers = dict(teachers or {})
    for plan in mine:
        if plan.kind != "activation" and plan.unit not in teachers:
            kept = pending_source_folder(path, plan)
            teacher = load_teacher(plan, {name: kept / name for name in plan.files})
            if teacher is not None:
                teachers[plan.unit] = teacher
    done = run_plans(
        cube, runtime, mine, signing_key=signing_key, teachers=teachers, progress=progress
    )
    finished = {r.unit for r in done if r.status == "done"}
    rest = [p for p in load_pending(path) if p.unit not in finished]
    for plan in mine:
        if plan.unit in finished and not any(p.source_digest == plan.source_digest for p in rest):
            shutil.rmtree(pending_source_folder(path, plan), ignore_errors=True)
    target = path / PENDING_DIR / _PENDING_FILE
    if rest:
        atomic_write_text(target, json.dumps([asdict(p) for p in rest]))
    elif target.exists():
        os.remove(target)
    return done
