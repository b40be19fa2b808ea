"""A real ``create_agent`` run with MemCubeStore + MemoryMiddleware, offline, with a recording
fake chat model: what the user said in one thread reaches the model in another thread, after the
cube is reopened in a new process, and never in another user's run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.checkpoint.memory import InMemorySaver

from langchain_memos import MemCubeStore, MemoryMiddleware
from memcube import MemCube
from memcube.errors import InvalidUserIdError
from tests.langchain.fakes import RecordingChatModel

REPO = Path(__file__).resolve().parents[2]
FACTS = "I am allergic to peanuts and my daughter is called Inês."


@dataclass
class Ctx:
    user_id: str


def build(cube: MemCube, model: RecordingChatModel, **kwargs):
    return create_agent(
        model,
        system_prompt="You are a helpful assistant.",
        store=MemCubeStore(cube),
        middleware=[MemoryMiddleware(cube, **kwargs)],
        checkpointer=InMemorySaver(),
        context_schema=Ctx,
    )


def ask(agent, text: str, thread: str, user: str):
    return agent.invoke(
        {"messages": [HumanMessage(text)]},
        {"configurable": {"thread_id": thread}},
        context=Ctx(user_id=user),
    )


@pytest.mark.slow
def test_memories_cross_threads_restarts_and_never_users(open_cube, backend, tmp_path) -> None:
    path = tmp_path / "agent-cube"
    cube = open_cube(path)
    model = RecordingChatModel(reply="I'll remember that.")
    agent = build(cube, model)

    ask(agent, FACTS, "thread-1", "alice")
    assert "Inês" not in model.system_text()  # nothing known yet
    ask(agent, "What should I cook for my daughter tonight?", "thread-2", "alice")
    system = model.system_text()
    assert system.startswith("You are a helpful assistant.")
    # recalled from thread 1 into a new thread: the turn, or the facts read from it (one
    # statement is shown once), never as the assistant's words
    own = [line for line in system.splitlines()[1:] if "assistant said" not in line]
    assert any("peanuts" in line for line in own) and any("Inês" in line for line in own)
    # the model input is: system message with memories, then only this thread's messages
    assert [m.type for m in model.calls[-1]] == ["system", "human"]

    stored = {(it.content, it.session_id) for it in cube.items(user_id="alice")}
    assert (FACTS, "thread-1") in stored
    assert ("I'll remember that.", "thread-1") in stored
    # a second run in the same thread writes only the new turns
    n = cube.count(user_id="alice")
    ask(agent, "Thanks!", "thread-2", "alice")
    assert cube.count(user_id="alice") == n + 2

    # governance: Bob's run sees nothing of Alice's memories
    ask(agent, "What should I cook for my daughter tonight?", "thread-bob", "bob")
    assert model.system_text() == "You are a helpful assistant."
    assert "Inês" not in json.dumps([m.text for m in model.calls[-1]], ensure_ascii=False)
    assert all(it.user_id == "bob" for it in cube.items(user_id="bob"))
    cube.close()

    # a new process reopens the cube and a new agent recalls the facts
    script = textwrap.dedent(
        f"""
        import json, sys
        from dataclasses import dataclass
        from langchain.agents import create_agent
        from langchain_core.messages import HumanMessage
        from langgraph.checkpoint.memory import InMemorySaver
        from langchain_memos import MemCubeStore, MemoryMiddleware
        from memcube import MemCube
        from tests.langchain.fakes import RecordingChatModel

        @dataclass
        class Ctx:
            user_id: str

        cube = MemCube.open({str(path)!r}, chroma_url={backend!r})
        model = RecordingChatModel()
        agent = create_agent(model, store=MemCubeStore(cube), context_schema=Ctx,
                             middleware=[MemoryMiddleware(cube)], checkpointer=InMemorySaver())
        out = {{}}
        for user in ("alice", "bob"):
            agent.invoke({{"messages": [HumanMessage("Any food allergies I have?")]}},
                         {{"configurable": {{"thread_id": "after-restart-" + user}}}},
                         context=Ctx(user_id=user))
            out[user] = model.system_text()
        cube.close()
        print(json.dumps(out))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "allergic to peanuts" in seen["alice"]  # the turn or the fact read from it
    assert "Inês" not in seen["bob"] and "peanuts" not in seen["bob"]


async def test_async_agent_recall_and_write_back(cube) -> None:
    model = RecordingChatModel()
    agent = build(cube, model, token_budget=64)
    cube.add("Alice's favourite colour is teal", user_id="alice", memory_type="preference")
    await agent.ainvoke(
        {"messages": [HumanMessage("Which colour should the new sofa be?")]},
        {"configurable": {"thread_id": "a1"}},
        context=Ctx(user_id="alice"),
    )
    assert "teal" in model.system_text()
    assert {it.session_id for it in cube.items(user_id="alice")} == {None, "a1"}


def test_options_roles_budget_and_switches(cube) -> None:
    cube.add_many(
        [{"content": f"Alice note number {i}: " + "x" * 200, "user_id": "alice"} for i in range(5)]
    )
    model = RecordingChatModel(reply="Sure.")
    agent = build(cube, model, token_budget=80, roles=["user"])
    ask(agent, "Alice note", "t", "alice")
    recalled = [line for line in model.system_text().splitlines() if line.startswith("- [")]
    assert len(recalled) == 1  # an 80-token budget holds one ~55-token memory, not five
    assert "Sure." not in {it.content for it in cube.items(user_id="alice")}  # only user turns

    quiet = build(cube, model, recall=False, write_back=False)
    before = cube.count(user_id="alice")
    ask(quiet, "Alice note", "t2", "alice")
    assert model.system_text() == "You are a helpful assistant."
    assert cube.count(user_id="alice") == before


def test_memory_goes_into_an_existing_block_system_message(cube) -> None:
    cube.add("Bob is training for a marathon", user_id="bob")
    model = RecordingChatModel()
    agent = create_agent(
        model,
        system_prompt=SystemMessage(content=[{"type": "text", "text": "Be brief."}]),
        middleware=[MemoryMiddleware(store_cube := cube)],
        context_schema=Ctx,
    )
    agent.invoke({"messages": [HumanMessage("How far should I run today?")]}, context=Ctx("bob"))
    assert model.system_text().startswith("Be brief.")
    assert "marathon" in model.system_text()
    assert store_cube.count(user_id="bob") == 3


def test_missing_user_id_is_a_clear_error(cube) -> None:
    agent = create_agent(RecordingChatModel(), middleware=[MemoryMiddleware(cube)])
    with pytest.raises(InvalidUserIdError, match="user"):
        agent.invoke({"messages": [HumanMessage("hello")]})
    fixed = create_agent(RecordingChatModel(), middleware=[MemoryMiddleware(cube, user_id="carol")])
    fixed.invoke({"messages": [HumanMessage("I play the oboe")]})
    assert [it.content for it in cube.items(user_id="carol")][0] == "I play the oboe"


def test_cube_taken_from_the_store(cube) -> None:
    cube.add("Dana keeps bees", user_id="dana")
    model = RecordingChatModel()
    agent = create_agent(
        model, store=MemCubeStore(cube), middleware=[MemoryMiddleware()], context_schema=Ctx
    )
    agent.invoke({"messages": [HumanMessage("hobbies?")]}, context=Ctx("dana"))
    assert "Dana keeps bees" in model.system_text()
    with pytest.raises(Exception, match="no cube"):
        create_agent(RecordingChatModel(), middleware=[MemoryMiddleware()]).invoke(
            {"messages": [HumanMessage("hi")]}
        )


def test_sharing_is_decided_by_the_cube(cube) -> None:
    """The middleware only passes the user id: whether Bob sees Alice's memory is the cube's
    governance decision (a share), not the adapter's."""
    item = cube.add("Alice's door code is 4711", user_id="alice")
    model = RecordingChatModel()
    agent = build(cube, model, roles=["user"])
    ask(agent, "What is the door code?", "b1", "bob")
    assert "4711" not in model.system_text()
    cube.share("alice", "bob", ids=[item.id])
    ask(agent, "What is the door code?", "b2", "bob")
    assert "4711" in model.system_text()
    cube.unshare("alice", "bob")
    ask(agent, "What is the door code?", "b3", "bob")
    assert "4711" not in model.system_text()


def test_turns_on_screen_are_not_recalled_again(cube) -> None:
    """The second run of a thread has its first turns in the prompt already; the cube holds them
    too (written after the first run) but the middleware must not paste them in twice."""
    model = RecordingChatModel(reply="Noted, Biscuit the greyhound.")
    agent = build(cube, model)
    ask(agent, "My greyhound is called Biscuit.", "t1", "alice")
    turns = [i for i in cube.items(user_id="alice") if i.memory_type == "episodic"]
    assert len(turns) == 2  # both turns were written back
    ask(agent, "What breed is Biscuit?", "t1", "alice")
    assert [m.type for m in model.calls[-1]] == ["system", "human", "ai", "human"]
    assert "greyhound is called Biscuit" not in model.system_text()  # on screen, not recalled
    ask(agent, "What breed is Biscuit?", "t2", "alice")  # a new thread: not on screen
    # the user's statement (the turn, or the fact read from it: one line, never both) is back
    own = [line for line in model.system_text().splitlines() if "assistant said" not in line]
    assert sum("greyhound" in line and "Biscuit" in line for line in own) == 1, own
