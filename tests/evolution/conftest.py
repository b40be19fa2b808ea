"""Small real cubes (embedded Chroma, the bundled MiniLM embedder) for the evolution tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from memcube import MemCube

NAMES = ["Priya", "Tomas", "Aiko", "Lena", "Omar", "Grace", "Mateo", "Sofia", "Ivan", "Nora",
         "Kwame", "Elif", "Ravi", "Hana", "Diego", "Maya", "Yusuf", "Clara", "Jonas", "Leila"]  # fmt: skip
FACTS = [
    ("{n} plays the cello in a community orchestra.", "Which instrument does {n} play?"),
    ("{n} adopted a grey rescue cat called Pepper.", "What pet does {n} have?"),
    ("{n} works night shifts as an ICU nurse.", "What is {n}'s job?"),
    ("{n} is training for the Berlin marathon in September.", "Which race is {n} preparing for?"),
    ("{n} grew up in a fishing village near Porto.", "Where did {n} grow up?"),
]
CHATTER = [
    "Thanks, that sounds good to me.",
    "Haha, yes, totally agree with you!",
    "Let me think about it and get back to you.",
    "Ok, talk soon, have a nice evening.",
    "That's interesting, tell me more.",
    "I'm not sure, maybe next week?",
    "Wow, I didn't expect that at all.",
    "Sure, no problem at all.",
]


def people_drafts(user: str) -> list[dict[str, object]]:
    """One fact per person (each person a different kind of fact) plus small talk."""
    drafts: list[dict[str, object]] = []
    for i, name in enumerate(NAMES):
        fact, _ = FACTS[i % len(FACTS)]
        drafts.append({"content": fact.format(n=name), "user_id": user, "metadata": {"who": name}})
    for text in CHATTER:
        drafts.append({"content": text, "user_id": user, "metadata": {"who": "chatter"}})
    return drafts


def people_questions() -> list[tuple[str, str]]:
    """``(question, the name whose fact answers it)``."""
    return [(FACTS[i % len(FACTS)][1].format(n=name), name) for i, name in enumerate(NAMES)]


@pytest.fixture
def people_cube(tmp_path: Path) -> Iterator[tuple[MemCube, dict[str, str], list[str]]]:
    """A cube with the people facts of user ``u``: ``(cube, name -> memory id, chatter ids)``."""
    cube = MemCube.open(tmp_path / "cube")
    stored = cube.add_many(people_drafts("u"))
    by_name = {it.metadata["who"]: it.id for it in stored if it.metadata["who"] != "chatter"}
    chatter = [it.id for it in stored if it.metadata["who"] == "chatter"]
    yield cube, by_name, chatter
    cube.close()
