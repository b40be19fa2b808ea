"""Bringing verified memories (from a MIP archive or a foreign export) into a cube."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from memcube.atomic import fsync_dir
from memcube.errors import InvalidInputError, UntrustedPayloadError
from memcube.interchange.format import DEFAULT_LIMITS, ImportLimits
from memcube.interchange.payloads import PayloadUnit, fingerprint_digest, unit_fingerprint
from memcube.interchange.reader import StagedArchive, read_archive
from memcube.interchange.rematerialize import (
    REMATERIALIZE,
    PayloadPlan,
    Rematerialization,
    check_identifiable,
    load_teacher,
    plan_unit,
    run_plans,
    save_pending,
    verify_derivation,
)
from memcube.interchange.signing import PublicKeyLike
from memcube.items import UPDATE_FIELDS, LifecycleState, MemoryItem
from memcube.ports import ImportTarget, RankingTarget

OnConflict = Literal["skip", "overwrite", "new_version"]
ON_CONFLICT = ("skip", "overwrite", "new_version")
ProgressFn = Callable[[str, int, "int | None"], None]
_RESTORE_BATCH = 128


@dataclass
class DroppedPayload:
    """A cache or adapter that was not attached, and why."""

    unit: str
    files: list[str]
    reason: str


@dataclass
class ImportReport:
    """What an import did. ``dropped`` caches can be rebuilt from the imported plaintext."""

    source: str
    format: str
    target: str
    source_cube_id: str | None = None
    source_embedder: str | None = None
    target_embedder: str | None = None
    reembedded: bool = False
    signature: str = "unsigned"
    signer_key_id: str | None = None
    added: int = 0
    overwritten: int = 0
    new_versions: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    versions_written: int = 0
    attached: list[str] = field(default_factory=list)
    #: Users whose ranking profile was written (``"*"``: the cube-wide prior).
    ranking_profiles: list[str] = field(default_factory=list)
    dropped: list[DroppedPayload] = field(default_factory=list)
    #: Caches and adapters built for another model, and what the compatibility rules did.
    rematerialized: list[Rematerialization] = field(default_factory=list)
    rematerialize_s: float = 0.0
    skipped_files: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.added + self.overwritten + self.new_versions

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["imported"] = self.imported
        return d


def check_on_conflict(on_conflict: str) -> None:
    if on_conflict not in ON_CONFLICT:
        raise InvalidInputError(f"on_conflict must be one of {ON_CONFLICT}, got {on_conflict!r}.")


def _plan(
    cube: ImportTarget,
    records: Sequence[Sequence[MemoryItem]],
    on_conflict: str,
    report: ImportReport,
) -> tuple[list[Sequence[MemoryItem]], list[Sequence[MemoryItem]], list[Sequence[MemoryItem]]]:
    """Split records into (new, overwrite, new_version) without writing anything."""
    ids = [r[0].id for r in records]
    existing: dict[str, MemoryItem] = {}
    for start in range(0, len(ids), 1000):
        for it in cube.get_many(ids[start : start + 1000]):
            existing[it.id] = it
    new, over, bump = [], [], []
    for versions in records:
        current = existing.get(versions[0].id)
        if current is None:
            new.append(versions)
        elif on_conflict == "skip":
            report.skipped.append((current.id, "already in the target cube (on_conflict='skip')"))
        elif on_conflict == "overwrite":
            over.append(versions)
        elif current.user_id != versions[-1].user_id:
            report.skipped.append(
                (current.id, "the target's memory with this id belongs to another user")
            )
        elif current.state == LifecycleState.FROZEN:
            report.skipped.append(
                (current.id, "frozen in the target cube; unfreeze it to update it")
            )
        elif (
            current.content_hash == versions[-1].content_hash
            and current.metadata == versions[-1].metadata
        ):
            report.skipped.append((current.id, "identical to the target's current version"))
        else:
            bump.append(versions)
    return new, over, bump


def apply_records(
    cube: ImportTarget,
    records: Sequence[Sequence[MemoryItem]],
    *,
    on_conflict: str,
    report: ImportReport,
    progress: ProgressFn | None = None,
) -> None:
    """Write validated records into ``cube`` following ``on_conflict``."""
    new, over, bump = _plan(cube, records, on_conflict, report)
    total = len(new) + len(over) + len(bump)
    done = 0
    for versions in over:
        cube.delete(versions[0].id, hard=True)
    restore = list(new) + list(over)
    for start in range(0, len(restore), _RESTORE_BATCH):
        batch = restore[start : start + _RESTORE_BATCH]
        cube.restore(batch, detail={"source": report.source, "format": report.format})
        report.versions_written += sum(len(v) for v in batch)
        done += len(batch)
        if progress:
            progress("memories", done, total)
    report.added += len(new)
    report.overwritten += len(over)
    for versions in bump:
        latest = versions[-1]
        cube.update(latest.id, **{f: getattr(latest, f) for f in UPDATE_FIELDS})
        report.new_versions += 1
        report.versions_written += 1
        done += 1
        if progress:
            progress("memories", done, total)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _copy_atomic(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(dst.parent)


def plan_payloads(
    staged: StagedArchive,
    model_fingerprint: Any,
    target_root: Path,
    on_conflict: str,
    *,
    target: Any = None,
) -> tuple[list[PayloadUnit], list[DroppedPayload], list[PayloadPlan]]:
    """Decide, per cache/adapter unit: attached (same model), re-materialized for the target
    model ``target`` (a :class:`~memcube.runtime.model.ModelFingerprint`, when known) by the
    compatibility rules (:mod:`memcube.interchange.compat`), or dropped (with the reason).

    Raises:
        UnknownModelError: a unit records its source but names no full model fingerprint.
    """
    target_fp = fingerprint_digest(model_fingerprint)
    records = {versions[0].id: versions for versions in staged.records}
    attach: list[PayloadUnit] = []
    dropped: list[DroppedPayload] = []
    plans: list[PayloadPlan] = []
    for unit in staged.units:
        what = "KV cache" if unit.kind == "activation" else "adapter"
        fp = unit_fingerprint(unit, staged.read_json)
        if fp is None:
            if not any(f.endswith(".safetensors") for f in unit.files):
                reason = (
                    "holds no tensors and names no model fingerprint (e.g. a per-user adapter "
                    "mapping); not attached: set it again in the target"
                )
            else:
                reason = f"its manifest names no model fingerprint; a {what} is only attached to the model it was built for"
            dropped.append(DroppedPayload(unit.key, unit.files, reason))
            continue
        if target_fp is None:
            dropped.append(
                DroppedPayload(
                    unit.key,
                    unit.files,
                    f"target model unknown: pass model=... (or model_fingerprint=...) to attach it (built for {fp[:16]}); rebuild it from the imported memories otherwise",
                )
            )
            continue
        if fp != target_fp:
            plan = plan_unit(staged, unit, target, records) if target is not None else None
            if plan is not None and plan.rule != "drop":
                plans.append(plan)
                continue
            reason = f"built for model {fp[:16]}, target model is {target_fp[:16]}; " + (
                plan.reason if plan is not None else "rebuild it from the imported memories"
            )
            dropped.append(DroppedPayload(unit.key, unit.files, reason))
            continue
        clash = [
            f
            for f in unit.files
            if (target_root / f).exists() and _sha256(target_root / f) != _sha256(staged.files[f])
        ]
        if clash and on_conflict != "overwrite":
            dropped.append(
                DroppedPayload(
                    unit.key,
                    unit.files,
                    f"the target already has a different {clash[0]} (on_conflict={on_conflict!r} keeps it)",
                )
            )
            continue
        attach.append(unit)
    return attach, dropped, plans


def check_payload_trust(staged: StagedArchive, trusted_keys: Sequence[Any] | None) -> None:
    """The strict payload policy: the archive signed by a trusted key, and every payload
    derived on an earlier import signed (its derivation) by a trusted key.

    Raises:
        UntrustedPayloadError: a payload is not vouched for by a trusted key.
    """
    if not staged.units:
        return
    if not trusted_keys or not staged.signature.verified:
        raise UntrustedPayloadError(
            "payload_trust='strict' needs an archive signed by one of trusted_keys; this one is "
            f"{staged.signature.status}. Nothing was imported."
        )
    for unit in staged.units:
        for name in unit.manifests:
            doc = staged.read_json(name)
            derived = doc.get("derived") if isinstance(doc, dict) else None
            if derived is None:
                continue
            tensors = [f for f in unit.files if f.endswith(".safetensors")]
            digest = staged.manifest.members[tensors[0]].sha256 if tensors else ""
            problem = verify_derivation(derived, list(trusted_keys), digest)
            if problem:
                raise UntrustedPayloadError(
                    f"{unit.key}: {problem} (payload_trust='strict'). Nothing was imported."
                )


def attach_payloads(
    staged: StagedArchive, units: Iterable[PayloadUnit], target_root: Path
) -> list[str]:
    """Copy verified unit files into the cube folder (each file atomically)."""
    done = []
    for unit in units:
        # Tensors first, manifests last: a reader that finds a manifest finds its tensors.
        for name in sorted(unit.files, key=lambda n: n.endswith(".json")):
            _copy_atomic(staged.files[name], target_root / name)
        done.append(unit.key)
    return done


def import_staged(
    staged: StagedArchive,
    cube: ImportTarget,
    *,
    on_conflict: str = "skip",
    model_fingerprint: Any = None,
    progress: ProgressFn | None = None,
    runtime: Any = None,
    rematerialize: str = "now",
    signing_key: Any = None,
    payload_trust: str = "archive",
    trusted_keys: Sequence[Any] | None = None,
    teacher_models: dict[str, Any] | None = None,
) -> ImportReport:
    """Import a verified archive into an open cube (see :func:`import_archive`)."""
    check_on_conflict(on_conflict)
    if rematerialize not in REMATERIALIZE:
        raise InvalidInputError(
            f"rematerialize must be one of {REMATERIALIZE}, got {rematerialize!r}."
        )
    if payload_trust not in ("archive", "strict"):
        raise InvalidInputError(
            f"payload_trust must be 'archive' or 'strict', got {payload_trust!r}."
        )
    if payload_trust == "strict":
        check_payload_trust(staged, trusted_keys)
    check_identifiable(staged)
    target = getattr(runtime, "fingerprint", None)
    if target is not None:
        model_fingerprint = target
    m = staged.manifest
    report = ImportReport(
        source=staged.source,
        format="mip",
        target=str(cube.path),
        source_cube_id=m.cube_id,
        source_embedder=f"{m.embedder_id} ({m.embedding_dimension}-d)",
        target_embedder=f"{cube.manifest.embedder_id} ({cube.manifest.embedding_dimension}-d)",
        signature=staged.signature.status,
        signer_key_id=staged.signature.key_id,
    )
    report.reembedded = (
        m.embedder_id != cube.manifest.embedder_id
        or m.embedding_dimension != cube.manifest.embedding_dimension
    )
    if report.reembedded:
        report.warnings.append(
            f"the archive was embedded with {m.embedder_id}; memories were re-embedded with "
            f"{cube.manifest.embedder_id}."
        )
    attach, dropped, plans = plan_payloads(
        staged, model_fingerprint, cube.path, on_conflict, target=target
    )
    if staged.ranking is not None:  # validated whole before anything is written
        if isinstance(cube, RankingTarget):
            report.ranking_profiles = cube.import_ranking(staged.ranking, on_conflict=on_conflict)
        else:
            report.warnings.append("the target keeps no ranking profiles; ranking.json skipped.")
    apply_records(cube, staged.records, on_conflict=on_conflict, report=report, progress=progress)
    report.attached = attach_payloads(staged, attach, cube.path)
    report.dropped = dropped
    if plans:
        start = time.perf_counter()
        if rematerialize == "now":
            teachers = {}
            for plan in plans:
                if plan.kind == "adapters":
                    teacher = load_teacher(plan, staged.files, models=teacher_models)
                    if teacher is not None:
                        teachers[plan.unit] = teacher
            report.rematerialized = run_plans(
                cube, runtime, plans, signing_key=signing_key, teachers=teachers
            )
        elif rematerialize == "lazy":
            save_pending(cube.path, staged, plans)
            report.rematerialized = [
                Rematerialization(p.unit, p.kind, p.rule, p.reason, status="pending") for p in plans
            ]
        else:
            report.rematerialized = [
                Rematerialization(p.unit, p.kind, p.rule, p.reason, status="skipped") for p in plans
            ]
        report.rematerialize_s = round(time.perf_counter() - start, 3)
    return report


def import_archive(
    path: str | os.PathLike[str],
    into: ImportTarget | str | os.PathLike[str],
    *,
    on_conflict: OnConflict | str = "skip",
    trusted_keys: Iterable[PublicKeyLike] | None = None,
    model_fingerprint: Any = None,
    format: str = "auto",
    user_id: str | None = None,
    limits: ImportLimits = DEFAULT_LIMITS,
    progress: ProgressFn | None = None,
    open_target: Callable[[str | os.PathLike[str]], ImportTarget] | None = None,
    runtime: Any = None,
    rematerialize: str = "now",
    signing_key: Any = None,
    payload_trust: str = "archive",
    teacher_models: dict[str, Any] | None = None,
) -> tuple[ImportTarget, ImportReport]:
    """Import a MIP archive, or a MemOS / LangGraph / mem0 export, into a cube.

    Everything is read and checked before the target is opened or written: on any error the
    target is unchanged (and a target folder that did not exist is not created).

    Args:
        path: a ``.mip.tar.gz`` archive, a MemOS cube folder, or a LangGraph/mem0 JSON file.
        into: an open :class:`~memcube.MemCube` (any :class:`~memcube.ports.ImportTarget`), or
            the folder of the target cube, opened with ``open_target(folder)`` once the archive
            is verified (:meth:`memcube.MemCube.import_archive` passes ``MemCube.open``).
        on_conflict: for memories whose id already exists: ``"skip"`` them, ``"overwrite"``
            the target's memory and its history, or add the archive's version as a
            ``"new_version"`` of the target's memory.
        trusted_keys: Ed25519 public keys; when given the archive must be signed by one of them.
        model_fingerprint: the target model's fingerprint (digest string or mapping). KV caches
            and adapters are attached only when their manifest names the same fingerprint; the
            others are listed in ``report.dropped``.
        format: ``"auto"``, ``"mip"``, ``"memos"``, ``"langgraph"`` or ``"mem0"``.
        user_id: owner for foreign memories that name none.
        open_target: opens (or creates) the target cube when ``into`` is a folder.
        runtime: the target cube's model (a :class:`memcube.runtime.Runtime`). Caches and
            adapters built for another model are then brought to it by the compatibility rules
            (:mod:`memcube.interchange.compat`: ``recompute``, ``rebuild``, ``redistill`` or
            ``drop``); ``report.rematerialized`` says which rule each got and why.
        rematerialize: ``"now"`` (during the import), ``"lazy"`` (on first use of the cube
            with that model) or ``"never"`` (only reported).
        signing_key: the importing cube's Ed25519 key; derived payloads are signed with it.
        payload_trust: ``"strict"`` demands that the archive be signed by one of
            ``trusted_keys`` and that every payload derived on an earlier import carry a valid
            derivation signature by one of them (else :class:`UntrustedPayloadError`, nothing
            imported); ``"archive"`` (default) checks the archive signature only.
        teacher_models: ``{model_id: local folder}`` of source models a re-distillation may
            use as its teacher (bundled models are found by name).

    Returns:
        ``(cube, report)``. When ``into`` was a path the cube is open: close it when done.
    """
    from memcube.interchange.foreign import ForeignBundle, detect_format, read_foreign

    check_on_conflict(on_conflict)
    if rematerialize not in REMATERIALIZE:
        raise InvalidInputError(
            f"rematerialize must be one of {REMATERIALIZE}, got {rematerialize!r}."
        )
    fmt = detect_format(path) if format == "auto" else format
    source: StagedArchive | ForeignBundle
    if fmt == "mip":
        source = read_archive(path, trusted_keys=trusted_keys, limits=limits)
    else:
        if trusted_keys is not None:
            raise InvalidInputError(
                f"a {fmt} export carries no signature; drop trusted_keys to import it."
            )
        source = read_foreign(path, fmt, user_id=user_id, limits=limits)
    try:
        if isinstance(source, StagedArchive):  # refusals that must leave the target untouched
            if payload_trust == "strict":
                check_payload_trust(source, list(trusted_keys) if trusted_keys else None)
            check_identifiable(source)
        cube, opened = _target(into, open_target)
        try:
            if isinstance(source, StagedArchive):
                report = import_staged(
                    source,
                    cube,
                    on_conflict=on_conflict,
                    model_fingerprint=model_fingerprint,
                    progress=progress,
                    runtime=runtime,
                    rematerialize=rematerialize,
                    signing_key=signing_key,
                    payload_trust=payload_trust,
                    trusted_keys=list(trusted_keys) if trusted_keys is not None else None,
                    teacher_models=teacher_models,
                )
            else:
                report = ImportReport(
                    source=str(path),
                    format=fmt,
                    target=str(cube.path),
                    source_embedder=source.embedder,
                    target_embedder=f"{cube.manifest.embedder_id} ({cube.manifest.embedding_dimension}-d)",
                    reembedded=True,
                    skipped_files=list(source.skipped_files),
                    warnings=list(source.warnings),
                )
                report.skipped.extend(source.skipped_items)
                apply_records(
                    cube, source.records, on_conflict=on_conflict, report=report, progress=progress
                )
        except BaseException:
            if opened:
                cube.close()
            raise
    finally:
        if isinstance(source, StagedArchive):
            source.cleanup()
    return cube, report


def _target(
    into: ImportTarget | str | os.PathLike[str],
    open_target: Callable[[str | os.PathLike[str]], ImportTarget] | None,
) -> tuple[ImportTarget, bool]:
    """The open target cube, and whether it was opened here (then it is closed on failure)."""
    if not isinstance(into, (str, os.PathLike)):
        if not isinstance(into, ImportTarget):
            raise InvalidInputError("into must be an open MemCube or the path of the target cube.")
        return into, False
    if open_target is None:
        raise InvalidInputError(
            "to import into a folder use MemCube.import_archive(path, into=folder), "
            "or pass open_target=... (a function that opens the cube of a folder)."
        )
    return open_target(into), True
