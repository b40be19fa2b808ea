"""Write-behind for a cube's bookkeeping: audit entries and retrieval markers.

A memory write is acknowledged once its records are in Chroma. The bookkeeping around it, the
audit entry and the marker that tells other processes to refresh their search caches (see
:mod:`memcube.plaintext.retrieval`), is queued here and written by a background thread within
``interval`` seconds, one Chroma call per channel for everything queued meanwhile. That keeps an
add at one Chroma round trip instead of three.

What this trades, by design:

* another process's hybrid search sees a write after at most ``interval`` (plus one round trip);
  this process sees it at once. :meth:`Outbox.flush` (``MemCube.flush``) publishes immediately.
* a process killed hard loses the bookkeeping it had not written yet (at most ``interval``
  worth of writes, and up to :data:`LAZY_LIMIT` read entries); the memories themselves were
  already stored. Other processes still pick such
  memories up, because their search caches expire (``RetrievalConfig.max_cache_seconds``).

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
            synchronously inside :meth:`put`.
    """

    def __init__(self, interval: float) -> None:
        if not isinstance(interval, (int, float)) or not 0 <= interval <= 60:
            raise InvalidInputError("publish_interval must be between 0 and 60 seconds.")
        self.interval = float(interval)
        self._writers: dict[str, Callable[[list[Any]], None]] = {}
        self._pending: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one write of a channel at a time, in order
        self._wake = threading.Event()
        self._stop = threading.Event()  # cuts the interval short on close
        self._thread: threading.Thread | None = None
        self._closed = False

    def channel(self, name: str, write: Callable[[list[Any]], None]) -> None:
        """Register how the entries of ``name`` are written (one call for a batch)."""
        self._writers[name] = write
        self._pending.setdefault(name, [])

    def put(self, name: str, entries: Iterable[Any], *, urgent: bool = True) -> None:
        """Queue entries; they are written within ``interval`` seconds. Entries that are not
        ``urgent`` (e.g. audit entries of reads) wait for the next urgent write, for
        :data:`LAZY_LIMIT` queued entries, or for :meth:`flush`; so a process that only searches
        sends no bookkeeping calls at all between them."""
        entries = list(entries)
        if not entries:
            return
        with self._lock:
            if self._closed:
                raise RuntimeError("the outbox is closed")
            self._pending[name].extend(entries)
            urgent = urgent or sum(len(v) for v in self._pending.values()) >= LAZY_LIMIT
            if urgent and self.interval and self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="memcube-outbox", daemon=True
                )
                self._thread.start()
        if not urgent:
            return
        if self.interval:
            self._wake.set()
        else:
            self.flush()

    def flush(self) -> None:
        """Write everything queued now. Entries of a failed write stay queued; the error is
        raised."""
        with self._flush_lock:
            error: BaseException | None = None
            for name, write in self._writers.items():
                with self._lock:
                    batch, self._pending[name] = self._pending[name], []
                if not batch:
                    continue
                try:
                    write(batch)
                except BaseException as exc:  # keep them for the next attempt, oldest first
                    with self._lock:
                        self._pending[name] = batch + self._pending[name]
                    error = error or exc
            if error is not None:
                raise error

    def _run(self) -> None:
        while True:
            self._wake.wait()
            if self._closed:
                return
            # Let the writes of the next interval join this one: one call carries them all.
            self._stop.wait(self.interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # e.g. the server is restarting: keep the entries, try again
                log.warning("writing queued audit entries / markers failed; retrying", exc_info=True)
                self._wake.set()
            if self._closed:  # close() may have set _wake before the clear above
                return

    def close(self) -> None:
        """Stop the thread and write what is left (raising if that fails)."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
        self._stop.set()
        self._wake.set()
        if thread is not None:
            thread.join()
        self.flush()
