"""Memory tools without a fixed user read it from the LangGraph run (the tool's ``ToolRuntime``):
one tool set serves every user of a multi-user agent, each call acting for its own run's user."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.tools import ToolRuntime
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from pydantic import Field
from typing_extensions import TypedDict

from langchain_memos import create_memory_tools
from langchain_memos.tools import MissingUserIdError, SaveMemoryTool, SearchMemoriesTool
from memcube import InvalidInputError, InvalidUserIdError, MemCube

_COMMAND = re.compile(r"^(save|find|forget): (.+)$")


class ToolCallingModel(BaseChatModel):
    """A deterministic tool-calling chat model: ``save: TEXT`` calls ``save_memory``,
    ``find: QUERY`` calls ``search_memories``, ``forget: ID`` calls ``delete_memory``; after a tool
    result it answers with that result. It keeps the tool schemas it was bound to."""

    bound: list[dict[str, Any]] = Field(default_factory=list)
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "tool-calling-fake"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ToolCallingModel:
        self.bound = [convert_to_openai_tool(t) for t in tools]
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls += 1
        last = messages[-1]
        if isinstance(last, ToolMessage):
            reply = AIMessage(content=f"Tool said: {last.text}")
        else:
            match = _COMMAND.match(last.text.strip())
            assert match, f"unscripted prompt {last.text!r}"
            verb, arg = match.groups()
            name, args = {
                "save": ("save_memory", {"content": arg}),
                "find": ("search_memories", {"query": arg, "k": 5}),
                "forget": ("delete_memory", {"memory_id": arg}),
            }[verb]
            call_id = f"call-{self.calls}"
            reply = AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id}])
        return ChatResult(generations=[ChatGeneration(message=reply)])


@dataclass
class Ctx:
    user_id: str


class DictCtx(TypedDict):
    user_id: str


def ask(agent: Any, text: str, **kwargs: Any) -> str:
    result = agent.invoke({"messages": [HumanMessage(text)]}, **kwargs)
    return str(result["messages"][-1].text)


def contents(cube: MemCube, user_id: str) -> list[str]:
    return sorted(item.content for item in cube.items(user_id=user_id))


def runtime(context: Any = None, config: dict[str, Any] | None = None) -> ToolRuntime[Any, Any]:
    """A ToolRuntime as ToolNode builds it for one call."""
    return ToolRuntime(
        state={"messages": []},
        context=context,
        config=config or {},  # type: ignore[typeddict-item]
        stream_writer=lambda _chunk: None,
        tool_call_id="call-1",
        store=None,
    )


def tool_call(name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_call", "id": "call-1", "name": name, "args": args}


# ------------------------------------------------------------------------------ in an agent
def test_one_tool_set_serves_two_users_of_one_agent(cube: MemCube) -> None:
    model = ToolCallingModel()
    agent = create_agent(model, tools=create_memory_tools(cube), context_schema=Ctx)
    assert "Saved memory" in ask(agent, "save: I play the cello", context=Ctx("alice"))
    # The model is never asked for the runtime: it is injected, not part of the tool schema.
    assert len(model.bound) == 4 and all(
        "runtime" not in t["function"]["parameters"]["properties"] for t in model.bound
    )
    assert "Saved memory" in ask(agent, "save: I play the drums", context=Ctx("bob"))
    assert contents(cube, "alice") == ["I play the cello"]
    assert contents(cube, "bob") == ["I play the drums"]

    alice_found = ask(agent, "find: which instrument", context=Ctx("alice"))
    bob_found = ask(agent, "find: which instrument", context=Ctx("bob"))
    assert "cello" in alice_found and "drums" not in alice_found
    assert "drums" in bob_found and "cello" not in bob_found

    # Bob's run cannot delete Alice's memory through the shared tools: the cube refuses and the
    # model is told so (handle_tool_error=True).
    (alice_item,) = cube.items(user_id="alice")
    answer = ask(agent, f"forget: {alice_item.id}", context=Ctx("bob"))
    assert "no memory" in answer.lower()
    assert contents(cube, "alice") == ["I play the cello"]
    assert "Deleted memory" in ask(agent, f"forget: {alice_item.id}", context=Ctx("alice"))
    assert contents(cube, "alice") == []


async def test_concurrent_async_runs_each_act_for_their_own_user(cube: MemCube) -> None:
    agent = create_agent(
        ToolCallingModel(), tools=create_memory_tools(cube), context_schema=DictCtx
    )
    users = [f"user-{i}" for i in range(4)]
    results = await asyncio.gather(
        *(
            agent.ainvoke(
                {"messages": [HumanMessage(f"save: {user} owns a blue kayak")]},
                context={"user_id": user},  # a mapping context
            )
            for user in users
        )
    )
    assert all("Saved memory" in r["messages"][-1].text for r in results)
    for user in users:
        assert contents(cube, user) == [f"{user} owns a blue kayak"]


def test_the_user_can_come_from_the_run_config(cube: MemCube) -> None:
    agent = create_agent(ToolCallingModel(), tools=create_memory_tools(cube))  # no context
    ask(agent, "save: I live in Faro", config={"configurable": {"user_id": "carol"}})
    assert contents(cube, "carol") == ["I live in Faro"]
    # The context wins over the config; a custom key is honoured in both.
    keyed = create_agent(ToolCallingModel(), tools=create_memory_tools(cube, user_id_key="tenant"))
    ask(keyed, "save: I live in Braga", context={"tenant": "dan"}, config={"configurable": {}})
    ask(
        keyed,
        "save: I live in Evora",
        context={"tenant": "erin"},
        config={"configurable": {"tenant": "dan"}},
    )
    assert contents(cube, "dan") == ["I live in Braga"]
    assert contents(cube, "erin") == ["I live in Evora"]


def test_a_fixed_user_is_never_overridden_by_the_run(cube: MemCube) -> None:
    agent = create_agent(
        ToolCallingModel(), tools=create_memory_tools(cube, user_id="alice"), context_schema=Ctx
    )
    ask(agent, "save: I like figs", context=Ctx("mallory"))
    ask(agent, "save: I like dates")  # and it needs no context at all
    assert contents(cube, "alice") == ["I like dates", "I like figs"]
    assert contents(cube, "mallory") == []


def test_no_user_anywhere_fails_the_run_with_a_clear_error(cube: MemCube) -> None:
    model = ToolCallingModel()
    agent = create_agent(model, tools=create_memory_tools(cube), context_schema=Ctx)
    # A configuration mistake: the run fails (it is not handed to the model as a tool error).
    with pytest.raises(MissingUserIdError, match=r"user_id=.*context=") as info:
        ask(agent, "save: I like figs")
    assert isinstance(info.value, InvalidUserIdError)
    assert cube.count() == 0
    with pytest.raises(InvalidUserIdError, match="user_id"):  # a bad id in the context
        ask(agent, "save: I like figs", context=Ctx(""))
    assert cube.count() == 0


# ------------------------------------------------------------------------------ called directly
def test_a_tool_call_with_a_runtime_acts_for_its_user(cube: MemCube) -> None:
    save, search = SaveMemoryTool(cube=cube), SearchMemoriesTool(cube=cube)
    message = save.invoke(
        tool_call("save_memory", {"content": "Likes jazz", "runtime": runtime(Ctx("alice"))})
    )
    assert isinstance(message, ToolMessage) and "Saved memory" in message.text
    save.invoke(
        tool_call(
            "save_memory",
            {
                "content": "Likes opera",
                "runtime": runtime(config={"configurable": {"user_id": "bo"}}),
            },
        )
    )
    assert contents(cube, "alice") == ["Likes jazz"] and contents(cube, "bo") == ["Likes opera"]
    found = search.invoke(
        tool_call("search_memories", {"query": "music", "runtime": runtime(Ctx("bo"))})
    )
    assert "opera" in found.text and "jazz" not in found.text
    # A fixed user needs no runtime, as before.
    assert "jazz" in SearchMemoriesTool(cube=cube, user_id="alice").invoke({"query": "music"})


async def test_async_tool_calls_read_the_runtime_too(cube: MemCube) -> None:
    (save,) = create_memory_tools(cube, include=("save",))
    await save.ainvoke(
        tool_call("save_memory", {"content": "Hates rain", "runtime": runtime({"user_id": "cy"})})
    )
    assert contents(cube, "cy") == ["Hates rain"]
    with pytest.raises(MissingUserIdError):
        await save.ainvoke({"content": "Hates rain"})


def test_in_a_tool_node_of_a_custom_graph(cube: MemCube) -> None:
    node = ToolNode(create_memory_tools(cube, include=("save",)))
    graph = StateGraph(MessagesState, context_schema=Ctx).add_node("tools", node)
    app = graph.add_edge(START, "tools").compile()
    call = {"name": "save_memory", "args": {"content": "Rides a tandem"}, "id": "c1"}
    for user in ("ana", "ben"):
        out = app.invoke({"messages": [AIMessage("", tool_calls=[call])]}, context=Ctx(user))
        assert "Saved memory" in out["messages"][-1].text
    assert contents(cube, "ana") == contents(cube, "ben") == ["Rides a tandem"]


def test_without_any_user_the_tool_raises_a_typed_error(cube: MemCube) -> None:
    search, save = create_memory_tools(cube, include=("search", "save"))
    # Even with handle_tool_error=True (the default): the model cannot fix a missing user.
    with pytest.raises(MissingUserIdError, match=r"create_memory_tools\(cube, user_id="):
        save.invoke({"content": "Likes jazz"})
    with pytest.raises(MissingUserIdError, match="context"):
        search.invoke(tool_call("search_memories", {"query": "x", "runtime": runtime()}))
    with pytest.raises(MissingUserIdError):  # a context without the key, and no config either
        search.invoke(
            tool_call("search_memories", {"query": "x", "runtime": runtime({"tenant": "t"})})
        )
    with pytest.raises(InvalidUserIdError):  # a bad fixed id is refused at construction
        SaveMemoryTool(cube=cube, user_id="bad\nid")
    with pytest.raises(InvalidInputError, match="user_id_key"):
        create_memory_tools(cube, user_id_key="")
    assert cube.count() == 0
