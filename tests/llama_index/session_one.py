"""Session 1 of the cross-process tests, run in its own process.

    python -m tests.llama_index.session_one CUBE_PATH [CHROMA_URL] [CUBE_PATH [CHROMA_URL]]...

For each cube (CHROMA_URL "" means embedded), tells facts to three users through three LlamaIndex
memory paths and closes the cube; then prints one JSON list with, per cube, what each user's
memories now are. The test process then reopens the cubes (session 2) and checks the facts
reach the LLM's prompt.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from llama_index.core import SummaryIndex  # noqa: E402
from llama_index.core.chat_engine import CondensePlusContextChatEngine, SimpleChatEngine  # noqa: E402
from llama_index.core.memory import Memory  # noqa: E402
from llama_index.core.schema import TextNode  # noqa: E402

from llama_index_memos import MemCubeMemory, MemCubeMemoryBlock  # noqa: E402
from memcube import MemCube  # noqa: E402
from tests.llama_index.llms import RecordingLLM  # noqa: E402

#: What each user tells in session 1 (the first line of each is asked about in session 2).
FACTS = {
    "li-simple": ["My pet iguana is called Ramirez.", "I work as a lighthouse keeper in Galway."],
    "li-condense": ["My daughter Ottilie plays the cello in a youth orchestra."],
    "li-block": [
        "My favourite dish is feijoada with orange slices.",
        "Yesterday I repainted the garden fence in dark green.",
        "The train to work was late again this morning.",
        "I am reading a long novel about sailing ships.",
    ],
}
#: Product documents behind the CondensePlusContext engine's retriever (no user facts in them).
DOCS = [
    "The Lumen 3 desk lamp has three brightness levels and a USB-C port.",
    "Orders ship within two business days from the Lisbon warehouse.",
]


def docs_retriever():  # a real LlamaIndex retriever that needs no embedding model
    return SummaryIndex([TextNode(text=t) for t in DOCS]).as_retriever()


async def main(path: str, chroma_url: str | None) -> dict[str, list[str]]:
    cube = MemCube.open(path, chroma_url=chroma_url)
    try:
        llm = RecordingLLM(reply="Thanks, I will keep that in mind.")
        # 1. SimpleChatEngine + MemCubeMemory, sync and async turns.
        memory = MemCubeMemory.from_defaults(cube=cube, user_id="li-simple", token_limit=2000)
        engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
        first, second = FACTS["li-simple"]
        engine.chat(first)
        await engine.achat(second)
        # 2. CondensePlusContextChatEngine + MemCubeMemory.
        memory = MemCubeMemory.from_defaults(cube=cube, user_id="li-condense")
        engine = CondensePlusContextChatEngine.from_defaults(
            retriever=docs_retriever(), llm=llm, memory=memory
        )
        for fact in FACTS["li-condense"]:
            engine.chat(fact)
        # 3. Memory + MemCubeMemoryBlock: a small queue, so the first turns flush into the block.
        block = MemCubeMemoryBlock(cube=cube, user_id="li-block")
        memory = Memory.from_defaults(token_limit=60, memory_blocks=[block])
        engine = SimpleChatEngine.from_defaults(llm=llm, memory=memory)
        for fact in FACTS["li-block"]:
            await engine.achat(fact)
        return {user: sorted(i.content for i in cube.items(user_id=user)) for user in FACTS}
    finally:
        cube.close()


async def run_all(args: list[str]) -> list[dict[str, list[str]]]:
    pairs = list(zip(args[0::2], args[1::2]))
    return [await main(path, url or None) for path, url in pairs]


if __name__ == "__main__":
    print(json.dumps(asyncio.run(run_all(sys.argv[1:]))))
