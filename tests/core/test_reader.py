"""The reader: messages from any framework -> episodic turns + facts/preferences; LLM
extraction with schema checks; relative dates resolved against the message time."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest

from memcube import MemCube, MemoryType
from memcube.dates import find_dates, parse_when
from memcube.extractors import LLMExtractor, SchemaError, parse_extraction, statements

REF = datetime(2024, 5, 10, 15, 0, tzinfo=timezone.utc)  # a Friday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I moved two years ago", "2022-05-10"),
        ("We met last Friday", "2024-05-03"),
        ("yesterday was fun", "2024-05-09"),
        ("a few weeks ago", "2024-04-19"),
        ("in March", "2024-03-01"),
        ("on May 7, 2023", "2023-05-07"),
        ("7 May 2023", "2023-05-07"),
        ("last week", "2024-05-03"),
        ("next week", "2024-05-17"),
    ],
)
def test_relative_dates(text: str, expected: str) -> None:
    assert find_dates(text, REF)[0].when.date().isoformat() == expected


def test_dates_absent_or_unparseable() -> None:
    assert find_dates("I went to the park", REF) == []
    assert parse_when("qwerty zz", REF) is None
    assert parse_when("2023-02-01", REF).date().isoformat() == "2023-02-01"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("text", "content", "subject"),
    [
        ("I moved to Berlin last week!", "{who} lives in Berlin", "residence"),
        ("Guess what, I just moved to New York City and I love it.", "{who} lives in New York City", "residence"),
        ("I'm allergic to nuts", "{who} is allergic to nuts", "allergy: nuts"),
        ("I prefer tea", "{who} prefers tea", None),
        ("Actually I prefer coffee to tea now.", "{who} prefers coffee over tea", "preference: coffee vs tea"),
        ("My favorite color is green.", "{who}'s favorite color is green", "favorite color"),
        ("I don't like horror movies", "{who} dislikes horror movies", "opinion: horror movies"),
        ("I work at Acme Corp since 2019", "{who} works at Acme Corp", "employer"),
        ("I'm vegetarian now", "{who} is vegetarian", "diet"),
    ],
)  # fmt: skip
def test_rule_statements(text: str, content: str, subject: str | None) -> None:
    found = statements(text, REF)
    assert [(c, s) for _, c, s, _, _, _ in found] == [(content, subject)]


@pytest.mark.parametrize(
    "text",
    ["If I moved to Paris I'd be happy.", "Do I live in Rome?", "I love it", "We went hiking"],
)
def test_rules_skip_questions_hypotheticals_and_pronouns(text: str) -> None:
    assert statements(text, REF) == []


def test_default_reader_keeps_turns_and_extracts_facts(cube: MemCube) -> None:
    from langchain_core.messages import AIMessage, HumanMessage
    from llama_index.core.llms import ChatMessage

    stamp = REF + timedelta(days=1)
    items = cube.add_messages(
        [
            {"role": "system", "content": "be nice"},
            HumanMessage("I moved to Berlin last week!", id="m1", additional_kwargs={"timestamp": REF.isoformat()}),
            AIMessage("Congratulations!", id="m2"),
            ChatMessage(role="user", content="I'm allergic to nuts", additional_kwargs={"id": "m3"}),
        ],
        user_id="u",
        session_id="s1",
        timestamp=stamp,
    )  # fmt: skip
    turns = [i for i in items if i.memory_type == MemoryType.EPISODIC]
    facts = [i for i in items if i.memory_type == MemoryType.FACT]
    assert [t.content for t in turns] == [
        "I moved to Berlin last week!",
        "Congratulations!",
        "I'm allergic to nuts",
    ]
    assert turns[0].event_time == REF  # the message's own time wins
    assert turns[1].event_time == stamp
    assert turns[0].metadata["mentions_phrase"] == "last week"
    assert turns[0].provenance.message_ids == ["m1"] and turns[0].metadata["role"] == "user"
    assert {f.content for f in facts} == {"User lives in Berlin", "User is allergic to nuts"}
    berlin = next(f for f in facts if "Berlin" in f.content)
    assert berlin.event_time.date().isoformat() == "2024-05-03"  # type: ignore[union-attr]
    assert berlin.metadata["subject"] == "residence" and berlin.provenance.message_ids == ["m1"]
    assert berlin.provenance.source == "extraction" and berlin.session_id == "s1"
    assert not items.problems
    # the assistant's first-person statements are not facts about the user
    more = cube.add_messages([{"role": "assistant", "content": "I live in the cloud"}], user_id="u")
    assert [i.memory_type for i in more] == [MemoryType.EPISODIC]


def test_llm_extractor_with_a_chat_model_and_a_callable(cube: MemCube) -> None:
    class FakeChat:
        """Duck-typed LangChain chat model: .invoke returns an object with .content."""

        def __init__(self) -> None:
            self.prompts: list[str] = []

        def invoke(self, prompt: str) -> object:
            self.prompts.append(prompt)
            payload = {"memories": [{"content": "Dana owns a greyhound named Biscuit", "type": "fact",
                                     "subject": "pet", "value": "Biscuit", "when": "two days ago",
                                     "turn": 0, "importance": 0.8}]}  # fmt: skip
            return type("Msg", (), {"content": "```json\n" + json.dumps(payload) + "\n```"})()

    chat = FakeChat()
    items = cube.add_messages(
        [{"role": "user", "content": "We adopted Biscuit two days ago", "id": "t1"}],
        user_id="u",
        timestamp=REF,
        extractor=chat,
    )
    assert "We adopted Biscuit two days ago" in chat.prompts[0]
    fact = next(i for i in items if i.memory_type == MemoryType.FACT)
    assert fact.content == "Dana owns a greyhound named Biscuit" and fact.importance == 0.8
    assert fact.event_time.date().isoformat() == "2024-05-08"  # type: ignore[union-attr]
    assert fact.provenance.message_ids == ["t1"] and fact.metadata["subject"] == "pet"
    assert any(i.memory_type == MemoryType.EPISODIC for i in items)
    # a plain str -> str callable, without turns
    items = cube.add_messages(
        [{"role": "user", "content": "call me Dee"}],
        user_id="u",
        extractor=LLMExtractor(lambda p: '{"memories": [{"content": "Dana goes by Dee", "type": "profile"}]}',
                               include_turns=False),
    )  # fmt: skip
    assert [(i.content, i.memory_type) for i in items] == [("Dana goes by Dee", MemoryType.PROFILE)]


@pytest.mark.parametrize(
    "output",
    [
        "Sure! Here are the memories: none",
        '{"memories": [{"content": "", "type": "fact"}]}',
        '{"memories": [{"content": "x", "type": "opinion"}]}',
        '{"facts": []}',
        '{"memories": [{"content": "x", "type": "fact", "importance": 7}]}',
    ],
)
def test_schema_check(output: str) -> None:
    with pytest.raises(SchemaError):
        parse_extraction(output)


def test_malformed_llm_output_keeps_turns_and_reports(
    cube: MemCube, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(prompt: str) -> str:
        return '{"memories": [{"content": "half'

    with caplog.at_level(logging.WARNING, logger="memcube.reader"):
        items = cube.add_messages(
            [{"role": "user", "content": "I like jazz", "id": "j1"}],
            user_id="u",
            extractor=LLMExtractor(broken, include_turns=False),
        )
    assert [i.content for i in items] == ["I like jazz"]  # the raw turn is stored
    assert "SchemaError" in items[0].provenance.detail["extraction_problem"]
    assert len(items.problems) == 1 and items.problems[0].message_ids == ("j1",)
    assert items.problems[0].output == '{"memories": [{"content": "half'
    assert "raw turns were stored" in caplog.text
    assert cube.audit(op="extraction_problem")[0].item_ids == (items[0].id,)

    def failing(prompt: str) -> str:
        raise TimeoutError("model server unreachable")

    items = cube.add_messages(
        [{"role": "user", "content": "I play golf"}], user_id="u", extractor=failing
    )
    assert [i.content for i in items] == ["I play golf"]
    assert "TimeoutError" in items.problems[0].message
