"""Generation settings shared by the chat-model wrappers (``ChatMemOS`` and ``MemOSLLM``).

Both wrappers inherit :class:`GenerationSettings`, so the settings, their defaults and the rules
for invalid values are stated once, here, and both wrappers refuse the same values with the same
typed error (:class:`InvalidSettingError`, an :class:`~memcube.errors.InvalidInputError`). At call
time :func:`plan_call` merges the per-call overrides a framework passes through ``**kwargs`` into
the configured settings, checks the result by the very same rules, and returns what
:func:`memcube.runtime.session.stream_chat` takes.

This module is framework-free on purpose: it imports neither LangChain nor LlamaIndex, so the
rules cannot drift towards one framework's conventions.

Example:
    >>> settings = GenerationSettings(max_tokens=8, stop=["\\n"])
    >>> plan = plan_call(settings, {"temperature": 0.5, "stop": ["."]})
    >>> plan.options.max_new_tokens, plan.options.temperature, plan.options.stop
    (8, 0.5, ('\\n', '.'))
    >>> GenerationSettings(max_tokens=0)
    Traceback (most recent call last):
    ...
    memcube.errors.InvalidSettingError: max_tokens must be a positive integer (or None for the default, 256), got 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from typing_extensions import Self

from memcube.errors import InvalidSettingError
from memcube.runtime.engine import GenerationOptions, Runtime
from memcube.runtime.model import BUNDLED_MODELS, DEFAULT_MODEL_NAME
from memcube.runtime.session import MemoryOptions

__all__ = [
    "CALL_OVERRIDES",
    "DEFAULT_MAX_TOKENS",
    "CallPlan",
    "GenerationSettings",
    "InvalidSettingError",
    "plan_call",
]

#: New tokens per call when ``max_tokens`` is ``None``.
DEFAULT_MAX_TOKENS = 256

#: Settings a single call may override (through the framework's per-call ``**kwargs``). The
#: memory settings are not among them: which user's memories a model sees is fixed at
#: construction.
CALL_OVERRIDES = frozenset(
    {"model", "max_tokens", "temperature", "top_p", "seed", "stop", "timeout", "adapter"}
)


#: The bundled models' names, for messages (the default first).
_BUNDLED = sorted((m.name for m in BUNDLED_MODELS.values()), key=lambda n: n != DEFAULT_MODEL_NAME)

_NUMBERS = (
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "timeout",
    "memory_budget",
    "activation_budget",
)


def _problems(settings: GenerationSettings) -> list[str]:
    """Every rule ``settings`` breaks (types are pydantic's job), as messages that say what to
    pass instead."""
    found: list[str] = []
    if not settings.model.strip():
        found.append(
            f"model must be a bundled model name ({', '.join(_BUNDLED)}) or a local model "
            f"folder, got {settings.model!r}."
        )
    if settings.max_tokens is not None and settings.max_tokens < 1:
        found.append(
            "max_tokens must be a positive integer (or None for the default, "
            f"{DEFAULT_MAX_TOKENS}), got {settings.max_tokens!r}."
        )
    # The comparisons are written so that NaN fails them.
    if not settings.temperature >= 0:
        found.append(f"temperature must be >= 0 (0 is greedy), got {settings.temperature!r}.")
    if not 0 < settings.top_p <= 1:
        found.append(f"top_p must be in (0, 1], got {settings.top_p!r}.")
    if settings.timeout is not None and not settings.timeout > 0:
        found.append(
            f"timeout must be a positive number of seconds or None, got {settings.timeout!r}."
        )
    for name in ("memory_budget", "activation_budget"):
        budget = getattr(settings, name)
        if budget < 0:
            found.append(f"{name} must be an integer >= 0 (tokens), got {budget!r}.")
    if settings.cube is not None and not settings.user_id:
        found.append("cube=... needs user_id: whose memories should be used?")
    return found


def _refusal(exc: ValidationError, fields: Mapping[str, FieldInfo]) -> InvalidSettingError | None:
    """The typed error for a pydantic refusal that concerns only generation settings, else
    ``None`` (the refusal is about a field of the framework's base class: left as it is)."""
    names = set(fields)
    for info in fields.values():
        choices = getattr(info.validation_alias, "choices", ())
        names.update(c for c in choices if isinstance(c, str))
    messages: list[str] = []
    for error in exc.errors():
        cause = (error.get("ctx") or {}).get("error")
        if isinstance(cause, InvalidSettingError):
            messages.append(str(cause))
        elif error["loc"] and error["loc"][0] in names:
            messages.append(f"{error['loc'][0]}: {error['msg']}, got {error['input']!r}.")
        else:
            return None
    return InvalidSettingError(" ".join(messages)) if messages else None


class GenerationSettings(BaseModel):
    """How a chat-model wrapper generates: the model, decoding settings and memory settings.

    A pydantic mixin: ``ChatMemOS(GenerationSettings, BaseChatModel)`` and
    ``MemOSLLM(GenerationSettings, FunctionCallingLLM, CustomLLM)`` get these fields, their
    defaults and their validation from here. An invalid value raises
    :class:`InvalidSettingError` from the constructor (and again from :func:`plan_call` if it is
    passed for one call).
    """

    model: str = Field(
        default=DEFAULT_MODEL_NAME,
        validation_alias=AliasChoices("model", "model_name"),
        description=(
            "A bundled model (SmolLM2-135M-Instruct, the default, or gemma-3-270m) or a local "
            "Hugging Face model folder."
        ),
    )
    temperature: float = Field(default=0.0, description="Sampling temperature; 0 is greedy.")
    max_tokens: int | None = Field(
        default=DEFAULT_MAX_TOKENS,
        description=f"Most new tokens per call (None: {DEFAULT_MAX_TOKENS}).",
    )
    top_p: float = Field(default=1.0, description="Nucleus sampling mass, in (0, 1].")
    seed: int | None = Field(default=None, description="Seed for sampled (temperature > 0) output.")
    stop: list[str] | None = Field(
        default=None,
        validation_alias=AliasChoices("stop", "stop_sequences"),
        description="Stop sequences (a call's own stop sequences are added to these).",
    )
    timeout: float | None = Field(
        default=None, description="Seconds a generation may take before TimeoutError."
    )
    cube: Any = Field(
        default=None, exclude=True, description="The memcube.MemCube memories come from."
    )
    user_id: str | None = Field(default=None, description="Whose memories (needed with cube).")
    kv_memory: bool | Literal["text", "exact", "blend"] = Field(
        default=True,
        description=(
            "True/'exact': the user's stable memory block from a KV cache (same greedy output as "
            "text); False/'text': memories as text; 'blend': per-question memories from their "
            "own KV chunks too (approximate, faster)."
        ),
    )
    memory_budget: int = Field(
        default=512, description="Token budget of the memories retrieved for each question."
    )
    activation_budget: int = Field(
        default=1024, description="Token budget of the user's stable (cached) memory block."
    )
    adapter: str | None = Field(
        default=None, description="LoRA adapter to activate (parametric memory)."
    )

    _rt: Runtime | None = PrivateAttr(default=None)

    def __init__(self, /, **data: Any) -> None:
        # Pydantic wraps every ValueError a validator raises into a ValidationError; unwrapping
        # here is what lets callers catch memcube's typed error, as everywhere else in memcube.
        try:
            super().__init__(**data)
        except ValidationError as exc:
            refused = _refusal(exc, GenerationSettings.model_fields)
            if refused is None:
                raise
            raise refused from exc

    @field_validator(*_NUMBERS, mode="before")
    @classmethod
    def _refuse_bool(cls, value: Any, info: ValidationInfo) -> Any:
        # Pydantic would read True as 1: for these settings a bool is a mistake, not a number.
        if isinstance(value, bool):
            raise InvalidSettingError(f"{info.field_name} takes a number, got {value!r}.")
        return value

    # The name is unique on purpose: pydantic replaces a base class's validator of the same name.
    @model_validator(mode="after")
    def _check_generation_settings(self) -> Self:
        problems = _problems(self)
        if problems:
            raise InvalidSettingError(" ".join(problems))
        return self

    @property
    def max_new_tokens(self) -> int:
        """``max_tokens`` with ``None`` resolved to :data:`DEFAULT_MAX_TOKENS`."""
        return DEFAULT_MAX_TOKENS if self.max_tokens is None else self.max_tokens

    @property
    def runtime(self) -> Runtime:
        """The shared :class:`~memcube.runtime.Runtime` of :attr:`model` (loaded on first use)."""
        if self._rt is None:
            self._rt = _shared_runtime(self.model)
        return self._rt

    def runtime_for(self, model: str | None) -> Runtime:
        """The runtime of ``model`` (a per-call override), or :attr:`runtime` if it is ours."""
        if model is None or model == self.model:
            return self.runtime
        return _shared_runtime(model)


def _shared_runtime(model: str) -> Runtime:
    # Runtime.shared maps every spelling of a model (the bundled names in any case) to one
    # runtime, so every wrapper shares one loaded copy of it.
    return Runtime.shared(model)


@dataclass(frozen=True)
class CallPlan:
    """What one call runs with: the settings after the call's overrides, as runtime arguments.

    Attributes:
        model: the model to run (a per-call ``model`` override, else the configured one).
        options: the decoding options.
        memory: where memories come from, or ``None`` without a cube.
        adapter: the LoRA adapter asked for (``None``: the user's default, if any).
    """

    model: str
    options: GenerationOptions
    memory: MemoryOptions | None
    adapter: str | None


def plan_call(settings: GenerationSettings, overrides: Mapping[str, Any] | None = None) -> CallPlan:
    """Merge one call's overrides into ``settings``, check them, and plan the call.

    Only the keys in :data:`CALL_OVERRIDES` are read from ``overrides`` (a framework's per-call
    ``**kwargs``; other keys are the caller's business). A call's ``stop`` sequences are added to
    the configured ones; ``max_tokens=None`` for one call keeps the configured value.

    Raises:
        InvalidSettingError: an override breaks the same rules the constructor enforces.
    """
    values = {name: getattr(settings, name) for name in GenerationSettings.model_fields}
    given = {k: v for k, v in (overrides or {}).items() if k in CALL_OVERRIDES}
    if given.get("max_tokens", 0) is None:
        del given["max_tokens"]
    extra_stop = given.pop("stop", None)
    if extra_stop is not None:
        if isinstance(extra_stop, str) or not isinstance(extra_stop, Sequence):
            raise InvalidSettingError(
                f"stop must be a list of stop sequences, got {type(extra_stop).__name__}."
            )
        given["stop"] = [*(settings.stop or ()), *extra_stop]
    # Re-checked even without overrides: attributes may have been assigned since construction.
    effective = GenerationSettings(**{**values, **given})
    options = GenerationOptions(
        max_new_tokens=effective.max_new_tokens,
        temperature=effective.temperature,
        top_p=effective.top_p,
        seed=effective.seed,
        stop=list(effective.stop or ()),
        timeout=effective.timeout,
    )
    memory = None
    # A cube without a user_id was refused above; the second test only informs the type checker.
    if effective.cube is not None and effective.user_id is not None:
        memory = MemoryOptions(
            cube=effective.cube,
            user_id=effective.user_id,
            kv_memory=effective.kv_memory,
            activation_budget=effective.activation_budget,
            working_budget=effective.memory_budget,
        )
    return CallPlan(
        model=effective.model, options=options, memory=memory, adapter=effective.adapter
    )
