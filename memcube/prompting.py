"""How memories are rendered into a prompt. Both adapters call this; neither renders its own."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence

from memcube.items import MemoryItem

#: Counts tokens approximately (about four characters a token for English) when no tokenizer is
#: given; budgets are a guard against overflowing a context window, not an exact science.
TokenCounter = Callable[[str], int]

DEFAULT_HEADER = "Relevant long-term memories, most relevant first:"


def approx_tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def speaker(item: MemoryItem, reader: str | None = None) -> str:
    """Who a memory's words belong to, as a prompt line names them (``""``: the reader's own
    saved memory). ``reader`` is the user the prompt is for; memories of another owner (shared
    with the reader) always name that owner.

    Example:
        >>> from memcube.items import MemoryItem
        >>> turn = MemoryItem(content="Try the ramen", user_id="ann", metadata={"role": "assistant"})
        >>> speaker(turn, "ann"), speaker(turn, "bob")
        ('assistant said', 'assistant said to ann (shared with you)')
        >>> speaker(MemoryItem(content="I run", user_id="ann", metadata={"role": "user"}), "bob")
        'ann (shared with you) said'
    """
    role = item.metadata.get("role")
    name = item.metadata.get("speaker")
    shared = reader is not None and item.user_id != reader
    published = publisher_label(item)
    via = f"published by {published}, " if published else ""
    owner = f"{item.user_id} ({via}shared with you)"
    if role == "assistant":
        return f"assistant said to {owner}" if shared else "assistant said"
    if isinstance(role, str) and role and role != "user":
        return f"{role} said to {owner}" if shared else f"{role} said"
    if role == "user":
        if shared:
            return f"{owner} said"
        return f"{name} (user) said" if isinstance(name, str) and name else "user said"
    if shared:
        return f"{item.user_id}'s memory ({via}shared with you)"
    return f"memory published by {published}" if published else ""


#: Key of ``item.provenance.detail`` under which a memory pulled from a registry names its
#: publisher (``{"key_id": ..., "name": ..., "channel": ..., "digest": ...}``).
PUBLISHER_DETAIL = "publisher"


def publisher_label(item: MemoryItem) -> str | None:
    """The publisher a memory pulled from a registry came from (its name, else its key id), or
    ``None`` for memories that were not published. See :mod:`memcube.marketplace`.

    Example:
        >>> from memcube.items import MemoryItem, Provenance
        >>> kb = MemoryItem(content="VPN: use wg0", user_id="team-kb", provenance=Provenance(
        ...     detail={"publisher": {"key_id": "1a2b3c4d5e6f7a8b", "name": "IT desk"}}))
        >>> publisher_label(kb), speaker(kb, "ana")
        ('IT desk', "team-kb's memory (published by IT desk, shared with you)")
    """
    mark = item.provenance.detail.get(PUBLISHER_DETAIL)
    if not isinstance(mark, dict):
        return None
    name, kid = mark.get("name"), mark.get("key_id")
    if isinstance(name, str) and name:
        return name
    return f"key {kid}" if isinstance(kid, str) and kid else None


def memory_line(item: MemoryItem, reader: str | None = None) -> str:
    """One prompt line: ``- [date] <who>: <content>`` (see :func:`speaker`)."""
    when = item.event_time or item.created_at
    who = speaker(item, reader)
    content = item.content
    if reader is not None and item.user_id != reader and _USER_WORD.match(content):
        # The reader writes the speaker of a fact as "User"; to another reader that is the owner.
        content = _USER_WORD.sub(item.user_id, content, count=1)
    return f"- [{when.date().isoformat()}] {who + ': ' if who else ''}{content}"


_USER_WORD = re.compile(r"^User(?=\b)")


def render_memories(
    items: Sequence[MemoryItem],
    *,
    header: str = DEFAULT_HEADER,
    token_budget: int | None = None,
    count_tokens: TokenCounter = approx_tokens,
    reader: str | None = None,
) -> str:
    """Render memories as a block for a system prompt, dropping the tail that exceeds the budget.
    ``reader``: the user the prompt is for (memories of other owners name them).

    Example:
        >>> from memcube.items import MemoryItem
        >>> print(render_memories([MemoryItem(content="likes tea", user_id="u")]).splitlines()[0])
        Relevant long-term memories, most relevant first:
    """
    if not items:
        return ""
    lines = [header]
    used = count_tokens(header)
    for item in items:
        line = memory_line(item, reader)
        cost = count_tokens(line)
        if token_budget is not None and used + cost > token_budget:
            break
        lines.append(line)
        used += cost
    return "\n".join(lines) if len(lines) > 1 else ""


class MemoryBlock(str):
    """The memory text for a prompt (a ``str``), with the memories it holds in :attr:`items`
    (for citing and inspection), as :meth:`memcube.MemCube.memory_block` returns it."""

    items: tuple[MemoryItem, ...]

    def __new__(cls, text: str, items: Sequence[MemoryItem] = ()) -> MemoryBlock:
        block = super().__new__(cls, text)
        block.items = tuple(items) if text else ()
        return block


def fit_to_budget(
    items: Sequence[MemoryItem],
    token_budget: int,
    count_tokens: TokenCounter = approx_tokens,
    reader: str | None = None,
) -> list[MemoryItem]:
    """The longest prefix of ``items`` whose rendered lines fit in ``token_budget`` tokens."""
    kept: list[MemoryItem] = []
    used = count_tokens(DEFAULT_HEADER)
    for item in items:
        cost = count_tokens(memory_line(item, reader))
        if used + cost > token_budget:
            break
        kept.append(item)
        used += cost
    return kept
