"""The LlamaIndex adapters inject the cube's one memory block, and their scores follow
LlamaIndex's convention (higher is more similar, thresholdable) (issue 18)."""

from __future__ import annotations

import asyncio

from llama_index.core.llms import ChatMessage
from llama_index.core.postprocessor import SimilarityPostprocessor

from llama_index_memos import MemCubeMemory, MemCubeMemoryBlock, MemCubeRetriever
from memcube import MemCube


def test_similarity_cutoff_keeps_the_exactly_relevant_memory(cube: MemCube) -> None:
    cube.add("I play the cello in a community orchestra on Tuesday nights.", user_id="farah")
    cube.add("Our boiler is a Worcester Bosch, it gets serviced every October.", user_id="farah")
    cube.add("My favourite film is Paris, Texas.", user_id="farah")
    nodes = MemCubeRetriever(cube, "farah", similarity_top_k=3).retrieve(
        "What instrument do I play in the community orchestra?"
    )
    kept = SimilarityPostprocessor(similarity_cutoff=0.3).postprocess_nodes(nodes)
    assert [n.node.get_content() for n in kept] == [
        "I play the cello in a community orchestra on Tuesday nights."
    ]
    assert nodes[0].score is not None and nodes[0].score > 0.5


def test_memory_and_block_inject_exactly_the_cubes_memory_block(cube: MemCube) -> None:
    cube.add_messages(
        [
            {"role": "user", "content": "Can you recommend a sci-fi novel?"},
            {"role": "assistant", "content": "Try 'The Glass Orchard' by Miriam Caddel."},
        ],
        user_id="bea",
    )
    question = "What was that novel you recommended to me?"
    memory = MemCubeMemory.from_defaults(cube=cube, user_id="bea", memory_token_budget=200)
    memory.put(ChatMessage(role="user", content=question))
    system = memory.get()[0]
    expected = cube.memory_block(
        question,
        user_id="bea",
        token_budget=200,
        count_tokens=lambda t: len(memory.tokenizer_fn(t)),
        exclude_texts=[question],
    )
    assert system.role.value == "system" and expected and system.content == expected
    assert all("assistant said" in line for line in expected.splitlines() if "Caddel" in line)
    block = MemCubeMemoryBlock(cube=cube, user_id="bea", token_budget=200)
    text = asyncio.run(block.aget([ChatMessage(role="user", content=question)]))
    assert "Glass Orchard" in text
    assert all("assistant said" in line for line in text.splitlines() if "Caddel" in line)
