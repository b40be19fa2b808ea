"""Write-behind for a cube's bookkeeping: audit entries and retrieval markers.

A memory write is acknowledged once its records are in Chroma. The bookkeeping around it, the
audit entry and the marker that tells other processes to refresh their search caches (see
:mod:`memcube.plaintext.retrieval`), is queued here and written by a background thread within
``interval`` seconds, one Chroma call per channel for everything queued meanwhile. That keeps an
add at one Chroma round trip instead of three.

What this trades, by design:

* another process's hybrid search sees a write after at most ``interval`` (plus one round trip);
  this process sees it at once. :meth:`Outbox.flush` (``MemCube.flush``) publishes immediately.
* a process killed hard loses the bookkeeping it had not written yet (at most one interval
  worth of writes, and up to :data:`LAZY_LIMIT` read entries); the memories themselves were
  already stored. Other processes still pick such
  memories up, because their search caches expire (``RetrievalConfig.max_cache_seconds``).

A channel may be given a longer interval than the outbox's: markers go out within
``publish_interval`` (0.5 s), audit pages within ``AuditConfig.interval`` (2 s), because every
busy process writes one page per interval and single-node Chroma runs writes one at a time.

``interval=0`` writes everything before the operation returns (no thread, no window).

Example:
    >>> written = []
    >>> box = Outbox(interval=0)
    >>> box.channel("audit", written.extend)
    >>> box.put("audit", ["entry-1"])
    >>> written
    ['entry-1']
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from memcube.errors import InvalidInputError

log = logging.getLogger(__name__)

#: Queued entries that trigger a write even when none of them is urgent.
LAZY_LIMIT = 64


class Outbox:
    """Queues per channel, written by ``write(entries)`` functions in the background.

    Args:
        interval: seconds between a first queued entry and the write that carries it; 0 writes
            synchronously inside :meth:`put`. A channel may ask for a longer interval of its own
            (:meth:`channel`).
    """

    def __init__(self, interval: float) -> None:
        if not isinstance(interval, (int, float)) or not 0 <= interval <= 60:
            raise InvalidInputError("publish_interval must be between 0 and 60 seconds.")
        self.interval = float(interval)
        self._writers: dict[str, Callable[[list[Any]], None]] = {}
        self._intervals: dict[str, float] = {}
        self._pending: dict[str, list[Any]] = {}
        self._due: dict[str, float] = {}  # channel -> monotonic time its queue must be written
        self._cond = threading.Condition()  # guards the four dicts above and _closed
        self._flush_lock = threading.Lock()  # one write of a channel at a time, in order
        self._thread: threading.Thread | None = None
        self._closed = False

    def channel(
        self, name: str, write: Callable[[list[Any]], None], *, interval: float | None = None
    ) -> None:
        """Register how the entries of ``name`` are written (one call for a batch), and within
        how many seconds: ``interval`` if given and longer than the outbox's; an outbox of
        interval 0 writes every channel synchronously."""
        self._writers[name] = write
        self._intervals[name] = self.interval and max(self.interval, interval or 0.0)
        self._pending.setdefault(name, [])

    def put(self, name: str, entries: Iterable[Any], *, urgent: bool = True) -> None:
        """Queue entries; they are written within the channel's interval. Entries that are not
        ``urgent`` (e.g. audit entries of reads) wait for the next urgent entry of their channel,
        for :data:`LAZY_LIMIT` queued entries, or for :meth:`flush`; so a process that only
        searches sends no bookkeeping calls at all between them."""
        entries = list(entries)
        if not entries:
            return
        with self._cond:
            if self._closed:
                raise RuntimeError("the outbox is closed")
            self._pending[name].extend(entries)
            urgent = urgent or len(self._pending[name]) >= LAZY_LIMIT
            if urgent and self.interval and name not in self._due:
                self._due[name] = time.monotonic() + self._intervals[name]
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="memcube-outbox", daemon=True
                    )
                    self._thread.start()
                self._cond.notify()
        if urgent and not self.interval:
            self.flush()

    def flush(self, names: Iterable[str] | None = None) -> None:
        """Write everything queued now (in the channels ``names``, default all). Entries of a
        failed write stay queued; the error is raised."""
        with self._flush_lock:
            error: BaseException | None = None
            for name in list(self._writers) if names is None else list(names):
                with self._cond:
                    batch, self._pending[name] = self._pending[name], []
                    self._due.pop(name, None)
                if not batch:
                    continue
                try:
                    self._writers[name](batch)
                except BaseException as exc:  # keep them for the next attempt, oldest first
                    with self._cond:
                        self._pending[name] = batch + self._pending[name]
                    error = error or exc
            if error is not None:
                raise error

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    now = time.monotonic()
                    due = [n for n, t in self._due.items() if t <= now]
                    if due:
                        break
                    # Sleep until the earliest deadline; a put with an earlier one wakes us.
                    self._cond.wait(min(self._due.values(), default=now + 60) - now)
                if self._closed:
                    return
            try:
                self.flush(due)
            except Exception:  # e.g. the server is restarting: keep the entries, try again
                log.warning(
                    "writing queued audit entries / markers failed; retrying", exc_info=True
                )
                with self._cond:
                    retry_at = time.monotonic() + self.interval
                    for n in due:
                        if self._pending[n]:
                            self._due.setdefault(n, retry_at)

    def close(self) -> None:
        """Stop the thread and write what is left (raising if that fails)."""
        with self._cond:
            self._closed = True
            thread, self._thread = self._thread, None
            self._cond.notify_all()
        if thread is not None:
            thread.join()
        self.flush()
