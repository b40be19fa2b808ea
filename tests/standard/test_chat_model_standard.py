"""langchain-tests standard suites against ChatMemOS with the bundled SmolLM2-135M-Instruct.

Tool calls forced with ``tool_choice="any"`` (and structured output) use constrained decoding,
so they are valid by construction. The xfails below are about what a 135M-parameter model
cannot do reliably when *it* must decide; the tool-call rendering and parsing path is tested
deterministically in ``tests/runtime/test_chat.py``.
"""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_memos import ChatMemOS

pytestmark = pytest.mark.slow

_SMALL_MODEL = (
    "SmolLM2-135M-Instruct (135M parameters) does not reliably decide on its own (tool_choice "
    "unset) to call a tool; forced calls are covered by test_tool_choice / test_tool_calling"
)


class TestChatMemOSUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatMemOS

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {}


class TestChatMemOSIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatMemOS

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # Enough tokens for a forced JSON tool call / small structured answer, few for speed.
        return {"max_tokens": 48, "temperature": 0}

    @pytest.mark.xfail(reason=_SMALL_MODEL, run=False)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    # The Joke schema has two free-text fields. Constrained decoding keeps the JSON valid while it
    # is produced, but SmolLM2-135M falls into repetition loops inside free-text strings ("the cat
    # was a cat, and the cat was a cat, ...") and is cut off by max_tokens before the second field.
    # Valid-by-construction structured output is tested in tests/runtime/test_engine.py.
    _LOOPS = (
        "SmolLM2-135M loops inside free-text JSON strings and is cut off by max_tokens before "
        "the Joke's second field; constrained decoding is tested in tests/runtime/test_engine.py"
    )

    @pytest.mark.xfail(reason=_LOOPS, run=False)
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    def test_structured_output(self, model: BaseChatModel, schema_type: Any) -> None:
        super().test_structured_output(model, schema_type)

    @pytest.mark.xfail(reason=_LOOPS, run=False)
    @pytest.mark.parametrize("schema_type", ["pydantic", "typeddict", "json_schema"])
    async def test_structured_output_async(self, model: BaseChatModel, schema_type: Any) -> None:
        await super().test_structured_output_async(model, schema_type)

    @pytest.mark.xfail(reason=_LOOPS, run=False)
    def test_structured_output_pydantic_2_v1(self, model: BaseChatModel) -> None:
        super().test_structured_output_pydantic_2_v1(model)

    @pytest.mark.xfail(reason=_LOOPS, run=False)
    def test_structured_output_optional_param(self, model: BaseChatModel) -> None:
        super().test_structured_output_optional_param(model)

    @pytest.mark.xfail(
        reason=_LOOPS.replace("the Joke's second field", "the call's JSON closes"), run=False
    )
    def test_unicode_tool_call_integration(self, model: BaseChatModel, **kwargs: Any) -> None:
        super().test_unicode_tool_call_integration(model, **kwargs)
