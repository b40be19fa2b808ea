"""Lexical matching: a tokenizer with light stemming and an Okapi BM25 index kept in memory.

Dense embeddings miss rare words (names, places, titles, numbers); BM25 finds them. The index here
is small and dependency-free: it is built per user from the texts the cube stores, grows as
the process adds memories, and is rebuilt on other changes (see :mod:`memcube.plaintext.retrieval`).

Example:
    >>> idx = BM25Index(["Alice adopted a greyhound named Biscuit", "Bob likes chess"])
    >>> [bool(s > 0) for s in idx.scores(tokenize("who is Biscuit?"))]
    [True, False]
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

#: Function words that carry no topic. Question words are included: "when", "what", "did".
STOPWORDS = frozenset(
    """a about above after again against all am an and any are aren't as at be because been before
    being below between both but by can could did didn't do does doesn't doing don't down during
    each few for from further had has have having he he'd he'll he's her here here's hers herself
    him himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself just let's
    me more most my myself no nor not of off on once only or other ought our ours ourselves out over
    own same shan't she she'd she'll she's should so some such than that that's the their theirs
    them themselves then there there's these they they'd they'll they're they've this those through
    to too under until up very was wasn't we we'd we'll we're we've were weren't what what's when
    when's where where's which while who who's whom why why's with won't would wouldn't you you'd
    you'll you're you've your yours yourself yourselves s t d ll m re ve also got get go going
    gone really yeah oh hey hi ok okay yes thanks thank so much lot lots like just""".split()
)

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def stem(word: str) -> str:
    """A light English suffix stripper (plural, -ing, -ed, -ly, -ies...), enough to match
    "painting"/"painted"/"paints" and "adoption"/"adopting" loosely, never over-aggressive on
    short words."""
    w = word
    if len(w) <= 3:
        return w
    for suffix, repl, min_len in (
        ("ational", "ate", 8),
        ("ization", "ize", 8),
        ("fulness", "ful", 8),
        ("iveness", "ive", 8),
        ("ations", "ate", 7),
        ("ation", "ate", 6),
        ("ments", "", 7),
        ("ment", "", 6),
        ("ness", "", 6),
        ("ities", "ity", 6),
        ("ingly", "", 7),
        ("edly", "", 6),
        ("ies", "y", 5),
        ("ied", "y", 5),
        ("ing", "", 6),
        ("ers", "er", 5),
        ("ed", "", 5),
        ("ly", "", 6),
        ("es", "", 5),
        ("s", "", 4),
    ):
        if w.endswith(suffix) and len(w) >= min_len:
            if suffix == "s" and w.endswith(("ss", "us", "is")):
                return w
            if suffix == "es" and not w.endswith(("ches", "shes", "sses", "xes", "zes")):
                w = w[:-1]
                break
            w = w[: len(w) - len(suffix)] + repl
            break
    # "running" -> "runn" -> "run"; "hopped" -> "hopp" -> "hop"
    if len(w) > 4 and w[-1] == w[-2] and w[-1] not in "lsz":
        w = w[:-1]
    if w.endswith("e") and len(w) > 4:
        w = w[:-1]
    return w


def tokenize(text: str, *, stopwords: frozenset[str] = STOPWORDS) -> list[str]:
    """Lower-case word tokens, stop words dropped, lightly stemmed. Possessives are folded
    ("Melanie's" -> "melanie")."""
    out = []
    for tok in _TOKEN.findall(text.lower().replace("\u2019", "'")):
        if "'" in tok:
            head, _, tail = tok.partition("'")
            tok = head if tail in ("s", "") else tok
        if tok in stopwords:
            continue
        out.append(stem(tok))
    return out


_NUMBERISH = re.compile(r"\S*\d\S*")
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zA-Z'-]+")
CALENDAR = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday january february march april may "
    "june july august september october november december".split()
)


def substantive_tokens(text: str) -> set[str]:
    """The tokens that make two similar texts different memories: numbers (and anything holding
    a digit: "4B", "10am", "#2281"), weekdays and months, and names (capitalised words that do
    not start a sentence).

    Example:
        >>> sorted(substantive_tokens("Lunch with Priya on Monday at 10am"))
        ['10am', 'monday', 'priya']
    """
    out = {t.strip(".,;:!?()[]\"'").casefold() for t in _NUMBERISH.findall(text)}
    out |= {w.casefold() for w in re.findall(r"[A-Za-z]+", text) if w.casefold() in CALENDAR}
    for m in _NAME.finditer(text):
        word = m.group(0).casefold()
        out.add(word[:-2] if word.endswith("'s") else word)
    out.discard("")
    out.discard("i")
    return out


def names_nothing_new(new: str, old: str) -> bool:
    """Every number, date and name of ``new`` (see :func:`substantive_tokens`) is in ``old``
    (in any case)."""
    old_words = substantive_tokens(old) | set(re.findall(r"[a-z]+", old.casefold()))
    return substantive_tokens(new) <= old_words


def adds_nothing(new: str, old: str) -> bool:
    """``new`` says nothing ``old`` does not: every topic word of ``new`` (stemmed, stop words
    dropped) is in ``old``, and so is every number, date and name. What decides whether a
    near-duplicate may be merged away: "Monday" and "Tuesday", "4B" and "4D", "Leeds" and
    "Glasgow" make different memories however close their embeddings are.

    Example:
        >>> adds_nothing("I have a dentist appointment on Tuesday", "I have a dentist appointment on Monday")
        False
        >>> adds_nothing("i'm allergic to PEANUTS!", "I'm allergic to peanuts")
        True
    """
    return names_nothing_new(new, old) and set(tokenize(new)) <= set(tokenize(old))


class BM25Index:
    """Okapi BM25 over a growing list of documents (already tokenized or raw text).

    Documents can be appended with :meth:`add`; scores always use the current statistics
    (document count, average length, document frequencies), so an index grown one document at a
    time scores exactly like one built from all of them at once.

    Args:
        docs: the documents, as strings (tokenized with :func:`tokenize`) or token lists.
        k1: term-frequency saturation.
        b: length normalisation.
    """

    def __init__(
        self, docs: Sequence[str] | Sequence[list[str]] = (), *, k1: float = 1.2, b: float = 0.75
    ) -> None:
        self.k1 = k1
        self.b = b
        self.n_docs = 0
        self._total_len = 0
        self._lengths = np.zeros(0, dtype=np.float32)
        # Per term: the documents holding it and its count in each (lists grow; arrays are
        # made from them when a query needs the term).
        self._postings: dict[str, tuple[list[int], list[int]]] = {}
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.add(docs)

    @property
    def avg_len(self) -> float:
        return self._total_len / self.n_docs if self.n_docs and self._total_len else 1.0

    def add(self, docs: Sequence[str] | Sequence[list[str]]) -> None:
        """Append documents (their positions follow the existing ones)."""
        token_lists = [tokenize(d) if isinstance(d, str) else list(d) for d in docs]
        if not token_lists:
            return
        lengths = [len(t) for t in token_lists]
        for offset, toks in enumerate(token_lists):
            i = self.n_docs + offset
            for term, tf in Counter(toks).items():
                entry = self._postings.setdefault(term, ([], []))
                entry[0].append(i)
                entry[1].append(tf)
                self._arrays.pop(term, None)
        self.n_docs += len(token_lists)
        self._total_len += sum(lengths)
        self._lengths = np.concatenate([self._lengths, np.asarray(lengths, dtype=np.float32)])

    def idf(self, term: str) -> float:
        """Inverse document frequency of a (tokenized) term; 0 for an unknown term."""
        entry = self._postings.get(term)
        if entry is None:
            return 0.0
        df = len(entry[0])
        return math.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5))

    def _term(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        found = self._arrays.get(term)
        if found is None:
            entry = self._postings.get(term)
            if entry is None:
                return None
            found = (np.asarray(entry[0], dtype=np.int64), np.asarray(entry[1], dtype=np.float32))
            self._arrays[term] = found
        return found

    def scores(
        self, query_tokens: Iterable[str], weights: dict[str, float] | None = None
    ) -> np.ndarray:
        """BM25 score of every document for the query tokens (a repeated token counts once,
        optionally scaled by ``weights[token]``)."""
        out = np.zeros(self.n_docs, dtype=np.float32)
        k1, b, avg = self.k1, self.b, self.avg_len
        for term in dict.fromkeys(query_tokens):
            hit = self._term(term)
            if hit is None:
                continue
            ids, tf = hit
            norm = k1 * (1.0 - b + b * self._lengths[ids] / avg)
            w = self.idf(term) * (weights.get(term, 1.0) if weights else 1.0)
            out[ids] += w * (tf * (k1 + 1.0) / (tf + norm))
        return out
