"""Plaintext to parametric memory: train a LoRA adapter on CPU from selected memories.

The training examples are chat turns rendered exactly as the runtime renders prompts: a user asks
what the assistant remembers and the assistant answers with the memory's text (loss on the answer
tokens only), plus the memory as plain text. A preservation term keeps the adapter's next-token
distributions on a few generic conversations close to the base model's (KL divergence against the
base model's distributions, computed once with the adapter off), so unrelated prompts change
little. Training runs on a private copy of the model: the live model, and any generation running
on it, is never touched.

Example:
    >>> from memcube.parametric.distill import DistillConfig
    >>> DistillConfig().steps
    30
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from memcube.checks import is_int
from memcube.errors import InvalidInputError
from memcube.items import MemoryItem
from memcube.parametric.lora import (
    LoraPayload,
    config_to_json,
    lora_config_from_dict,
    normalise_keys,
)

__all__ = ["DistillConfig", "DistillResult", "train_lora"]

#: Questions the training answers with a memory (the benchmark asks different ones).
RECALL_PROMPTS = (
    "What do you remember about me?",
    "Tell me something you know about me.",
    "Remind me of a fact about myself.",
    "What have I told you before?",
)

#: Generic conversations whose next-token distributions the adapter should leave alone.
ANCHORS = (
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Write one sentence about the ocean.", "The ocean covers most of the Earth's surface."),
    ("How many days are in a week?", "There are seven days in a week."),
    (
        "Give me a tip for learning to code.",
        "Practice a little every day and build small projects.",
    ),
)


@dataclass
class DistillConfig:
    """Training settings. Defaults train in seconds on 2 CPU cores for a few dozen memories.

    Attributes:
        steps: optimizer steps.
        rank: LoRA rank; ``alpha`` defaults to twice the rank.
        lr: AdamW learning rate.
        batch_size: memory examples per step.
        target_modules: adapted linear layers.
        preserve: weight of the KL term that keeps generic conversations close to the base.
        seed: makes the adapter reproducible.
    """

    steps: int = 30
    rank: int = 8
    alpha: float | None = None
    lr: float = 2e-3
    batch_size: int = 8
    target_modules: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj")
    dropout: float = 0.0
    preserve: float = 1.0
    seed: int = 0
    max_tokens: int = 128

    def __post_init__(self) -> None:
        for name in ("steps", "rank", "batch_size", "max_tokens"):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InvalidInputError(f"lr must be a positive number, got {self.lr!r}.")
        if self.preserve < 0 or not 0 <= self.dropout < 1:
            raise InvalidInputError("preserve must be >= 0 and dropout in [0, 1).")
        if not self.target_modules or isinstance(self.target_modules, str):
            raise InvalidInputError("target_modules must be a non-empty list of module names.")
        self.target_modules = tuple(self.target_modules)


@dataclass
class DistillResult:
    """The trained adapter and a record of the run."""

    payload: LoraPayload
    losses: list[float] = field(default_factory=list)
    examples: int = 0
    seconds: float = 0.0

    def summary(self, cfg: DistillConfig) -> dict[str, Any]:
        data = asdict(cfg)
        data["target_modules"] = list(cfg.target_modules)
        data["alpha"] = cfg.alpha if cfg.alpha is not None else 2.0 * cfg.rank
        data.update(
            examples=self.examples,
            seconds=round(self.seconds, 3),
            first_loss=round(self.losses[0], 5) if self.losses else None,
            final_loss=round(self.losses[-1], 5) if self.losses else None,
        )
        return data


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _chat_example(tokenizer: Any, question: str, answer: str, limit: int) -> tuple[list[int], int]:
    """Token ids of a rendered chat turn plus answer, and where the answer starts."""
    from memcube.runtime.chat import ChatMessage, build_prompt

    prompt = build_prompt(tokenizer, [ChatMessage("user", question)]).ids
    end = "<|im_end|>" if "<|im_end|>" in tokenizer.get_vocab() else (tokenizer.eos_token or "")
    answer_ids = _encode(tokenizer, answer + end)
    ids = (prompt + answer_ids)[-limit:]
    return ids, max(1, len(ids) - len(answer_ids))


def build_examples(
    tokenizer: Any, items: Sequence[MemoryItem], max_tokens: int
) -> list[tuple[list[int], int]]:
    """Training sequences ``(ids, first scored position)`` for the memories."""
    examples: list[tuple[list[int], int]] = []
    for i, item in enumerate(items):
        text = item.content.strip()
        for j in range(2):
            question = RECALL_PROMPTS[(i + j) % len(RECALL_PROMPTS)]
            examples.append(_chat_example(tokenizer, question, text, max_tokens))
        plain = _encode(tokenizer, text)[:max_tokens]
        if len(plain) >= 2:
            examples.append((plain, 1))
    return examples


def _pad(batch: Sequence[tuple[list[int], int]], pad_id: int) -> tuple[Any, Any, Any]:
    import torch

    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, (seq, start) in enumerate(batch):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
        labels[row, start : len(seq)] = torch.tensor(seq[start:])
    return ids, mask, labels


def train_lora(
    model: Any,
    tokenizer: Any,
    items: Sequence[MemoryItem],
    cfg: DistillConfig,
    *,
    progress: bool = True,
    desc: str = "distill",
) -> DistillResult:
    """Train a LoRA adapter on ``items`` and return its weights (the model is not modified)."""
    import torch
    import torch.nn.functional as F
    from peft import LoraConfig
    from peft.functional import (
        get_peft_model_state_dict,
        inject_adapter_in_model,
        set_adapter,
    )
    from peft.tuners.lora import LoraLayer
    from tqdm.auto import tqdm

    if not items:
        raise InvalidInputError("there are no memories to distill.")
    start = time.perf_counter()
    examples = build_examples(tokenizer, items, cfg.max_tokens)
    anchors = [_chat_example(tokenizer, q, a, cfg.max_tokens) for q, a in ANCHORS]
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    alpha = cfg.alpha if cfg.alpha is not None else 2.0 * cfg.rank
    lora_cfg = LoraConfig(
        r=cfg.rank,
        lora_alpha=alpha,  # type: ignore[arg-type]  # peft annotates int; a float scale works
        lora_dropout=cfg.dropout,
        target_modules=list(cfg.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    name = "memcube_distill"
    rng = random.Random(cfg.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        work = copy.deepcopy(model)  # the live model stays untouched
        work.train(False)
        for p in work.parameters():
            p.requires_grad_(False)
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                inject_adapter_in_model(lora_cfg, work, adapter_name=name)
            except ValueError as exc:
                raise InvalidInputError(f"cannot adapt this model: {exc}") from None
        set_adapter(work, name)
        layers = [m for m in work.modules() if isinstance(m, LoraLayer)]
        for layer in layers:
            layer.enable_adapters(True)
        params = [p for n, p in work.named_parameters() if f".{name}." in n]
        for p in params:
            p.requires_grad_(True)
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)

        anchor_ids, anchor_mask, anchor_labels = _pad(anchors, pad_id)
        anchor_keep = anchor_labels != -100
        with torch.no_grad():
            for layer in layers:
                layer.enable_adapters(False)
            base_logp = F.log_softmax(
                work(input_ids=anchor_ids, attention_mask=anchor_mask).logits.float(), dim=-1
            )[anchor_keep]
            for layer in layers:
                layer.enable_adapters(True)

        losses: list[float] = []
        bar = tqdm(total=cfg.steps, desc=desc, unit="step", disable=not progress)
        try:
            order: list[int] = []
            for _ in range(cfg.steps):
                batch: list[tuple[list[int], int]] = []
                while len(batch) < min(cfg.batch_size, len(examples)):
                    if not order:
                        order = list(range(len(examples)))
                        rng.shuffle(order)
                    batch.append(examples[order.pop()])
                ids, mask, labels = _pad(batch, pad_id)
                out = work(input_ids=ids, attention_mask=mask)
                logits = out.logits[:, :-1].float()
                loss = F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]),
                    labels[:, 1:].reshape(-1),
                    ignore_index=-100,
                )
                total = loss
                if cfg.preserve > 0:
                    logp = F.log_softmax(
                        work(input_ids=anchor_ids, attention_mask=anchor_mask).logits.float(),
                        dim=-1,
                    )[anchor_keep]
                    kl = F.kl_div(logp, base_logp, log_target=True, reduction="batchmean")
                    total = loss + cfg.preserve * kl
                optimizer.zero_grad(set_to_none=True)
                total.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
                optimizer.step()
                losses.append(float(loss.detach()))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.3f}")
        finally:
            bar.close()
        state = get_peft_model_state_dict(work, adapter_name=name)
        state = {k: v.detach().clone() for k, v in state.items()}
        del work, optimizer
    config = lora_config_from_dict(config_to_json(lora_cfg))
    payload = LoraPayload(config=config, state_dict=normalise_keys(state))
    return DistillResult(
        payload=payload, losses=losses, examples=len(examples), seconds=time.perf_counter() - start
    )
