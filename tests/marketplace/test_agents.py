"""A subscribed team cube mounted read-only as shared memory: both frameworks' prompt blocks
show its memories attributed to their publisher (the cube renders the block; the adapters only
inject it)."""

from __future__ import annotations

from dataclasses import dataclass

from langchain.agents import create_agent
from langchain_core.messages import HumanMessage

from langchain_memos import MemoryMiddleware
from llama_index_memos import MemCubeMemory
from tests.langchain.fakes import RecordingChatModel


@dataclass
class Ctx:
    user_id: str


def test_mounted_team_cube_in_both_prompt_blocks(cube_at, repo, creds, keys) -> None:
    ref = repo("team-kb:main")
    team = cube_at("team")
    team.add("The VPN endpoint is vpn.acme.example", user_id="kb")
    team.publish(ref, signing_key=keys["a"], user_id="kb", publisher="IT desk")

    app = cube_at("app")
    app.add("I prefer short answers", user_id="ana")
    app.subscribe(ref, trusted_keys=[keys["a.pub"]], as_user="team-kb", share_with=["ana"])
    app.sync()
    line = "team-kb's memory (published by IT desk, shared with you): The VPN endpoint is vpn.acme"

    model = RecordingChatModel(reply="Use vpn.acme.example.")
    agent = create_agent(model, middleware=[MemoryMiddleware(app, write_back=False)],
                         context_schema=Ctx)  # fmt: skip
    agent.invoke({"messages": [HumanMessage("What is the VPN endpoint?")]}, context=Ctx("ana"))
    assert line in model.system_text()

    memory = MemCubeMemory.from_defaults(cube=app, user_id="ana")
    memory.put_messages([])
    texts = [m.content for m in memory.get(input="What is the VPN endpoint?")]
    assert any(line in (t or "") for t in texts)
    # the reader cannot change the team's memories; another user does not see them at all
    vpn = next(iter(app.items(user_id="team-kb")))
    assert app.get(vpn.id, user_id="ana").content.startswith("The VPN")
    assert app.memory_block("What is the VPN endpoint?", user_id="bob") == ""
