"""The offline rule reader (English): one fact per clause, each dated by its own clause, endings
that supersede what they end, facts about other people kept apart, complete sentences only;
checked through ``read_messages`` and through a real cube's lifecycle."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from memcube import LifecycleState, MemCube, MemoryItem, MemoryType
from memcube.extractors import PROMPT, LLMExtractor, parse_extraction
from memcube.extractors.lexicon import FUNCTION_WORDS
from memcube.messages import Turn
from memcube.reader import read_messages

REF = datetime(2024, 5, 10, 15, 0, tzinfo=timezone.utc)  # a Friday
FACT_TYPES = {MemoryType.FACT, MemoryType.PREFERENCE, MemoryType.PROFILE}


def facts(text: str, *, when: datetime = REF) -> list[MemoryItem]:
    """The fact / preference / profile memories the default reader makes of one user turn."""
    items = read_messages(
        [{"role": "user", "content": text, "id": "m1"}], user_id="u", timestamp=when
    )
    return [i for i in items if i.memory_type in FACT_TYPES]


def pairs(text: str) -> list[tuple[str, str | None]]:
    return [(f.content, f.metadata.get("subject")) for f in facts(text)]


def day(item: MemoryItem) -> str:
    assert item.event_time is not None
    return item.event_time.date().isoformat()


# ---------------------------------------------------------------------------- multi-fact messages
def test_every_clause_gives_its_own_fact() -> None:
    found = facts("I'm allergic to peanuts and I work as a nurse in Porto.")
    assert [(f.content, f.metadata["subject"]) for f in found] == [
        ("User is allergic to peanuts", "allergy: peanuts"),
        ("User works as a nurse in Porto", "occupation"),
    ]
    assert [f.memory_type for f in found] == [MemoryType.FACT, MemoryType.FACT]


def test_a_move_keeps_the_place_not_the_rest_of_the_sentence() -> None:
    found = facts("I moved to Lisbon last spring for a job at a robotics startup")
    home = next(f for f in found if f.metadata["subject"] == "residence")
    assert home.content == "User lives in Lisbon" and home.metadata["value"] == "Lisbon"
    assert day(home) == "2023-03-01"  # last spring, said in May 2024
    job = [f.content for f in found if f.metadata["subject"] == "employer"]
    assert job in ([], ["User works at a robotics startup"])
    # a fragment is never stored: the reader emits nothing rather than "... for a job at a"
    assert pairs("I moved to Lisbon for a job at a") == [("User lives in Lisbon", "residence")]
    assert pairs("I work at a") == []


def test_a_date_dates_only_the_fact_of_its_own_clause() -> None:
    found = facts("I started at Google in 2019, and last week I moved to Leeds.")
    by = {f.metadata["subject"]: f for f in found}
    assert by["employer"].content == "User works at Google" and day(by["employer"]) == "2019-01-01"
    assert by["residence"].content == "User lives in Leeds" and day(by["residence"]) == "2024-05-03"
    found = facts("I've been vegan since 2019 but I only moved to Oslo two weeks ago.")
    by = {f.metadata["subject"]: f for f in found}
    assert day(by["diet"]) == "2019-01-01" and day(by["residence"]) == "2024-04-26"
    # a clause without a date gets the message time, not its neighbour's date
    found = facts("Last year I got a job at Ocado; I'm allergic to wasps.")
    by = {f.metadata["subject"]: f for f in found}
    assert day(by["employer"]) == "2023-05-10" and day(by["allergy: wasps"]) == "2024-05-10"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I live in NYC since 2019", "2019-01-01"),
        ("I've lived in Denver for six years", "2018-05-10"),
        ("I've been in Austin since last May", "2023-05-01"),
        ("I've worked at Siemens for the past three years", "2021-05-10"),
    ],
)
def test_since_and_for_date_when_a_state_began(text: str, expected: str) -> None:
    [found] = facts(text)
    assert day(found) == expected


# ---------------------------------------------------------------------------- endings
@pytest.mark.parametrize(
    ("text", "content", "subject", "value"),
    [
        ("I no longer work at Google", "User no longer works at Google", "employer", "not Google"),
        ("I quit my job at Stripe.", "User no longer works at Stripe", "employer", "not Stripe"),
        ("I left Brennan & Hale last month", "User no longer works at Brennan & Hale", "employer", "not Brennan & Hale"),
        ("I'm not at Google anymore", "User no longer works at Google", "employer", "not Google"),
        ("I stopped working at Barclays", "User no longer works at Barclays", "employer", "not Barclays"),
        ("I don't live in Paris anymore", "User no longer lives in Paris", "residence", "not Paris"),
        ("I moved out of Madrid", "User no longer lives in Madrid", "residence", "not Madrid"),
        ("I quit smoking", "User quit smoking", "habit: smoking", "quit"),
        ("I'm not vegetarian anymore", "User is no longer vegetarian", "diet", "not vegetarian"),
        ("I stopped eating meat", "User stopped eating meat", "diet: meat", "stopped"),
        ("I gave up caffeine", "User gave up caffeine", "diet: caffeine", "gave up"),
        ("I've cut out caffeine", "User cut out caffeine", "diet: caffeine", "cut out"),
        ("Sam and I broke up", "User broke up with Sam", "relationship", "not with Sam"),
        ("we aren't together anymore", "User is no longer in a relationship", "relationship", "single"),
        ("I left the band The Loose Ends", "User is no longer in the band The Loose Ends", "band", "not The Loose Ends"),
    ],
)  # fmt: skip
def test_an_ending_is_a_complete_fact_with_the_subject_it_ends(
    text: str, content: str, subject: str, value: str
) -> None:
    [found] = facts(text)
    assert (found.content, found.metadata["subject"], found.metadata["value"]) == (
        content,
        subject,
        value,
    )
    assert (found.provenance.extractor or "").startswith("rules:")


# ---------------------------------------------------------------------------- other people
def test_facts_about_other_people_name_them_not_the_user() -> None:
    [sister] = facts("My sister Chidinma lives in Manchester.")
    assert sister.content == "User's sister Chidinma lives in Manchester"
    assert sister.metadata["entity"] == "Chidinma" and sister.metadata["subject"] == "residence"
    [husband] = facts("my husband is a paramedic")
    assert husband.metadata["entity"] == "husband" and husband.metadata["subject"] == "occupation"
    assert husband.provenance.extractor == "rules:relative_occupation"
    [son] = facts("My son is 7.")
    assert son.metadata["entity"] == "son" and son.content == "User's son is 7 years old"


@pytest.mark.parametrize(
    "text",
    [
        "My friend says I'm vegetarian.",
        "My mum thinks I'm lactose intolerant",
        "Do you think I'm allergic to shellfish",  # a question without its "?"
        "Why do I love cats so much",
        "Do I live in Rome?",
        "I'm vegan, or at least I'd like to be",
        "I work at Google if the offer comes through",
        "If I moved to Paris I'd be happy.",
        "She lives in Rome and he works at Google.",
    ],
)
def test_no_fact_from_questions_hypotheticals_or_reported_speech(text: str) -> None:
    assert pairs(text) == []


# ---------------------------------------------------------------------------- what is stored
def test_fact_drafts_keep_their_shape() -> None:
    [fact] = facts("I'm allergic to peanuts.")
    assert set(fact.metadata) >= {"subject", "value", "entity", "statement"}
    assert (
        fact.metadata["entity"] == "user"
        and fact.metadata["statement"] == "I'm allergic to peanuts."
    )
    assert fact.importance == 0.7 and fact.provenance.extractor == "rules:allergy"
    assert fact.provenance.source == "extraction" and fact.provenance.message_ids == ["m1"]
    items = read_messages(
        [{"role": "user", "content": "I'm vegan and I'm 41", "name": "Ada"}], user_id="u"
    )
    made = {(i.content, i.memory_type, i.metadata.get("entity")) for i in items}
    assert ("Ada is vegan", MemoryType.PREFERENCE, "Ada") in made
    assert ("Ada is 41 years old", MemoryType.PROFILE, "Ada") in made


#: ~45 varied first-person sentences and the facts they state (``[]``: none).
TABLE: list[tuple[str, list[tuple[str, str]]]] = [
    ("I'm a physiotherapist at Riverside Clinic.", [("User is a physiotherapist", "occupation"), ("User works at Riverside Clinic", "employer")]),
    ("I work for a small charity in Bristol.", [("User works at a small charity in Bristol", "employer")]),
    ("I teach history at Millbrook Academy.", [("User teaches history at Millbrook Academy", "occupation"), ("User works at Millbrook Academy", "employer")]),
    ("I'm 29.", [("User is 29 years old", "age")]),
    ("I just turned 50 last week!", [("User is 50 years old", "age")]),
    ("My brother Kofi lives in Accra.", [("User's brother Kofi lives in Accra", "residence")]),
    ("My landline is 0161 496 0000.", [("User's phone number is 0161 496 0000", "phone number")]),
    ("my mobile's 07700 900461", [("User's phone number is 07700 900461", "phone number")]),
    ("My favourite film is Spirited Away.", [("User's favorite film is Spirited Away", "favorite film")]),
    ("I've got two cats and a rabbit.", [("User has two cats", "pet: cat"), ("User has a rabbit", "pet: rabbit")]),
    ("I drive an old Land Rover.", [("User drives an old Land Rover", "car")]),
    ("We're moving to Wellington next month.", [("User lives in Wellington", "residence")]),
    ("I switched my bank to Monzo.", [("User switched their bank to Monzo", "bank")]),
    ("I'm training for a triathlon.", [("User is training for a triathlon", "training")]),
    ("I play the drums in a band called Paper Lanterns.", [("User is in the band Paper Lanterns", "band"), ("User plays the drums", "activity: drums")]),
    ("I'm learning Portuguese for work.", [("User is learning Portuguese", "learning: portuguese")]),
    ("I'm severely allergic to bee stings.", [("User is allergic to bee stings", "allergy: bee stings")]),
    ("I'm pescatarian.", [("User is pescatarian", "diet")]),
    ("Honestly I can't stand olives.", [("User dislikes olives", "opinion: olives")]),
    ("I really enjoy pottery classes.", [("User likes pottery classes", "opinion: pottery classes")]),
    ("I've been a midwife for twelve years.", [("User is a midwife", "occupation")]),
    ("I grew up in Cork.", [("User grew up in Cork", "hometown")]),
    ("My husband is a firefighter.", [("User's husband is a firefighter", "occupation")]),
    ("I have type 1 diabetes.", [("User has type 1 diabetes", "condition: type 1 diabetes")]),
    ("I quit vaping in January.", [("User quit vaping", "habit: vaping")]),
    ("I don't work at Deloitte anymore.", [("User no longer works at Deloitte", "employer")]),
    ("I'm no longer living in Glasgow.", [("User no longer lives in Glasgow", "residence")]),
    ("I've given up alcohol.", [("User gave up alcohol", "diet: alcohol")]),
    ("My boyfriend Theo and I split up.", [("User broke up with their boyfriend Theo", "relationship")]),
    ("I'm not vegan anymore.", [("User is no longer vegan", "diet")]),
    ("I prefer trains to planes.", [("User prefers trains over planes", "preference: planes vs trains")]),
    ("My star sign is Leo.", [("User's star sign is Leo", "star sign")]),
    ("I go swimming most mornings.", [("User goes swimming", "activity: swimming")]),
    ("I've just started at Spotify as a data analyst.", [("User works at Spotify", "employer"), ("User works as a data analyst", "occupation")]),
    ("My wife Leila works for the BBC.", [("User's wife Leila works at the BBC", "employer")]),
    ("I've moved back to Dublin after ten years in London.", [("User lives in Dublin", "residence")]),
    ("I'm studying law at Edinburgh.", [("User studies law at Edinburgh", "studies")]),
    ("My nephew is called Rory.", [("User's nephew is named Rory", "nephew's name")]),
    ("I'm Ayesha, nice to meet you.", [("User's name is Ayesha", "name")]),
    ("I stopped playing rugby after my knee injury.", [("User stopped playing rugby", "activity: rugby")]),
    ("We've got a puppy named Pickle.", [("User has a puppy named Pickle", "pet: puppy")]),
    ("I'm a keen gardener.", []),
    ("My colleague says I'm a workaholic.", []),
    ("Could I be lactose intolerant?", []),
    ("If I had a car I'd drive a Tesla.", []),
    ("She works at Amazon.", []),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), TABLE, ids=[t for t, _ in TABLE])
def test_table_of_statements(text: str, expected: list[tuple[str, str]]) -> None:
    assert pairs(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Me and my wife live in Galway.", [("User lives in Galway", "residence")]),
        ("I used to work at Ikea.", [("User no longer works at Ikea", "employer")]),
        ("I used to smoke.", [("User no longer smokes", "habit: smoking")]),
        ("I'm head of design at Parcelwise.", [("User is head of design", "occupation"), ("User works at Parcelwise", "employer")]),
        ("i'm 45 and i work in IT", [("User is 45 years old", "age"), ("User works in IT", "industry")]),
        ("I'm a massive Tottenham fan", [("User likes Tottenham", "opinion: Tottenham")]),
        ("I'm no longer with Marco.", [("User is no longer with Marco", "relationship")]),
        ("I practise judo three times a week.", [("User practises judo", "activity: judo")]),
        ("My twins are 9.", [("User's twins are 9 years old", "age")]),
        ("I'm a stay-at-home dad.", [("User is a stay-at-home dad", "occupation")]),
    ],
)  # fmt: skip
def test_more_everyday_forms(text: str, expected: list[tuple[str, str]]) -> None:
    assert pairs(text) == expected


def test_table_extraction_rate_and_complete_sentences() -> None:
    wanted = [(text, fact) for text, exp in TABLE for fact in exp]
    got = {text: pairs(text) for text, _ in TABLE}
    found = sum(fact in got[text] for text, fact in wanted)
    spurious = sum(len(got[t]) - len([f for f in got[t] if f in e]) for t, e in TABLE)
    assert (found, spurious) == (len(wanted), 0)
    for made in got.values():
        for content, _ in made:
            assert content.split()[-1].lower() not in FUNCTION_WORDS
            assert not re.search(r"\b(?:and|or|but)$", content)


# ---------------------------------------------------------------------------- a longer chat
CHAT = [
    ("Hi there! I'm Marta, by the way.", ["User's name is Marta"]),
    ("Nice to meet you, Marta! How can I help?", []),
    ("I need dinner ideas. I'm allergic to shellfish and I don't eat pork.", ["User is allergic to shellfish", "User does not eat pork"]),
    ("Got it: no shellfish, no pork. Any cuisines you like?", []),
    ("My favourite cuisine is Lebanese, though I also love Thai food.", ["User's favorite cuisine is Lebanese", "User likes Thai food"]),
    ("Great choices. I love Thai food too.", []),
    ("I have two kids, so weeknights are chaotic.", ["User has two kids"]),
    ("Quick meals it is.", []),
    ("We moved to Utrecht in March, and my husband works at a hospital there.", ["User lives in Utrecht", "User's husband works at a hospital"]),
    ("Utrecht is lovely. I live in the cloud myself.", []),
    ("I work from home as a translator.", ["User works as a translator"]),
    ("That gives you some flexibility.", []),
    ("Weekends are for cycling - I'm training for a 200k sportive.", ["User is training for a 200k sportive"]),
    ("Impressive! You'll need fuel.", []),
    ("Oh and I quit coffee last month, so no caffeine in desserts please.", ["User quit coffee"]),
    ("No coffee, noted.", []),
    ("Do you have a recipe with chickpeas?", []),
    ("Yes: a quick chickpea curry.", []),
    ("My mother-in-law visits on Sundays; she's vegetarian.", []),
    ("Then the curry works for her too.", []),
    ("I'm 38 and my daughter Noor is 6.", ["User is 38 years old", "User's daughter Noor is 6 years old"]),
    ("Noor might like a milder version.", []),
    ("I drive a Volvo estate, so big shops are fine.", ["User drives a Volvo estate"]),
    ("Great, one big shop a week then.", []),
    ("My email is marta.k@example.org if you want to send the plan.", ["User's email is marta.k@example.org"]),
    ("I'll send it there.", []),
    ("Also, I no longer work at the council, I left in January.", ["User no longer works at the council"]),
    ("Congratulations on the change!", []),
    ("Thanks! My sister Ines lives in Porto and she's coming to visit.", ["User's sister Ines lives in Porto"]),
    ("Enjoy the visit!", []),
]  # fmt: skip


def test_a_thirty_turn_chat_yields_the_users_facts() -> None:
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": text, "id": f"t{i}"}
        for i, (text, _) in enumerate(CHAT)
    ]
    assert len(messages) == 30
    items = read_messages(messages, user_id="marta", timestamp=REF)
    made = [i for i in items if i.memory_type in FACT_TYPES]
    wanted = [fact for _, expected in CHAT for fact in expected]
    assert len(wanted) == 17
    assert [i.content for i in made] == wanted  # every one, nothing else, in order
    assert all(i.provenance.message_ids[0] in {f"t{n}" for n in range(0, 30, 2)} for i in made)


# ---------------------------------------------------------------------------- through a cube
@pytest.fixture(scope="module")
def rcube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MemCube]:
    cube = MemCube.open(Path(tmp_path_factory.mktemp("rules")) / "cube")
    yield cube
    cube.close()


def _say(cube: MemCube, user: str, *texts: str, start: datetime = REF) -> None:
    for n, text in enumerate(texts):
        cube.add_messages(
            [{"role": "user", "content": text}],
            user_id=user,
            timestamp=start + timedelta(days=30 * n),
        )


def _current(cube: MemCube, user: str, subject: str, entity: str = "user") -> list[MemoryItem]:
    return [
        i
        for i in cube.items(user_id=user)
        if i.metadata.get("subject") == subject and i.metadata.get("entity") == entity
    ]


def test_an_ending_supersedes_the_fact_it_ends(rcube: MemCube) -> None:
    _say(rcube, "gina", "I work at Google", "I no longer work at Google")
    [now] = _current(rcube, "gina", "employer")
    assert now.content == "User no longer works at Google" and now.version == 2
    assert [(h.content, h.state) for h in rcube.history(now.id, user_id="gina")] == [
        ("User works at Google", LifecycleState.SUPERSEDED),
        ("User no longer works at Google", LifecycleState.GENERATED),
    ]
    hits = rcube.search("Where does the user work?", user_id="gina", k=5, memory_types=["fact"])
    assert hits[0].item.content == "User no longer works at Google"
    assert "User works at Google" not in {h.item.content for h in hits}


@pytest.mark.parametrize(
    ("user", "before", "after", "subject", "current"),
    [
        ("hugo", "I live in Leeds", "I moved out of Leeds", "residence", "User no longer lives in Leeds"),
        ("ines", "I smoke", "I quit smoking", "habit: smoking", "User quit smoking"),
        ("jude", "I'm vegetarian", "I'm not vegetarian anymore", "diet", "User is no longer vegetarian"),
        ("kemi", "I'm dating Sam", "Sam and I broke up", "relationship", "User broke up with Sam"),
        ("lars", "I'm in a band called The Loose Ends", "I left the band The Loose Ends", "band", "User is no longer in the band The Loose Ends"),
        ("mona", "my mobile's 07700 900461", "I changed my number to 07700 900999", "phone number", "User changed their number to 07700 900999"),
        ("nils", "I work as a nurse", "I'm a paramedic now", "occupation", "User is a paramedic"),
    ],
)  # fmt: skip
def test_changes_supersede_through_the_lifecycle(
    rcube: MemCube, user: str, before: str, after: str, subject: str, current: str
) -> None:
    _say(rcube, user, before, after)
    [now] = _current(rcube, user, subject)
    assert now.content == current
    [old, new] = rcube.history(now.id, user_id=user)
    assert old.state == LifecycleState.SUPERSEDED and new.content == current


def test_in_one_conversation_i_left_x_ends_what_x_was(rcube: MemCube) -> None:
    rcube.add_messages(
        [
            {"role": "user", "content": "I'm in a band called The Loose Ends.",
             "timestamp": (REF - timedelta(days=60)).isoformat()},
            {"role": "assistant", "content": "Cool!"},
            {"role": "user", "content": "Well, I left The Loose Ends last week."},
        ],
        user_id="otto",
        timestamp=REF,
    )  # fmt: skip
    [band] = _current(rcube, "otto", "band")
    assert band.content == "User is no longer in the band The Loose Ends"
    assert _current(rcube, "otto", "employer") == []


def test_a_relatives_home_does_not_replace_the_users(rcube: MemCube) -> None:
    _say(rcube, "pia", "I live in Leeds", "My sister Chidinma lives in Manchester")
    [mine] = _current(rcube, "pia", "residence")
    assert mine.content == "User lives in Leeds" and mine.version == 1
    [hers] = _current(rcube, "pia", "residence", entity="Chidinma")
    assert hers.content == "User's sister Chidinma lives in Manchester"


def test_the_assistants_first_person_statements_are_not_the_users(rcube: MemCube) -> None:
    items = rcube.add_messages(
        [{"role": "assistant", "content": "I work at OpenMind and I'm allergic to pollen."}],
        user_id="quinn",
    )
    assert [i.memory_type for i in items] == [MemoryType.EPISODIC]


# ---------------------------------------------------------------------------- the LLM prompt
def test_the_llm_prompt_covers_the_same_cases() -> None:
    text = " ".join(PROMPT.split()).lower()
    for needed in (
        "one memory per fact",
        "split a message",
        "complete, self-contained sentence",
        "same subject",
        "value different",
        "user no longer works at google",
        "never give a fact the date of another clause",
        "entity",
        "never turn what the assistant said",
        "only what the user confirmed",
        "skip questions, hypotheticals",
    ):
        assert needed in text, needed
    assert "{conversation}" in PROMPT
    PROMPT.format(conversation="[0] user: hi")  # the braces of the JSON example are escaped


def test_the_llm_may_name_who_a_fact_is_about() -> None:
    out = json.dumps(
        {
            "memories": [
                {"content": "User's sister Chidinma lives in Manchester", "type": "fact",
                 "subject": "residence", "value": "Manchester", "entity": "sister Chidinma",
                 "turn": 0},
                {"content": "User lives in Leeds", "type": "fact", "subject": "residence",
                 "value": "Leeds", "entity": "user", "turn": 0},
            ]
        }
    )  # fmt: skip
    assert [m.get("entity") for m in parse_extraction(out)] == ["sister Chidinma", "user"]
    drafts: list[dict[str, Any]] = LLMExtractor(lambda p: out, include_turns=False)(
        [Turn("user", "I live in Leeds, my sister in Manchester")],
        {"timestamp": REF, "problems": []},
    )
    assert [d["metadata"]["entity"] for d in drafts] == ["sister Chidinma", "user"]
    with pytest.raises(ValueError):
        parse_extraction('{"memories": [{"content": "x", "type": "fact", "entity": 3}]}')
