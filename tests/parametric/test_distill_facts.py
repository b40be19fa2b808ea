"""Distillation that teaches facts (bundled SmolLM2-135M-Instruct, CPU): an adapter answers
held-out paraphrases closed-book where the base model does not; early stopping keeps the best
held-out adapter; the teacher hook; end-of-turn tokens from the chat template."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from memcube import MemCube
from memcube.errors import InvalidInputError
from memcube.items import MemoryItem
from memcube.parametric import AdapterManager
from memcube.parametric.curriculum import build_curriculum
from memcube.parametric.distill import (
    DistillConfig,
    _teach,
    _whole_sentences,
    end_of_turn,
    train_lora,
)
from memcube.runtime import ChatMessage, load_model
from memcube.runtime.chat import build_prompt
from memcube.runtime.model import model_cache_dir

FACTS = [
    "My dog is called Biscuit.",
    "My sister Ingrid lives in Montreal.",
    "I am allergic to hazelnuts.",
]
#: Asked closed-book; none of them is a training question (see test_curriculum).
HELD_OUT = [
    ("Remind me of my dog's name.", "biscuit"),
    ("Which city is my sister Ingrid living in?", "montreal"),
    ("Which nut am I allergic to?", "hazelnut"),
]


@pytest.fixture(scope="module")
def smol():
    return load_model()


def _answer(model, tokenizer, question: str) -> str:
    ids = build_prompt(tokenizer, [ChatMessage("user", question)]).ids
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)
    return tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True).lower()


def _items(facts: list[str]) -> list[MemoryItem]:
    return [MemoryItem(content=f, user_id="u") for f in facts]


@pytest.mark.slow
def test_adapter_answers_held_out_paraphrases_closed_book(smol, tmp_path: Path) -> None:
    model, tokenizer = smol
    torch.set_num_threads(1)  # the test machine's cores are shared; one thread is faster there
    with MemCube.open(tmp_path / "cube") as cube:
        items = cube.add_many([{"content": f} for f in FACTS], user_id="alice")
        cfg = DistillConfig(steps=40, batch_size=6, eval_every=10, anchor_batch=4)
        manifest = cube.parametric.distill(
            "facts", user_id="alice", items=items, config=cfg, progress=False
        )
        data = manifest.provenance.data
        assert data["heldout_examples"] > 0 and data["best_heldout_loss"] is not None
        key = cube.parametric.prepare("facts", model=model)
        manager = AdapterManager.for_model(model, tokenizer)
        with manager.using(None):
            base = [_answer(model, tokenizer, q) for q, _ in HELD_OUT]
        with manager.using(key):
            tuned = [_answer(model, tokenizer, q) for q, _ in HELD_OUT]
    base_hits = sum(a in b for (_, a), b in zip(HELD_OUT, base, strict=True))
    tuned_hits = sum(a in t for (_, a), t in zip(HELD_OUT, tuned, strict=True))
    assert base_hits == 0, base
    assert tuned_hits >= 2, tuned


@pytest.mark.slow
def test_early_stopping_keeps_the_best_held_out_step(smol) -> None:
    model, tokenizer = smol
    # a learning rate far too high, unclipped: the held-out loss gets worse, training stops early
    cfg = DistillConfig(
        steps=30, lr=0.5, max_grad_norm=0, batch_size=4, eval_every=2, patience=2, anchor_batch=2
    )
    result = train_lora(model, tokenizer, _items(FACTS), cfg, progress=False)
    assert result.stopped_early and result.steps_run < cfg.steps
    best_loss = min(loss for _, loss in result.heldout_losses)
    assert dict(result.heldout_losses)[result.best_step] == best_loss
    assert result.best_step < result.steps_run
    assert len(result.losses) == result.steps_run


def test_teacher_answers_are_kept_only_when_they_agree() -> None:
    asked: list[str] = []

    def teacher(question: str) -> str:
        asked.append(question)
        return "Your dog is Biscuit!" if "dog" in question else "I have no idea."

    examples, used, rejected = _teach(_items(FACTS), None, teacher)
    assert used > 0 and rejected > 0
    assert len(asked) == len(set(asked))  # once per distinct question
    for e in examples:
        if e.kind == "qa" and "dog" in e.question:
            assert e.answer == "Your dog is Biscuit!"
        elif e.kind == "qa":
            assert e.answer == e.key  # disagreement: the template answer stays
    # Whole-statement answers first, then the teacher's where they agree.
    examples, used, _ = _teach(_items(FACTS), None, teacher, sentences=True)
    dog = [e.answer for e in examples if e.kind == "qa" and "dog" in e.question]
    assert used > 0 and set(dog) == {"Your dog is Biscuit!"}
    assert all(e.answer != e.key for e in examples if e.kind == "qa")
    with pytest.raises(InvalidInputError):
        _teach(_items(FACTS), None, lambda q: None)  # type: ignore[arg-type, return-value]


def test_sentence_answers_restate_the_memory() -> None:
    examples = build_curriculum(FACTS)
    restated = _whole_sentences(examples)
    by_fact = {e.fact: e.answer for e in examples if e.kind == "sentence"}
    assert len(by_fact) == len(FACTS)  # one restatement per memory
    for e in restated:
        if e.kind in ("qa", "sentence"):
            assert e.answer == by_fact[e.fact]  # "Your dog is called Biscuit.", not "Biscuit"
            assert e.key.lower() in e.answer.lower()
    pairs = [(e.question, e.answer) for e in restated]
    assert len(pairs) == len(set(pairs))  # a question once, not once per former answer
    questions = {e.question for e in examples if e.kind == "qa"}
    assert questions <= {e.question for e in restated}  # no question is lost
    assert [e for e in restated if e.kind == "recall"] == [
        e for e in examples if e.kind == "recall"
    ]


@pytest.mark.slow
def test_teacher_hook_through_train_lora_and_bad_input(smol) -> None:
    model, tokenizer = smol
    cfg = DistillConfig(steps=1, batch_size=2, holdout=0)
    result = train_lora(
        model, tokenizer, _items(FACTS[:1]), cfg, progress=False, teacher=lambda q: "Biscuit."
    )
    assert result.teacher_answers > 0 and result.teacher_rejected == 0
    assert result.heldout_losses == [] and result.best_step == 1
    with pytest.raises(InvalidInputError):
        train_lora(model, tokenizer, _items(FACTS), cfg, teacher="nope")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        train_lora(model, tokenizer, [], cfg)
    with pytest.raises(InvalidInputError):  # no such layer in the model
        train_lora(
            model, tokenizer, _items(FACTS), DistillConfig(target_modules=("nope",)), progress=False
        )
    with pytest.raises(InvalidInputError):
        DistillConfig(patience=-1)


def test_end_of_turn_comes_from_the_chat_template() -> None:
    from transformers import AutoTokenizer

    smol_dir = model_cache_dir() / "SmolLM2-135M-Instruct"
    if not smol_dir.is_dir():
        load_model()
    assert end_of_turn(AutoTokenizer.from_pretrained(str(smol_dir))) == "<|im_end|>"
    gemma_dir = model_cache_dir() / "gemma-3-270m"
    if not (gemma_dir / "tokenizer.json").is_file():
        pytest.skip("gemma-3-270m is not converted on this machine")
    assert end_of_turn(AutoTokenizer.from_pretrained(str(gemma_dir))) == "<end_of_turn>"
