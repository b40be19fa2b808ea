"""Extraction with a language model: the prompt, the JSON schema its answer must follow, and
:class:`LLMExtractor`.

The prompt (:data:`PROMPT`) asks for one memory per fact, each a complete sentence naming its
subject; endings ("I no longer work at Google", "I quit smoking") as memories with the same
``subject`` as the fact they end and a different ``value``, so they supersede it (see
:mod:`memcube.lifecycle`); the date phrase of each fact's own clause; facts about other people
under that person's ``entity``; and never the assistant's words as the user's facts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from memcube.checks import is_int, is_number
from memcube.dates import parse_when
from memcube.extractors.turns import REMEMBERED_ROLES, ExtractionProblem, turn_memories
from memcube.items import MemoryType, Provenance
from memcube.messages import Turn, content_text

PROMPT = """Extract long-term memories about the user from the conversation below. Each line is
one turn: [turn index] (time the turn was sent) speaker: text.

Return ONLY a JSON object of this form (no prose, no code fences):
{{"memories": [{{"content": "<one complete sentence>", "type": "fact|preference|profile|episodic",
"subject": "<what it is about; or null>", "value": "<the value; or null>",
"entity": "<who it is about: null for the user, else the person, e.g. 'sister Chidinma'>",
"when": "<the date phrase of this fact's own clause, as said; or null>",
"turn": <index of the turn it came from>, "importance": <0..1>}}]}}
Return {{"memories": []}} when there is nothing worth remembering.

Rules:
1. One memory per fact. Split a message that states several facts into one memory each:
   "I'm allergic to peanuts and I work as a nurse in Porto" gives "User is allergic to peanuts"
   and "User works as a nurse in Porto".
2. Write every memory as a complete, self-contained sentence that names who it is about
   ("User lives in Lisbon", not "Lisbon" or "lives in Lisbon for a job at a"). Keep only what was
   said; add nothing.
3. Subjects are short and stable, so that a new value replaces the old one: residence, employer,
   occupation, relationship, diet, age, name, phone number, car, "allergy: peanuts",
   "habit: smoking", "opinion: jazz", "favorite color".
4. Changes and endings are facts too. When the user says something stopped or is no longer true,
   emit a memory with the SAME subject as the fact it ends and a value different from it:
   "I no longer work at Google" -> {{"content": "User no longer works at Google", "type": "fact",
   "subject": "employer", "value": "not Google"}}; "I quit smoking" -> "User quit smoking"
   (subject "habit: smoking", value "quit"); "I'm not vegetarian anymore" -> "User is no longer
   vegetarian" (subject "diet"); "Sam and I broke up" -> "User broke up with Sam" (subject
   "relationship"); "I moved out of Leeds" -> "User no longer lives in Leeds" (subject "residence").
5. Dates belong to one fact: "when" is the date phrase in that fact's own clause ("last spring",
   "since 2019", "for six years"), or null. Never give a fact the date of another clause.
6. Facts about other people ("my sister Chidinma lives in Manchester") name that person in
   "entity" and in the content ("User's sister Chidinma lives in Manchester"); they are never the
   user's own residence, job or age.
7. Only the user's own statements are facts about the user. Never turn what the assistant said
   into a fact about the user; from an assistant turn keep only what the user confirmed, citing
   the user's turn.
8. Skip questions, hypotheticals and plans ("if I moved to Paris", "I might quit"), jokes, and
   what other people say about the user ("my friend says I'm stubborn").
9. type: "fact" for facts about the user's life, "preference" for likes, dislikes, diets and
   favourites, "profile" for name, age and contact details, "episodic" for events worth keeping.

Conversation:
{conversation}
"""

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
                    "entity": {"type": ["string", "null"]},
                    "turn": {"type": ["integer", "null"]},
                    "importance": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
                },
            },
        }
    },
}


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
        for key in ("subject", "value", "when", "entity"):
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
            md: dict[str, Any] = {"entity": _entity(m.get("entity"), turn.name)}
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


def _entity(said: Any, speaker: str | None) -> str:
    """The ``entity`` of a memory: the speaker, unless the model named someone else."""
    me = {"", "user", "the user", "me", "i", "myself", (speaker or "").casefold()}
    if isinstance(said, str) and " ".join(said.split()).casefold() not in me:
        return " ".join(said.split())
    return speaker or "user"


__all__ = [
    "EXTRACTION_SCHEMA",
    "PROMPT",
    "LLMExtractor",
    "SchemaError",
    "parse_extraction",
]
