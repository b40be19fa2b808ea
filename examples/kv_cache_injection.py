"""Activation memory in action: a user's memories served from a KV cache, offline.

A cube holds ~1,000 tokens of a user's stable memories. ``ChatMemOS`` answers the same question
twice, once reading the memories as plain text and once injecting their KV cache, and prints the
time to first token of both, the gain, and that the greedy answers are the same.

Run from the repository root:

    python examples/kv_cache_injection.py
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from langchain_memos import ChatMemOS  # noqa: E402
from memcube import MemCube  # noqa: E402

FRIENDS = ["Alice", "Bob", "Chen", "Dana", "Emeka", "Farah", "Goran", "Hana"]
HOBBIES = ["tea", "chess", "jazz", "sailing", "pottery", "hiking", "sushi", "poetry", "opera"]


def main(facts: int = 50) -> dict[str, float]:
    """Build a cube, ask with and without KV injection, print and return the timings."""
    with tempfile.TemporaryDirectory() as tmp, MemCube.open(Path(tmp) / "cube") as cube:
        cube.add(
            "The user's name is Sam and they live in Lisbon.", user_id="sam", memory_type="profile"
        )
        cube.add_many(
            [
                {
                    "content": f"Sam's friend {FRIENDS[i % 8]} (#{i}) loves {HOBBIES[i % 9]}.",
                    "user_id": "sam",
                    "memory_type": "fact",
                }
                for i in range(facts)
            ]
        )
        question = "Where do I live?"
        options = {"cube": cube, "user_id": "sam", "max_tokens": 16, "activation_budget": 4096}
        text_llm = ChatMemOS(kv_memory=False, **options)
        kv_llm = ChatMemOS(kv_memory=True, **options)
        kv_llm.invoke(question)  # the first call builds and stores the cache
        as_text = text_llm.invoke(question)
        injected = kv_llm.invoke(question)
        t_text = as_text.response_metadata["time_to_first_token_s"]
        t_kv = injected.response_metadata["time_to_first_token_s"]
        cached = injected.usage_metadata["input_token_details"]["cache_read"]
        print(
            f"prompt: {injected.usage_metadata['input_tokens']} tokens, "
            f"{cached} of them served from activation memory"
        )
        print(f"time to first token, memories as text : {t_text * 1000:8.1f} ms")
        print(f"time to first token, KV cache injected: {t_kv * 1000:8.1f} ms")
        print(
            f"gain: {t_text / t_kv:.1f}x faster; same answer: {as_text.content == injected.content}"
        )
        print(f"answer: {injected.content!r}")
        stored = sorted(p.name for p in (cube.path / "activation").iterdir())
        print(f"stored in the cube: {stored}")
        return {"ttft_text_s": t_text, "ttft_kv_s": t_kv, "cached_tokens": float(cached)}


if __name__ == "__main__":
    main()
