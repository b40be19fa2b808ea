"""Generic prompts that a distilled adapter should leave alone (the preservation anchors).

Distillation holds the adapter's next-token distributions on these prompts close to the base
model's own replies. A few dozen fixed prompts are memorised by the adapter rather than
generalised from (the distributions stay close on them and drift elsewhere), so the pool is
composed from templates over general knowledge, arithmetic, instructions, chit-chat and
questions about the user that were never told: several hundred prompts in all. Prompts that
mention what the distilled memories talk about are left out (:func:`anchor_prompts`), so the
adapter is never held to "I don't know" about a fact it is being taught.

Example:
    >>> prompts = anchor_prompts()
    >>> len(prompts) > 300
    True
    >>> any("sister" in p for p in anchor_prompts(["My sister lives in Oslo."]))
    False
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence

__all__ = ["anchor_prompts"]

_COUNTRIES = (
    "France", "Italy", "Germany", "Spain", "Canada", "Egypt", "Kenya", "Peru", "Norway",
    "Greece", "Mexico", "India", "Chile", "Poland", "Turkey", "Vietnam", "Portugal", "Ireland",
)  # fmt: skip
_ANIMALS = (
    "elephants", "dolphins", "penguins", "bees", "wolves", "koalas", "frogs", "eagles",
    "sharks", "camels", "octopuses", "horses", "rabbits", "whales", "ants", "parrots",
)  # fmt: skip
_TOPICS = (
    "the ocean", "autumn", "a quiet morning", "the city at night", "friendship", "mountains",
    "a train journey", "the stars", "a thunderstorm", "the first snow", "a garden", "the desert",
)  # fmt: skip
_FORMS = ("a short poem", "two sentences", "a limerick", "a short story", "a haiku")
_CONCEPTS = (
    "electricity", "the water cycle", "inflation", "evolution", "a black hole", "the internet",
    "democracy", "a vaccine", "an algorithm", "recycling", "magnetism", "the seasons",
    "a volcano", "compound interest", "a computer virus", "tides",
)  # fmt: skip
_TASKS = (
    "learning a language", "saving money", "sleeping better", "running a marathon",
    "cooking rice", "writing an essay", "public speaking", "growing tomatoes",
    "staying focused", "packing for a trip", "studying for an exam", "painting a room",
)  # fmt: skip
_PEOPLE = (
    "Isaac Newton", "Marie Curie", "William Shakespeare", "Cleopatra", "Mozart",
    "Nelson Mandela", "Ada Lovelace", "Galileo", "Charles Darwin", "Frida Kahlo",
)  # fmt: skip
_WORDS = (
    "big", "fast", "bright", "quiet", "brave", "cold", "happy", "strong", "simple", "early",
)  # fmt: skip
_RELATIONS = (
    "sister", "brother", "mother", "father", "cousin", "aunt", "uncle", "neighbour",
    "best friend", "grandmother", "boss", "partner", "son", "daughter", "colleague",
)  # fmt: skip
_ATTRIBUTES = (
    "favourite food", "birthday", "job", "favourite film", "phone number", "middle name",
    "favourite colour", "hometown",
)  # fmt: skip
_MY_THINGS = (
    "car", "first pet", "favourite book", "shoe size", "blood type", "dentist",
    "wedding anniversary", "favourite sport", "old school", "lucky number",
)  # fmt: skip
_CHAT = (
    "Hello!", "Hey, what's up?", "Good evening.", "How is your day going?", "Nice to meet you.",
    "I'm back.", "Can I ask you something?", "That's great, thanks.", "I'm feeling tired today.",
    "What can you do?", "Are you a robot?", "Let's chat for a bit.", "Goodbye for now!",
    "Sorry, I made a mistake.", "I have a question about science.", "Do you have a name?",
)  # fmt: skip


def _all() -> list[str]:
    out: list[str] = []
    for c in _COUNTRIES:
        out += [f"What is the capital of {c}?", f"What language do people speak in {c}?"]
    for a in _ANIMALS:
        out += [f"What do {a} eat?", f"Tell me a fact about {a}.", f"Where do {a} live?"]
    for t in _TOPICS:
        for f in _FORMS[:3]:
            out.append(f"Write {f} about {t}.")
    for c in _CONCEPTS:
        out += [f"Explain {c} in simple words.", f"What is {c}?"]
    for t in _TASKS:
        out += [f"Give me a tip for {t}.", f"How do I get better at {t}?"]
    for p in _PEOPLE:
        out += [f"Who was {p}?", f"What is {p} famous for?"]
    for w in _WORDS:
        out += [f"What is the opposite of '{w}'?", f"Give me a synonym for '{w}'."]
    for r in _RELATIONS:
        out += [f"What is my {r}'s {a}?" for a in _ATTRIBUTES[:3]]
    out += [f"What is my {t}?" for t in _MY_THINGS]
    numbers = random.Random(7)
    for _ in range(24):
        x, y = numbers.randint(2, 60), numbers.randint(2, 40)
        op = numbers.choice(("plus", "minus", "times"))
        out.append(f"What is {x} {op} {y}?")
    out += list(_CHAT)
    return out


_WORD = re.compile(r"[a-z]+")
_COMMON = frozenset(
    "what is my the a an of in to do i you who how for about me tell give write your are and"
    " was with on at it be".split()
)


def _content_words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in _COMMON}


def anchor_prompts(
    avoid: Iterable[str] = (), *, first: Sequence[str] = (), limit: int | None = None
) -> list[str]:
    """``first``, then the template prompts in a fixed shuffled order, minus every prompt that
    shares a content word with a text in ``avoid`` (the memories being distilled); at most
    ``limit``. The same arguments always give the same list."""
    banned: set[str] = set()
    for text in avoid:
        banned |= _content_words(text)
    pool = _all()
    random.Random(0).shuffle(pool)
    unique = dict.fromkeys([*first, *pool])
    out = [p for p in unique if not (_content_words(p) & banned)]
    return out[:limit] if limit is not None else out
