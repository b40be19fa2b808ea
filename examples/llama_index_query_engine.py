"""A LlamaIndex query engine over a user's memories, fully offline.

Run from the repository root:

    .venv/bin/python examples/llama_index_query_engine.py [--cube PATH] [--chroma-url URL]

Memories come in two ways: facts added directly, and a conversation read into memories by the
cube's reader. ``MemCubeRetriever`` returns them as ``NodeWithScore`` (id, memory type, event
time, provenance and score in the node metadata) to a standard ``RetrieverQueryEngine``; filters
narrow the search, and nobody but the user's own memories are ever searched.

The model is the bundled SmolLM2-135M-Instruct through ``MemOSLLM`` (no network, no GPU).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from datetime import datetime, timezone

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from llama_index.core.query_engine import RetrieverQueryEngine  # noqa: E402
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters  # noqa: E402

from llama_index_memos import MemCubeRetriever, MemOSLLM  # noqa: E402
from memcube import MemCube  # noqa: E402


def show(response: object) -> None:
    print(f"  answer: {str(response).strip()}")
    for node in response.source_nodes:  # type: ignore[attr-defined]
        md = node.node.metadata
        print(
            f"  source: {node.text!r} (type={md['memory_type']}, event_time={md.get('event_time')}, "
            f"from={md['provenance']['source']}, score={node.score:.3f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cube", help="cube folder (default: a new temporary folder)")
    parser.add_argument("--chroma-url", help="http://host:port of a Chroma server (optional)")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    path = args.cube or tempfile.mkdtemp(prefix="memcube-query-")
    llm = MemOSLLM(max_tokens=args.max_tokens)

    with MemCube.open(path, chroma_url=args.chroma_url) as cube:
        cube.add_many(
            [
                {"content": "Alice is allergic to penicillin.", "memory_type": "fact"},
                {
                    "content": "Alice's flight to Tokyo leaves on 12 April 2026.",
                    "memory_type": "fact",
                    "event_time": datetime(2026, 4, 12, tzinfo=timezone.utc),
                },
                {"content": "Alice prefers window seats.", "memory_type": "preference"},
            ],
            user_id="alice",
            progress=False,
        )
        cube.add_messages(
            [
                {"role": "user", "content": "I booked the Shibuya hotel for five nights."},
                {"role": "assistant", "content": "Great, enjoy Tokyo!"},
            ],
            user_id="alice",
            session_id="trip-planning",
        )
        cube.add("Bob is allergic to shellfish.", user_id="bob", memory_type="fact")

        april = (
            datetime(2026, 4, 1, tzinfo=timezone.utc),
            datetime(2026, 4, 30, tzinfo=timezone.utc),
        )
        print("retrieve (what happens in April 2026?):")
        for node in MemCubeRetriever(cube, "alice", time_range=april).retrieve("plans"):
            md = node.node.metadata
            print(f"  {node.text!r} event_time={md['event_time']} memory_id={md['memory_id']}")

        retriever = MemCubeRetriever(cube, "alice", similarity_top_k=2)
        engine = RetrieverQueryEngine.from_args(retriever, llm=llm)
        question = "Which hotel did I book in Tokyo?"
        print(f"query: {question}")
        show(engine.query(question))

        facts_only = MemCubeRetriever(
            cube,
            "alice",
            similarity_top_k=2,
            filters=MetadataFilters(filters=[MetadataFilter(key="memory_type", value="fact")]),
        )
        question = "What am I allergic to?"
        print(f"query (facts only): {question}")
        show(RetrieverQueryEngine.from_args(facts_only, llm=llm).query(question))

        bob = MemCubeRetriever(cube, "bob", similarity_top_k=5).retrieve("allergies and flights")
        print(f"bob's retriever sees: {[n.text for n in bob]}")

        print(f"cube: {path}")


if __name__ == "__main__":
    main()
