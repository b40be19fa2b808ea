"""The LangChain adapters inject the cube's one memory block and rank on calibrated scores
(issue 18)."""

from __future__ import annotations

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


def test_middleware_injects_exactly_the_cubes_memory_block(cube: MemCube) -> None:
    cube.add_messages(
        [
            {"role": "user", "content": "Any good places to eat near Rua das Flores in Porto?"},
            {"role": "assistant", "content": "You could try Taberna do Ferrolho."},
            {"role": "user", "content": "I'm going with my sister Anjali for her 30th."},
        ],
        user_id="ravi",
    )
    cube.add_messages(
        [{"role": "user", "content": "I'm training for the Berlin marathon."}], user_id="greta"
    )
    cube.share("greta", "ravi")
    model = RecordingChatModel(reply="Sure.")
    agent = create_agent(
        model,
        system_prompt="You help.",
        middleware=[MemoryMiddleware(cube, token_budget=250, write_back=False)],
        checkpointer=InMemorySaver(),
        context_schema=Ctx,
    )
    question = "Where should we eat in Porto after Greta's marathon?"
    agent.invoke(
        {"messages": [HumanMessage(question)]},
        {"configurable": {"thread_id": "t"}},
        context=Ctx(user_id="ravi"),
    )
    expected = cube.memory_block(
        question, user_id="ravi", token_budget=250, exclude_texts=[question]
    )
    assert expected and model.system_text() == f"You help.\n\n{expected}"
    for line in expected.splitlines():
        if "Ferrolho" in line:
            assert "assistant said" in line
        if "marathon" in line:
            assert "greta" in line and "(shared with you)" in line
            assert "User is" not in line  # the owner is named, not "User"


def test_middleware_min_score_leaves_out_weak_memories(cube: MemCube) -> None:
    cube.add("The user's boiler is a Worcester Bosch.", user_id="u")
    model = RecordingChatModel(reply="Ok.")
    agent = create_agent(
        model,
        middleware=[MemoryMiddleware(cube, user_id="u", min_score=0.5)],
        checkpointer=InMemorySaver(),
    )
    agent.invoke(
        {"messages": [HumanMessage("Who won the 1966 World Cup?")]},
        {"configurable": {"thread_id": "x"}},
    )
    assert "Worcester" not in model.system_text()


def test_store_search_across_users_ranks_on_calibrated_scores(cube: MemCube) -> None:
    store = MemCubeStore(cube)
    store.put(
        ("alice", "memories"), "cello", {"text": "Alice plays the cello in a community orchestra."}
    )
    for i in range(12):
        store.put(
            ("bob", "memories"), f"n{i}", {"text": f"Bob's note {i}: buy milk, eggs and bread."}
        )
    store.put(("bob", "memories"), "pens", {"text": "Bob collects fountain pens."})
    hits = store.search((), query="which instrument does she play in the orchestra?", limit=3)
    assert hits[0].key == "cello"
    assert hits[0].score is not None and 0.5 <= hits[0].score <= 1.0
    assert all(h.score is not None and h.score < hits[0].score for h in hits[1:])
