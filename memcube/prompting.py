"""How memories are rendered into a prompt. Both adapters call this; neither renders its own."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from memcube.items import MemoryItem

#: Counts tokens approximately (about four characters a token for English) when no tokenizer is
#: given; budgets are a guard against overflowing a context window, not an exact science.
TokenCounter = Callable[[str], int]

DEFAULT_HEADER = "Relevant long-term memories about the user (most relevant first):"


def approx_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def memory_line(item: MemoryItem) -> str:
    when = item.event_time or item.created_at
    return f"- [{when.date().isoformat()}] {item.content}"


def render_memories(
    items: Sequence[MemoryItem],
    *,
    header: str = DEFAULT_HEADER,
    token_budget: int | None = None,
    count_tokens: TokenCounter = approx_tokens,
) -> str:
    """Render memories as a block for a system prompt, dropping the tail that exceeds the budget.

    Example:
        >>> from memcube.items import MemoryItem
        >>> print(render_memories([MemoryItem(content="likes tea", user_id="u")]).splitlines()[0])
        Relevant long-term memories about the user (most relevant first):
    """
    if not items:
        return ""
    lines = [header]
    used = count_tokens(header)
    for item in items:
        line = memory_line(item)
        cost = count_tokens(line)
        if token_budget is not None and used + cost > token_budget:
            break
        lines.append(line)
        used += cost
    return "\n".join(lines) if len(lines) > 1 else ""


def fit_to_budget(
    items: Sequence[MemoryItem], token_budget: int, count_tokens: TokenCounter = approx_tokens
) -> list[MemoryItem]:
    """The longest prefix of ``items`` whose rendered lines fit in ``token_budget`` tokens."""
    kept: list[MemoryItem] = []
    used = count_tokens(DEFAULT_HEADER)
    for item in items:
        cost = count_tokens(memory_line(item))
        if used + cost > token_budget:
            break
        kept.append(item)
        used += cost
    return kept
