"""Subprocess used by the reliability tests: writes to a cube and reports what was acknowledged.

Run as ``python writer.py add_many PATH [--url URL] [--n N] [--batch B] [--user U]`` or
``python writer.py soak PATH --url URL --seconds S --user U``. Every acknowledged id is printed
on stdout (``ACK id1,id2,...``) the moment the call that stored it returned, so a parent that
kills this process with SIGKILL knows exactly what it was told was saved. ``WRITE n`` is printed
just before each Chroma write, so the parent can aim its kill at the write itself.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from memcube import MemCube  # noqa: E402
from memcube.items import MemoryItem  # noqa: E402


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def content_for(user: str, i: int) -> str:
    return f"{user} note {i}: the meeting about project {i % 97} moved to room {i % 13}."


def add_many(cube: MemCube, n: int, batch: int, user: str) -> None:
    original = cube.backend.upsert
    writes = 0

    def announced_upsert(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal writes
        writes += 1
        say(f"WRITE {writes}")
        return original(*args, **kwargs)

    cube.backend.upsert = announced_upsert  # type: ignore[method-assign]
    items = [
        {"content": content_for(user, i), "metadata": {"i": i, "writer": user}} for i in range(n)
    ]
    say("READY")
    cube.add_many(
        items,
        user_id=user,
        batch_size=batch,
        progress=False,
        on_batch=lambda done: say("ACK " + ",".join(it.id for it in done)),
    )
    say("DONE")


def soak(cube: MemCube, seconds: float, user: str) -> None:
    cube.embedder.embed_query("load the model before the clock starts")
    say("READY")
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        if i % 3 == 2:
            hits = cube.search(f"project {i % 97}", user_id=user, k=5)
            assert all(h.item.user_id == user for h in hits)
        else:
            item: MemoryItem = cube.add(content_for(user, i), user_id=user, metadata={"i": i})
            say(f"ACK {item.id}")
        i += 1
    say("DONE")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["add_many", "soak", "hold"])
    ap.add_argument("path", type=Path)
    ap.add_argument("--url", default=None)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--user", default="writer")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    cube = MemCube.open(args.path, chroma_url=args.url)
    try:
        if args.mode == "add_many":
            add_many(cube, args.n, args.batch, args.user)
        elif args.mode == "soak":
            soak(cube, args.seconds, args.user)
        else:  # hold the cube open until killed (or stdin closes)
            say("READY")
            sys.stdin.read()
    finally:
        cube.close()


if __name__ == "__main__":
    main()
