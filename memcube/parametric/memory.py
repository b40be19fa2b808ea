"""``cube.parametric``: the parametric memory of a cube (LoRA adapters), in one facade.

Example:
    >>> import tempfile
    >>> from memcube import MemCube
    >>> cube = MemCube.open(tempfile.mkdtemp())
    >>> _ = cube.add("My cat is called Miso.", user_id="alice")
    >>> manifest = cube.parametric.distill("alice-facts", user_id="alice", steps=2, progress=False)
    >>> manifest.ref, manifest.provenance.user_id
    ('alice-facts@v1', 'alice')
    >>> cube.close()
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from memcube.errors import InvalidInputError
from memcube.items import MemoryItem, check_scope_id
from memcube.parametric.lora import (
    LoraPayload,
    check_compatible,
    payload_from_folder,
    payload_from_peft_model,
)
from memcube.parametric.manager import AdapterManager
from memcube.parametric.manifest import AdapterManifest, AdapterProvenance, check_adapter_name
from memcube.parametric.store import AdapterStore
from memcube.ports import MemoryReader
from memcube.runtime.model import fingerprint, loaded_tokenizer

__all__ = ["ParametricMemory", "resolve_adapter"]

ADAPTERS_DIR = "adapters"


def resolve_adapter(
    call: str | None = None, *, default: str | None = None, user_default: str | None = None
) -> str | None:
    """The one rule for which adapter a call uses: the per-call choice, else the wrapper's
    ``adapter=``, else the user's default adapter in the cube, else the base model (``None``).

    Example:
        >>> resolve_adapter(None, default="alice", user_default="bob")
        'alice'
    """
    for choice in (call, default, user_default):
        if choice is not None:
            return choice
    return None


class ParametricMemory:
    """LoRA adapters stored in a cube (``<cube.path>/adapters/<name>/v<N>/``), versioned, with
    per-user defaults, loading into a model, and distillation of memories into an adapter.

    Methods that need a model take ``model``/``tokenizer`` or a ``runtime``
    (:class:`memcube.runtime.Runtime`); by default the bundled SmolLM2-135M-Instruct.
    """

    def __init__(self, cube: MemoryReader) -> None:
        self.cube = cube
        self.store = AdapterStore(Path(cube.path) / ADAPTERS_DIR)

    def __repr__(self) -> str:
        return f"ParametricMemory(path={str(self.store.root)!r}, adapters={self.store.names()})"

    # ------------------------------------------------------------------ model plumbing
    @staticmethod
    def _model(model: Any = None, tokenizer: Any = None, runtime: Any = None) -> tuple[Any, Any]:
        if runtime is not None:
            return runtime.model, runtime.tokenizer
        if model is None:
            from memcube.runtime.model import load_model

            return load_model()
        if tokenizer is None:
            tokenizer = loaded_tokenizer(model)
            if tokenizer is None:
                raise InvalidInputError(
                    "pass tokenizer=... with a model that was not loaded by memcube.runtime."
                )
        return model, tokenizer

    def manager(
        self, *, runtime: Any = None, model: Any = None, tokenizer: Any = None
    ) -> AdapterManager:
        """The :class:`AdapterManager` of the model (shared by everything using that model)."""
        lm, tok = self._model(model, tokenizer, runtime)
        return AdapterManager.for_model(lm, tok, lock=getattr(runtime, "lock", None))

    # ------------------------------------------------------------------ registry
    def register(
        self,
        name: str,
        source: str | Path | Any,
        *,
        model: Any = None,
        tokenizer: Any = None,
        adapter_name: str | None = None,
        provenance: AdapterProvenance | dict[str, Any] | None = None,
        description: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> AdapterManifest:
        """Store a LoRA adapter as the next version of ``name``.

        Args:
            source: a PEFT adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``)
                or a live ``peft.PeftModel`` (its adapter ``adapter_name``, default the active one).
            model, tokenizer: the base model the adapter is for; a PeftModel's own base model is
                used when ``source`` is one, else the bundled model.
            provenance: which memories or data made it.

        Raises:
            InvalidInputError: not a LoRA adapter, only a pickled ``.bin``, bad name.
            ModelMismatchError: the weights do not fit the base model.
        """
        check_adapter_name(name)
        if isinstance(source, (str, Path)):
            payload = payload_from_folder(source)
            origin: dict[str, Any] = {"folder": str(Path(source).expanduser().resolve())}
            kind = "peft_folder"
            lm, tok = self._model(model, tokenizer)
        else:
            payload = payload_from_peft_model(source, adapter_name)
            origin, kind = {}, "peft_model"
            base = source.get_base_model()
            lm, tok = self._model(model if model is not None else base, tokenizer)
        check_compatible(payload, lm)
        prov = AdapterProvenance.model_validate(provenance or {"source": kind, "data": origin})
        return self.store.add(
            name,
            payload,
            base_model=fingerprint(lm, tok),
            provenance=prov,
            description=description,
            metadata=metadata,
        )

    def get(self, name: str, version: int | None = None) -> AdapterManifest:
        """The manifest of ``name`` (newest version unless ``version``)."""
        return self.store.get(name, version)

    def list(self) -> builtins.list[AdapterManifest]:
        """The newest version of every adapter in the cube."""
        return self.store.list()

    def history(self, name: str) -> builtins.list[AdapterManifest]:
        """Every version of ``name``, oldest first."""
        return self.store.history(name)

    def path(self, name: str, version: int | None = None) -> Path:
        """The folder of a stored version: a valid PEFT adapter folder."""
        return self.store.path(name, self.store.get(name, version).version)

    def load(self, name: str, version: int | None = None) -> tuple[AdapterManifest, LoraPayload]:
        """Manifest and verified weights of a stored version."""
        return self.store.load(name, version)

    def delete(self, name: str, version: int | None = None) -> builtins.list[int]:
        """Delete one version, or the adapter with all its versions; returns deleted versions.
        Adapters already loaded into a model stay usable until unloaded."""
        return self.store.delete(name, version)

    # ------------------------------------------------------------------ per-user defaults
    def set_user_adapter(self, user_id: str, name: str | None) -> None:
        """Use adapter ``name`` (newest version) for ``user_id`` when a wrapper names no other;
        ``None`` removes the default."""
        self.store.set_user_default(user_id, name)

    def user_adapter(self, user_id: str) -> str | None:
        """The default adapter of ``user_id`` in this cube, or ``None``."""
        return self.store.user_default(user_id)

    def user_adapters(self) -> dict[str, str]:
        """Every user's default adapter."""
        return self.store.user_defaults()

    def resolve(
        self, adapter: str | None = None, *, default: str | None = None, user_id: str | None = None
    ) -> str | None:
        """Which adapter a call uses (see :func:`resolve_adapter`); the user's default is read
        from the cube only when neither the call nor the wrapper chose one."""
        if adapter is None and default is None and user_id is not None:
            return self.user_adapter(user_id)
        return resolve_adapter(adapter, default=default)

    # ------------------------------------------------------------------ loading into a model
    def prepare(
        self,
        name: str,
        *,
        version: int | None = None,
        runtime: Any = None,
        model: Any = None,
        tokenizer: Any = None,
    ) -> str:
        """Load ``name`` into the model (lazily: a resident adapter is not read again) and return
        the key to pass as ``adapter=`` to ``Runtime.generate`` / :meth:`AdapterManager.activate`.

        Raises:
            AdapterNotFoundError, ModelMismatchError.
        """
        return self.manager(runtime=runtime, model=model, tokenizer=tokenizer).load(
            self.store, name, version
        )

    # ------------------------------------------------------------------ distillation
    def _select(
        self,
        user_id: str,
        items: Sequence[str | MemoryItem] | None,
        query: str | None,
        k: int,
    ) -> builtins.list[MemoryItem]:
        if items is not None and query is not None:
            raise InvalidInputError("pass either items=... or query=..., not both.")
        if items is not None:
            ids = [it.id if isinstance(it, MemoryItem) else it for it in items]
            if not all(isinstance(i, str) and i for i in ids):
                raise InvalidInputError("items must be memory ids or MemoryItem objects.")
            found = self.cube.get_many(ids, user_id=user_id)
            missing = sorted(set(ids) - {it.id for it in found})
            if missing:
                from memcube.errors import ItemNotFoundError

                raise ItemNotFoundError(f"no memories {missing} for user {user_id!r}.")
            return found
        if query is not None:
            return [h.item for h in self.cube.search(query, user_id=user_id, k=k)]
        return list(self.cube.items(user_id=user_id))[:k]

    def distill(
        self,
        name: str,
        *,
        user_id: str,
        items: Sequence[str | MemoryItem] | None = None,
        query: str | None = None,
        k: int = 64,
        steps: int | None = None,
        rank: int | None = None,
        alpha: float | None = None,
        lr: float | None = None,
        preserve: float | None = None,
        seed: int | None = None,
        config: Any = None,
        teacher: Callable[[str], str] | None = None,
        chat: Any = None,
        set_default: bool = False,
        progress: bool = True,
        model: Any = None,
        tokenizer: Any = None,
        runtime: Any = None,
        description: str | None = None,
    ) -> AdapterManifest:
        """Train a LoRA adapter on CPU from ``user_id``'s memories and store it as ``name``.

        Which memories: ``items`` (ids or items), else the ``k`` best hits for ``query``, else the
        user's memories (at most ``k``). The manifest records their ids and versions. Training
        uses a copy of the model; the live model is not modified. The adapter is trained on
        questions about the facts (see :mod:`memcube.parametric.curriculum`), with a held-out
        split for early stopping.

        Args:
            steps, rank, alpha, lr, preserve, seed: override the fields of ``config``
                (see :class:`~memcube.parametric.distill.DistillConfig`).
            config: a ``DistillConfig`` (default settings when omitted).
            teacher: optional ``question -> answer`` callable whose answers become the targets
                when they agree with the memory (cross-model re-distillation, see
                :func:`~memcube.parametric.distill.train_lora`).
            chat: optional chat model (callable or LangChain chat model) that writes extra
                training questions.
            set_default: also make it the user's default adapter.
            progress: show a tqdm progress bar.

        Raises:
            InvalidInputError: no memories selected, or bad settings.
            ItemNotFoundError: an id in ``items`` is not one of the user's memories.
        """
        from memcube.parametric.distill import DistillConfig, train_lora

        check_adapter_name(name)
        check_scope_id(user_id, "user_id", required=True)
        if not isinstance(k, int) or k < 1:
            raise InvalidInputError("k must be a positive integer.")
        if config is not None and not isinstance(config, DistillConfig):
            raise InvalidInputError("config must be a DistillConfig.")
        overrides: dict[str, Any] = {
            key: value
            for key, value in (
                ("steps", steps),
                ("rank", rank),
                ("alpha", alpha),
                ("lr", lr),
                ("preserve", preserve),
                ("seed", seed),
            )
            if value is not None
        }
        cfg = dataclasses.replace(config or DistillConfig(), **overrides)
        chosen = self._select(user_id, items, query, k)
        if not chosen:
            raise InvalidInputError(f"user {user_id!r} has no memories to distill.")
        lm, tok = self._model(model, tokenizer, runtime)
        result = train_lora(
            lm,
            tok,
            chosen,
            cfg,
            progress=progress,
            desc=f"distill {name}",
            teacher=teacher,
            chat=chat,
        )
        data = result.summary(cfg)
        if query is not None:
            data["query"] = query
        data["teacher"] = teacher is not None
        manifest = self.store.add(
            name,
            result.payload,
            base_model=fingerprint(lm, tok),
            provenance=AdapterProvenance(
                source="distill",
                user_id=user_id,
                memory_ids=[it.id for it in chosen],
                memory_versions={it.id: it.version for it in chosen},
                data=data,
            ),
            description=description or f"{len(chosen)} memories of {user_id} distilled",
        )
        if set_default:
            self.set_user_adapter(user_id, name)
        return manifest

    # ------------------------------------------------------------------ async twins
    async def aregister(self, name: str, source: Any, **kwargs: Any) -> AdapterManifest:
        """Async :meth:`register`."""
        return await asyncio.to_thread(self.register, name, source, **kwargs)

    async def aget(self, name: str, version: int | None = None) -> AdapterManifest:
        """Async :meth:`get`."""
        return await asyncio.to_thread(self.get, name, version)

    async def alist(self) -> builtins.list[AdapterManifest]:
        """Async :meth:`list`."""
        return await asyncio.to_thread(self.list)

    async def adelete(self, name: str, version: int | None = None) -> builtins.list[int]:
        """Async :meth:`delete`."""
        return await asyncio.to_thread(self.delete, name, version)

    async def aset_user_adapter(self, user_id: str, name: str | None) -> None:
        """Async :meth:`set_user_adapter`."""
        await asyncio.to_thread(self.set_user_adapter, user_id, name)

    async def auser_adapter(self, user_id: str) -> str | None:
        """Async :meth:`user_adapter`."""
        return await asyncio.to_thread(self.user_adapter, user_id)

    async def aresolve(
        self, adapter: str | None = None, *, default: str | None = None, user_id: str | None = None
    ) -> str | None:
        """Async :meth:`resolve`."""
        return await asyncio.to_thread(self.resolve, adapter, default=default, user_id=user_id)

    async def aprepare(self, name: str, **kwargs: Any) -> str:
        """Async :meth:`prepare`."""
        return await asyncio.to_thread(self.prepare, name, **kwargs)

    async def adistill(self, name: str, **kwargs: Any) -> AdapterManifest:
        """Async :meth:`distill`."""
        return await asyncio.to_thread(self.distill, name, **kwargs)
