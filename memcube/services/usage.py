"""Access counting: searches and working memory report the memories they returned; the counts
are buffered here and written back in the background.

Usage is advisory: counts not yet written when a process dies are lost, memories never are.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from memcube.items import LifecycleState, MemoryItem, utcnow
from memcube.plaintext.repository import ItemRepository
from memcube.scheduler import SchedulerConfig, should_promote

log = logging.getLogger(__name__)

#: Searches buffer access counts in memory and write them back after this many hits, at most
#: once per USAGE_FLUSH_SECONDS, or at once when USAGE_MAX_PENDING memories are waiting. Each
#: write-back rewrites every record it counts, which competes with adds for Chroma: at 40
#: searches/s, flushing every 256 hits rewrote up to 10 records per add.
USAGE_FLUSH_EVERY = 256
USAGE_FLUSH_SECONDS = 10.0
USAGE_MAX_PENDING = 4096


class UsageCounter:
    """Buffered access counts of one cube (a :class:`~memcube.ports.UsageSink`).

    Args:
        repository: where counts are written back.
        config: the scheduler policy that promotes memories used often.
        is_closed: tells a background write-back that the cube has closed meanwhile.
    """

    def __init__(
        self,
        repository: ItemRepository,
        config: SchedulerConfig,
        *,
        is_closed: Callable[[], bool] = lambda: False,
    ) -> None:
        self.repository = repository
        self.config = config
        self.is_closed = is_closed
        self.pending: dict[str, tuple[int, datetime]] = {}
        self.flushing = False
        self.pending_hits = 0
        self.flushed_at = time.monotonic()
        # Its own lock: a search must not wait behind a flush (or any write) holding the
        # repository's lock.
        self._lock = threading.Lock()

    def record_usage(self, ids: Sequence[str]) -> None:
        """Count ``ids`` as accessed now; may start a write-back in the background."""
        if not ids:
            return
        now = utcnow()
        with self._lock:
            for i in ids:
                n, _ = self.pending.get(i, (0, now))
                self.pending[i] = (n + 1, now)
            self.pending_hits += len(ids)
            due = (
                self.pending_hits >= USAGE_FLUSH_EVERY
                and time.monotonic() - self.flushed_at >= USAGE_FLUSH_SECONDS
            )
            if self.flushing or not (due or len(self.pending) >= USAGE_MAX_PENDING):
                return
            self.flushing = True
        # Off the search path: a flush rewrites hundreds of records (~0.5 s at 256 hits), which
        # would otherwise land on one unlucky search.
        threading.Thread(target=self._flush_in_background, daemon=True).start()

    def _flush_in_background(self) -> None:
        try:
            if not self.is_closed():
                self.flush_usage()
        except Exception:  # usage is advisory; a failed flush must not take a search down
            log.warning("flushing usage counts failed", exc_info=True)
        finally:
            self.flushing = False

    def flush_usage(self) -> None:
        """Write buffered access counts now."""
        with self._lock:
            pending, self.pending, self.pending_hits = self.pending, {}, 0
            self.flushed_at = time.monotonic()
        if pending:
            self.repository.count_usage(pending, self._promote)

    def _promote(self, item: MemoryItem, last: datetime) -> MemoryItem:
        # Scheduler policy: items used often move into activation memory.
        if should_promote(item, self.config, last):
            return item.model_copy(update={"state": LifecycleState.ACTIVATED})
        return item


__all__ = ["USAGE_FLUSH_EVERY", "USAGE_FLUSH_SECONDS", "USAGE_MAX_PENDING", "UsageCounter"]
