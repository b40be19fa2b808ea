"""One rule set for the generation settings of both LLM wrappers (memcube.runtime.settings)."""

from __future__ import annotations

import pytest

from langchain_memos import ChatMemOS
from llama_index_memos import MemOSLLM
from memcube import InvalidInputError, InvalidSettingError
from memcube.runtime.settings import GenerationSettings, plan_call

WRAPPERS = [ChatMemOS, MemOSLLM]


@pytest.mark.parametrize("wrapper", WRAPPERS)
@pytest.mark.parametrize(
    "bad",
    [{"max_tokens": 0}, {"max_tokens": True}, {"temperature": -0.1}, {"top_p": 0.0},
     {"timeout": 0}, {"memory_budget": -1}],
)  # fmt: skip
def test_both_wrappers_refuse_the_same_values(wrapper: type, bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidSettingError) as info:
        wrapper(**bad)
    assert isinstance(info.value, InvalidInputError) and next(iter(bad)) in str(info.value)


@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_both_wrappers_share_the_defaults(wrapper: type) -> None:
    model = wrapper()
    base = GenerationSettings()
    for name in ("model", "temperature", "max_tokens", "top_p", "memory_budget", "adapter"):
        assert getattr(model, name) == getattr(base, name)


def test_a_call_plan_adds_stop_sequences_and_checks_overrides() -> None:
    settings = GenerationSettings(stop=["\n\n"], max_tokens=32)
    plan = plan_call(settings, {"stop": ["END"], "max_tokens": None, "unrelated": 1})
    assert list(plan.options.stop) == ["\n\n", "END"] and plan.options.max_new_tokens == 32
    with pytest.raises(InvalidSettingError, match="max_tokens"):
        plan_call(settings, {"max_tokens": 0})
    with pytest.raises(InvalidSettingError, match="stop"):
        plan_call(settings, {"stop": "END"})
