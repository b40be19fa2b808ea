"""Translation helpers shared by the LlamaIndex adapters.

Nothing here selects, scores or renders memories: that is :mod:`memcube`'s job. These helpers only
turn LlamaIndex objects (messages, tokenizers, metadata filters) into the arguments the cube takes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from memcube import MemCube
from memcube.checks import is_int
from memcube.errors import InvalidFilterError, InvalidInputError
from memcube.items import check_scope_id

#: LlamaIndex filter operators and the cube filter operators they mean.
_OPERATORS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
}


def check_cube(cube: Any) -> MemCube:
    """Return ``cube`` if it is a :class:`~memcube.MemCube`, else raise a typed error."""
    if not isinstance(cube, MemCube):
        raise InvalidInputError(
            f"cube must be a memcube.MemCube (open one with MemCube.open(path)), got "
            f"{type(cube).__name__}."
        )
    return cube


def check_user(user_id: Any) -> str:
    """Validate the user every read and write is scoped to (the cube's own rule)."""
    return check_scope_id(user_id, "user_id", required=True)  # type: ignore[return-value]


def check_budget(value: Any, what: str, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer >= ``minimum`` (not a bool), else raise a typed
    error naming ``what``."""
    if not is_int(value) or value < minimum:
        raise InvalidInputError(f"{what} must be an integer >= {minimum}, got {value!r}.")
    return value


def message_text(message: ChatMessage) -> str:
    """The text of a message (its text blocks joined), or ``""``."""
    text = message.content
    return text if isinstance(text, str) else ""


def last_user_text(messages: Sequence[ChatMessage]) -> str | None:
    """The text of the latest user message that has text: what recall is about."""
    for message in reversed(messages):
        if message.role == MessageRole.USER:
            text = message_text(message)
            if text.strip():
                return text
    return None


def token_counter(tokenizer_fn: Callable[[str], list[Any]]) -> Callable[[str], int]:
    """Adapt a LlamaIndex tokenizer (text -> tokens) to the cube's counter (text -> count), so
    the cube's budgets are measured in the same tokens as the chat buffer."""

    def count(text: str) -> int:
        return len(tokenizer_fn(text))

    return count


def visible_texts(messages: Iterable[ChatMessage]) -> list[str]:
    """The texts of the messages already in the prompt, for ``working_memory(exclude_texts=)``."""
    return [message_text(m) for m in messages]


def translate_metadata_filters(
    filters: MetadataFilters | dict[str, Any] | None,
) -> dict[str, Any] | None:
    """Turn LlamaIndex :class:`MetadataFilters` into the cube's filter dict (dicts pass through).

    Keys name memory header fields (``memory_type``, ``session_id``...) or free metadata keys,
    exactly as in :meth:`memcube.MemCube.search`.

    Raises:
        InvalidFilterError: an operator or condition the cube has no equivalent for.
    """
    if filters is None or isinstance(filters, dict):
        return filters
    if not isinstance(filters, MetadataFilters):
        raise InvalidFilterError(
            f"filters must be a dict or llama_index MetadataFilters, got {type(filters).__name__}."
        )
    clauses: list[dict[str, Any]] = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            sub = translate_metadata_filters(f)
            if sub:
                clauses.append(sub)
            continue
        if not isinstance(f, MetadataFilter):  # ExactMatchFilter (legacy)
            clauses.append({f.key: {"$eq": f.value}})
            continue
        op = _OPERATORS.get(f.operator)
        if op is None:
            raise InvalidFilterError(
                f"filter operator {f.operator.value!r} on {f.key!r} is not supported by MemCube; "
                f"use one of {sorted(o.value for o in _OPERATORS)}."
            )
        value = list(f.value) if isinstance(f.value, (list, tuple)) else f.value
        clauses.append({f.key: {op: value}})
    if not clauses:
        return None
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.NOT:
        raise InvalidFilterError("the 'not' filter condition is not supported by MemCube.")
    if len(clauses) == 1:
        return clauses[0]
    return {"$and" if condition == FilterCondition.AND else "$or": clauses}
