"""The scheduler: decides which memories sit in a prompt's working memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from memcube.items import MemoryItem
from memcube.prompting import TokenCounter, approx_tokens, fit_to_budget

if TYPE_CHECKING:
    from memcube.cube import MemCube


@dataclass
class SchedulerConfig:
    """Attributes:
    candidates: how many search hits are considered for working memory.
    """

    candidates: int = 20


def working_memory(
    cube: MemCube,
    query: str,
    *,
    user_id: str,
    token_budget: int = 512,
    config: SchedulerConfig | None = None,
    count_tokens: TokenCounter = approx_tokens,
    **search_kwargs: Any,
) -> list[MemoryItem]:
    """The memories for a prompt about ``query``: most relevant first, within ``token_budget``."""
    cfg = config or SchedulerConfig()
    hits = cube.search(query, user_id=user_id, k=cfg.candidates, **search_kwargs)
    return fit_to_budget([h.item for h in hits], token_budget, count_tokens)
