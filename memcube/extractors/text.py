"""Text handling of the rule reader (English only): a message into sentences, a sentence into
clauses (each clause states at most one fact), which clauses state nothing (questions,
hypotheticals, what others say), and the checks that make a value a complete noun phrase.

Example:
    >>> clauses("I'm allergic to peanuts and I work as a nurse in Porto")
    ["I'm allergic to peanuts", 'I work as a nurse in Porto']
    >>> clauses("Sam and I broke up; we're fine though")
    ['Sam and I broke up', "we're fine though"]
    >>> from memcube.extractors.lexicon import STOPS_PLACE
    >>> phrase("Lisbon for a job at a robotics startup", stops=STOPS_PLACE)
    'Lisbon'
    >>> phrase("a job at a", stops=frozenset()) is None
    True
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable

from memcube.extractors.lexicon import BAD_STARTS, FILLERS, FUNCTION_WORDS

_TYPOGRAPHY = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "—": " - ", "–": " - "})
_ABBREVIATIONS = frozenset(
    "dr mr mrs ms st prof jr sr vs etc e.g i.e approx no mt ft ave rd co inc ltd dept".split()
)
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")
#: What starts a new clause after "and", "but", a comma...: a subject.
_SUBJECT = r"(?:I|I'm|I've|I'd|I'll|Im|Ive|my|we|we're|we've|our|she|he|they|she's|he's|they're|it's|it|there's)\b"
#: Words of a date phrase that may stand between a conjunction and the next subject.
_WHEN_WORD = (
    r"(?:last|next|this|in|on|since|ago|yesterday|today|tonight|recently|lately|now|then|later|"
    r"eventually|also|finally|just|a|an|the|few|couple|of|one|two|three|four|five|six|seven|"
    r"eight|nine|ten|\d+|days?|weeks?|weekends?|months?|years?|spring|summer|autumn|fall|winter|"
    r"morning|evening|night|january|february|march|april|may|june|july|august|september|"
    r"october|november|december|monday|tuesday|wednesday|thursday|friday|saturday|sunday),?"
)
_BOUNDARY = re.compile(
    r"\s*;\s*|\s+-{1,2}\s+|:\s+|\s*\(\s*|\s*\)\s*"
    rf"|,\s+(?:(?:and|but|so|then|plus|because|cause|cos|although|though|while|whereas)\s+)?(?={_SUBJECT})"
    rf"|,?\s+(?:and|but|so|then)\s+(?=(?:{_WHEN_WORD}\s+){{1,4}}(?:I|I'm|I've|we|we're|we've|my)\b)"
    rf"|\s+(?P<conj>and|but|so|because|cause|cos|though|although|while|whereas|plus)\s+(?={_SUBJECT})",
    re.I,
)
_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|I'd|I'll|Im|we|we're|we've)\b", re.I)
_QUESTION_START = re.compile(
    r"^(?:(?:so|and|but|hey|ok|okay|also|oh|well|btw),?\s+)*(?:"
    r"(?:do|does|did|can|could|would|should|will|shall|is|are|am|was|were|have|has|had)\s+"
    r"(?:you|i|we|it|that|this|there|he|she|they|my|your)\b"
    r"|(?:what|where|when|why|how|who|which)(?:'s|\s+(?:do|does|did|is|are|was|were|should|"
    r"would|can|could|will|am|have|has))\b)",
    re.I,
)
_HYPOTHETICAL = re.compile(
    r"\b(?:if(?!\s+(?:you|u|that|that's|it|it's|needed|necessary|anyone|so|possible|relevant|"
    r"helpful|interested))|unless|whether|would|wouldn't|might|maybe|perhaps|possibly|probably|hopefully|"
    r"wish|hope|hoping|should|could|imagine|pretend|suppose|supposed|i'd|we'd|gonna|"
    r"(?:'m|am|'re|are)\s+going\s+to|"
    r"(?:I|we)\s+(?:really\s+)?(?:want|need)\s+to|wanna|planning|considering|"
    r"thinking\s+(?:of|about))\b",
    re.I,
)
_REPORTED = re.compile(
    r"\b(?:says?|said|saying|thinks?|thought|told|tells|claims?|claimed|reckons?|believes?|"
    r"insists?|swears?|joked|jokes|asked|asks|wonder|wondering|guess(?!\s+what)|mean|dreamt|"
    r"dreamed)\b",
    re.I,
)
#: Words that may precede the statement in its clause: discourse markers, not a subject.
_LEAD_INS = frozenset(
    """
    oh ah so well and also plus but btw anyway anyways actually yeah yes yep no nope ok okay hey
    hi hello um uh erm hmm lol haha honestly now currently these days nowadays still then besides
    otherwise for the record fyi fun fact update news big good great by way guess what just you
    know wow sadly luckily unfortunately fortunately basically finally recently lately at moment
    right officially meanwhile too again ps as of a quick heads up side note note funnily enough
    speaking sorry thanks thank
    """.split()
)
_NOT_ADVERBS = frozenset(
    "family emily italy july holly sally molly billy belly rally bully jelly supply reply "
    "assembly anomaly ugly".split()
)
_ANYMORE = re.compile(r"\b(?:any\s?more|no\s+longer|these\s+days|now)\b", re.I)
_SPEAKERS = frozenset({"i", "i'm", "i've", "you", "you're"})
_PLACEHOLDER_TOKEN = re.compile(r"^[^\w&#@$£€]+$")


def normalize(text: str) -> str:
    """Straight quotes and spaced dashes."""
    return text.translate(_TYPOGRAPHY)


def sentences(text: str) -> list[str]:
    """The sentences of a message, with their final punctuation (abbreviations such as "Dr."
    do not end one)."""
    out: list[str] = []
    for part in _SENTENCE_END.split(normalize(text)):
        part = part.strip()
        if not part:
            continue
        last = out[-1].rsplit(None, 1)[-1].rstrip(".") if out else ""
        initial = len(last) == 1 and last.isupper()  # "Ursula K. Le Guin"
        if out and out[-1].endswith(".") and (last.lower() in _ABBREVIATIONS or initial):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return out


def is_question(sentence: str) -> bool:
    """A question: it ends with "?" or starts like one ("do you", "where is")."""
    return sentence.rstrip(" .!)\"'").endswith("?") or bool(_QUESTION_START.match(sentence))


def clauses(sentence: str) -> list[str]:
    """A sentence split where a new subject starts a clause: at ";", ":", dashes, brackets,
    ", and I", " but my"... "Sam and I" (a compound subject) is not split."""
    out: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(sentence):
        left = sentence[start : m.start()]
        conj = (m.group("conj") or "").lower()
        if (
            conj == "and"
            and (
                left.strip().lower() == "me"  # "me and my wife live..."
                or re.match(r"I\b", sentence[m.end() :])
                and not _FIRST_PERSON.search(left)
                and len(left.split()) <= 4
            )
        ):
            continue  # "my wife and I moved": one subject
        out.append(left)
        start = m.end()
    out.append(sentence[start:])
    return [c.strip(" ,.!?\"'") for c in out if c.strip(" ,.!?\"'")]


def lead_in_only(prefix: str) -> bool:
    """Whether the words before a statement are only discourse markers ("Oh, and", "So",
    "These days"), not a subject or a verb of their own ("my friend says", "when")."""
    words = re.findall(r"[\w']+", prefix.lower())
    return len(words) <= 6 and all(
        w in _LEAD_INS or (w.endswith("ly") and len(w) > 5 and w not in _NOT_ADVERBS) for w in words
    )


def is_hypothetical(clause: str) -> bool:
    """A clause that states no fact: a condition, a wish, a plan or a modal ("if", "I'd",
    "might", "thinking of")."""
    return bool(_HYPOTHETICAL.search(clause))


def is_reported(clause: str) -> bool:
    """A clause that reports what someone says or thinks ("my friend says I'm ...")."""
    return bool(_REPORTED.search(clause))


def says_no_longer(clause: str) -> bool:
    """Whether the clause marks a change ("anymore", "no longer", "now")."""
    return bool(_ANYMORE.search(clause))


def remove_spans(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """``text`` without the given ``(start, end)`` spans (date phrases), spaces tidied."""
    for start, end in sorted(spans, reverse=True):
        text = text[:start] + " " + text[end:]
    return " ".join(text.split())


def _strip_fillers(words: list[str]) -> list[str]:
    changed = True
    while changed and words:
        changed = False
        for filler in FILLERS:
            n = filler.count(" ") + 1
            if len(words) >= n and " ".join(words[-n:]).lower() == filler:
                del words[-n:]
                changed = True
                break
    return words


def phrase(
    text: str,
    *,
    stops: Collection[str],
    max_words: int = 6,
    proper: bool = False,
    allow_starts: Collection[str] = (),
    commas: bool = False,
) -> str | None:
    """``text`` cut to the complete noun phrase it starts with, or ``None`` when it starts with
    no complete one. It ends before the first word of ``stops`` (or a comma, unless ``commas``);
    trailing fillers ("now", "anymore") go; it must not start with a pronoun, a verb or a
    preposition (except ``allow_starts``), nor end with a function word ("a", "at", "and"),
    nor run past ``max_words``; with ``proper``, one of its words must be capitalized or a
    number."""
    words: list[str] = []
    for raw in text.strip().split():
        bare = raw.lower().strip(',.;:!?"()')
        if bare in stops and (words or bare not in allow_starts):
            if not words:
                return None
            break
        if _PLACEHOLDER_TOKEN.match(raw):
            if words:
                break
            continue
        words.append(raw)
        if raw.endswith(",") and not commas:
            break
    punctuation = ';:!?"()' if commas else ',;:!?"()'
    words = _strip_fillers([w.strip(punctuation) for w in words])
    words = [
        w[:-1]
        if w.endswith(".")
        and w[:-1].lower() not in _ABBREVIATIONS
        and not (len(w) == 2 and w[0].isupper() and i < len(words) - 1)  # "Ursula K. Le Guin"
        else w
        for i, w in enumerate(words)
    ]
    words = _strip_fillers([w for w in words if w])
    if not words or len(words) > max_words:
        return None
    words[-1] = words[-1].rstrip(",")
    lowered = [w.lower().rstrip(",") for w in words]
    acronym = len(words[0]) > 1 and words[0].isupper()  # "IT", not "it"
    if lowered[0] in BAD_STARTS and lowered[0] not in allow_starts and not acronym:
        return None
    if _ends_in_function_word(words) or _SPEAKERS & set(lowered):
        return None
    if proper and not any(w[0].isupper() or w[0].isdigit() for w in words):
        return None
    return " ".join(words)


_THEIR = {"my": "their", "me": "them", "myself": "themselves", "mine": "theirs", "our": "their"}


def third_person(text: str) -> str:
    """A phrase as said about the speaker: "my parents' house" -> "their parents' house"."""
    return " ".join(_THEIR.get(w.lower(), w) for w in text.split())


def strip_article(text: str) -> str:
    """A phrase without its leading article: "a nurse" -> "nurse"."""
    return re.sub(r"^(?:a|an|the)\s+", "", text, flags=re.I)


def items(text: str) -> list[str]:
    """The items of a list: "peanuts, shellfish and eggs" -> three."""
    return [p for p in re.split(r"\s*,\s*(?:and\s+|or\s+)?|\s+(?:and|or|&)\s+", text) if p]


def _ends_in_function_word(words: list[str]) -> bool:
    last = words[-1].strip(".")
    acronym = len(last) > 1 and last.isupper()  # "IT", not "it"
    return last.lower() in FUNCTION_WORDS and not acronym


def complete(content: str) -> bool:
    """Whether a fact's content is a complete sentence: no fragment at its end, no dangling
    conjunction, a sensible length."""
    words = content.split()
    return 2 <= len(words) <= 24 and not _ends_in_function_word(words)


__all__ = [
    "clauses",
    "complete",
    "is_hypothetical",
    "is_question",
    "is_reported",
    "items",
    "lead_in_only",
    "normalize",
    "phrase",
    "remove_spans",
    "says_no_longer",
    "sentences",
    "strip_article",
    "third_person",
]
