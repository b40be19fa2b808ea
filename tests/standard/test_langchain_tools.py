"""langchain-tests' standard ``ToolsUnitTests`` and ``ToolsIntegrationTests`` for the four memory
tools, run offline on a real cube (embedded and against a Chroma server)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests

from langchain_memos import DeleteMemoryTool, SaveMemoryTool, SearchMemoriesTool, UpdateMemoryTool
from memcube.errors import ItemNotFoundError
from tests.langchain.shared import module_cube  # noqa: F401  (fixture)

MEMORY_ID = "mem-standard-1"
MEMORY_TEXT = "Alice is allergic to peanuts"


class _CubeTool:
    tool_class: type
    example: dict[str, Any]

    @pytest.fixture(autouse=True)
    def _cube(self, module_cube) -> None:  # noqa: F811
        # restored before every test that needs it: update and delete tests change it
        try:
            current = module_cube.get(MEMORY_ID, include_archived=False)
            intact = current.content == MEMORY_TEXT
        except ItemNotFoundError:
            intact = False
        if not intact:
            module_cube.add(MEMORY_TEXT, user_id="alice", id=MEMORY_ID)
        self.cube = module_cube

    @property
    def tool_constructor(self) -> type:
        return self.tool_class

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"cube": self.cube, "user_id": "alice"}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return dict(self.example)


class _Search(_CubeTool):
    tool_class = SearchMemoriesTool
    example = {"query": "food allergies", "k": 3}


class _Save(_CubeTool):
    tool_class = SaveMemoryTool
    example = {"content": "Alice's favourite colour is teal", "memory_type": "preference"}


class _Update(_CubeTool):
    tool_class = UpdateMemoryTool
    example = {"memory_id": MEMORY_ID, "content": "Alice is allergic to peanuts and cashews"}


class _Delete(_CubeTool):
    tool_class = DeleteMemoryTool
    example = {"memory_id": MEMORY_ID}


class TestSearchMemoriesUnit(_Search, ToolsUnitTests):
    pass


class TestSearchMemoriesIntegration(_Search, ToolsIntegrationTests):
    pass


class TestSaveMemoryUnit(_Save, ToolsUnitTests):
    pass


class TestSaveMemoryIntegration(_Save, ToolsIntegrationTests):
    pass


class TestUpdateMemoryUnit(_Update, ToolsUnitTests):
    pass


class TestUpdateMemoryIntegration(_Update, ToolsIntegrationTests):
    pass


class TestDeleteMemoryUnit(_Delete, ToolsUnitTests):
    pass


class TestDeleteMemoryIntegration(_Delete, ToolsIntegrationTests):
    pass
