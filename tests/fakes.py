"""The one test double of the chat-client protocol (``ChatClient.chat``) used by judge, suite and agent tests."""

from __future__ import annotations

from typing import Any

from memento_lab.agent.models.llm import ChatResult
from memento_lab.trace import LLMCall


def reply(content: str = "", parsed: dict[str, Any] | None = None, error: str | None = None) -> ChatResult:
    """A model reply as the real client returns it (with a call record)."""
    return ChatResult(content=content, parsed=parsed, error=error, call=LLMCall(role="judge", model="fake"))


class FakeChat:
    """Answers ``chat`` from ``replies`` in order (an Exception is raised), or with ``always`` forever;
    records every request."""

    def __init__(
        self, replies: list[ChatResult | Exception] | None = None, *, always: ChatResult | None = None
    ):
        self.replies = list(replies or [])
        self.always = always
        self.requests: list[dict[str, Any]] = []

    @property
    def calls(self) -> int:
        return len(self.requests)

    async def chat(
        self, messages, json_schema=None, temperature=0.0, max_tokens=None, **kw: Any
    ) -> ChatResult:
        self.requests.append(
            {
                "messages": messages,
                "json_schema": json_schema,
                "temperature": temperature,
                "max_tokens": max_tokens,
            }
        )
        if self.always is not None:
            return self.always
        item = self.replies.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def always_correct() -> FakeChat:
    """A judge whose verdict is always 'correct'."""
    return FakeChat(always=reply(parsed={"reasoning": "fine", "verdict": "correct"}))
