"""A chat model that works without a network: it reads the conversation and calls tools.

It is stateless and deterministic: the reply depends only on the messages and the bound
tools, so replies can be cached and tests can assert exact text.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import ToolCall, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from .intents import capabilities, describe_result, parse_request

_PIECE = re.compile(r"\S+\s*|\s+")
# What the offline model counts as a token: a word, or any other non-space character.
_TOKEN = re.compile(r"\w+|[^\w\s]")
MAX_QUOTE_CHARS = 200


def count_tokens(text: str) -> int:
    """Tokens in ``text`` as the offline model counts them: words and punctuation marks."""
    return len(_TOKEN.findall(text))


def _message_tokens(message: BaseMessage) -> int:
    tokens = count_tokens(message.text)
    for call in getattr(message, "tool_calls", None) or []:
        tokens += count_tokens(call["name"]) + count_tokens(json.dumps(call["args"], sort_keys=True))
    return tokens


def usage_of(messages: Sequence[BaseMessage], reply: BaseMessage) -> UsageMetadata:
    """Token usage of a reply, counted from the text of the prompt and of the reply."""
    input_tokens = sum(_message_tokens(m) for m in messages)
    output_tokens = _message_tokens(reply)
    return UsageMetadata(
        input_tokens=input_tokens, output_tokens=output_tokens, total_tokens=input_tokens + output_tokens
    )


def _tool_names(tools: Sequence[dict[str, Any]] | None) -> list[str]:
    names = []
    for spec in tools or []:
        function = spec.get("function", spec)
        if isinstance(function, dict) and function.get("name"):
            names.append(function["name"])
    return names


def _call_id(position: int, index: int, name: str, args: dict[str, Any]) -> str:
    # Derived from the conversation, so the same conversation gets the same ids.
    digest = hashlib.sha256(f"{position}|{index}|{name}|{json.dumps(args, sort_keys=True)}".encode())
    return f"call_{digest.hexdigest()[:16]}"


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_QUOTE_CHARS else text[: MAX_QUOTE_CHARS - 1] + "…"


class OfflineChatModel(BaseChatModel):
    """Deterministic offline chat model with tool calling.

    It turns common requests (arithmetic, unit conversion, dates, notes, the bundled
    docs) into calls of the bound tools, and words its answer from their results:
    "what is 17 * 23?" becomes a ``calculator`` call and then "17 * 23 = 391". For
    anything else it says what it can do. It streams its answer word by word, and a
    tool call as one chunk carrying ``tool_call_chunks``.

    Like hosted models it reports ``usage_metadata`` (input, output and total tokens,
    counted from the text with :func:`count_tokens`; in the last chunk when streaming) and
    its name in ``response_metadata["model_name"]``.
    """

    model_name: str = "offline"
    """Name shown in traces."""

    @property
    def _llm_type(self) -> str:
        return "tracedb-offline"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools the way hosted models do: as OpenAI-format schemas in the call kwargs.

        Args:
            tools: tools, functions, pydantic classes or OpenAI tool dicts.
            tool_choice: accepted for compatibility; the model decides from the request.
            **kwargs: further call kwargs to bind.
        """
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def respond(
        self, messages: Sequence[BaseMessage], tools: Sequence[dict[str, Any]] | None = None
    ) -> AIMessage:
        """The reply to ``messages`` given the bound ``tools`` (OpenAI-format dicts).

        Args:
            messages: the conversation so far.
            tools: the bound tool schemas; only these tools are called.

        Returns:
            An ``AIMessage`` with either tool calls or the answer text.
        """
        available = _tool_names(tools)
        humans = [i for i, m in enumerate(messages) if isinstance(m, HumanMessage)]
        if not humans:
            return AIMessage(content=capabilities(available))
        turn = messages[humans[-1] + 1 :]
        if any(isinstance(m, ToolMessage) for m in turn):
            return AIMessage(content=self._answer_from_results(turn))
        request = parse_request(messages[humans[-1]].text)
        calls = [c for c in request.calls if c.name in available]
        if calls:
            tool_calls = [
                ToolCall(
                    name=c.name, args=c.args, id=_call_id(len(messages), i, c.name, c.args), type="tool_call"
                )
                for i, c in enumerate(calls)
            ]
            return AIMessage(content="", tool_calls=tool_calls)
        if request.asks_history:
            return AIMessage(content=self._recall([messages[i] for i in humans[:-1]]))
        if request.greeting:
            return AIMessage(content="Hello! " + capabilities(available))
        if request.asks_help:
            return AIMessage(content=capabilities(available))
        if request.calls:
            missing = ", ".join(sorted({c.name for c in request.calls}))
            return AIMessage(
                content=f"That needs the {missing} tool, which is not available to me. "
                + capabilities(available)
            )
        return AIMessage(content="I cannot answer that offline. " + capabilities(available))

    @staticmethod
    def _answer_from_results(turn: Sequence[BaseMessage]) -> str:
        asked = [(i, m) for i, m in enumerate(turn) if isinstance(m, AIMessage) and m.tool_calls]
        if not asked:
            return "I received tool results I did not ask for."
        position, request = asked[-1]
        results = {m.tool_call_id: m for m in turn[position + 1 :] if isinstance(m, ToolMessage)}
        lines = []
        for call in request.tool_calls:
            result = results.get(call["id"] or "")
            if result is None:
                lines.append(f"The {call['name']} tool gave no result.")
            else:
                lines.append(
                    describe_result(call["name"], call["args"], result.text, result.status != "error")
                )
        return "\n".join(lines)

    @staticmethod
    def _recall(earlier: Sequence[BaseMessage]) -> str:
        if not earlier:
            return "This is the first message of our conversation."
        quoted = "\n".join(f"{n}. {_quote(m.text)}" for n, m in enumerate(earlier, start=1))
        return f"Earlier in this conversation you said:\n{quoted}"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self.respond(messages, kwargs.get("tools"))
        reply.usage_metadata = reply.usage_metadata or usage_of(messages, reply)
        reply.response_metadata = {"model_name": self.model_name, **reply.response_metadata}
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        # BaseChatModel reports each yielded chunk to the callbacks (on_llm_new_token), so
        # doing it here too would stream every token twice.
        message = self.respond(messages, kwargs.get("tools"))
        pieces = _PIECE.findall(message.text)
        for piece in pieces[:-1] if not message.tool_calls else pieces:
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        # The last chunk carries the usage and the model name, as hosted models send them.
        last: dict[str, Any] = {
            "usage_metadata": message.usage_metadata or usage_of(messages, message),
            "response_metadata": {"model_name": self.model_name, **message.response_metadata},
            "chunk_position": "last",
        }
        if message.tool_calls:
            # One chunk with complete arguments: consumers of the ``messages`` stream mode
            # see whole tool calls instead of JSON fragments.
            chunks = [
                tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
                for i, c in enumerate(message.tool_calls)
            ]
            yield ChatGenerationChunk(message=AIMessageChunk(content="", tool_call_chunks=chunks, **last))
        else:
            yield ChatGenerationChunk(message=AIMessageChunk(content=pieces[-1] if pieces else "", **last))
