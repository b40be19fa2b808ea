"""Reading, validating and writing LoRA adapters in PEFT's on-disk layout, without pickles.

Only ``adapter_config.json`` (JSON) and ``adapter_model.safetensors`` are ever read. A folder that
holds only PEFT's pickled ``adapter_model.bin`` is refused with a message saying how to convert it.

Example:
    >>> from memcube.parametric.lora import lora_config_from_dict
    >>> cfg = lora_config_from_dict({"peft_type": "LORA", "r": 4, "lora_alpha": 8,
    ...                              "target_modules": ["q_proj"]})
    >>> cfg.r, cfg.lora_alpha
    (4, 8)
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memcube.errors import InvalidInputError, ModelMismatchError
from memcube.parametric.manifest import CONFIG_FILE, WEIGHTS_FILE

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch
    from peft import LoraConfig, PeftConfig

__all__ = [
    "PEFT_PREFIX",
    "LoraPayload",
    "check_compatible",
    "config_to_json",
    "lora_config_from_dict",
    "normalise_keys",
    "payload_from_folder",
    "payload_from_peft_model",
]

#: PEFT writes adapter keys relative to a ``PeftModel``: ``base_model.model.<module path>...``.
PEFT_PREFIX = "base_model.model."
_LORA_PARTS = (
    ".lora_A.",
    ".lora_B.",
    ".lora_embedding_A",
    ".lora_embedding_B",
    ".lora_magnitude_vector",
)


@dataclass
class LoraPayload:
    """A LoRA adapter in memory: its PEFT config and its weights (keys in PEFT's file layout)."""

    config: LoraConfig
    state_dict: dict[str, torch.Tensor]

    @property
    def target_modules(self) -> list[str]:
        """Leaf names of the adapted modules actually present in the weights (e.g. ``q_proj``)."""
        return sorted({module_path(k).rsplit(".", 1)[-1] for k in self.state_dict})


def lora_config_from_dict(data: Mapping[str, Any]) -> LoraConfig:
    """Build a ``peft.LoraConfig`` from the JSON of an ``adapter_config.json``.

    Keys this PEFT version does not know (written by a newer PEFT) are dropped.

    Raises:
        InvalidInputError: not a LoRA config, or values PEFT rejects.
    """
    from peft import LoraConfig

    if not isinstance(data, Mapping):
        raise InvalidInputError("adapter_config.json must hold a JSON object.")
    peft_type = str(data.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise InvalidInputError(
            f"only LoRA adapters can be stored as parametric memory; this one is {peft_type!r}."
        )
    known = {f.name for f in dataclasses.fields(LoraConfig) if f.init}
    kwargs = {k: v for k, v in data.items() if k in known and k != "peft_type"}
    try:
        return LoraConfig(**kwargs)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"invalid LoRA config: {exc}") from None


def config_to_json(config: PeftConfig) -> dict[str, Any]:
    """A ``LoraConfig`` (any ``PeftConfig``) as a JSON-safe dict (what PEFT writes to ``adapter_config.json``)."""

    def plain(value: Any) -> Any:
        if isinstance(value, (set, frozenset)):
            return sorted(plain(v) for v in value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if hasattr(value, "value") and type(value).__module__.startswith("peft"):
            return value.value  # PEFT enums
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return plain(dataclasses.asdict(value))
        return str(value)

    data: dict[str, Any] = plain(config.to_dict())
    return data


def module_path(key: str) -> str:
    """The adapted module's path for a PEFT weight key (without ``base_model.model.``)."""
    key = key.removeprefix(PEFT_PREFIX)
    for part in _LORA_PARTS:
        idx = key.find(part)
        if idx >= 0:
            return key[:idx]
    raise InvalidInputError(f"{key!r} is not a LoRA weight key.")


def normalise_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    import torch

    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise InvalidInputError(f"adapter weight {key!r} is not a tensor.")
        if not value.is_floating_point():
            raise InvalidInputError(
                f"adapter weight {key!r} has dtype {value.dtype}; expected floats."
            )
        module_path(key)  # raises on keys that are not LoRA weights
        full = key if key.startswith(PEFT_PREFIX) else PEFT_PREFIX + key
        out[full] = value.detach().to("cpu").contiguous()
    if not out:
        raise InvalidInputError("the adapter holds no weights.")
    return out


def payload_from_folder(folder: str | Path) -> LoraPayload:
    """Read a PEFT adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``).

    Raises:
        InvalidInputError: the folder is missing, holds only a pickled ``adapter_model.bin``, or
            its files are not a valid LoRA adapter.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as load_safetensors

    path = Path(folder).expanduser()
    if not path.is_dir():
        raise InvalidInputError(f"{path} is not a folder; pass a PEFT adapter folder.")
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        if (path / "adapter_model.bin").exists():
            raise InvalidInputError(
                f"{path} holds only adapter_model.bin, a pickle, which memcube never loads. "
                "Convert it where you trust it: PeftModel.from_pretrained(...).save_pretrained(dir, "
                "safe_serialization=True), then register that folder."
            )
        raise InvalidInputError(f"{path} has no {WEIGHTS_FILE}.")
    try:
        config_data = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"{path} has no {CONFIG_FILE}.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"{path / CONFIG_FILE} is not valid JSON: {exc}") from None
    config = lora_config_from_dict(config_data)
    try:
        state = load_safetensors(weights.read_bytes())
    except (SafetensorError, ValueError, OSError) as exc:
        raise InvalidInputError(f"{weights} is not a readable safetensors file: {exc}") from None
    return LoraPayload(config=config, state_dict=normalise_keys(state))


def payload_from_peft_model(peft_model: Any, adapter_name: str | None = None) -> LoraPayload:
    """Take a LoRA adapter out of a live ``peft.PeftModel`` (weights copied to CPU).

    Raises:
        InvalidInputError: not a PeftModel, unknown adapter name, or not a LoRA adapter.
    """
    from peft import PeftModel
    from peft.utils import get_peft_model_state_dict

    if not isinstance(peft_model, PeftModel):
        raise InvalidInputError(
            f"expected a peft.PeftModel or a PEFT adapter folder, got {type(peft_model).__name__}."
        )
    name = adapter_name or peft_model.active_adapter
    if name not in peft_model.peft_config:
        raise InvalidInputError(
            f"the PeftModel has no adapter {name!r}; it has {sorted(peft_model.peft_config)}."
        )
    config = lora_config_from_dict(config_to_json(peft_model.peft_config[name]))
    state = get_peft_model_state_dict(peft_model, adapter_name=name)
    return LoraPayload(config=config, state_dict=normalise_keys(state))


def check_compatible(payload: LoraPayload, model: Any) -> None:
    """Check that every adapted module exists in ``model`` with the shapes the weights need.

    Raises:
        ModelMismatchError: a module is missing or its shape differs (another base model).
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    for key, tensor in payload.state_dict.items():
        path = module_path(key)
        try:
            module = model.get_submodule(path)
        except AttributeError:
            raise ModelMismatchError(
                f"the adapter adapts {path!r}, which this model does not have: it was made for "
                "another base model."
            ) from None
        if isinstance(module, BaseTunerLayer):
            module = module.get_base_layer()
        in_f = getattr(module, "in_features", None)
        out_f = getattr(module, "out_features", None)
        if in_f is None and hasattr(module, "num_embeddings"):
            in_f, out_f = module.num_embeddings, module.embedding_dim
        if in_f is None or out_f is None or tensor.dim() != 2:
            continue
        if ".lora_A." in key or ".lora_embedding_A" in key:
            want, got = in_f, tensor.shape[1]  # A: [r, in]  (embedding: [r, num_embeddings])
        elif ".lora_B." in key or ".lora_embedding_B" in key:
            want, got = out_f, tensor.shape[0]  # B: [out, r] (embedding: [dim, r])
        else:
            continue
        if want != got:
            raise ModelMismatchError(
                f"the adapter's {key.removeprefix(PEFT_PREFIX)} has shape {tuple(tensor.shape)}, "
                f"which does not fit {path!r} of this model ({in_f} -> {out_f}): it was made for "
                "another base model."
            )
