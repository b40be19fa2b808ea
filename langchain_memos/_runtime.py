"""Where a LangGraph run carries the current user: the one rule the middleware and the memory
tools share.

A run names its user in its runtime context (``agent.invoke(..., context=Ctx(user_id=...))``,
an attribute or a mapping key) or, for graphs without a context schema, in its config
(``{"configurable": {"user_id": ...}}``, which only a tool's ``ToolRuntime`` carries).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from memcube.errors import InvalidUserIdError


class MissingUserIdError(InvalidUserIdError):
    """No user id was given at construction and the run carries none (neither in its context
    nor in its config's ``configurable``); nothing was read or written."""


def _lookup(holder: Any, key: str) -> Any:
    if isinstance(holder, Mapping):
        return holder.get(key)
    if holder is None:
        return None
    return getattr(holder, key, None)


def runtime_user_id(runtime: Any, key: str = "user_id") -> Any:
    """The user id a LangGraph runtime carries under ``key``, or ``None``.

    Looks in ``runtime.context`` (attribute ``key`` of a dataclass or model, or key ``key`` of a
    mapping), then in ``runtime.config["configurable"]`` (a ``ToolRuntime`` has a config; a
    node's or middleware's ``Runtime`` has none). The value is returned unchecked.

    Example:
        >>> from dataclasses import dataclass
        >>> from types import SimpleNamespace
        >>> @dataclass
        ... class Ctx:
        ...     user_id: str
        >>> runtime_user_id(SimpleNamespace(context=Ctx("alice")))
        'alice'
        >>> runtime_user_id(SimpleNamespace(context=None, config={"configurable": {"user_id": "bo"}}))
        'bo'
        >>> runtime_user_id(None) is None
        True
    """
    value = _lookup(getattr(runtime, "context", None), key)
    if value is None:
        value = _lookup(_lookup(getattr(runtime, "config", None), "configurable"), key)
    return value
