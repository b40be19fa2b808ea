"""Hot-swapping LoRA adapters on one loaded base model (through PEFT's public functional API).

An :class:`AdapterManager` owns the adapter state of one model object: which adapters are resident
(an LRU of at most ``max_resident``), which one is active, and mixed batches where each row uses
its own adapter. Loading injects LoRA layers into the model in place; switching only flips which
adapter the LoRA layers use, so the base weights are never reloaded or copied. With no adapter
active the LoRA layers are disabled and the model computes exactly the base model's output.

Example:
    >>> from memcube.runtime import load_model
    >>> from memcube.parametric.manager import AdapterManager
    >>> model, tokenizer = load_model()
    >>> manager = AdapterManager.for_model(model, tokenizer)
    >>> manager.active is None
    True
"""

from __future__ import annotations

import hashlib
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from memcube.errors import InvalidInputError, ModelMismatchError
from memcube.parametric.lora import LoraPayload, check_compatible
from memcube.parametric.manifest import WEIGHTS_FILE, AdapterManifest
from memcube.parametric.store import AdapterNotFoundError, AdapterStore
from memcube.runtime.model import fingerprint

__all__ = ["BASE", "AdapterManager", "ResidentAdapter", "adapter_key"]

#: PEFT's name for "no adapter" in a mixed batch.
BASE = "__base__"

_managers: dict[int, tuple[weakref.ref[Any], AdapterManager]] = {}
_managers_lock = threading.Lock()


def adapter_key(store: AdapterStore, manifest: AdapterManifest) -> str:
    """The resident name of a stored adapter version: unique per cube folder, name, version and
    weights (two cubes may both have an adapter ``alice``; a version number reused after a
    delete names new weights), and a valid PEFT module key. KV caches are keyed by it too."""
    weights = manifest.files.get(WEIGHTS_FILE)
    salt = f"{store.root}|{weights.sha256 if weights else ''}"
    return f"{manifest.name}--v{manifest.version}--{hashlib.sha1(salt.encode()).hexdigest()[:10]}"


@dataclass
class ResidentAdapter:
    """An adapter loaded into the model."""

    key: str
    manifest: AdapterManifest
    load_s: float


def check_manifest_fits(manifest: AdapterManifest, model_fp: Any) -> None:
    """Refuse an adapter whose manifest names another base model.

    Raises:
        ModelMismatchError: the fingerprints differ (the message lists how).
    """
    if not manifest.base_model.matches(model_fp):
        diff = ", ".join(manifest.base_model.differences(model_fp)) or "digest"
        raise ModelMismatchError(
            f"adapter {manifest.ref} was made for {manifest.base_model.model_id!r}, not for this "
            f"model ({model_fp.model_id!r}; differing: {diff}). Load it into the model it was "
            "trained on, or distill a new adapter for this model."
        )


class AdapterManager:
    """Adapters resident on one model, switched per call or mixed per row of a batch.

    Use :meth:`for_model` to get the one manager of a model object (every runtime and wrapper
    sharing that model must share its manager, since the adapter state lives in the model).

    Args:
        model: a loaded ``transformers`` causal LM (LoRA layers are injected into it in place).
        tokenizer: its tokenizer (part of the model fingerprint adapters must match).
        max_resident: adapters kept loaded; the least recently used is unloaded beyond this.
        lock: the lock that serialises every forward pass on this model (the runtime's lock).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_resident: int = 4,
        lock: threading.RLock | None = None,
    ) -> None:
        if not isinstance(max_resident, int) or max_resident < 1:
            raise InvalidInputError("max_resident must be a positive integer.")
        self.model = model
        self.tokenizer = tokenizer
        self.fingerprint = fingerprint(model, tokenizer)
        self.max_resident = max_resident
        self.lock: Any = lock or threading.RLock()
        self._own_lock = lock is None
        self._resident: OrderedDict[str, ResidentAdapter] = OrderedDict()
        self._sources: dict[str, tuple[AdapterStore, str, int]] = {}
        self._layers: list[Any] = []
        self._active: str | None = None
        self.last_switch_s = 0.0

    # ------------------------------------------------------------------ one manager per model
    @classmethod
    def for_model(
        cls, model: Any, tokenizer: Any, *, lock: Any = None, max_resident: int | None = None
    ) -> AdapterManager:
        """The manager of ``model``, created on first use.

        ``lock`` (a runtime's lock) is adopted if the manager has none of its own yet in use, so
        the runtime's decoding and the manager's batches never interleave.
        """
        with _managers_lock:
            entry = _managers.get(id(model))
            if entry is not None and entry[0]() is model:
                manager = entry[1]
                if lock is not None and manager._own_lock:
                    manager.lock, manager._own_lock = lock, False
                if max_resident is not None:
                    manager.max_resident = max_resident
                return manager
            manager = cls(model, tokenizer, lock=lock, max_resident=max_resident or 4)
            _managers[id(model)] = (weakref.ref(model), manager)
            return manager

    @staticmethod
    def existing(model: Any) -> AdapterManager | None:
        """The manager of ``model`` if one was created, else ``None`` (model never adapted)."""
        with _managers_lock:
            entry = _managers.get(id(model))
            if entry is not None and entry[0]() is model:
                return entry[1]
            return None

    # ------------------------------------------------------------------ state
    @property
    def active(self) -> str | None:
        """Key of the active adapter, or ``None`` when the model computes the base output."""
        return self._active

    def resident(self) -> list[ResidentAdapter]:
        """Loaded adapters, least recently used first."""
        return list(self._resident.values())

    def is_resident(self, key: str) -> bool:
        return key in self._resident

    # ------------------------------------------------------------------ loading
    def load(self, store: AdapterStore, name: str, version: int | None = None) -> str:
        """Make ``name`` (newest version unless given) resident; return its key for
        :meth:`activate`. A resident adapter is not read again (lazy, cached).

        Raises:
            AdapterNotFoundError: no such adapter in ``store``.
            ModelMismatchError: the adapter was made for another base model.
        """
        manifest = store.get(name, version)
        key = adapter_key(store, manifest)
        with self.lock:
            self._sources[key] = (store, manifest.name, manifest.version)
            if key in self._resident:
                self._resident.move_to_end(key)
                return key
            check_manifest_fits(manifest, self.fingerprint)
            start = time.perf_counter()
            manifest, payload = store.load(manifest.name, manifest.version)
            self._inject(key, payload)
            self._resident[key] = ResidentAdapter(key, manifest, time.perf_counter() - start)
            self._evict(keep={key})
            return key

    def load_payload(self, key: str, payload: LoraPayload, manifest: AdapterManifest) -> str:
        """Make an in-memory adapter resident under ``key`` (used for adapters not in a store)."""
        with self.lock:
            check_manifest_fits(manifest, self.fingerprint)
            if key in self._resident:
                self.unload(key)
            start = time.perf_counter()
            self._inject(key, payload)
            self._resident[key] = ResidentAdapter(key, manifest, time.perf_counter() - start)
            self._evict(keep={key})
            return key

    def _inject(self, key: str, payload: LoraPayload) -> None:
        import copy

        from peft.functional import inject_adapter_in_model, set_peft_model_state_dict
        from peft.tuners.lora import LoraLayer

        check_compatible(payload, self.model)
        config = copy.deepcopy(payload.config)
        config.inference_mode = True
        previous = self._active
        try:
            with warnings.catch_warnings():
                # "Already found a peft_config attribute": several adapters are the point here.
                warnings.simplefilter("ignore")
                inject_adapter_in_model(config, self.model, adapter_name=key)
                result = set_peft_model_state_dict(self.model, payload.state_dict, adapter_name=key)
            # torch's _IncompatibleKeys namedtuple, which mypy cannot read through peft
            missing = [
                k
                for k in result.missing_keys  # type: ignore[attr-defined]
                if f".{key}." in k or k.endswith(f".{key}")
            ]
            unexpected = list(result.unexpected_keys)  # type: ignore[attr-defined]
            if missing or unexpected:
                raise ModelMismatchError(
                    f"the adapter's weights do not fit this model (missing {missing[:3]}, "
                    f"unexpected {unexpected[:3]}); it was made for another base model."
                )
        except BaseException:
            self._remove_from_model(key)
            self._layers = [m for m in self.model.modules() if isinstance(m, LoraLayer)]
            self._apply(previous)
            raise
        for param in self.model.parameters():
            param.requires_grad_(False)
        self._layers = [m for m in self.model.modules() if isinstance(m, LoraLayer)]
        self._apply(previous)

    def _remove_from_model(self, key: str) -> None:
        from peft.functional import delete_adapter

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                delete_adapter(self.model, adapter_name=key, prefix="lora_")
            except (ValueError, KeyError):
                pass
        configs = getattr(self.model, "peft_config", None)
        if isinstance(configs, dict):
            configs.pop(key, None)

    def unload(self, key: str) -> None:
        """Remove a resident adapter from the model (it can be loaded again later)."""
        with self.lock:
            if key not in self._resident:
                return
            del self._resident[key]
            self._remove_from_model(key)
            if self._active == key:
                self._active = None
            self._apply(self._active)

    def _evict(self, keep: set[str]) -> None:
        while len(self._resident) > self.max_resident:
            victim = next((k for k in self._resident if k not in keep), None)
            if victim is None:
                return
            self.unload(victim)

    # ------------------------------------------------------------------ switching
    def _apply(self, key: str | None) -> None:
        if key is None:
            for layer in self._layers:
                layer.enable_adapters(False)
        else:
            for layer in self._layers:
                if layer.disable_adapters:
                    # enable_adapters(True) also makes the old active adapter trainable; the
                    # set_adapter below freezes everything again (inference_mode=True).
                    layer.enable_adapters(True)
                layer.set_adapter(key, inference_mode=True)
        self._active = key

    def activate(self, key: str | None) -> None:
        """Make ``key`` the adapter every following forward pass uses (``None``: the base model).

        An adapter evicted since it was loaded is loaded again from its store.

        Raises:
            AdapterNotFoundError: ``key`` was never loaded through this manager.
        """
        with self.lock:
            start = time.perf_counter()
            if key is not None:
                self._ensure(key)
                self._resident.move_to_end(key)
            if key != self._active:
                self._apply(key)
            self.last_switch_s = time.perf_counter() - start

    def _ensure(self, key: str) -> None:
        if key in self._resident:
            return
        source = self._sources.get(key)
        if source is None:
            raise AdapterNotFoundError(
                f"adapter {key!r} is not loaded on this model; load it first "
                "(cube.parametric.prepare(name, runtime=...) or AdapterManager.load)."
            )
        store, name, version = source
        if self.load(store, name, version) != key:
            raise AdapterNotFoundError(
                f"{name}@v{version} was replaced since it was loaded as {key!r}; prepare it again."
            )

    @contextmanager
    def using(self, adapter: str | None | Sequence[str | None]) -> Iterator[None]:
        """Hold the model with one adapter (a key or ``None``) or one adapter per batch row
        (a list of keys / ``None``) active; the previous state is restored afterwards.

        Example:
            >>> import torch
            >>> from memcube.runtime import load_model
            >>> model, tok = load_model()
            >>> with AdapterManager.for_model(model, tok).using(None):
            ...     _ = model(torch.tensor([[1, 2, 3]]))
        """
        with self.lock:
            previous = self._active
            if adapter is None or isinstance(adapter, str):
                self.activate(adapter)
                try:
                    yield
                finally:
                    self.activate(previous)
                return
            names = list(adapter)
            if not names:
                raise InvalidInputError("a mixed batch needs at least one row.")
            for key in {k for k in names if k is not None}:
                self._ensure(key)
            distinct = set(names)
            if len(distinct) == 1:  # one adapter for every row: the ordinary path
                with self.using(names[0]):
                    yield
                return
            if len([k for k in distinct if k is not None]) > self.max_resident:
                raise InvalidInputError(
                    f"this batch names {len(distinct)} adapters but at most {self.max_resident} "
                    "can be resident; raise max_resident or split the batch."
                )
            row_names = [BASE if k is None else k for k in names]

            def hook(_module: Any, args: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
                kwargs["adapter_names"] = row_names
                return args, kwargs

            for layer in self._layers:
                layer.enable_adapters(True)
            handles = [
                layer.register_forward_pre_hook(hook, with_kwargs=True) for layer in self._layers
            ]
            try:
                yield
            finally:
                for handle in handles:
                    handle.remove()
                self._apply(previous)

    # ------------------------------------------------------------------ batched generation
    def generate_batch(
        self,
        prompts: Sequence[Sequence[int]],
        adapters: Sequence[str | None],
        *,
        max_new_tokens: int = 32,
    ) -> list[list[int]]:
        """Greedy-decode several prompts (token ids) in ONE batch, row ``i`` with adapter
        ``adapters[i]`` (a key from :meth:`load`, or ``None`` for the base model).

        Rows are left-padded; each result stops before the first end-of-sequence token.
        """
        import torch

        if len(prompts) != len(adapters) or not prompts:
            raise InvalidInputError(
                "pass one adapter (or None) per prompt, and at least one prompt."
            )
        if max_new_tokens < 1:
            raise InvalidInputError("max_new_tokens must be positive.")
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        width = max(len(p) for p in prompts)
        if min(len(p) for p in prompts) < 1:
            raise InvalidInputError("every prompt needs at least one token.")
        ids = torch.full((len(prompts), width), int(pad), dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
        eos = self.tokenizer.eos_token_id
        with self.using(list(adapters)), torch.no_grad():
            out = self.model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=int(pad),
                eos_token_id=eos,
            )
        results = []
        for row in out[:, width:].tolist():
            if eos is not None and eos in row:
                row = row[: row.index(eos)]
            results.append(row)
        return results
