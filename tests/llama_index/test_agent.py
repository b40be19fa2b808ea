"""A real ``FunctionAgent`` with MemCubeMemory as its memory and MemCubeRetriever as a tool,
driven by a scripted function-calling LLM."""

from __future__ import annotations

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from llama_index_memos import MemCubeMemory, MemCubeRetriever
from memcube import MemCube
from tests.llama_index.llms import ScriptedFunctionLLM, prompt_text


def forecast(city: str) -> str:
    """The weather forecast for a city."""
    return f"Sunny and 24 degrees in {city}."


def make_agent(
    cube: MemCube, user_id: str, script: list
) -> tuple[FunctionAgent, ScriptedFunctionLLM]:
    llm = ScriptedFunctionLLM(script=script)
    agent = FunctionAgent(
        name="assistant",
        description="A helpful assistant with long-term memory.",
        system_prompt="You are a helpful assistant.",
        llm=llm,
        tools=[
            MemCubeRetriever(cube, user_id, similarity_top_k=3).as_tool(),
            FunctionTool.from_defaults(fn=forecast),
        ],
    )
    return agent, llm


async def test_function_agent_remembers_and_uses_memory_tools(cube: MemCube) -> None:
    # Session 1: the user tells the agent where they live; the agent just acknowledges.
    agent, _ = make_agent(cube, "olga", ["Noted: you live in Porto."])
    first = MemCubeMemory.from_defaults(cube=cube, user_id="olga")
    await agent.run("I moved to Porto last spring.", memory=first)
    assert {i.content for i in cube.items(user_id="olga") if i.memory_type == "episodic"} == {
        "I moved to Porto last spring.",
        "Noted: you live in Porto.",
    }

    # Session 2: new memory object; the agent searches memories, then calls the weather tool.
    script = [
        {"tool": "search_memories", "kwargs": {"input": "where does the user live"}},
        {"tool": "forecast", "kwargs": {"city": "Porto"}},
        "It will be sunny and 24 degrees in Porto.",
    ]
    agent, llm = make_agent(cube, "olga", script)
    second = MemCubeMemory.from_defaults(cube=cube, user_id="olga")
    result = await agent.run("What's the weather going to be at home?", memory=second)
    assert str(result) == "It will be sunny and 24 degrees in Porto."
    assert len(llm.calls) == 3
    # Long-term memory reached the model's very first prompt as a system message...
    first_prompt = llm.calls[0]
    assert [m.role.value for m in first_prompt[:2]] == ["system", "system"]
    assert "Porto" in first_prompt[1].content
    # ... the memory tool found it, and the weather tool got it.
    found = prompt_text(llm.calls[1]).split("tool:")[-1]
    assert "lives in Porto" in found or "moved to Porto" in found
    assert "Sunny and 24 degrees in Porto." in prompt_text(llm.calls[2])
    # The run was learned: the question and the final answer, not the tool chatter.
    learned = {
        i.content
        for i in cube.items(user_id="olga")
        if i.session_id == second.session_id and i.memory_type == "episodic"
    }
    assert learned == {
        "What's the weather going to be at home?",
        "It will be sunny and 24 degrees in Porto.",
    }

    # Another user's agent sees none of it, neither in its prompt nor through its tool.
    agent, llm = make_agent(
        cube,
        "pia",
        [{"tool": "search_memories", "kwargs": {"input": "where do I live"}}, "No idea."],
    )
    await agent.run(
        "Where do I live?", memory=MemCubeMemory.from_defaults(cube=cube, user_id="pia")
    )
    assert not any("Porto" in prompt_text(call) for call in llm.calls)
