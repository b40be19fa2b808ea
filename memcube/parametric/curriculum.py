"""Training data that teaches facts: questions, answers and restatements made from memories.

A memory such as ``"My dog is called Biscuit."`` becomes question/answer pairs (``"What is my dog
called?"`` -> ``"Biscuit"``), the same questions answered with a full sentence in the second
person (``"Your dog is called Biscuit."``), and recall turns (``"What did I tell you about my
dog?"`` -> ``"You told me your dog is called Biscuit."``). Offline, everything comes from
templates over common English first-person sentence shapes (``My X is (called) Y``, ``My X
<verb>s ...``, ``I am <adjective> to Y``, ``I was born in Y in Z``, ``I <verb> Y``, ``I have a X
called Y``); a sentence no template understands still gets recall turns. When a chat model is
given (any ``str -> str`` callable, or an object with ``invoke`` such as a LangChain chat
model), it also writes extra questions for each answer; its questions are kept only when they
end with ``?`` and are not duplicates.

Everything here is pure and deterministic: the same memories (and the same chat model answers)
give the same examples in the same order.

Example:
    >>> from memcube.parametric.curriculum import fact_examples
    >>> pairs = fact_examples("My dog is called Biscuit.")
    >>> ("What is my dog called?", "Biscuit") in [(e.question, e.answer) for e in pairs]
    True
    >>> sorted({e.key for e in pairs if e.kind == "qa"})
    ['Biscuit']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from memcube.errors import InvalidInputError

__all__ = [
    "Example",
    "build_curriculum",
    "chat_questions",
    "fact_examples",
    "key_words",
    "normalise_question",
    "split_sentences",
    "to_second_person",
]

#: Kinds of examples: a question with its short answer, the same with a full-sentence answer,
#: a generic recall turn answered with the restated memory, and a question a chat model wrote.
KINDS = ("qa", "sentence", "recall", "chat")

_PREPOSITIONS = ("in", "at", "on", "for", "as", "with", "to", "from", "near", "by", "of", "about")
_PLACE_PREPS = ("in", "at", "near", "from")
_MONTHS = (
    "january february march april may june july august september october november december "
    "jan feb mar apr jun jul aug sep sept oct nov dec"
).split()
_PARTICLES = ("up", "out", "off", "back", "away", "down", "over", "around")
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_IRREGULAR_PAST = {
    "went": "go",
    "grew": "grow",
    "met": "meet",
    "bought": "buy",
    "got": "get",
    "began": "begin",
    "had": "have",
    "made": "make",
    "took": "take",
    "gave": "give",
    "wrote": "write",
    "drove": "drive",
    "ran": "run",
    "won": "win",
    "broke": "break",
    "chose": "choose",
    "found": "find",
    "left": "leave",
    "lost": "lose",
    "spent": "spend",
    "taught": "teach",
    "learnt": "learn",
    "built": "build",
    "sold": "sell",
    "studied": "study",
    "flew": "fly",
    "swam": "swim",
    "sang": "sing",
    "ate": "eat",
    "saw": "see",
    "came": "come",
    "became": "become",
    "knew": "know",
    "kept": "keep",
    "read": "read",
}
_IRREGULAR_3RD = {"has": "have", "does": "do", "goes": "go", "is": "be"}
_STOP = set(
    "a an the my your our their his her its of to in at on for as with from by and or is are "
    "was were be been i you me it that this these those called named".split()
)
_SECOND_PERSON = {
    "i": "you",
    "me": "you",
    "my": "your",
    "mine": "yours",
    "myself": "yourself",
    "am": "are",
    "i'm": "you're",
    "i've": "you've",
    "i'd": "you'd",
    "i'll": "you'll",
    "we": "you",
    "us": "you",
    "our": "your",
    "ours": "yours",
}

#: Generic recall questions answered with the restated memory.
RECALL_QUESTIONS = (
    "What do you remember about me?",
    "Tell me something you know about me.",
    "What have I told you about myself?",
    "Remind me of something I told you.",
)


@dataclass(frozen=True)
class Example:
    """One training turn made from a memory.

    Attributes:
        question: the user's turn.
        answer: the assistant's reply the adapter learns.
        key: the short answer the reply must contain (for ``qa``/``sentence``/``chat`` examples;
            for ``recall`` the restated memory).
        kind: one of :data:`KINDS`.
        source: index of the memory the example comes from.
        fact: the sentence of the memory the example comes from.
    """

    question: str
    answer: str
    key: str
    kind: str
    source: int = 0
    fact: str = ""


# ---------------------------------------------------------------------------- text helpers
def split_sentences(text: str) -> list[str]:
    """Sentences of a memory (split on ``.``, ``!``, ``?``, ``;`` and new lines).

    Example:
        >>> split_sentences("I drive a Volvo. My dog is called Rex!")
        ['I drive a Volvo', 'My dog is called Rex']
    """
    parts = re.split(r"(?<=[.!?;])\s+|\n+", text.strip())
    out = []
    for part in parts:
        part = part.strip().rstrip(".!?;").strip()
        if part:
            out.append(part)
    return out


def to_second_person(text: str) -> str:
    """``"I am allergic to my cat"`` -> ``"you are allergic to your cat"`` (word by word; the
    past ``was`` after ``I`` becomes ``were``).

    Example:
        >>> to_second_person("I was born in Porto and my sister lives in Oslo")
        'you were born in Porto and your sister lives in Oslo'
    """
    words = text.split(" ")
    out: list[str] = []
    for i, word in enumerate(words):
        low = word.lower()
        if low == "was" and i > 0 and words[i - 1].lower() == "i":
            out.append("were")
            continue
        swap = _SECOND_PERSON.get(low)
        if swap is None:
            out.append(word)
        else:
            out.append(swap.capitalize() if word[:1].isupper() and i > 0 else swap)
    return " ".join(out)


def _sentence(text: str) -> str:
    text = text.strip()
    return (
        (text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else "."))
        if text
        else ""
    )


def key_words(text: str) -> list[str]:
    """Content words of an answer (lower case, no stop words), used to check agreement.

    Example:
        >>> key_words("a green Volvo")
        ['green', 'volvo']
    """
    words = re.findall(r"[\w'-]+", text.lower(), flags=re.UNICODE)
    keep = [w for w in words if w not in _STOP]
    return keep or words


def normalise_question(text: str) -> str:
    """Lower case, single spaces, no punctuation: how questions are compared for leakage."""
    return " ".join(re.findall(r"[\w']+", text.lower(), flags=re.UNICODE))


def _strip_article(text: str) -> str:
    return re.sub(r"^(?:a|an|the)\s+", "", text, flags=re.I)


def _is_date(text: str) -> bool:
    low = text.lower()
    if re.search(r"\b(1[0-9]{3}|20[0-9]{2})\b", low):
        return True
    words = {w.removesuffix("s") if w.endswith("days") else w for w in re.findall(r"[a-z]+", low)}
    return bool(words & set(_MONTHS)) or bool(words & set(_WEEKDAYS))


def _lemma(verb: str) -> str:
    """Base form of a third-person-singular or past verb (heuristic, English)."""
    low = verb.lower()
    if low in _IRREGULAR_3RD:
        return _IRREGULAR_3RD[low]
    if low in _IRREGULAR_PAST:
        return _IRREGULAR_PAST[low]
    if low.endswith("ies") and len(low) > 4:
        return low[:-3] + "y"
    if low.endswith(("ches", "shes", "sses", "xes", "zes", "oes")):
        return low[:-2]
    if low.endswith("ied") and len(low) > 4:
        return low[:-3] + "y"
    if low.endswith("ed") and len(low) > 4:
        stem = low[:-2]
        if len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "ls":
            return stem[:-1]
        if stem.endswith(("at", "iv", "ov", "ur", "us", "ag", "ik", "ar", "ir", "it", "ak")):
            return stem + "e" if not stem.endswith(("it", "ar")) else stem
        return stem
    if low.endswith("s") and not low.endswith("ss") and len(low) > 3:
        return low[:-1]
    return low


def _is_past(verb: str) -> bool:
    low = verb.lower()
    return low in _IRREGULAR_PAST or (low.endswith("ed") and len(low) > 4)


def _split_pps(rest: str) -> tuple[str, list[tuple[str, str]]]:
    """``"as a nurse at a hospital in Tromsø"`` -> ``("", [("as", "a nurse"), ("at", "a hospital
    in Tromsø")...])``: a leading object and the prepositional phrases after it. A phrase only
    starts at a preposition followed by a capitalised word, a number, an article or ``my``."""
    words = rest.split()
    cuts = [0]
    for i, word in enumerate(words):
        if i == 0 or word.lower() not in _PREPOSITIONS or i + 1 >= len(words):
            continue
        nxt = words[i + 1]
        if nxt[:1].isupper() or nxt[:1].isdigit() or nxt.lower() in ("a", "an", "the", "my"):
            cuts.append(i)
    cuts.append(len(words))
    chunks = [" ".join(words[a:b]) for a, b in zip(cuts, cuts[1:], strict=False) if a < b]
    head = ""
    pps: list[tuple[str, str]] = []
    for n, chunk in enumerate(chunks):
        first, _, tail = chunk.partition(" ")
        if first.lower() in _PREPOSITIONS and tail:
            pps.append((first.lower(), tail))
        elif n == 0:
            head = chunk
    return head, pps


# ---------------------------------------------------------------------------- templates
#: Ways to ask an indirect question ("what my dog is called").
_WRAPPERS = ("Tell me {}.", "Do you know {}?", "Can you tell me {}?", "Do you remember {}?")


@dataclass(frozen=True)
class _Fact:
    pairs: tuple[tuple[str, str], ...]  # (direct question, indirect clause)
    key: str


def _name_pairs(x: str) -> list[tuple[str, str]]:
    pairs = [
        (f"What is my {x} called?", f"what my {x} is called"),
        (f"What is the name of my {x}?", f"the name of my {x}"),
        (f"What did I name my {x}?", f"what I named my {x}"),
    ]
    if " " not in x and not x.endswith("'s"):
        pairs.append((f"What is my {x}'s name?", f"my {x}'s name"))
    return pairs


def _be_pairs(x: str, y: str, be: str) -> list[tuple[str, str]]:
    first = y.split()[0].lower()
    pairs = [] if first in _PLACE_PREPS else [(f"What {be} my {x}?", f"what my {x} {be}")]
    words = x.split()
    if words[0].lower() in ("favourite", "favorite") and len(words) > 1:
        thing = " ".join(words[1:])
        pairs.append((f"Which {thing} do I like best?", f"which {thing} I like best"))
    if first in _PLACE_PREPS:
        pairs.append((f"Where {be} my {x}?", f"where my {x} {be}"))
    if _is_date(y):
        pairs.append((f"When {be} my {x}?", f"when my {x} {be}"))
    return pairs


def _pp_pairs(
    who: str, aux: str, lemma: str, surface: str, head: str, prep: str, obj: str
) -> list[tuple[str, str]]:
    """Questions whose answer is ``obj`` in ``<who> <surface> [head] <prep> <obj>``."""
    tail = f" {head}" if head else ""
    pairs: list[tuple[str, str]] = []
    if _is_date(obj) or (prep == "on" and re.search(r"\d", obj)):
        pairs.append((f"When {aux} {who} {lemma}{tail}?", f"when {who} {surface}{tail}"))
        if re.search(r"\b(1[0-9]{3}|20[0-9]{2})\b", obj):
            pairs.append(
                (f"In what year {aux} {who} {lemma}{tail}?", f"in what year {who} {surface}{tail}")
            )
    elif prep in _PLACE_PREPS:
        suffix = " from" if prep == "from" else ""
        pairs.append(
            (f"Where {aux} {who} {lemma}{tail}{suffix}?", f"where {who} {surface}{tail}{suffix}")
        )
        if prep != "from":
            pairs.append(
                (
                    f"In which place {aux} {who} {lemma}{tail}?",
                    f"in which place {who} {surface}{tail}",
                )
            )
    elif prep == "with":
        pairs.append((f"Who {aux} {who} {lemma}{tail} with?", f"who {who} {surface}{tail} with"))
    else:
        pairs.append(
            (f"What {aux} {who} {lemma}{tail} {prep}?", f"what {who} {surface}{tail} {prep}")
        )
    return pairs


def _merge_places(pps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``at a hospital`` + ``in Tromsø`` -> ``at a hospital in Tromsø`` (one place answer)."""
    out: list[tuple[str, str]] = []
    for prep, obj in pps:
        if (
            out
            and prep in _PLACE_PREPS
            and out[-1][0] in _PLACE_PREPS
            and not _is_date(obj)
            and not _is_date(out[-1][1])
        ):
            out[-1] = (out[-1][0], f"{out[-1][1]} {prep} {obj}")
        else:
            out.append((prep, obj))
    return out


def _clause_facts(who: str, aux: str, lemma: str, surface: str, rest: str) -> list[_Fact]:
    """Facts of ``<who> <surface> <rest>``: the object, and each prepositional phrase."""
    head, pps = _split_pps(rest)
    if head.lower() in _PARTICLES:  # "grew up in Ballarat": the particle belongs to the verb
        lemma, surface, head = f"{lemma} {head.lower()}", f"{surface} {head.lower()}", ""
    pps = _merge_places(pps)
    facts: list[_Fact] = []
    if head:
        pairs = [(f"What {aux} {who} {lemma}?", f"what {who} {surface}")]
        facts.append(_Fact(tuple(pairs), _strip_article(head)))
    for prep, obj in pps:
        short = head if len(head.split()) <= 2 else ""
        pairs = _pp_pairs(who, aux, lemma, surface, short, prep, obj)
        facts.append(_Fact(tuple(pairs), _strip_article(obj)))
    return facts


_MY_NAMED = re.compile(r"^my (?P<x>.+?) (?P<be>is|are|was|were) (?:called|named) (?P<y>.+)$", re.I)
_HAVE_NAMED = re.compile(
    r"^i (?:have|had|own|owned) (?:a|an|one|two|three|four|\d+) (?P<x>.+?) "
    r"(?:called|named) (?P<y>.+)$",
    re.I,
)
_MY_NAME = re.compile(r"^my name is (?P<y>.+)$", re.I)
_MY_BE = re.compile(r"^my (?P<x>.+?) (?P<be>is|are|was|were) (?P<y>.+)$", re.I)
_I_BE = re.compile(r"^(?P<be>i am|i'm|i was) (?P<y>.+)$", re.I)
_I_VERB = re.compile(
    r"^i (?:(?:also|still|usually|often|really|now|always|never) )?(?P<v>[a-z]+) (?P<rest>.+)$",
    re.I,
)


def _my_verb(sentence: str) -> tuple[str, str, str] | None:
    """``My older brother works as a pilot`` -> ``("older brother", "works", "as a pilot")``."""
    words = sentence.split()
    if len(words) < 3 or words[0].lower() != "my":
        return None
    for i in range(2, min(len(words) - 1, 6)):
        word = words[i]
        if not word.isalpha() or not word.islower():
            continue
        nxt = words[i + 1]
        verb_like = _is_past(word) or (word.endswith("s") and not word.endswith("ss"))
        before = nxt.lower() in (*_PREPOSITIONS, "a", "an", "the", "my", "her", "his", "their")
        if verb_like or before or nxt[:1].isupper() or nxt[:1].isdigit():
            return " ".join(words[1:i]), word, " ".join(words[i + 1 :])
    return None


def _parse(sentence: str) -> list[_Fact]:
    """Question templates and short answers for one sentence (empty if none fits)."""
    s = sentence.strip()
    if m := _MY_NAME.match(s):
        return [_Fact((("What is my name?", "my name"), ("Who am I?", "who I am")), m["y"])]
    if m := _MY_NAMED.match(s):
        return [_Fact(tuple(_name_pairs(m["x"])), m["y"])]
    if m := _HAVE_NAMED.match(s):
        x = m["x"]
        named = [*_name_pairs(x), (f"What did I call my {x}?", f"what I called my {x}")]
        return [_Fact(tuple(named), m["y"])]
    if m := _MY_BE.match(s):
        x, be, y = m["x"], m["be"].lower(), m["y"]
        words = y.split()
        if len(words) > 2 and words[0].isalpha() and words[0].islower():
            if words[0] not in ("a", "an", "the", "on", "in", "at", "from", "near"):
                head, pps = _split_pps(" ".join(words[1:]))
                if pps and not head:  # "My son is afraid of balloons"
                    return _clause_facts(
                        f"my {x}", be, words[0], f"{be} {words[0]}", " ".join(words[1:])
                    )
        head, pps = _split_pps(y)
        key = _strip_article(pps[0][1] if (not head and len(pps) == 1) else y)
        return [_Fact(tuple(_be_pairs(x, y, be)), key)]
    if m := _I_BE.match(s):
        y = m["y"]
        aux = "was" if m["be"].lower() == "i was" else "am"
        words = y.split()
        first = words[0]
        if first.lower() in ("a", "an"):
            job: list[tuple[str, str]] = [(f"What {aux} I?", f"what I {aux}")]
            if aux == "am":
                job.append(("What do I do for a living?", "what I do for a living"))
            return [_Fact(tuple(job), _strip_article(y))]
        if len(words) > 1:
            facts = _clause_facts("I", aux, first, f"{aux} {first}", " ".join(words[1:]))
            if facts:
                return facts
        return [_Fact(((f"What {aux} I?", f"what I {aux}"),), y)]
    found = _my_verb(s)
    if found is not None:
        x, verb, rest = found
        past = _is_past(verb)
        lemma = _lemma(verb) if (past or verb.endswith("s")) else verb
        aux = "did" if past else ("does" if verb.endswith("s") else "do")
        return _clause_facts(f"my {x}", aux, lemma, verb, rest)
    if m := _I_VERB.match(s):
        verb = m["v"].lower()
        past = _is_past(verb)
        lemma = _lemma(verb) if past else verb
        return _clause_facts("I", "did" if past else "do", lemma, verb, m["rest"])
    return []


def _topic(sentence: str) -> str | None:
    """The thing a sentence is about, for "what did I tell you about ...?" (``my X`` or None)."""
    m = re.match(
        r"^my ((?:\S+ ){0,2}?\S+?)(?:'s)? (?:is|are|was|were|\w+s|\w+ed)\b", sentence, re.I
    )
    return f"my {m.group(1)}" if m else None


def _questions(fact: _Fact) -> list[str]:
    out: list[str] = []
    for direct, clause in fact.pairs:
        out.append(direct)
        out += [wrap.format(clause) for wrap in _WRAPPERS]
    return list(dict.fromkeys(out))


def fact_examples(text: str, *, source: int = 0) -> list[Example]:
    """Training examples for one memory (every sentence of it), in a fixed order.

    Each question is answered with the short answer; every third one also with the whole
    statement in the second person. Each sentence also gets recall turns.

    Raises:
        InvalidInputError: the memory is empty.
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidInputError("a memory to teach must be non-empty text.")
    out: list[Example] = []
    for n, sentence in enumerate(split_sentences(text)):
        you = _sentence(to_second_person(sentence))
        for fact in _parse(sentence):
            for i, question in enumerate(_questions(fact)):
                out.append(Example(question, fact.key, fact.key, "qa", source, sentence))
                if i % 3 == 0:
                    out.append(Example(question, you, fact.key, "sentence", source, sentence))
        told = f"You told me {you[:1].lower() + you[1:]}"
        topic = _topic(sentence)
        if topic:
            question = f"What did I tell you about {topic}?"
            out.append(Example(question, told, you, "recall", source, sentence))
        recall = RECALL_QUESTIONS[(source + n) % len(RECALL_QUESTIONS)]
        out.append(Example(recall, you, you, "recall", source, sentence))
    return out


# ---------------------------------------------------------------------------- chat models
def _ask(chat: Any, prompt: str) -> str:
    if callable(chat) and not hasattr(chat, "invoke"):
        reply = chat(prompt)
    elif hasattr(chat, "invoke"):
        reply = chat.invoke(prompt)
    else:
        raise InvalidInputError("chat must be a callable str -> str or have .invoke (LangChain).")
    content = getattr(reply, "content", reply)
    if isinstance(content, list):  # LangChain content blocks
        content = "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    if not isinstance(content, str):
        raise InvalidInputError(f"the chat model returned {type(content).__name__}, not text.")
    return content


def chat_questions(chat: Any, fact: str, answer: str, n: int = 4) -> list[str]:
    """Up to ``n`` questions a chat model writes whose answer is ``answer`` given ``fact``.

    ``chat`` is a callable ``str -> str`` or an object with ``invoke`` (a LangChain chat model);
    lines of its reply that end with ``?`` are kept (numbering and bullets removed).
    """
    prompt = (
        f'The user told you: "{fact}"\n'
        f'Write {n} different questions the user could ask you whose answer is "{answer}". '
        "Ask in the first person, as the user (e.g. 'my', 'I'). One question per line, "
        "nothing else."
    )
    reply = _ask(chat, prompt)
    found: list[str] = []
    for line in reply.splitlines():
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip().strip('"')
        if line.endswith("?") and 8 <= len(line) <= 200 and line not in found:
            found.append(line)
    return found[:n]


def build_curriculum(
    texts: Sequence[str],
    *,
    chat: Callable[[str], str] | Any | None = None,
    chat_questions_per_answer: int = 4,
) -> list[Example]:
    """Examples for every memory in ``texts`` (templates; plus chat-model questions if given).

    Duplicate questions with the same answer are dropped. The order is fixed by the inputs.

    Raises:
        InvalidInputError: no memories, an empty memory, or a chat model that returns no text.
    """
    if not texts:
        raise InvalidInputError("there are no memories to teach.")
    out: list[Example] = []
    seen: set[tuple[str, str]] = set()

    def add(example: Example) -> None:
        mark = (normalise_question(example.question), example.answer)
        if mark not in seen:
            seen.add(mark)
            out.append(example)

    for source, text in enumerate(texts):
        examples = fact_examples(text, source=source)
        for example in examples:
            add(example)
        if chat is None:
            continue
        keys = dict.fromkeys((e.fact, e.key) for e in examples if e.kind == "qa")
        for fact, key in keys:
            for question in chat_questions(chat, fact, key, chat_questions_per_answer):
                add(Example(question, key, key, "chat", source, fact))
    return out


def with_answer(example: Example, answer: str) -> Example:
    """A copy of ``example`` answered with ``answer`` (for teacher answers)."""
    return replace(example, answer=answer)
