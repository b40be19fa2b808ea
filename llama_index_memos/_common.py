"""Translation helpers shared by the LlamaIndex adapters.

Nothing here selects, scores or renders memories: that is :mod:`memcube`'s job. These helpers only
turn LlamaIndex objects (messages, tokenizers, metadata filters) into the arguments the cube takes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, MessageRole, ToolCallBlock
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


# ------------------------------------------------------------------------------ chat windows
#: Roles that instruct the model rather than take a turn in the conversation.
INSTRUCTION_ROLES = frozenset({MessageRole.SYSTEM, MessageRole.DEVELOPER})
#: Roles of tool results: each answers a tool call of an earlier assistant message.
TOOL_RESULT_ROLES = frozenset({MessageRole.TOOL, MessageRole.FUNCTION})
#: Roles of the model's own turns (providers name it differently), which carry tool calls.
ASSISTANT_ROLES = frozenset({MessageRole.ASSISTANT, MessageRole.CHATBOT, MessageRole.MODEL})

#: Keys under which LLM integrations store the id of a tool call (OpenAI, Anthropic and most
#: others: ``id``; Bedrock Converse: ``toolUseId``).
_CALL_ID_KEYS = ("id", "tool_call_id", "toolUseId", "call_id")


def _call_id(call: Any) -> str | None:
    """The id of one entry of ``additional_kwargs["tool_calls"]`` (a dict or a provider's object)."""
    value = None
    if isinstance(call, dict):
        value = next((call[k] for k in _CALL_ID_KEYS if call.get(k)), None)
    else:
        value = next((getattr(call, k) for k in _CALL_ID_KEYS if getattr(call, k, None)), None)
    return value if isinstance(value, str) else None


def tool_calls(message: ChatMessage) -> list[str | None] | None:
    """The ids of the tool calls an assistant message makes (``None`` for a call without an id),
    or ``None`` if it makes none.

    LlamaIndex keeps calls in ``ToolCallBlock`` blocks, or (most LLM integrations) in
    ``additional_kwargs["tool_calls"]``; a legacy ``function_call`` is a call without an id.
    """
    if message.role not in ASSISTANT_ROLES:
        return None
    calls: list[str | None] = [
        block.tool_call_id for block in message.blocks if isinstance(block, ToolCallBlock)
    ]
    extra = message.additional_kwargs.get("tool_calls")
    if isinstance(extra, (list, tuple)):
        calls.extend(_call_id(call) for call in extra)
    if message.additional_kwargs.get("function_call"):
        calls.append(None)
    return calls or None


def answered_tool_results(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    """``messages`` without the tool results whose tool call is not among them.

    A tool result (role ``tool`` or ``function``) is kept when an earlier assistant message in
    ``messages`` makes the call its ``additional_kwargs["tool_call_id"]`` names, or, for results
    without an id or calls without one, when it follows such an assistant message directly (after
    that message's other results). Chat APIs refuse a result whose call is not in the prompt.
    """
    kept: list[ChatMessage] = []
    known: set[str] = set()  # ids of the calls made so far
    pending: list[str | None] | None = None  # calls of the assistant message the results follow
    for message in messages:
        if message.role in TOOL_RESULT_ROLES:
            result_id = message.additional_kwargs.get("tool_call_id")
            result_id = result_id if isinstance(result_id, str) and result_id else None
            follows_call = pending is not None and (result_id is None or None in pending)
            if (result_id is not None and result_id in known) or follows_call:
                kept.append(message)
            continue
        calls = tool_calls(message)
        known.update(c for c in calls or () if c is not None)
        pending = calls
        kept.append(message)
    return kept


def _window_from(history: Sequence[ChatMessage], start: int) -> list[ChatMessage]:
    """``history[start:]`` as a window: its instruction messages that come before its first user
    message first, then the conversation from that user message on, without orphaned tool
    results. Everything else before the first user message is dropped."""
    first_user = next(
        (i for i in range(start, len(history)) if history[i].role == MessageRole.USER),
        len(history),
    )
    head = [m for m in history[start:first_user] if m.role in INSTRUCTION_ROLES]
    return [*head, *answered_tool_results(history[first_user:])]


def messages_token_counter(
    tokenizer_fn: Callable[[str], list[Any]],
) -> Callable[[Sequence[ChatMessage]], int]:
    """Count the tokens of a list of messages the way LlamaIndex's chat buffers do (their texts
    joined by spaces), so ``token_limit`` means what it means for ``ChatMemoryBuffer``."""

    def count(messages: Sequence[ChatMessage]) -> int:
        if not messages:
            return 0
        return len(tokenizer_fn(" ".join(message_text(m) for m in messages)))

    return count


def chat_window(
    history: Sequence[ChatMessage],
    token_budget: int,
    count_tokens: Callable[[Sequence[ChatMessage]], int],
) -> list[ChatMessage]:
    """The most recent part of ``history`` that fits ``token_budget`` and that chat APIs accept.

    * It starts with the instruction (system/developer) messages that precede its first user
      message, then the conversation from that user message on: never with an assistant message
      or a tool result. Other messages before the first user message are dropped.
    * It holds no tool result without the assistant message that makes its call
      (:func:`answered_tool_results`).
    * It is cut only at user messages (or before an instruction message), oldest first, so
      whole turns go; it grows back as far as the budget allows.
    * The latest user message and everything after it (the current turn, tool calls included)
      are always kept, even over budget: without them the model would answer a question it
      cannot see, and an over-long prompt fails loudly at the LLM instead (LlamaIndex's
      ``Memory`` keeps one whole turn the same way). With no user message at all, the window
      holds only the instruction messages that fit.

    Example:
        >>> from llama_index.core.llms import ChatMessage
        >>> history = [ChatMessage(role="user", content="hi there"),
        ...            ChatMessage(role="assistant", content="hello, how can I help"),
        ...            ChatMessage(role="user", content="a long question " * 5),
        ...            ChatMessage(role="assistant", content="ok")]
        >>> count = messages_token_counter(str.split)
        >>> [m.role.value for m in chat_window(history, 40, count)]
        ['user', 'assistant', 'user', 'assistant']
        >>> [m.role.value for m in chat_window(history, 17, count)]  # no room for turn one
        ['user', 'assistant']
        >>> [m.role.value for m in chat_window(history, 2, count)]  # the current turn stays
        ['user', 'assistant']
    """
    history = list(history)
    users = [i for i, m in enumerate(history) if m.role == MessageRole.USER]
    if users:
        top = users[-1]
        window = _window_from(history, top)  # kept whatever its size
    else:
        top = len(history)
        window = []
    for start in range(top - 1, -1, -1):
        if history[start].role != MessageRole.USER and history[start].role not in INSTRUCTION_ROLES:
            continue  # starting here gives the same window as starting at the next message
        candidate = _window_from(history, start)
        if count_tokens(candidate) > token_budget:
            break
        window = candidate
    return window


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
