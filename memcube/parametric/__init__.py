"""Parametric memory: LoRA adapters stored in a cube, hot-swapped on one loaded model, and
distilled from plaintext memories.

Example:
    >>> import tempfile
    >>> from memcube import MemCube
    >>> cube = MemCube.open(tempfile.mkdtemp())
    >>> cube.parametric.list()
    []
    >>> cube.close()
"""

from memcube.parametric.distill import DistillConfig, DistillResult, train_lora
from memcube.parametric.lora import LoraPayload, payload_from_folder, payload_from_peft_model
from memcube.parametric.manager import BASE, AdapterManager, ResidentAdapter, adapter_key
from memcube.parametric.manifest import AdapterManifest, AdapterProvenance, check_adapter_name
from memcube.parametric.memory import ParametricMemory, resolve_adapter
from memcube.parametric.store import AdapterNotFoundError, AdapterStore, CorruptAdapterError

__all__ = [
    "BASE",
    "AdapterManager",
    "AdapterManifest",
    "AdapterNotFoundError",
    "AdapterProvenance",
    "AdapterStore",
    "CorruptAdapterError",
    "DistillConfig",
    "DistillResult",
    "LoraPayload",
    "ParametricMemory",
    "ResidentAdapter",
    "adapter_key",
    "check_adapter_name",
    "payload_from_folder",
    "payload_from_peft_model",
    "resolve_adapter",
    "train_lora",
]
