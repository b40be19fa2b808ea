"""Conversation context for turn memories.

A turn is often only understandable with the turn before it: "A sunset!" answers "What did you
paint?". :func:`attach_context` stores the previous turn(s) of the same session in each memory's
``metadata["context"]``; :meth:`memcube.plaintext.retrieval.Retriever.index_text` then embeds and
BM25-indexes the memory together with that context, while the memory's content stays the turn
itself. One embedding per memory, no extra model pass.

Example:
    >>> drafts = [
    ...     {"content": "What did you paint?", "metadata": {"speaker": "Ann"}, "session_id": "s1"},
    ...     {"content": "A sunset!", "metadata": {"speaker": "Bo"}, "session_id": "s1"},
    ... ]
    >>> attach_context(drafts)[1]["metadata"]["context"]
    'Ann: What did you paint?'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memcube.items import MemoryItem
from memcube.plaintext.retrieval import CONTEXT_KEY, SPEAKER_KEY

#: Longest text kept from one neighbouring turn.
MAX_TURN_CHARS = 400


def _get(draft: MemoryItem | dict[str, Any], name: str) -> Any:
    return getattr(draft, name) if isinstance(draft, MemoryItem) else draft.get(name)


def _line(draft: MemoryItem | dict[str, Any]) -> str:
    content = str(_get(draft, "content") or "").strip()[:MAX_TURN_CHARS]
    speaker = (_get(draft, "metadata") or {}).get(SPEAKER_KEY)
    return f"{speaker}: {content}" if isinstance(speaker, str) and speaker else content


def attach_context(
    drafts: Sequence[MemoryItem | dict[str, Any]], *, window: int = 1, key: str = CONTEXT_KEY
) -> list[MemoryItem | dict[str, Any]]:
    """Return the drafts (in order) with the ``window`` previous turns of the same session put in
    ``metadata[key]``. Drafts are dicts for :meth:`MemCube.add_many` or unsaved
    :class:`MemoryItem` objects; they are copied, not changed. A draft that already has context
    keeps it."""
    out: list[MemoryItem | dict[str, Any]] = []
    for i, draft in enumerate(drafts):
        session = _get(draft, "session_id")
        before: list[str] = []
        j = i - 1
        while j >= 0 and len(before) < window and _get(drafts[j], "session_id") == session:
            before.append(_line(drafts[j]))
            j -= 1
        metadata = dict(_get(draft, "metadata") or {})
        if before and key not in metadata:
            metadata[key] = "\n".join(reversed(before))
        if isinstance(draft, MemoryItem):
            out.append(draft.model_copy(update={"metadata": metadata}))
        else:
            out.append({**draft, "metadata": metadata})
    return out
