"""The MIP compatibility rules: what happens to a KV cache or an adapter imported into a cube
that runs another model.

Per payload, in this order:

=============  =========================================================================
rule           when, and what the importer does
=============  =========================================================================
``attach``     same model fingerprint: the files are copied as they are.
``drop``       the payload's source memories are not all in the archive (or their text
               differs from what the source recorded), or it records no source at all:
               nothing to rebuild from. The reason is reported.
``recompute``  a KV cache, same tokenizer, chat template and architecture, other weights:
               the KV is recomputed on the target from the recorded token ids.
``rebuild``    a KV cache, other tokenizer, template or architecture: the recorded
               memories are rendered again for the target and prefilled there.
``redistill``  an adapter for another base model: trained again on the target from the
               same memories, with the source model and its adapter as the teacher of the
               answers when the source model is available (Trans-LoRA style).
=============  =========================================================================

This module only decides; :mod:`memcube.interchange.rematerialize` carries the decision out.

Example:
    >>> from memcube.runtime.model import ModelFingerprint
    >>> a = ModelFingerprint(model_id="a", config_hash="c", dtype="f32", tokenizer_hash="t",
    ...                      chat_template_hash="h", weights_hash="w1")
    >>> b = a.model_copy(update={"weights_hash": "w2"})
    >>> decide("activation", a, b, source_ok=True).rule
    'recompute'
    >>> decide("adapter", a, b, source_ok=True).rule
    'redistill'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from memcube.runtime.model import ModelFingerprint

__all__ = ["RULES", "Decision", "Rule", "decide"]

Rule = Literal["attach", "recompute", "rebuild", "redistill", "drop"]
RULES: tuple[Rule, ...] = ("attach", "recompute", "rebuild", "redistill", "drop")


@dataclass(frozen=True)
class Decision:
    """The rule chosen for one payload, and why (for the import report)."""

    rule: Rule
    reason: str


def decide(
    kind: str,
    source: ModelFingerprint,
    target: ModelFingerprint,
    *,
    source_ok: bool,
    source_problem: str = "",
) -> Decision:
    """Choose the rule for a ``kind`` (``"activation"`` or ``"adapter"``) payload built for
    ``source`` and imported into a cube running ``target``.

    ``kind`` may also be spelled as the archive folder (``"adapters"``). ``source_ok`` says whether the payload's recorded source memories are all in the archive,
    unchanged; ``source_problem`` says what is wrong otherwise.
    """
    if source.matches(target):
        return Decision("attach", "built for this model")
    if not source_ok:
        return Decision("drop", source_problem or "its source memories are not in the archive")
    names = f"{source.model_id} -> {target.model_id}"
    if kind.startswith("adapter"):
        return Decision(
            "redistill",
            f"an adapter only fits the base model it was trained on ({names}); trained again "
            "on the target from the same memories",
        )
    same_tokens = (
        source.tokenizer_hash == target.tokenizer_hash
        and source.chat_template_hash == target.chat_template_hash
    )
    if same_tokens and source.config_hash == target.config_hash and source.dtype == target.dtype:
        return Decision(
            "recompute",
            f"same tokenizer and architecture, other weights ({names}): KV recomputed from the "
            "recorded token ids",
        )
    differs = [
        name
        for name, same in (
            ("tokenizer", source.tokenizer_hash == target.tokenizer_hash),
            ("chat template", source.chat_template_hash == target.chat_template_hash),
            ("architecture", source.config_hash == target.config_hash),
            ("dtype", source.dtype == target.dtype),
        )
        if not same
    ]
    return Decision(
        "rebuild",
        f"other {', '.join(differs)} ({names}): the recorded memories rendered again and "
        "prefilled on the target",
    )
