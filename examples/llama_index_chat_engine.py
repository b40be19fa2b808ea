"""A LlamaIndex chat engine that remembers users across sessions, fully offline.

Run from the repository root:

    .venv/bin/python examples/llama_index_chat_engine.py [--cube PATH] [--chroma-url URL]

Session 1 tells the assistant a few things. Session 2 is a new chat engine with a new memory, as
after a restart: ``MemCubeMemory`` finds what matters for each question in the cube and hands it
to the model as a system message. The same long-term memory then plugs into LlamaIndex's own
``Memory`` as a ``MemCubeMemoryBlock``. Another user sees none of it.

The model is the bundled SmolLM2-135M-Instruct through ``MemOSLLM`` (no network, no GPU); its
answers are short and not always right, but what it was shown (``recalled: ...``) is exactly what
any LLM would get.
"""

from __future__ import annotations

import argparse
import os
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from llama_index.core.chat_engine import SimpleChatEngine  # noqa: E402
from llama_index.core.memory import Memory  # noqa: E402

from llama_index_memos import MemCubeMemory, MemCubeMemoryBlock, MemOSLLM  # noqa: E402
from memcube import MemCube  # noqa: E402

SYSTEM_PROMPT = "You are a friendly assistant. Answer in one short sentence."


def session(cube: MemCube, llm: MemOSLLM, user_id: str, messages: list[str]) -> None:
    """One conversation: a fresh engine and a fresh memory over the same cube."""
    memory = MemCubeMemory.from_defaults(cube=cube, user_id=user_id, memory_token_budget=256)
    engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory, system_prompt=SYSTEM_PROMPT)
    for text in messages:
        answer = engine.chat(text)
        recalled = [m.content for m in memory.last_recalled]
        print(f"[{user_id}] user: {text}")
        print(f"[{user_id}]   recalled: {recalled}")
        print(f"[{user_id}]   assistant: {str(answer).strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cube", help="cube folder (default: a new temporary folder)")
    parser.add_argument("--chroma-url", help="http://host:port of a Chroma server (optional)")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    path = args.cube or tempfile.mkdtemp(prefix="memcube-chat-")
    llm = MemOSLLM(max_tokens=args.max_tokens)

    with MemCube.open(path, chroma_url=args.chroma_url) as cube:
        print("== session 1")
        session(
            cube,
            llm,
            "alice",
            ["Hi! My dog is a beagle called Biscuit, and I'm learning the ukulele."],
        )

        print("== session 2 (new engine, new memory)")
        session(cube, llm, "alice", ["What is my dog called?"])

        print("== LlamaIndex Memory with a MemCubeMemoryBlock")
        memory = Memory.from_defaults(
            memory_blocks=[MemCubeMemoryBlock(cube=cube, user_id="alice")]
        )
        engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory, system_prompt=SYSTEM_PROMPT)
        question = "Which instrument am I learning?"
        print(f"[alice] user: {question}")
        print(f"[alice]   assistant: {str(engine.chat(question)).strip()}")

        print("== another user")
        session(cube, llm, "bob", ["What is my dog called?"])

        print(f"alice has {cube.count(user_id='alice')} memories, bob {cube.count(user_id='bob')}")
        print(f"cube: {path}")


if __name__ == "__main__":
    main()
