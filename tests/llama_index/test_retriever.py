"""MemCubeRetriever: NodeWithScore carrying the memory header, user scoping, filters, tool use."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from llama_index_memos import MemCubeRetriever
from memcube import InvalidFilterError, InvalidInputError, InvalidUserIdError, MemCube
from tests.llama_index.llms import RecordingLLM

WHEN = datetime(2025, 6, 1, 9, 30, tzinfo=timezone.utc)


@pytest.fixture
def filled(cube: MemCube) -> MemCube:
    cube.add_many(
        [
            dict(
                content="Max runs the Berlin marathon every September",
                memory_type="fact",
                event_time=WHEN,
                metadata={"city": "Berlin", "year": 2025},
                tags=["sport"],
                provenance={"source": "api", "message_ids": ["m-1"]},
                session_id="s-9",
            ),
            dict(
                content="Max trains on Tuesdays in the Tiergarten",
                metadata={"city": "Berlin", "year": 2023},
            ),
            dict(
                content="Max visited Rome for a marathon",
                memory_type="episodic",
                metadata={"city": "Rome", "year": 2024},
            ),
            dict(content="Nia runs the Berlin marathon too", memory_type="fact", user_id="nia"),
        ],
        user_id="max",
    )
    return cube


async def test_nodes_carry_the_memory_header(filled: MemCube) -> None:
    retriever = MemCubeRetriever(filled, "max", similarity_top_k=2)
    nodes = retriever.retrieve("When is the Berlin marathon?")
    assert len(nodes) == 2 and nodes[0].score >= nodes[1].score
    top = nodes[0]
    item = filled.get(top.node.node_id)
    md = top.node.metadata
    assert md["memory_id"] == item.id and top.text == item.content
    assert md["memory_type"] == "fact" and md["event_time"] == WHEN.isoformat()
    assert md["provenance"]["source"] == "api" and md["provenance"]["message_ids"] == ["m-1"]
    assert md["score"] == top.score and md["user_id"] == "max" and md["session_id"] == "s-9"
    assert md["tags"] == ["sport"] and md["metadata"] == {"city": "Berlin", "year": 2025}
    # The LLM sees the memory and when it happened; ids and provenance stay out of the prompt.
    shown = top.node.get_content(MetadataMode.LLM)
    assert item.content in shown and WHEN.isoformat() in shown
    assert "m-1" not in shown and item.id not in shown and "fact" not in shown
    assert top.node.get_content(MetadataMode.EMBED) == item.content
    for node in nodes:  # event_time only when the memory has one; created_at always
        stored = filled.get(node.node.node_id)
        assert ("event_time" in node.node.metadata) == (stored.event_time is not None)
        assert node.node.metadata["created_at"] == stored.created_at.isoformat()
    again = await retriever.aretrieve("When is the Berlin marathon?")
    assert [n.node.node_id for n in again] == [n.node.node_id for n in nodes]


def test_user_scoping(filled: MemCube) -> None:
    assert {
        n.node.metadata["user_id"] for n in MemCubeRetriever(filled, "nia").retrieve("marathon")
    } == {"nia"}
    assert MemCubeRetriever(filled, "nobody").retrieve("marathon") == []
    with pytest.raises(InvalidUserIdError):
        MemCubeRetriever(filled, "")
    with pytest.raises(InvalidInputError):
        MemCubeRetriever("cube", "max")
    with pytest.raises(InvalidInputError):
        MemCubeRetriever(filled, "max", similarity_top_k=0)
    with pytest.raises(InvalidInputError):
        MemCubeRetriever(filled, "max").retrieve("   ")


def test_filters_dict_and_llama_index_metadata_filters(filled: MemCube) -> None:
    def contents(**kw: object) -> set[str]:
        return {n.text for n in MemCubeRetriever(filled, "max", **kw).retrieve("marathon training")}

    assert contents(filters={"city": "Rome"}) == {"Max visited Rome for a marathon"}
    assert contents(memory_types=["fact"]) == {"Max runs the Berlin marathon every September"}
    assert contents(tags=["sport"]) == {"Max runs the Berlin marathon every September"}
    mf = MetadataFilters(
        filters=[
            MetadataFilter(key="city", value="Berlin"),
            MetadataFilter(key="year", value=2024, operator=FilterOperator.LT),
        ]
    )
    assert contents(filters=mf) == {"Max trains on Tuesdays in the Tiergarten"}
    either = MetadataFilters(
        filters=[
            MetadataFilter(key="memory_type", value="episodic"),
            MetadataFilter(key="year", value=[2025], operator=FilterOperator.IN),
        ],
        condition=FilterCondition.OR,
    )
    assert contents(filters=either) == {
        "Max visited Rome for a marathon",
        "Max runs the Berlin marathon every September",
    }
    with pytest.raises(InvalidFilterError):
        MemCubeRetriever(
            filled,
            "max",
            filters=MetadataFilters(
                filters=[
                    MetadataFilter(key="city", value="Ber", operator=FilterOperator.TEXT_MATCH)
                ]
            ),
        )


async def test_query_engine_and_agent_tool(filled: MemCube) -> None:
    llm = RecordingLLM(reply="Every September.")
    engine = RetrieverQueryEngine.from_args(
        MemCubeRetriever(filled, "max", similarity_top_k=1), llm=llm
    )
    response = await engine.aquery("When do I run the Berlin marathon?")
    assert str(response) == "Every September."
    assert "Max runs the Berlin marathon every September" in llm.prompts[-1]
    tool = MemCubeRetriever(filled, "max", similarity_top_k=1).as_tool()
    assert tool.metadata.name == "search_memories"
    out = await tool.acall(input="Berlin marathon")
    assert "September" in out.content and out.raw_output[0].node.metadata["user_id"] == "max"
    assert "Nia" not in tool.call(input="who else runs the Berlin marathon").content
