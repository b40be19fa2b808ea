"""Storage of the ranking profiles (:mod:`memcube.plaintext.ranking_profile`) of one cube.

Profiles are JSON files in the cube folder, written atomically (:mod:`memcube.atomic`):
``ranking/prior.json`` (the cube-wide prior, learned from every user's votes) and
``ranking/users/<sha256 of the user id>.json``. Each holds a ``version`` that counts its
changes. A profile is re-read when its file changes, so several processes sharing a cube see
each other's learning (concurrent votes on one user's profile from two processes: the last
write wins; the weights are advisory, memories are never touched). Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from memcube.atomic import atomic_write_text
from memcube.plaintext.ranking_profile import (
    Personalization,
    ProfileFormatError,
    RankingProfile,
    effective_weights,
    profile_from_dict,
)

RANKING_DIR = "ranking"
EXCHANGE_FORMAT = "memcube.ranking"
#: Searches remembered per user (in this process) to find the query a bare vote is about.
RECENT_SEARCHES = 64
RECENT_USERS = 1024


class RankingProfiles:
    """The ranking profiles of one cube folder, cached and re-read when their file changes."""

    def __init__(self, folder: Path) -> None:
        self.root = folder / RANKING_DIR
        self.lock = threading.RLock()
        self._cache: dict[str | None, tuple[int, RankingProfile]] = {}
        self._recent: OrderedDict[str, deque[tuple[str, frozenset[str]]]] = OrderedDict()

    def path(self, user_id: str | None) -> Path:
        if user_id is None:
            return self.root / "prior.json"
        return self.root / "users" / f"{hashlib.sha256(user_id.encode()).hexdigest()[:40]}.json"

    def load(self, user_id: str | None) -> RankingProfile:
        path = self.path(user_id)
        with self.lock:
            try:
                stamp = path.stat().st_mtime_ns
            except FileNotFoundError:
                self._cache.pop(user_id, None)
                return RankingProfile(user_id=user_id)
            cached = self._cache.get(user_id)
            if cached is not None and cached[0] == stamp:
                return cached[1]
            try:
                profile = profile_from_dict(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                raise ProfileFormatError(f"ranking profile {path} is unreadable: {exc}") from None
            if profile.user_id != user_id:
                raise ProfileFormatError(f"ranking profile {path} belongs to another user.")
            self._cache[user_id] = (stamp, profile)
            return profile

    def save(self, profile: RankingProfile) -> None:
        path = self.path(profile.user_id)
        with self.lock:
            profile.touch()
            atomic_write_text(path, json.dumps(profile.to_dict(), sort_keys=True))
            self._cache[profile.user_id] = (path.stat().st_mtime_ns, profile)

    def personalization(self, user_id: str) -> Personalization | None:
        """What a search of ``user_id`` ranks with; ``None`` (the static ranker) while neither
        the user nor the cube has learned anything."""
        with self.lock:
            own, prior = self.load(user_id), self.load(None)
            weights = effective_weights(own.weights, own.steps, prior.weights)
            if weights.is_default() and not own.votes:
                return None
            shares = {mid: own.share(mid) for mid in own.votes}
            words = {mid: frozenset(ws) for mid, ws in own.words.items() if own.share(mid) > 0}
            return Personalization(weights, shares, words)

    # ------------------------------------------------------------------ recent searches
    def note_search(self, user_id: str, query: str, ids: Sequence[str]) -> None:
        with self.lock:
            log = self._recent.pop(user_id, None) or deque(maxlen=RECENT_SEARCHES)
            log.append((query, frozenset(ids)))
            self._recent[user_id] = log
            while len(self._recent) > RECENT_USERS:
                self._recent.popitem(last=False)

    def recent_query(self, user_id: str, memory_id: str) -> str | None:
        with self.lock:
            for query, ids in reversed(self._recent.get(user_id) or ()):
                if memory_id in ids:
                    return query
        return None

    def forget_recent(self) -> None:
        with self.lock:
            self._recent.clear()

    # ------------------------------------------------------------------ reset and exchange
    def reset(self, user_id: str | None) -> RankingProfile:
        """Back to the defaults (a new version of the profile, so readers see the change)."""
        with self.lock:
            old = self.load(user_id)
            fresh = RankingProfile(user_id=user_id, version=old.version)
            self.save(fresh)
            return fresh

    def users(self) -> list[str]:
        out = []
        folder = self.root / "users"
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(doc, dict) and isinstance(doc.get("user_id"), str):
                out.append(doc["user_id"])
        return sorted(out)

    def export_document(self, user_id: str | None) -> dict[str, Any] | None:
        """The profiles to carry in a MIP archive (one user's, or every user's and the prior);
        ``None`` when there are none."""
        with self.lock:
            users = [user_id] if user_id is not None else self.users()
            docs = [self.load(u).to_dict() for u in users if self.path(u).exists()]
            prior = self.load(None).to_dict() if self.path(None).exists() else None
            if user_id is not None:
                prior = None  # one user's archive carries no other user's learning
            if not docs and prior is None:
                return None
            return {"format": EXCHANGE_FORMAT, "prior": prior, "users": docs}

    def import_document(self, doc: Any, *, on_conflict: str) -> list[str]:
        """Store the profiles of an archive's document; a profile the cube already has is kept
        unless ``on_conflict="overwrite"``. Returns the user ids written (``"*"``: the prior).

        Raises:
            ProfileFormatError: the document is malformed (nothing is written then).
        """
        if not isinstance(doc, dict) or doc.get("format") != EXCHANGE_FORMAT:
            raise ProfileFormatError("the archive's ranking member is not a ranking document.")
        users = doc.get("users") or []
        if not isinstance(users, list):
            raise ProfileFormatError("the ranking document's users must be a list.")
        profiles = [profile_from_dict(d) for d in users]
        if any(p.user_id is None for p in profiles):
            raise ProfileFormatError("a user's ranking profile needs a user_id.")
        if doc.get("prior") is not None:
            prior = profile_from_dict(doc["prior"])
            if prior.user_id is not None:
                raise ProfileFormatError("the ranking prior has no user_id.")
            profiles.append(prior)
        written = []
        with self.lock:
            for p in profiles:
                if self.path(p.user_id).exists() and on_conflict != "overwrite":
                    continue
                p.version = max(p.version, self.load(p.user_id).version)
                self.save(p)
                written.append(p.user_id if p.user_id is not None else "*")
        return written


__all__ = ["EXCHANGE_FORMAT", "RANKING_DIR", "RankingProfiles"]
