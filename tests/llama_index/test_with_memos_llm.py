"""The agent path with the project's own local model: a ``FunctionAgent`` on ``MemOSLLM``
(bundled SmolLM2-135M-Instruct) with ``MemCubeMemory`` as its memory."""

from __future__ import annotations

import pytest
from llama_index.core.agent.workflow import AgentStream, FunctionAgent
from llama_index.core.llms import ChatMessage

from llama_index_memos import MemCubeMemory, MemCubeRetriever, MemOSLLM
from memcube import MemCube

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("backend", ["embedded"], indirect=True)
async def test_function_agent_on_memos_llm(cube: MemCube) -> None:
    MemCubeMemory.from_defaults(cube=cube, user_id="uma").put(
        ChatMessage(role="user", content="My dog is a beagle called Biscuit.")
    )
    memory = MemCubeMemory.from_defaults(cube=cube, user_id="uma")
    agent = FunctionAgent(
        name="assistant",
        description="Answers questions about the user.",
        system_prompt="You are a helpful assistant. Answer in one short sentence.",
        llm=MemOSLLM(max_tokens=32),
        tools=[MemCubeRetriever(cube, "uma", similarity_top_k=2).as_tool()],
    )
    handler = agent.run("What is my dog called?", memory=memory)
    streamed = [ev async for ev in handler.stream_events() if isinstance(ev, AgentStream)]
    result = await handler
    answer = str(result).strip()
    assert answer and streamed
    # The long-term memory reached the model (as the system message MemCubeMemory adds) ...
    assert any("Biscuit" in m.content for m in memory.last_recalled)
    # ... and the run was learned in this session.
    learned = {i.content for i in cube.items(user_id="uma") if i.session_id == memory.session_id}
    assert "What is my dog called?" in learned and answer in learned
