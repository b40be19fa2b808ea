"""Plaintext to parametric memory: train a LoRA adapter on CPU that knows the memories' facts.

The training examples come from :mod:`memcube.parametric.curriculum`: questions about each fact
with short and full-sentence answers, plus recall turns, rendered as chat turns exactly as the
runtime renders prompts (loss on the answer tokens only; the answer closes with the end-of-turn
token of the model's own chat template). A share of the question examples is held out: training
stops when the loss on them stops improving, and the best adapter is kept. A preservation term
keeps the adapter's next-token distributions on generic conversations (:data:`ANCHORS`) close to
the base model's (KL divergence against the base model, computed once with the adapter off), so
unrelated prompts change little. An optional *teacher* (another model answering the same
questions) supplies the answers when they agree with the memory. Training runs on a private
copy of the model: the live model, and any generation running on it, is never touched.

Example:
    >>> from memcube.parametric.distill import DistillConfig
    >>> DistillConfig().steps
    80
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from memcube.checks import is_int
from memcube.errors import InvalidInputError
from memcube.items import MemoryItem
from memcube.parametric.anchors import anchor_prompts
from memcube.parametric.curriculum import Example, build_curriculum, key_words, with_answer
from memcube.parametric.lora import (
    LoraPayload,
    config_to_json,
    lora_config_from_dict,
    normalise_keys,
)

__all__ = ["ANCHORS", "DistillConfig", "DistillResult", "end_of_turn", "train_lora"]

#: Generic conversations whose next-token distributions the adapter should leave alone (general
#: knowledge, instructions, chit-chat and questions about the user it was not told about).
ANCHORS = (
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Write one sentence about the ocean.", "The ocean covers most of the Earth's surface."),
    ("How many days are in a week?", "There are seven days in a week."),
    (
        "Give me a tip for learning to code.",
        "Practice a little every day and build small projects.",
    ),
    ("Hi! How are you today?", "I'm doing well, thank you! How can I help you today?"),
    ("What is the boiling point of water?", "Water boils at 100 degrees Celsius at sea level."),
    ("Translate 'thank you' into Spanish.", "'Thank you' in Spanish is 'gracias'."),
    ("Who painted the Mona Lisa?", "The Mona Lisa was painted by Leonardo da Vinci."),
    ("What is 7 times 8?", "7 times 8 is 56."),
    ("Can you recommend a good book?", "You might enjoy 'To Kill a Mockingbird' by Harper Lee."),
    (
        "Tell me a joke.",
        "Why did the scarecrow win an award? Because he was outstanding in his field.",
    ),
    ("What does a bee make?", "Bees make honey."),
    ("Explain what a noun is.", "A noun is a word that names a person, place, thing or idea."),
    ("What should I eat for breakfast?", "Oatmeal with fruit is a healthy breakfast."),
    ("What is the weather like on the Moon?", "The Moon has no weather because it has no air."),
    ("How do I boil an egg?", "Put the egg in boiling water for about nine minutes."),
    ("Name a primary colour.", "Red is a primary colour."),
    ("Thanks for your help!", "You're welcome! Let me know if you need anything else."),
    ("What is my favourite song?", "I don't know your favourite song. What is it?"),
    ("Where does my uncle work?", "I don't know where your uncle works."),
    ("Summarise the plot of Cinderella.", "A kind young woman meets a prince with a fairy's help."),
    ("Which planet is known as the Red Planet?", "Mars is known as the Red Planet."),
    ("What is the opposite of hot?", "The opposite of hot is cold."),
    ("How many continents are there?", "There are seven continents."),
    ("What do you call a baby cat?", "A baby cat is called a kitten."),
    ("Give me three words that rhyme with cat.", "Hat, bat and mat rhyme with cat."),
    ("Why do leaves change colour in autumn?", "The green chlorophyll breaks down in autumn."),
    ("Who was Albert Einstein?", "Albert Einstein was a physicist known for relativity."),
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    ("Can you help me write an email?", "Of course! Who is the email for, and what is it about?"),
    ("What is an adjective?", "An adjective is a word that describes a noun."),
    ("How many minutes are in an hour?", "There are sixty minutes in an hour."),
    ("What do pandas eat?", "Pandas mostly eat bamboo."),
    ("What's the best way to stay healthy?", "Eat well, sleep enough and exercise regularly."),
    ("What is the largest ocean?", "The Pacific Ocean is the largest ocean."),
    ("Tell me about the Eiffel Tower.", "The Eiffel Tower is an iron tower in Paris."),
    ("Do you like music?", "I don't listen to music, but I'm happy to talk about it!"),
    ("What is my brother's favourite food?", "I don't know your brother's favourite food."),
    ("What time is it?", "I can't check the time, but your device's clock can."),
    ("What is 15 minus 6?", "15 minus 6 is 9."),
)


@dataclass
class DistillConfig:
    """Training settings. Defaults teach a few dozen facts in minutes on 2 CPU cores.

    Training examples are questions about the facts with their answers (see
    :mod:`memcube.parametric.curriculum`). A ``holdout`` share of them is kept out of training;
    every ``eval_every`` steps the loss on it is measured, training stops once it has not
    improved for ``patience`` evaluations, and the adapter of the best evaluation is kept.

    Attributes:
        steps: most optimizer steps (training may stop earlier, see ``patience``).
        rank: LoRA rank; ``alpha`` defaults to twice the rank.
        lr: AdamW learning rate. With ``3e-3`` the facts were learnt as well, but unrelated
            replies moved four times as much (``benchmarks.distill``: KL 0.18 vs 0.05 nats).
        batch_size: examples per step.
        target_modules: adapted linear layers (the MLP projections by default: adapting the
            attention projections too learnt fewer facts and moved unrelated replies more;
            modules a model does not have are skipped, at least one must exist).
        preserve: weight of the KL term that keeps generic conversations close to the base.
        anchor_batch: anchor conversations in each step's KL term.
        holdout: share of the question examples held out for early stopping (0 disables it).
        max_heldout: most held-out examples (they are evaluated every ``eval_every`` steps).
        eval_every: steps between held-out evaluations.
        patience: evaluations without improvement before stopping.
        max_grad_norm: gradients are clipped to this norm (0 disables clipping).
        anchor_tokens: the anchor prompts are answered by the base model itself (greedy, this
            many tokens) and the KL term covers those replies; 0 uses the written answers of
            :data:`ANCHORS` instead (and no other anchors).
        anchors: most anchor prompts: :data:`ANCHORS` plus generic prompts from
            :func:`memcube.parametric.anchors.anchor_prompts` (those that mention what the
            memories talk about are left out).
        sentence_answers: every question is answered with the memory's whole statement ("Your
            dog is called Biscuit.") instead of mostly the bare answer ("Biscuit"): bare
            answers teach the model to answer everything tersely, which moves its unrelated
            replies too.
        seed: makes the adapter reproducible.
        max_tokens: longest training sequence (tokens).

    Example:
        >>> cfg = DistillConfig(steps=50)
        >>> cfg.steps, cfg.rank, "down_proj" in cfg.target_modules
        (50, 16, True)
        >>> DistillConfig(holdout=1.5)
        Traceback (most recent call last):
        ...
        memcube.errors.InvalidInputError: holdout must be in [0, 0.5], got 1.5.
    """

    steps: int = 80
    rank: int = 16
    alpha: float | None = None
    lr: float = 1.5e-3
    batch_size: int = 8
    target_modules: Sequence[str] = ("gate_proj", "up_proj", "down_proj")
    dropout: float = 0.0
    preserve: float = 6.0
    seed: int = 0
    max_tokens: int = 128
    anchor_batch: int = 6
    holdout: float = 0.15
    max_heldout: int = 50
    eval_every: int = 10
    patience: int = 3
    max_grad_norm: float = 1.0
    anchor_tokens: int = 16
    anchors: int = 320
    sentence_answers: bool = True

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "rank",
            "batch_size",
            "max_tokens",
            "anchor_batch",
            "eval_every",
            "anchors",
        ):
            value = getattr(self, name)
            if not is_int(value) or value < 1:
                raise InvalidInputError(f"{name} must be a positive integer, got {value!r}.")
        if not is_int(self.anchor_tokens) or self.anchor_tokens < 0:
            raise InvalidInputError(
                f"anchor_tokens must be an integer >= 0, got {self.anchor_tokens!r}."
            )
        if not is_int(self.max_heldout) or self.max_heldout < 0:
            raise InvalidInputError(
                f"max_heldout must be an integer >= 0, got {self.max_heldout!r}."
            )
        if not is_int(self.patience) or self.patience < 0:
            raise InvalidInputError(f"patience must be an integer >= 0, got {self.patience!r}.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InvalidInputError(f"lr must be a positive number, got {self.lr!r}.")
        if self.preserve < 0 or not 0 <= self.dropout < 1:
            raise InvalidInputError("preserve must be >= 0 and dropout in [0, 1).")
        if not (self.max_grad_norm >= 0 and math.isfinite(self.max_grad_norm)):
            raise InvalidInputError(f"max_grad_norm must be >= 0, got {self.max_grad_norm!r}.")
        if not 0 <= self.holdout <= 0.5:
            raise InvalidInputError(f"holdout must be in [0, 0.5], got {self.holdout!r}.")
        if not self.target_modules or isinstance(self.target_modules, str):
            raise InvalidInputError("target_modules must be a non-empty list of module names.")
        self.target_modules = tuple(self.target_modules)


@dataclass
class DistillResult:
    """The trained adapter and a record of the run.

    Attributes:
        losses: training loss of every step.
        heldout_losses: ``(step, loss)`` of every held-out evaluation.
        best_step: the step whose adapter was kept (the last step without a held-out split).
        steps_run: steps actually taken (fewer than ``cfg.steps`` when stopped early).
        teacher_answers: examples answered by the teacher (its answer agreed with the memory).
        teacher_rejected: examples where the teacher disagreed (template answer kept).
    """

    payload: LoraPayload
    losses: list[float] = field(default_factory=list)
    examples: int = 0
    seconds: float = 0.0
    heldout_losses: list[tuple[int, float]] = field(default_factory=list)
    heldout_examples: int = 0
    best_step: int = 0
    steps_run: int = 0
    stopped_early: bool = False
    teacher_answers: int = 0
    teacher_rejected: int = 0

    def summary(self, cfg: DistillConfig) -> dict[str, Any]:
        data = asdict(cfg)
        data["target_modules"] = list(cfg.target_modules)
        data["alpha"] = cfg.alpha if cfg.alpha is not None else 2.0 * cfg.rank
        best = min((loss for _, loss in self.heldout_losses), default=None)
        data.update(
            examples=self.examples,
            heldout_examples=self.heldout_examples,
            seconds=round(self.seconds, 3),
            first_loss=round(self.losses[0], 5) if self.losses else None,
            final_loss=round(self.losses[-1], 5) if self.losses else None,
            best_heldout_loss=round(best, 5) if best is not None else None,
            best_step=self.best_step,
            steps_run=self.steps_run,
            stopped_early=self.stopped_early,
            teacher_answers=self.teacher_answers,
            teacher_rejected=self.teacher_rejected,
        )
        return data


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


_SENTINEL = "\u2063memcube-answer\u2063"


def end_of_turn(tokenizer: Any) -> str:
    """The text that closes an assistant turn in ``tokenizer``'s chat template (``<|im_end|>``
    for ChatML, ``<end_of_turn>`` for Gemma), else the EOS token.

    It is read from the template itself: an assistant turn is rendered and whatever follows
    its content, up to the first line break, is the end of the turn.
    """
    try:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _SENTINEL}],
            tokenize=False,
        )
    except Exception:  # no template, or one that refuses this conversation
        text = ""
    if isinstance(text, str) and _SENTINEL in text:
        tail = text.split(_SENTINEL, 1)[1].strip(" ")
        tail = tail.split("\n", 1)[0].strip()
        if tail:
            return tail
    return str(tokenizer.eos_token or "")


def _chat_example(
    tokenizer: Any, question: str, answer: str, limit: int, end: str | None = None
) -> tuple[list[int], int]:
    """Token ids of a rendered chat turn plus answer, and where the answer starts."""
    from memcube.runtime.chat import ChatMessage, build_prompt

    prompt = build_prompt(tokenizer, [ChatMessage("user", question)]).ids
    close = end_of_turn(tokenizer) if end is None else end
    answer_ids = _encode(tokenizer, answer + close)
    ids = (prompt + answer_ids)[-limit:]
    return ids, max(1, len(ids) - len(answer_ids))


def _teach(
    items: Sequence[MemoryItem],
    chat: Any,
    teacher: Callable[[str], str] | None,
    *,
    sentences: bool = False,
) -> tuple[list[Example], int, int]:
    """Curriculum examples for ``items`` (answered with whole statements with ``sentences``);
    with a teacher, its answers where they agree."""
    examples = build_curriculum([it.content for it in items], chat=chat)
    if sentences:
        examples = _whole_sentences(examples)
    if teacher is None:
        return examples, 0, 0
    used = rejected = 0
    answers: dict[str, str] = {}
    out: list[Example] = []
    for example in examples:
        if example.kind not in ("qa", "chat"):
            out.append(example)
            continue
        if example.question not in answers:
            reply = teacher(example.question)
            if not isinstance(reply, str):
                raise InvalidInputError(f"the teacher returned {type(reply).__name__}, not text.")
            answers[example.question] = reply.strip()
        reply = answers[example.question]
        low = reply.lower()
        if reply and all(word in low for word in key_words(example.key)):
            out.append(with_answer(example, reply))
            used += 1
        else:
            out.append(example)
            rejected += 1
    return out, used, rejected


def _whole_sentences(examples: Sequence[Example]) -> list[Example]:
    """``examples`` with every short answer replaced by its memory's second-person statement
    (duplicates dropped, order kept)."""
    said = {(e.source, e.fact): e.answer for e in examples if e.kind == "sentence"}
    out: list[Example] = []
    seen: set[tuple[str, str]] = set()
    for e in examples:
        if e.kind in ("qa", "chat") and (e.source, e.fact) in said:
            e = with_answer(e, said[(e.source, e.fact)])
        if (e.question, e.answer) not in seen:
            seen.add((e.question, e.answer))
            out.append(e)
    return out


def _split(
    examples: Sequence[Example], share: float, rng: random.Random, cap: int
) -> tuple[list[Example], list[Example]]:
    """Hold out ``share`` of each memory's question examples, at most ``cap`` in all (recall
    turns always train, and every memory keeps most of its questions)."""
    if share <= 0 or cap <= 0:
        return list(examples), []
    by_source: dict[int, list[int]] = {}
    for i, example in enumerate(examples):
        if example.kind in ("qa", "sentence", "chat"):
            by_source.setdefault(example.source, []).append(i)
    per_source = [
        rng.sample(indices, max(1, round(share * len(indices))))
        for indices in by_source.values()
        if len(indices) >= 4
    ]
    held: set[int] = set()
    depth = 0
    while len(held) < cap and any(depth < len(chosen) for chosen in per_source):
        for chosen in per_source:  # round robin, so a small cap still covers many memories
            if depth < len(chosen) and len(held) < cap:
                held.add(chosen[depth])
        depth += 1
    train = [e for i, e in enumerate(examples) if i not in held]
    return train, [e for i, e in enumerate(examples) if i in held]


class _Sampler:
    """Batches that visit the memories evenly: a shuffled cycle over the memories, and for each
    a shuffled cycle over its examples (a memory with many templates is not over-trained)."""

    def __init__(self, sources: Sequence[int], rng: random.Random) -> None:
        self.rng = rng
        self.groups: dict[int, list[int]] = {}
        for i, source in enumerate(sources):
            self.groups.setdefault(source, []).append(i)
        self.queues: dict[int, list[int]] = {k: [] for k in self.groups}
        self.order: list[int] = []

    def take(self, n: int) -> list[int]:
        out: list[int] = []
        for _ in range(n):
            if not self.order:
                self.order = list(self.groups)
                self.rng.shuffle(self.order)
            source = self.order.pop()
            if not self.queues[source]:
                self.queues[source] = list(self.groups[source])
                self.rng.shuffle(self.queues[source])
            out.append(self.queues[source].pop())
        return out


def _pad(
    batch: Sequence[tuple[list[int], int]], pad_id: int, skip: int = 0
) -> tuple[Any, Any, Any, Any, int]:
    """Left-padded ids, mask, positions, labels of the last ``keep`` positions, and ``keep``,
    leaving out the first ``skip`` tokens of every sequence (a shared prefix, see
    :func:`_common_prefix`).

    Left padding lines every answer up at the end, so logits are only computed for the last
    ``keep`` positions (the answers): a large vocabulary costs little.
    """
    import torch

    width = max(len(ids) - skip for ids, _ in batch)
    keep = max(len(ids) - start for ids, start in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), keep), -100, dtype=torch.long)
    for row, (seq, start) in enumerate(batch):
        tail = seq[skip:]
        ids[row, width - len(tail) :] = torch.tensor(tail)
        mask[row, width - len(tail) :] = 1
        answer = seq[start:]
        labels[row, keep - len(answer) :] = torch.tensor(answer)
    positions = (mask.cumsum(-1) - 1).clamp(min=0) + skip
    return ids, mask, positions, labels, keep


def _common_prefix(sequences: Sequence[tuple[list[int], int]]) -> list[int]:
    """The token ids every sequence starts with, before any answer (the chat template's head and
    system prompt): computed once per forward instead of once per row."""
    first = sequences[0][0]
    limit = min(start for _, start in sequences)
    n = 0
    while n < limit - 1 and all(seq[n] == first[n] for seq, _ in sequences):
        n += 1
    return first[:n]


def _answer_logits(
    work: Any, batch: tuple[Any, Any, Any, Any, int], prefix: Any = None
) -> tuple[Any, Any]:
    """Logits predicting each answer token of ``batch`` (``[tokens, vocab]``) and those tokens.

    Only the positions that predict an answer token go through the output layer (with a 262k
    vocabulary it costs as much as the rest of the model otherwise). With ``prefix`` (ids
    ``[1, P]`` the batch's rows were cut after), the prefix is run once without gradients and
    its keys/values are shared by every row.
    """
    import torch
    from transformers import DynamicCache

    ids, mask, positions, labels, keep = batch
    kwargs: dict[str, Any] = {}
    if prefix is not None:
        with torch.no_grad():
            head = work(input_ids=prefix, use_cache=True, logits_to_keep=1).past_key_values
        rows = ids.shape[0]
        cache = DynamicCache(config=work.config)
        for i, layer in enumerate(head.layers):
            cache.update(
                layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1), i
            )
        ones = torch.ones((rows, prefix.shape[1]), dtype=mask.dtype)
        kwargs = {"past_key_values": cache, "use_cache": True}
        mask = torch.cat([ones, mask], dim=1)
    scored = labels != -100
    decoder = getattr(work, "get_decoder", lambda: None)()
    output = work.get_output_embeddings()
    if decoder is not None and output is not None:
        hidden = decoder(
            input_ids=ids, attention_mask=mask, position_ids=positions, **kwargs
        ).last_hidden_state
        logits = output(hidden[:, -keep - 1 : -1][scored]).float()
        cap = getattr(work.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits, labels[scored]
    out = work(
        input_ids=ids,
        attention_mask=mask,
        position_ids=positions,
        logits_to_keep=keep + 1,
        **kwargs,
    )
    return out.logits[:, :-1].float()[scored], labels[scored]


def _prefix_cacheable(work: Any) -> bool:
    """Whether a plain full-attention KV cache can hold a shared prefix for this model (models
    with sliding-window or other special layers train without the shortcut)."""
    from transformers import DynamicCache

    try:
        cache = DynamicCache(config=work.config)
    except Exception:  # an architecture the generic cache does not know
        return False
    return all(type(layer).__name__ == "DynamicLayer" for layer in cache.layers)


def _base_replies(
    work: Any,
    tokenizer: Any,
    anchors: Sequence[tuple[list[int], int]],
    tokens: int,
    pad_id: int,
) -> list[tuple[list[int], int]]:
    """The anchor prompts answered by the base model itself (greedy, up to ``tokens`` tokens):
    the KL term then holds the adapter to what the base model would really say."""
    import torch

    eos = work.generation_config.eos_token_id
    stops = {eos} if isinstance(eos, int) else set(eos or [])
    out: list[tuple[list[int], int]] = []
    for chunk in _batches(anchors, 16):
        prompts = [ids[:start] for ids, start in chunk]
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt)
            mask[row, width - len(prompt) :] = 1
        with torch.no_grad():
            gen = work.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=tokens,
                do_sample=False,
                pad_token_id=pad_id,
            )
        for prompt, (written, start), row in zip(
            prompts, chunk, gen[:, width:].tolist(), strict=True
        ):
            reply: list[int] = []
            for token in row:
                reply.append(token)
                if token in stops:
                    break
            out.append((prompt + reply, start) if reply else (written, start))
    return out


def _batches(
    examples: Sequence[tuple[list[int], int]], size: int
) -> list[list[tuple[list[int], int]]]:
    return [list(examples[i : i + size]) for i in range(0, len(examples), size)]


def train_lora(
    model: Any,
    tokenizer: Any,
    items: Sequence[MemoryItem],
    cfg: DistillConfig,
    *,
    progress: bool = True,
    desc: str = "distill",
    teacher: Callable[[str], str] | None = None,
    chat: Any = None,
) -> DistillResult:
    """Train a LoRA adapter that answers questions about ``items``; the model is not modified.

    Args:
        model, tokenizer: the base model (any causal LM with a chat template; the end-of-turn
            token comes from the template, see :func:`end_of_turn`).
        items: the memories to teach.
        cfg: training settings.
        progress: show a tqdm progress bar.
        teacher: optional ``question -> answer`` callable (Trans-LoRA style re-distillation:
            another model, with its own adapter, answers each generated question). Its answer
            becomes the target when it contains every key word of the template answer (see
            :func:`memcube.parametric.curriculum.key_words`); otherwise the template answer is
            kept. It is called once per distinct question, before training.
        chat: optional chat model (``str -> str`` callable or LangChain chat model) that writes
            extra questions per answer (see :func:`memcube.parametric.curriculum.build_curriculum`).

    Raises:
        InvalidInputError: no memories, bad settings, a model the targets do not fit, or a
            teacher that does not return text.
    """
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
    if teacher is not None and not callable(teacher):
        raise InvalidInputError("teacher must be a callable question -> answer.")
    start = time.perf_counter()
    rng = random.Random(cfg.seed)
    taught, used, rejected = _teach(items, chat, teacher, sentences=cfg.sentence_answers)
    train, held = _split(taught, cfg.holdout, rng, cfg.max_heldout)
    end = end_of_turn(tokenizer)

    def encode(examples: Sequence[Example]) -> list[tuple[list[int], int]]:
        return [
            _chat_example(tokenizer, e.question, e.answer, cfg.max_tokens, end) for e in examples
        ]

    examples = encode(train)
    heldout = encode(held)
    answers = dict(ANCHORS)
    # With anchor_tokens the base model answers every prompt; without, only ANCHORS have answers.
    prompts = anchor_prompts(
        [it.content for it in items],
        first=list(answers),
        limit=cfg.anchors if cfg.anchor_tokens else None,
    )
    if not cfg.anchor_tokens:
        prompts = [q for q in prompts if q in answers]
    anchors = [
        _chat_example(tokenizer, q, answers.get(q, ""), cfg.max_tokens, end) for q in prompts
    ]
    rng.shuffle(anchors)
    # A short run visits only its first anchors: the base model answers no others.
    anchors = anchors[: cfg.steps * cfg.anchor_batch]
    pad_id = (
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = [t for t in cfg.target_modules if t in names]
    if not targets:
        raise InvalidInputError(
            f"cannot adapt this model: it has none of the modules {list(cfg.target_modules)}."
        )
    alpha = cfg.alpha if cfg.alpha is not None else 2.0 * cfg.rank
    lora_cfg = LoraConfig(
        r=cfg.rank,
        lora_alpha=alpha,  # type: ignore[arg-type]  # peft annotates int; a float scale works
        lora_dropout=cfg.dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    name = "memcube_distill"
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

        def adapters(on: bool) -> None:
            for layer in layers:
                layer.enable_adapters(on)

        adapters(True)
        params = [p for n, p in work.named_parameters() if f".{name}." in n]
        for p in params:
            p.requires_grad_(True)
        optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)

        if cfg.anchor_tokens:
            adapters(False)
            anchors = _base_replies(work, tokenizer, anchors, cfg.anchor_tokens, pad_id)
            adapters(True)
        shared = _common_prefix([*examples, *heldout, *anchors]) if _prefix_cacheable(work) else []
        skip = len(shared) if len(shared) >= 8 else 0
        prefix = torch.tensor([shared]) if skip else None
        anchor_batches = [_pad(b, pad_id, skip) for b in _batches(anchors, cfg.anchor_batch)]

        def base_logp(work: Any, anchor: Any) -> Any:
            # Computed when needed: kept for every anchor, the distributions would take
            # gigabytes with a large vocabulary.
            with torch.no_grad():
                adapters(False)
                try:
                    logits, _ = _answer_logits(work, anchor, prefix)
                finally:
                    adapters(True)
                return F.log_softmax(logits, dim=-1)

        held_batches = [_pad(b, pad_id, skip) for b in _batches(heldout, 32)]

        def heldout_loss(work: Any) -> float:
            total, count = 0.0, 0
            with torch.no_grad():
                for chunk in held_batches:
                    logits, labels = _answer_logits(work, chunk, prefix)
                    loss = F.cross_entropy(
                        logits.reshape(-1, logits.shape[-1]),
                        labels.reshape(-1),
                        ignore_index=-100,
                        reduction="sum",
                    )
                    total += float(loss)
                    count += int((labels != -100).sum())
            return total / max(count, 1)

        def snapshot() -> list[Any]:
            return [p.detach().clone() for p in params]

        losses: list[float] = []
        evals: list[tuple[int, float]] = []
        best: tuple[float, int, list[Any]] | None = None
        bad = 0
        stopped = False
        step = 0
        bar = tqdm(total=cfg.steps, desc=desc, unit="step", disable=not progress)
        try:
            sampler = _Sampler([e.source for e in train], rng)
            for step in range(1, cfg.steps + 1):
                picked = sampler.take(min(cfg.batch_size, len(examples)))
                batch = [examples[i] for i in picked]
                logits, labels = _answer_logits(work, _pad(batch, pad_id, skip), prefix)
                loss = F.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100
                )
                total = loss
                if cfg.preserve > 0 and anchor_batches:
                    anchor = anchor_batches[(step - 1) % len(anchor_batches)]
                    target = base_logp(work, anchor)
                    a_logits, _ = _answer_logits(work, anchor, prefix)
                    logp = F.log_softmax(a_logits, dim=-1)
                    kl = F.kl_div(logp, target, log_target=True, reduction="batchmean")
                    total = loss + cfg.preserve * kl
                optimizer.zero_grad(set_to_none=True)
                total.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                losses.append(float(loss.detach()))
                bar.update(1)
                postfix = {"loss": f"{losses[-1]:.3f}"}
                if held_batches and (step % cfg.eval_every == 0 or step == cfg.steps):
                    value = heldout_loss(work)
                    evals.append((step, value))
                    if best is None or value < best[0] - 1e-4:
                        best, bad = (value, step, snapshot()), 0
                    else:
                        bad += 1
                    postfix["heldout"] = f"{value:.3f}"
                    if cfg.patience and bad >= cfg.patience:
                        stopped = True
                        bar.set_postfix(postfix)
                        break
                bar.set_postfix(postfix)
        finally:
            bar.close()
        best_step = step
        if best is not None:
            _, best_step, weights = best
            with torch.no_grad():
                for p, w in zip(params, weights, strict=True):
                    p.copy_(w)
        state = get_peft_model_state_dict(work, adapter_name=name)
        state = {k: v.detach().clone() for k, v in state.items()}
        del work, optimizer
    config = lora_config_from_dict(config_to_json(lora_cfg))
    payload = LoraPayload(config=config, state_dict=normalise_keys(state))
    return DistillResult(
        payload=payload,
        losses=losses,
        examples=len(examples),
        seconds=time.perf_counter() - start,
        heldout_losses=evals,
        heldout_examples=len(heldout),
        best_step=best_step,
        steps_run=step,
        stopped_early=stopped,
        teacher_answers=used,
        teacher_rejected=rejected,
    )
