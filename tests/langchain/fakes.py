"""A deterministic chat model that records every prompt it receives (for asserting what reached
the model). It answers with a fixed reply; it is a test double, never shipped."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field


class RecordingChatModel(BaseChatModel):
    """Replies ``reply`` and appends each call's messages to ``calls``."""

    reply: str = "Noted."
    calls: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recording-fake"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.reply))])

    def bind_tools(self, tools: Any, **kwargs: Any) -> RecordingChatModel:
        return self

    def system_text(self, call: int = -1) -> str:
        """The system message text of one recorded call ("" if it had none)."""
        messages = self.calls[call]
        return "\n".join(m.text for m in messages if m.type == "system")
