"""Chat messages from any framework, normalized without importing any framework.

LangChain messages (``.type``/``.content``), LlamaIndex ``ChatMessage`` (``.role``/``.content``)
and plain ``{"role", "content"}`` dicts all become :class:`Turn`.

Example:
    >>> turn = to_turn({"role": "human", "content": "I live in Oslo"})
    >>> turn.role, turn.content
    ('user', 'I live in Oslo')
    >>> content_text([{"type": "text", "text": "hi"}, {"type": "image_url"}, "there"])
    'hi\\nthere'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from memcube.checks import is_number
from memcube.errors import InvalidInputError
from memcube.items import as_utc

__all__ = ["Turn", "content_text", "to_turn"]

_ROLE_ALIASES = {"human": "user", "ai": "assistant", "chatbot": "assistant", "model": "assistant"}


@dataclass
class Turn:
    """One chat message, framework-free: a lowercase role (``user``, ``assistant``, ...) and
    its text, with the speaker's name, message id and time when the message carried them."""

    role: str
    content: str
    name: str | None = None
    id: str | None = None
    timestamp: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def content_text(content: Any) -> str:
    """The text of a message's content: strings as they are, the text parts of multimodal
    content blocks (strings, ``{"type": "text", "text": ...}`` dicts, objects with a ``text``
    string) joined by newlines, ``""`` for ``None`` and ``str()`` of anything else."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal blocks: keep the text parts
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") == "text":
                parts.append(str(block.get("text", "")))
            elif hasattr(block, "text") and isinstance(block.text, str):
                parts.append(block.text)
        return "\n".join(p for p in parts if p)
    return str(content)


def _timestamp(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return as_utc(value)
    if is_number(value):
        return as_utc(datetime.fromtimestamp(float(value)).astimezone())
    if isinstance(value, str) and value:
        try:
            return as_utc(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


def to_turn(message: Any) -> Turn:
    """Normalize one message. Raises InvalidInputError for anything unrecognizable."""
    if isinstance(message, Turn):
        return message
    if isinstance(message, dict):
        role = message.get("role") or message.get("type")
        content = message.get("content")
        meta = message.get("metadata") or {}
        name = message.get("name") or message.get("speaker")
        mid = message.get("id")
        stamp = (
            message.get("timestamp")
            or message.get("time")
            or (meta.get("timestamp") if isinstance(meta, dict) else None)
        )
    elif hasattr(message, "type") and hasattr(message, "content") and not hasattr(message, "role"):
        role = message.type  # LangChain BaseMessage
        content = message.content
        name = getattr(message, "name", None)
        mid = getattr(message, "id", None)
        kw = getattr(message, "additional_kwargs", {}) or {}
        meta = getattr(message, "response_metadata", {}) or {}
        stamp = kw.get("timestamp") or meta.get("timestamp")
    elif hasattr(message, "role"):
        role = getattr(message.role, "value", message.role)  # LlamaIndex ChatMessage
        content = getattr(message, "content", None)
        kw = getattr(message, "additional_kwargs", {}) or {}
        name = kw.get("name")
        mid = kw.get("id")
        stamp = kw.get("timestamp")
    else:
        raise InvalidInputError(
            f"cannot read a chat message from {type(message).__name__}; pass LangChain or "
            "LlamaIndex messages, or dicts with 'role' and 'content'."
        )
    if not isinstance(role, str) or not role:
        raise InvalidInputError(f"message has no role: {message!r}")
    role = _ROLE_ALIASES.get(role.lower(), role.lower())
    return Turn(
        role=role,
        content=content_text(content),
        name=name if isinstance(name, str) else None,
        id=str(mid) if mid is not None else None,
        timestamp=_timestamp(stamp),
    )
