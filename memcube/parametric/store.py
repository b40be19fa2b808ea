"""The on-disk adapter registry of a cube: ``<cube.path>/adapters/<name>/v<N>/``.

Each version folder is written completely in a temporary folder (files fsynced) and renamed into
place, so a reader sees a whole version or none. Versions are never modified; a new registration
under an existing name makes the next version. Every file's SHA-256 is recorded in the manifest and
checked before the weights are used. The per-user default adapters live in ``users.json``.

Example:
    >>> import tempfile
    >>> from memcube.parametric.store import AdapterStore
    >>> store = AdapterStore(tempfile.mkdtemp())
    >>> store.list()
    []
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import ValidationError

from memcube.atomic import atomic_write_text, fsync_dir
from memcube.errors import InvalidInputError, ItemNotFoundError, MemCubeError
from memcube.items import check_scope_id
from memcube.parametric.lora import LoraPayload, config_to_json, lora_config_from_dict
from memcube.parametric.manifest import (
    CONFIG_FILE,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    AdapterManifest,
    AdapterProvenance,
    FileDigest,
    check_adapter_name,
)
from memcube.provenance import Derivation
from memcube.runtime.model import ModelFingerprint

__all__ = ["AdapterNotFoundError", "AdapterStore", "CorruptAdapterError"]

USERS_FILE = "users.json"
_VERSION_DIR = re.compile(r"^v([1-9][0-9]{0,8})$")


class AdapterNotFoundError(ItemNotFoundError):
    """No adapter (or no such version of it) is registered in this cube."""


class CorruptAdapterError(MemCubeError):
    """A stored adapter's files are missing or differ from the digests in its manifest."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


class AdapterStore:
    """Adapters stored as folders under ``root`` (a cube's ``adapters`` folder).

    Safe across threads and processes: writes take a file lock; reads need none.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.root / ".lock"), is_singleton=False)

    # ------------------------------------------------------------------ paths and listing
    def path(self, name: str, version: int) -> Path:
        """Folder of one stored version (a valid PEFT adapter folder)."""
        return self.root / check_adapter_name(name) / f"v{int(version)}"

    def versions(self, name: str) -> list[int]:
        """Stored versions of ``name``, oldest first (empty if there is no such adapter)."""
        folder = self.root / check_adapter_name(name)
        if not folder.is_dir():
            return []
        found = []
        for child in folder.iterdir():
            m = _VERSION_DIR.match(child.name)
            if m and (child / MANIFEST_FILE).is_file():
                found.append(int(m.group(1)))
        return sorted(found)

    def names(self) -> list[str]:
        """Names with at least one stored version, sorted."""
        out = []
        for child in sorted(self.root.iterdir()):
            if child.is_dir() and not child.name.startswith(".") and self.versions(child.name):
                out.append(child.name)
        return out

    def get(self, name: str, version: int | None = None) -> AdapterManifest:
        """The manifest of ``name`` at ``version`` (default: the newest).

        Raises:
            AdapterNotFoundError: no such adapter or version.
            CorruptAdapterError: the manifest cannot be read.
        """
        versions = self.versions(name)
        if not versions:
            raise AdapterNotFoundError(
                f"no adapter named {name!r} in this cube; registered: {self.names()}."
            )
        if version is None:
            version = versions[-1]
        elif version not in versions:
            raise AdapterNotFoundError(
                f"adapter {name!r} has no version {version}; it has {versions}."
            )
        path = self.path(name, version) / MANIFEST_FILE
        try:
            manifest = AdapterManifest.model_validate_json(path.read_bytes())
        except (OSError, ValidationError, ValueError) as exc:
            raise CorruptAdapterError(f"{path} cannot be read: {exc}") from None
        if manifest.name != name or manifest.version != version:
            raise CorruptAdapterError(f"{path} describes {manifest.ref}, not {name}@v{version}.")
        return manifest

    def history(self, name: str) -> list[AdapterManifest]:
        """Every stored version of ``name``, oldest first."""
        return [self.get(name, v) for v in self.versions(name)]

    def list(self) -> builtins.list[AdapterManifest]:
        """The newest version of every adapter, by name."""
        return [self.get(n) for n in self.names()]

    # ------------------------------------------------------------------ reading weights
    def load(self, name: str, version: int | None = None) -> tuple[AdapterManifest, LoraPayload]:
        """The manifest and the verified weights of one version (JSON and safetensors only).

        Raises:
            AdapterNotFoundError, CorruptAdapterError.
        """
        from safetensors.torch import load as load_safetensors

        manifest = self.get(name, version)
        folder = self.path(name, manifest.version)
        blobs: dict[str, bytes] = {}
        for fname in (CONFIG_FILE, WEIGHTS_FILE):
            digest = manifest.files.get(fname)
            try:
                data = (folder / fname).read_bytes()
            except OSError as exc:
                raise CorruptAdapterError(f"{manifest.ref}: cannot read {fname}: {exc}") from None
            if digest is None or _sha256(data) != digest.sha256 or len(data) != digest.bytes:
                raise CorruptAdapterError(
                    f"{manifest.ref}: {fname} differs from the digest in its manifest; the stored "
                    "adapter was altered or damaged. Delete this version and register it again."
                )
            blobs[fname] = data
        try:
            config = lora_config_from_dict(json.loads(blobs[CONFIG_FILE]))
            state = load_safetensors(blobs[WEIGHTS_FILE])
        except (ValueError, InvalidInputError) as exc:
            raise CorruptAdapterError(f"{manifest.ref} cannot be decoded: {exc}") from None
        return manifest, LoraPayload(config=config, state_dict=state)

    # ------------------------------------------------------------------ writing
    def add(
        self,
        name: str,
        payload: LoraPayload,
        *,
        base_model: ModelFingerprint,
        provenance: AdapterProvenance | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> AdapterManifest:
        """Store ``payload`` as the next version of ``name`` and return its manifest."""
        from safetensors.torch import save as save_safetensors

        check_adapter_name(name)
        config_json = config_to_json(payload.config)
        config_bytes = json.dumps(config_json, indent=2, sort_keys=True).encode("utf-8")
        weights_bytes = save_safetensors(
            payload.state_dict, metadata={"format": "pt", "memcube_adapter": name}
        )
        with self._lock:
            versions = self.versions(name)
            version = (versions[-1] + 1) if versions else 1
            manifest = AdapterManifest(
                name=name,
                version=version,
                base_model=base_model,
                rank=int(payload.config.r),
                alpha=float(payload.config.lora_alpha),
                target_modules=payload.target_modules,
                use_rslora=bool(getattr(payload.config, "use_rslora", False)),
                description=description,
                provenance=provenance or AdapterProvenance(),
                files={
                    CONFIG_FILE: FileDigest(sha256=_sha256(config_bytes), bytes=len(config_bytes)),
                    WEIGHTS_FILE: FileDigest(
                        sha256=_sha256(weights_bytes), bytes=len(weights_bytes)
                    ),
                },
                metadata=metadata or {},
            )
            final = self.path(name, version)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}-v{version}.", dir=self.root))
            try:
                _write_synced(tmp / CONFIG_FILE, config_bytes)
                _write_synced(tmp / WEIGHTS_FILE, weights_bytes)
                _write_synced(tmp / MANIFEST_FILE, manifest.model_dump_json(indent=2).encode())
                fsync_dir(tmp)
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            fsync_dir(final.parent)
        return manifest

    def record_derivation(self, name: str, version: int, derivation: Derivation) -> AdapterManifest:
        """Write how the stored adapter version was derived on import into its manifest."""
        with self._lock:
            manifest = self.get(name, version)
            manifest.derived = derivation
            path = self.path(name, version) / MANIFEST_FILE
            atomic_write_text(path, manifest.model_dump_json(indent=2))
        return manifest

    def delete(self, name: str, version: int | None = None) -> builtins.list[int]:
        """Delete one version, or every version with ``version=None``; returns what was deleted.

        Deleting the whole adapter also removes it as any user's default.

        Raises:
            AdapterNotFoundError: no such adapter or version.
        """
        with self._lock:
            versions = self.versions(name)
            if not versions or (version is not None and version not in versions):
                self.get(name, version)  # raises the precise not-found error
            doomed = versions if version is None else [version]
            target = self.root / name if version is None else self.path(name, version)
            trash = self.root / f".trash-{uuid.uuid4().hex}"
            os.replace(target, trash)  # atomic: readers see the version or nothing
            shutil.rmtree(trash, ignore_errors=True)
            if version is None or not self.versions(name):
                if (self.root / name).is_dir() and not any((self.root / name).iterdir()):
                    (self.root / name).rmdir()
                users = self._read_users()
                kept = {u: a for u, a in users.items() if a != name}
                if kept != users:
                    self._write_users(kept)
            return doomed

    # ------------------------------------------------------------------ per-user defaults
    def _read_users(self) -> dict[str, str]:
        path = self.root / USERS_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CorruptAdapterError(f"{path} cannot be read: {exc}") from None
        users = data.get("users") if isinstance(data, dict) else None
        if not isinstance(users, dict):
            raise CorruptAdapterError(f"{path} has no 'users' object.")
        return {str(k): str(v) for k, v in users.items()}

    def _write_users(self, users: dict[str, str]) -> None:
        atomic_write_text(
            self.root / USERS_FILE,
            json.dumps({"format": 1, "users": users}, indent=2, sort_keys=True),
        )

    def user_defaults(self) -> dict[str, str]:
        """``{user_id: adapter name}`` for every user with a default adapter."""
        return self._read_users()

    def user_default(self, user_id: str) -> str | None:
        """The default adapter of ``user_id``, or ``None``."""
        check_scope_id(user_id, "user_id", required=True)
        return self._read_users().get(user_id)

    def set_user_default(self, user_id: str, name: str | None) -> None:
        """Make ``name`` the adapter used for ``user_id`` by default (``None`` removes it).

        Raises:
            AdapterNotFoundError: no adapter called ``name``.
        """
        check_scope_id(user_id, "user_id", required=True)
        with self._lock:
            if name is not None:
                self.get(name)
            users = self._read_users()
            if name is None:
                users.pop(user_id, None)
            else:
                users[user_id] = name
            self._write_users(users)
