"""Extractors: turn conversation turns into memory drafts.

An extractor is any callable ``(turns, context) -> list[dict]``; each dict holds the keyword
arguments of :meth:`memcube.MemCube.add` (``content`` required). ``context`` carries
``user_id``, ``session_id``, ``timestamp`` (the fallback message time), ``roles`` (the speakers
whose turns are remembered) and ``problems`` (a list where an extractor reports what went wrong:
the reader logs each one, records it in the affected turns' provenance and returns it).

* :func:`turn_memories`: no model. Every remembered turn as an ``episodic`` memory with its
  speaker, time and message id (a date the turn mentions goes to ``metadata["mentions_time"]``).
* :func:`rule_facts`: no model. First-person statements of facts and preferences in the user's
  turns ("I moved to Berlin", "I'm allergic to nuts", "I prefer tea over coffee", "My favorite
  color is green") become ``fact`` / ``preference`` / ``profile`` memories with a ``subject``
  and ``value`` in their metadata, so a later value supersedes an earlier one (see
  :mod:`memcube.lifecycle`). Questions and hypotheticals ("if I moved to...") are skipped.
* :class:`LLMExtractor`: any LangChain chat model (anything with ``.invoke(prompt)`` returning
  an object with ``.content``) or a plain ``str -> str`` callable, asked for JSON that is checked
  against :data:`EXTRACTION_SCHEMA`. Malformed output (or a failing model) loses nothing: the raw
  turns are stored as episodic memories and the problem is reported.

Relative dates in a statement ("last Friday", "two years ago") are resolved against the
message's time into the memory's ``event_time`` (:mod:`memcube.dates`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from memcube.checks import is_int, is_number
from memcube.dates import find_dates, parse_when
from memcube.items import MemoryType, Provenance
from memcube.messages import Turn, content_text

#: Roles whose turns are remembered by default.
REMEMBERED_ROLES = ("user", "assistant")
#: Roles whose first-person statements become facts and preferences, by default.
FACT_ROLES = ("user",)


@dataclass(frozen=True)
class ExtractionProblem:
    """Something an extractor could not use. The turns it concerns were still stored."""

    extractor: str
    message: str
    output: str | None = None
    message_ids: tuple[str, ...] = ()


# ---------------------------------------------------------------------------- turns
def turn_memories(turns: Sequence[Turn], context: dict[str, Any]) -> list[dict[str, Any]]:
    """One episodic memory per remembered turn."""
    out = []
    for turn in turns:
        if turn.role not in context.get("roles", REMEMBERED_ROLES) or not turn.content.strip():
            continue
        when = turn.timestamp or context["timestamp"]
        md: dict[str, Any] = {"role": turn.role, **({"speaker": turn.name} if turn.name else {})}
        dates = find_dates(turn.content, when)
        if dates:
            md["mentions_time"] = dates[0].when.isoformat()
            md["mentions_phrase"] = dates[0].phrase
        out.append(
            {
                "content": turn.content,
                "memory_type": MemoryType.EPISODIC,
                "event_time": when,
                "metadata": md,
                "provenance": Provenance(
                    source="message",
                    extractor="turns",
                    message_ids=[turn.id] if turn.id else [],
                ),
            }
        )
    return out


# ---------------------------------------------------------------------------- rules
_STOP_VALUE = re.compile(
    r"\s+(?:and|but|because|since|so|which|where|who|though|although|while|as|when|with my|"
    r"for the|after|before|until)\s+.*$",
    re.I,
)
_TRAILING = re.compile(
    r"(?:\s+(?:now|anymore|any more|again|too|as well|actually|lately|these days|nowadays|"
    r"right now|currently|for good|permanently|recently|finally|though|haha|lol))+\s*$",
    re.I,
)
_HYPOTHETICAL = re.compile(
    r"\b(?:if|whether|would|might|could|maybe|perhaps|thinking|planning|plan|want|wanted|hope|"
    r"wish|dream|considering|imagine|pretend|unless|when|before|after|until|once|used)\b",
    re.I,
)
_PRONOUN_VALUE = re.compile(
    r"^(?:it|that|this|you|them|him|her|those|these|how|what|when|to think)\b", re.I
)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_LEAD = r"(?<![\w'])"
_I = r"I"
_ADV = r"(?:(?:just|recently|finally|now|currently|really|also|actually|absolutely|much|still)\s+)*"


@dataclass(frozen=True)
class _Rule:
    name: str
    pattern: re.Pattern[str]
    memory_type: MemoryType
    #: ``(who, groups) -> (content, subject, value)``
    build: Callable[[str, dict[str, str]], tuple[str, str | None, str]]
    pronoun_ok: bool = False


def _rx(body: str) -> re.Pattern[str]:
    return re.compile(_LEAD + body, re.I)


def _rules() -> list[_Rule]:
    def residence(who: str, g: dict[str, str]) -> tuple[str, str | None, str]:
        return f"{who} lives in {g['v']}", "residence", g["v"]

    def employer(who: str, g: dict[str, str]) -> tuple[str, str | None, str]:
        return f"{who} works at {g['v']}", "employer", g["v"]

    def occupation(who: str, g: dict[str, str]) -> tuple[str, str | None, str]:
        return f"{who} works as {g['v']}", "occupation", g["v"]

    def name(who: str, g: dict[str, str]) -> tuple[str, str | None, str]:
        return f"{who}'s name is {g['v']}", "name", g["v"]

    def age(who: str, g: dict[str, str]) -> tuple[str, str | None, str]:
        return f"{who} is {g['v']} years old", "age", g["v"]

    def allergy(who: str, g: dict[str, str]) -> tuple[str, str | None, str]:
        return f"{who} is allergic to {g['v']}", f"allergy: {g['v']}", "allergic"

    def diet(who: str, g: dict[str, str]) -> tuple[str, str | None, str]:
        return f"{who} is {g['v']}", "diet", g["v"]

    def favorite(who: str, g: dict[str, str]) -> tuple[str, str | None, str]:
        return f"{who}'s favorite {g['k']} is {g['v']}", f"favorite {g['k']}", g["v"]

    def prefer_over(who: str, g: dict[str, str]) -> tuple[str, str | None, str]:
        pair = " vs ".join(sorted([g["v"].casefold(), g["o"].casefold()]))
        return f"{who} prefers {g['v']} over {g['o']}", f"preference: {pair}", g["v"]

    def prefer(who: str, g: dict[str, str]) -> tuple[str, str | None, str]:
        return f"{who} prefers {g['v']}", None, g["v"]

    def likes(who: str, g: dict[str, str]) -> tuple[str, str | None, str]:
        return f"{who} likes {g['v']}", f"opinion: {g['v']}", "likes"

    def dislikes(who: str, g: dict[str, str]) -> tuple[str, str | None, str]:
        return f"{who} dislikes {g['v']}", f"opinion: {g['v']}", "dislikes"

    v = r"(?P<v>[^.,;!?]+)"
    return [
        _Rule("residence", _rx(rf"{_I}(?:'ve|\s+have)?\s+{_ADV}(?:moved|relocated)\s+(?:back\s+)?to\s+{v}"), MemoryType.FACT, residence),
        _Rule("residence", _rx(rf"{_I}\s+{_ADV}live\s+in\s+{v}"), MemoryType.FACT, residence),
        _Rule("residence", _rx(rf"{_I}(?:'m|\s+am)\s+{_ADV}(?:living|based)\s+in\s+{v}"), MemoryType.FACT, residence),
        _Rule("employer", _rx(rf"{_I}\s+{_ADV}work\s+(?:at|for)\s+{v}"), MemoryType.FACT, employer),
        _Rule("employer", _rx(rf"{_I}(?:'ve|\s+have)?\s+{_ADV}(?:started\s+(?:working|a\s+new\s+job)|got\s+a\s+(?:new\s+)?job)\s+(?:at|for|with)\s+{v}"), MemoryType.FACT, employer),
        _Rule("occupation", _rx(rf"{_I}\s+{_ADV}work\s+as\s+{v}"), MemoryType.FACT, occupation),
        _Rule("name", _rx(rf"my\s+name\s+is\s+{v}"), MemoryType.PROFILE, name),
        _Rule("age", _rx(rf"{_I}(?:'m|\s+am)\s+(?P<v>\d{{1,3}})\s+years?\s+old"), MemoryType.PROFILE, age),
        _Rule("allergy", _rx(rf"{_I}(?:'m|\s+am)\s+{_ADV}(?:severely\s+|very\s+|mildly\s+)?allergic\s+to\s+{v}"), MemoryType.FACT, allergy),
        _Rule("diet", _rx(rf"{_I}(?:'m|\s+am)\s+{_ADV}(?:an?\s+)?(?P<v>vegetarian|vegan|pescatarian|gluten[- ]free|lactose[- ]intolerant|kosher|halal)\b"), MemoryType.PREFERENCE, diet),
        _Rule("favorite", _rx(rf"my\s+favou?rite\s+(?P<k>[a-z][a-z ]{{1,30}}?)\s+is\s+{v}"), MemoryType.PREFERENCE, favorite),
        _Rule("prefer", _rx(rf"{_I}\s+{_ADV}prefer\s+(?P<v>[^.,;!?]+?)\s+(?:over|to|rather\s+than|instead\s+of)\s+(?P<o>[^.,;!?]+)"), MemoryType.PREFERENCE, prefer_over),
        _Rule("prefer", _rx(rf"{_I}\s+{_ADV}prefer\s+{v}"), MemoryType.PREFERENCE, prefer),
        _Rule("dislike", _rx(rf"{_I}\s+{_ADV}(?:hate|dislike|can't\s+stand|cannot\s+stand|don't\s+like|do\s+not\s+like|no\s+longer\s+like)\s+{v}"), MemoryType.PREFERENCE, dislikes),
        _Rule("like", _rx(rf"{_I}\s+{_ADV}(?:like|love|enjoy|adore)\s+{v}"), MemoryType.PREFERENCE, likes),
    ]  # fmt: skip


RULES = _rules()


def _clean(value: str, ref: datetime) -> str:
    value = value.strip()
    for hit in sorted(find_dates(value, ref), key=lambda h: -h.start):
        value = (value[: hit.start] + value[hit.end :]).strip()
    value = _STOP_VALUE.sub("", value)
    value = _TRAILING.sub("", value)
    value = re.sub(r"\s+", " ", value).strip(" '\"-")
    words = value.split()
    return " ".join(words[:8])


def statements(
    text: str, ref: datetime
) -> list[tuple[_Rule, str, str | None, str, datetime | None, str]]:
    """First-person fact/preference statements in ``text``:
    ``(rule, content_template_who, subject, value, event_time, sentence)`` with ``who`` left as
    ``{who}``. Used by :func:`rule_facts`."""
    out = []
    for sentence in _SENTENCES.split(text):
        sentence = sentence.strip()
        if not sentence or sentence.endswith("?"):
            continue
        for rule in RULES:
            m = rule.pattern.search(sentence)
            if m is None:
                continue
            if _HYPOTHETICAL.search(sentence[: m.start("v")]):
                break  # "if I moved to...", "I would like...": not a statement of fact
            groups = {k: _clean(v, ref) for k, v in m.groupdict().items() if v}
            if not groups.get("v") or ("o" in m.groupdict() and not groups.get("o")):
                break
            if not rule.pronoun_ok and _PRONOUN_VALUE.match(groups["v"]):
                break
            content, subject, value = rule.build("{who}", groups)
            dates = find_dates(sentence, ref)
            out.append((rule, content, subject, value, dates[0].when if dates else None, sentence))
            break
    return out


def rule_facts(turns: Sequence[Turn], context: dict[str, Any]) -> list[dict[str, Any]]:
    """First-person facts and preferences of the remembered speakers' ``fact_roles`` turns
    (default: ``("user",)``), as fact / preference / profile drafts."""
    fact_roles = context.get("fact_roles", FACT_ROLES)
    out: list[dict[str, Any]] = []
    for turn in turns:
        if turn.role not in fact_roles or not turn.content.strip():
            continue
        when = turn.timestamp or context["timestamp"]
        who = turn.name or "User"
        for rule, content, subject, value, event_time, sentence in statements(turn.content, when):
            md: dict[str, Any] = {
                "value": value,
                "entity": turn.name or "user",
                "statement": sentence,
            }
            if subject is not None:
                md["subject"] = subject
            out.append(
                {
                    "content": content.replace("{who}", who),
                    "memory_type": rule.memory_type,
                    "event_time": event_time or when,
                    "importance": 0.7,
                    "metadata": md,
                    "provenance": Provenance(
                        source="extraction",
                        extractor=f"rules:{rule.name}",
                        message_ids=[turn.id] if turn.id else [],
                    ),
                }
            )
    return out


# ---------------------------------------------------------------------------- LLM
#: The JSON an LLM extractor must return.
EXTRACTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["memories"],
    "properties": {
        "memories": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["content", "type"],
                "properties": {
                    "content": {"type": "string", "minLength": 1},
                    "type": {"enum": ["fact", "preference", "profile", "episodic"]},
                    "subject": {"type": ["string", "null"]},
                    "value": {"type": ["string", "null"]},
                    "when": {"type": ["string", "null"]},
                    "turn": {"type": ["integer", "null"]},
                    "importance": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                },
            },
        }
    },
}

PROMPT = """Extract long-term memories about the user from the conversation below.
Return ONLY a JSON object of this form (no prose, no code fences):
{{"memories": [{{"content": "<one self-contained statement>", "type": "fact|preference|profile|episodic",
"subject": "<what it is about, e.g. residence, favorite drink; or null>", "value": "<the value; or null>",
"when": "<when it happened, as said, e.g. 'last Friday'; or null>", "turn": <index of the turn it came from>,
"importance": <0..1>}}]}}
Return {{"memories": []}} when there is nothing worth remembering.

Conversation:
{conversation}
"""


class SchemaError(ValueError):
    """The model's output does not follow :data:`EXTRACTION_SCHEMA`."""


def parse_extraction(text: str) -> list[dict[str, Any]]:
    """Parse and schema-check an LLM's extraction output. Raises :class:`SchemaError`."""
    raw = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", raw, re.S)
    if fence:
        raw = fence.group(1).strip()
    start, end = raw.find("{"), raw.rfind("}")
    if start < 0 or end <= start:
        raise SchemaError("no JSON object in the output")
    try:
        data = json.loads(raw[start : end + 1])
    except json.JSONDecodeError as exc:
        raise SchemaError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("memories"), list):
        raise SchemaError('the output must be an object with a "memories" list')
    props = EXTRACTION_SCHEMA["properties"]["memories"]["items"]["properties"]
    out = []
    for i, m in enumerate(data["memories"]):
        where = f"memories[{i}]"
        if not isinstance(m, dict):
            raise SchemaError(f"{where} is not an object")
        unknown = set(m) - set(props)
        if unknown:
            raise SchemaError(f"{where} has unknown keys {sorted(unknown)}")
        if not isinstance(m.get("content"), str) or not m["content"].strip():
            raise SchemaError(f"{where}.content must be a non-empty string")
        if m.get("type") not in props["type"]["enum"]:
            raise SchemaError(f"{where}.type must be one of {props['type']['enum']}")
        for key in ("subject", "value", "when"):
            if m.get(key) is not None and not isinstance(m[key], str):
                raise SchemaError(f"{where}.{key} must be a string or null")
        turn = m.get("turn")
        if turn is not None and not is_int(turn):
            raise SchemaError(f"{where}.turn must be an integer or null")
        imp = m.get("importance")
        if imp is not None and (not is_number(imp) or not 0 <= imp <= 1):
            raise SchemaError(f"{where}.importance must be a number between 0 and 1")
        out.append(m)
    return out


class LLMExtractor:
    """Extract memories with a language model.

    Args:
        model: a LangChain chat model (or anything with ``.invoke(str)`` returning an object with
            ``.content``), or a ``str -> str`` callable.
        include_turns: also keep every turn as an episodic memory (default). When ``False``, the
            turns are stored only if the model's output cannot be used.
        prompt: the prompt template (``{conversation}`` is replaced).

    Example:
        >>> import json
        >>> fake = lambda prompt: json.dumps({"memories": [
        ...     {"content": "Ann lives in Oslo", "type": "fact", "subject": "residence",
        ...      "value": "Oslo", "turn": 0}]})
        >>> ex = LLMExtractor(fake)
        >>> from memcube.messages import Turn
        >>> from datetime import datetime, timezone
        >>> ctx = {"timestamp": datetime(2024, 1, 1, tzinfo=timezone.utc), "problems": []}
        >>> [d["content"] for d in ex([Turn("user", "I live in Oslo now")], ctx)]
        ['I live in Oslo now', 'Ann lives in Oslo']
    """

    def __init__(self, model: Any, *, include_turns: bool = True, prompt: str = PROMPT) -> None:
        if not (hasattr(model, "invoke") or callable(model)):
            raise TypeError("model must be a chat model with .invoke() or a str -> str callable")
        self.model = model
        self.include_turns = include_turns
        self.prompt = prompt
        self.name = f"llm:{getattr(model, 'model_name', None) or type(model).__name__}"

    def _call(self, prompt: str) -> str:
        if hasattr(self.model, "invoke"):
            out = self.model.invoke(prompt)
            content = getattr(out, "content", out)
            return content_text(content)
        out = self.model(prompt)
        if not isinstance(out, str):
            raise SchemaError(f"the model returned {type(out).__name__}, not a string")
        return out

    def __call__(self, turns: Sequence[Turn], context: dict[str, Any]) -> list[dict[str, Any]]:
        roles = context.get("roles", REMEMBERED_ROLES)
        kept = [t for t in turns if t.role in roles and t.content.strip()]
        drafts = turn_memories(turns, context) if self.include_turns else []
        if not kept:
            return drafts
        lines = []
        for i, t in enumerate(kept):
            when = (t.timestamp or context["timestamp"]).isoformat()
            lines.append(f"[{i}] ({when}) {t.name or t.role}: {t.content}")
        output: str | None = None
        try:
            output = self._call(self.prompt.format(conversation="\n".join(lines)))
            parsed = parse_extraction(output)
        except Exception as exc:  # a failing or malformed model: keep the turns, report it
            context.setdefault("problems", []).append(
                ExtractionProblem(
                    extractor=self.name,
                    message=f"{type(exc).__name__}: {exc}",
                    output=output[:2000] if output else None,
                    message_ids=tuple(t.id for t in kept if t.id),
                )
            )
            return drafts or turn_memories(turns, context)
        for m in parsed:
            idx = m.get("turn")
            turn = kept[idx] if isinstance(idx, int) and 0 <= idx < len(kept) else kept[-1]
            ref = turn.timestamp or context["timestamp"]
            event_time = parse_when(m["when"], ref) if m.get("when") else None
            md: dict[str, Any] = {"entity": turn.name or "user"}
            if m.get("subject"):
                md["subject"] = m["subject"]
            if m.get("value"):
                md["value"] = m["value"]
            if m.get("when"):
                md["when"] = m["when"]
            drafts.append(
                {
                    "content": m["content"].strip(),
                    "memory_type": MemoryType(m["type"]),
                    "event_time": event_time or ref,
                    "importance": (
                        float(m["importance"]) if m.get("importance") is not None else 0.7
                    ),
                    "metadata": md,
                    "provenance": Provenance(
                        source="extraction",
                        extractor=self.name,
                        message_ids=[turn.id] if turn.id else [],
                    ),
                }
            )
        return drafts


__all__ = [
    "EXTRACTION_SCHEMA",
    "FACT_ROLES",
    "REMEMBERED_ROLES",
    "ExtractionProblem",
    "LLMExtractor",
    "SchemaError",
    "parse_extraction",
    "rule_facts",
    "statements",
    "turn_memories",
]
