"""The main job: a cube on the embedded defaults, a short conversation remembered and searched.

Run it with ``make demo`` (or ``python -m memcube.demo [--path DIR]``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime, timezone

from memcube import MemCube

CONVERSATION = [
    {
        "role": "user",
        "content": "Hi! I'm Maya. I moved to Lisbon last spring for a job at a robotics startup.",
    },
    {"role": "assistant", "content": "Welcome, Maya! How are you finding Lisbon?"},
    {"role": "user", "content": "I love it. I'm allergic to peanuts, so I cook at home a lot."},
    {"role": "assistant", "content": "Good to know. Any favourite dishes?"},
    {
        "role": "user",
        "content": "I prefer green tea over coffee, and my sister Ana visits every August.",
    },
    {"role": "user", "content": "My dog is a border collie called Pixel."},
]

QUESTIONS = [
    "Where does Maya live?",
    "What should I avoid when cooking for her?",
    "What does she like to drink?",
    "When does her family visit?",
    "What pet does she have?",
]


def run(path: str) -> None:
    started = time.perf_counter()
    with MemCube.open(path) as cube:
        items = cube.add_messages(
            CONVERSATION,
            user_id="maya",
            session_id="demo-session",
            timestamp=datetime(2026, 11, 20, 18, 30, tzinfo=timezone.utc),
        )
        print(f"cube {cube.cube_id} at {cube.path}")
        print(
            f"remembered {len(items)} memories from {len(CONVERSATION)} messages "
            f"({cube.count(user_id='maya')} stored for user 'maya')\n"
        )
        for question in QUESTIONS:
            hits = cube.search(question, user_id="maya", k=2)
            print(f"Q: {question}")
            for hit in hits:
                who = hit.item.metadata.get("role") or "saved"
                print(
                    f"   {hit.score:5.2f}  [{hit.item.memory_type.value}, {who}] {hit.item.content}"
                )
        print("\nanother user sees none of it:", cube.search("Lisbon", user_id="someone-else", k=3))
        block = cube.memory_block("plan a dinner for Maya", user_id="maya", token_budget=120)
        print("\nthe memory block an agent's prompt gets for 'plan a dinner for Maya':\n" + block)
    print(f"\ndone in {time.perf_counter() - started:.1f}s (embedded Chroma, offline MiniLM)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--path", help="cube folder, kept afterwards (default: a temporary folder, removed)"
    )
    args = parser.parse_args(argv)
    if args.path:
        run(args.path)
        return
    with tempfile.TemporaryDirectory(prefix="memcube-demo-") as folder:
        run(folder)


if __name__ == "__main__":
    main()
