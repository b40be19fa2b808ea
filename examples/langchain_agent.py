"""A LangChain agent with long-term memory that lasts across threads and restarts, offline.

Run from the repository root:

    .venv/bin/python examples/langchain_agent.py [--path CUBE_DIR]

What happens:
1. thread 1: the user tells the agent a few facts; ``MemoryMiddleware`` writes the turns into the
   cube after the run (through the cube's reader);
2. thread 2 (a new thread, so the checkpointer has no history): the middleware recalls the facts
   from the cube into the system message before the model call;
3. restart: the cube is closed and reopened, a new agent is built, and a third thread recalls the
   facts again. Another user, Bob, sees none of Alice's memories.

The chat model is ``ChatMemOS`` (the bundled SmolLM2-135M-Instruct, running locally on CPU); it is
small, so judge the memory by the printed system prompt rather than by the answer's wit.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source checkout

from langchain.agents import create_agent  # noqa: E402
from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402

from langchain_memos import MemCubeStore, MemoryMiddleware  # noqa: E402
from langchain_memos.chat_model import ChatMemOS  # noqa: E402
from memcube import MemCube  # noqa: E402

FACTS = "Hi! I'm Alice. I am allergic to peanuts, and my daughter Inês turns seven in May."


@dataclass
class Context:
    """What the agent knows about the caller; ``MemoryMiddleware`` reads ``user_id`` from it."""

    user_id: str


class ShowSystemPrompt(BaseCallbackHandler):
    """Prints the system message each model call receives (where recalled memories go)."""

    def __init__(self) -> None:
        self.last = ""

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        system = [m.text for m in messages[0] if m.type == "system"]
        self.last = "\n".join(system)
        print("  system prompt the model received:")
        for line in self.last.splitlines():
            print(f"    | {line}")


def build_agent(cube: MemCube, model: ChatMemOS) -> Any:
    return create_agent(
        model,
        system_prompt="You are a friendly assistant. Answer in one or two sentences.",
        store=MemCubeStore(cube),
        # remember what the user says (a 135M model's answers are not worth remembering)
        middleware=[MemoryMiddleware(cube, token_budget=256, roles=["user"])],
        checkpointer=InMemorySaver(),
        context_schema=Context,
    )


def ask(agent: Any, text: str, thread: str, user: str, shown: ShowSystemPrompt) -> str:
    print(f"\n[{user} / thread {thread}] {text}")
    result = agent.invoke(
        {"messages": [{"role": "user", "content": text}]},
        {"configurable": {"thread_id": thread}, "callbacks": [shown]},
        context=Context(user_id=user),
    )
    answer = result["messages"][-1].text
    print(f"  answer: {answer.strip()}")
    return shown.last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=None, help="cube folder (default: a temp dir)")
    parser.add_argument("--max-tokens", type=int, default=40, help="tokens per answer")
    args = parser.parse_args()
    path = args.path or Path(tempfile.mkdtemp(prefix="memos-agent-")) / "cube"
    model = ChatMemOS(max_tokens=args.max_tokens)
    shown = ShowSystemPrompt()

    with MemCube.open(path) as cube:
        agent = build_agent(cube, model)
        ask(agent, FACTS, "1", "alice", shown)
        seen = ask(agent, "Can you suggest a snack for my daughter's party?", "2", "alice", shown)
        recalled_before = "peanuts" in seen
    print(f"\n(cube closed; reopening {path})")

    with MemCube.open(path) as cube:
        agent = build_agent(cube, model)
        seen = ask(agent, "What am I allergic to?", "3", "alice", shown)
        recalled_after = "peanuts" in seen
        bob = ask(agent, "What am I allergic to?", "4", "bob", shown)
        isolated = "peanuts" not in bob
        print(
            f"\nmemories in the cube: alice={cube.count(user_id='alice')}, "
            f"bob={cube.count(user_id='bob')}"
        )

    ok = recalled_before and recalled_after and isolated
    print(
        f"\nrecalled in a new thread: {recalled_before}; after restart: {recalled_after}; "
        f"Bob isolated: {isolated}"
    )
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
