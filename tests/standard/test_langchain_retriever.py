"""langchain-tests' standard ``RetrieversIntegrationTests`` for MemCubeRetriever, run offline on
a real cube (embedded and against a Chroma server)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_memos import MemCubeRetriever
from tests.langchain.shared import module_cube  # noqa: F401  (fixture)

MEMORIES = [
    "Alice's daughter Inês started school in September",
    "Alice is allergic to peanuts",
    "Alice lives in Lisbon, near the river",
    "Alice plays the cello in an amateur orchestra",
    "Alice prefers green tea to coffee",
]


class TestMemCubeRetriever(RetrieversIntegrationTests):
    @pytest.fixture(autouse=True)
    def _cube(self, module_cube) -> None:  # noqa: F811
        if module_cube.count(user_id="alice") == 0:
            module_cube.add_many([{"content": text, "user_id": "alice"} for text in MEMORIES])
            module_cube.add("Bob has three dogs", user_id="bob")
        self.cube = module_cube

    @property
    def retriever_constructor(self) -> type[MemCubeRetriever]:
        return MemCubeRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"cube": self.cube, "user_id": "alice", "k": 2}

    @property
    def retriever_query_example(self) -> str:
        return "What do we know about Alice's family?"
