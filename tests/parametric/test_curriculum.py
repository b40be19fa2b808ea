"""The fact curriculum: questions and answers for varied first-person facts, determinism, no
leakage of the benchmark's held-out questions, chat-model questions and typed errors."""

from __future__ import annotations

import pytest

from memcube.errors import InvalidInputError
from memcube.parametric.curriculum import (
    build_curriculum,
    chat_questions,
    fact_examples,
    key_words,
    normalise_question,
    split_sentences,
    to_second_person,
)


def _qa(text: str) -> dict[str, set[str]]:
    """question -> answers of the ``qa`` examples of ``text``."""
    out: dict[str, set[str]] = {}
    for e in fact_examples(text):
        if e.kind == "qa":
            out.setdefault(e.question, set()).add(e.answer)
    return out


@pytest.mark.parametrize(
    ("fact", "question", "answer"),
    [
        ("My dog is called Biscuit.", "What is my dog called?", "Biscuit"),
        ("My goldfish is named Bubbles.", "What is the name of my goldfish?", "Bubbles"),
        ("I have a tortoise called Sheldon.", "What did I name my tortoise?", "Sheldon"),
        ("My name is Ana.", "What is my name?", "Ana"),
        ("My favourite cheese is Comté.", "What is my favourite cheese?", "Comté"),
        ("My favourite cheese is Comté.", "Which cheese do I like best?", "Comté"),
        ("My cousin lives in Nairobi.", "Where does my cousin live?", "Nairobi"),
        ("My parents live in Oslo.", "Where do my parents live?", "Oslo"),
        ("My aunt teaches yoga.", "What does my aunt teach?", "yoga"),
        ("My older brother works as a pilot.", "What does my older brother work as?", "pilot"),
        ("I am allergic to shellfish.", "What am I allergic to?", "shellfish"),
        ("I was born in Lagos in 1991.", "Where was I born?", "Lagos"),
        ("I was born in Lagos in 1991.", "In what year was I born?", "1991"),
        ("I drive a blue Skoda.", "What do I drive?", "blue Skoda"),
        ("I grew up in Cork.", "Where did I grow up?", "Cork"),
        ("I visited Peru in 2018.", "When did I visit Peru?", "2018"),
        ("I am a carpenter.", "What do I do for a living?", "carpenter"),
        ("My anniversary is on 2 May.", "When is my anniversary?", "2 May"),
        ("My son is scared of thunder.", "What is my son scared of?", "thunder"),
        ("I speak Welsh.", "What do I speak?", "Welsh"),
        ("I study law at a college in Dublin.", "Where do I study law?", "college in Dublin"),
    ],
)
def test_questions_and_answers_for_varied_facts(fact: str, question: str, answer: str) -> None:
    qa = _qa(fact)
    assert question in qa, sorted(qa)
    assert answer in qa[question]


def test_every_fact_gets_recall_turns_and_statements_in_second_person() -> None:
    examples = fact_examples("My dog is called Biscuit.")
    kinds = {e.kind for e in examples}
    assert {"qa", "sentence", "recall"} <= kinds
    answers = {e.answer for e in examples}
    assert "Your dog is called Biscuit." in answers
    assert "You told me your dog is called Biscuit." in answers
    # a sentence no template fits still teaches its content through recall turns
    odd = fact_examples("Tuesdays are for chess club.")
    assert odd and all(e.kind == "recall" for e in odd)
    assert odd[0].answer == "Tuesdays are for chess club."


def test_a_memory_with_several_sentences_teaches_each() -> None:
    qa = _qa("My dog is called Rex. I am allergic to pollen!")
    assert qa["What is my dog called?"] == {"Rex"}
    assert qa["What am I allergic to?"] == {"pollen"}


def test_deterministic_and_deduplicated() -> None:
    facts = ["My dog is called Biscuit.", "I drive a green Volvo.", "My dog is called Biscuit."]
    first = build_curriculum(facts)
    assert first == build_curriculum(facts)
    marks = [(normalise_question(e.question), e.answer) for e in first]
    assert len(marks) == len(set(marks))


def test_benchmark_questions_are_never_generated() -> None:
    from benchmarks.distill import FACTS

    trained = {normalise_question(e.question) for e in build_curriculum([f[0] for f in FACTS])}
    asked = [q for _, question, paraphrases, _ in FACTS for q in (question, *paraphrases)]
    assert len(asked) >= 150
    leaked = [q for q in asked if normalise_question(q) in trained]
    assert leaked == []


def test_text_helpers() -> None:
    assert split_sentences("A. B! C?") == ["A", "B", "C"]
    assert to_second_person("I am sure my cat likes me") == "you are sure your cat likes you"
    assert key_words("the Maple Grove School") == ["maple", "grove", "school"]
    assert normalise_question("What's  my dog called?") == "what's my dog called"


def test_chat_model_questions_from_a_callable_and_an_invoke_object() -> None:
    reply = "1. Which name does my dog have?\n- What do people call my dog?\nnot a question\n"

    def chat(prompt: str) -> str:
        assert "Biscuit" in prompt
        return reply

    assert chat_questions(chat, "My dog is called Biscuit.", "Biscuit") == [
        "Which name does my dog have?",
        "What do people call my dog?",
    ]

    class Message:
        content = reply

    class LangChainLike:
        def invoke(self, prompt: str) -> Message:
            return Message()

    extra = build_curriculum(["My dog is called Biscuit."], chat=LangChainLike())
    chat_made = [e for e in extra if e.kind == "chat"]
    assert {e.question for e in chat_made} == {
        "Which name does my dog have?",
        "What do people call my dog?",
    }
    assert all(e.answer == "Biscuit" for e in chat_made)


def test_bad_input_raises_typed_errors() -> None:
    with pytest.raises(InvalidInputError):
        fact_examples("   ")
    with pytest.raises(InvalidInputError):
        build_curriculum([])
    with pytest.raises(InvalidInputError):
        chat_questions(lambda prompt: 42, "My dog is called Rex.", "Rex")  # type: ignore[arg-type, return-value]
    with pytest.raises(InvalidInputError):
        chat_questions(object(), "My dog is called Rex.", "Rex")
