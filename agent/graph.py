"""The automation agent: planner -> model <-> tools -> summarise, each step traced."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal, TypedDict, cast

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Checkpointer

from .entries import Step, clip
from .intents import parse_request
from .models import get_model, model_label
from .offline import OfflineChatModel
from .tools import TOOLS

MAX_TOOL_ROUNDS = 6
SYSTEM_PROMPT = (
    "You are an automation agent. Use the tools for arithmetic, unit conversion, dates, notes and "
    "the offline tracedb documentation instead of guessing. If a tool fails, say which tool failed "
    "and why. Keep answers short."
)


class AgentState(TypedDict):
    """The graph's state: the conversation, and the trace entries every node appends."""

    messages: Annotated[list[AnyMessage], add_messages]
    automation_trace: Annotated[list[dict[str, Any]], operator.add]


def user_input(text: str) -> dict[str, Any]:
    """The graph input for one user message: ``{"messages": [HumanMessage(text)]}``."""
    return {"messages": [HumanMessage(text)]}


def _current_turn(messages: Sequence[BaseMessage]) -> tuple[HumanMessage | None, list[BaseMessage]]:
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return cast(HumanMessage, messages[i]), list(messages[i + 1 :])
    return None, list(messages)


def _tool_rounds(messages: Sequence[BaseMessage]) -> int:
    _, turn = _current_turn(messages)
    return sum(1 for m in turn if isinstance(m, AIMessage) and m.tool_calls)


def _reply_model(reply: AIMessage) -> str | None:
    meta = reply.response_metadata or {}
    name = meta.get("model_name") or meta.get("model")
    return name if isinstance(name, str) and name else None


class AgentNodes:
    """The nodes of the graph, sharing one model, its tool binding and the tools."""

    def __init__(self, model: BaseChatModel, tools: Sequence[BaseTool], max_tool_rounds: int) -> None:
        self.model_name = model_label(model)
        self.bound = model.bind_tools(list(tools))
        self.tools = {t.name: t for t in tools}
        self.max_tool_rounds = max_tool_rounds
        # The offline model decides with its request parser, so the parser's reading is its
        # plan; any other model makes its own decisions, and no plan is written for it.
        self.offline_plan = (
            isinstance(model, OfflineChatModel) and type(model).respond is OfflineChatModel.respond
        )

    def planner(self, state: AgentState) -> dict[str, Any]:
        """Open the turn with what was asked and what the model may use.

        With the offline model, also the plan it will follow: the tool calls its request
        parser reads from the message (``planned_by: "offline request parser"``). A real
        model plans in its own reply, so for it no plan is recorded here, only the request
        and the tools it is offered.
        """
        human, _ = _current_turn(state["messages"])
        text = human.text if human else ""
        step = Step("planner", "plan", "planner", {"request": clip(text)})
        if not self.offline_plan:
            output: dict[str, Any] = {"tools_available": sorted(self.tools), "planned_by": None}
            return {"automation_trace": [step.entry(output)]}
        request = parse_request(text)
        calls = [c for c in request.calls if c.name in self.tools]
        steps = [f"{c.name}({', '.join(f'{k}={v!r}' for k, v in c.args.items())})" for c in calls]
        steps.append("answer from the tool results" if calls else "answer directly; no tool recognised")
        output = {"steps": steps, "tools": [c.name for c in calls], "planned_by": "offline request parser"}
        return {"automation_trace": [step.entry(output)]}

    def model(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        """Call the chat model with the tools bound; a failing model becomes an error entry and reply."""
        messages = list(state["messages"])
        last = messages[-1] if messages else None
        step = Step(
            "model",
            "llm",
            self.model_name,
            {
                "message_count": len(messages),
                "last_message": {"type": last.type, "content": clip(last.text)} if last else None,
            },
        )
        try:
            reply = self.bound.invoke([SystemMessage(SYSTEM_PROMPT), *messages], config)
        except GraphBubbleUp:
            raise
        # Provider errors (network, auth, rate limits) have no common base class; the
        # turn still ends with an answer and the failure is in the trace.
        except Exception as exc:
            entry = step.entry(error=exc)
            reply = AIMessage(f"The language model failed: {entry['error']}")
            return {"messages": [reply], "automation_trace": [entry]}
        output: dict[str, Any] = {
            "content": clip(reply.text),
            "tool_calls": [{"id": c["id"], "name": c["name"], "args": c["args"]} for c in reply.tool_calls],
        }
        if getattr(reply, "invalid_tool_calls", None):
            # Calls whose arguments were not valid JSON never reach the tools node; keep them visible.
            output["invalid_tool_calls"] = [
                {"name": c.get("name"), "args": c.get("args"), "error": c.get("error")}
                for c in reply.invalid_tool_calls
            ]
        entry = step.entry(output)
        # Where the store reads a step's tokens and model from (its trace keeps the totals
        # and the cost); streamed replies carry the usage of their last chunk.
        if reply.usage_metadata:
            entry["usage"] = dict(reply.usage_metadata)
        entry["model"] = _reply_model(reply) or self.model_name
        return {"messages": [reply], "automation_trace": [entry]}

    def run_tools(self, state: AgentState, config: RunnableConfig) -> dict[str, Any]:
        """Run the last reply's tool calls one by one, timing each; a failure is an error entry."""
        last = state["messages"][-1]
        calls = last.tool_calls if isinstance(last, AIMessage) else []
        messages, entries = [], []
        for call in calls:
            step = Step("tools", "tool", call["name"], call["args"])
            tool = self.tools.get(call["name"])
            try:
                if tool is None:
                    raise LookupError(f"no tool named {call['name']!r}")
                content = str(tool.invoke(call["args"], config))
            except GraphBubbleUp:
                raise
            # A tool is arbitrary code: whatever it raises, the model gets the error text and
            # the turn carries on.
            except Exception as exc:
                entries.append(step.entry(error=exc))
                messages.append(
                    ToolMessage(
                        f"Error: {exc}", tool_call_id=call["id"] or "", name=call["name"], status="error"
                    )
                )
                continue
            entries.append(step.entry(clip(content)))
            messages.append(ToolMessage(content, tool_call_id=call["id"] or "", name=call["name"]))
        return {"messages": messages, "automation_trace": entries}

    def after_model(self, state: AgentState) -> Literal["tools", "summarise"]:
        """Run tools while the model asks for them, up to ``max_tool_rounds`` per turn."""
        last = state["messages"][-1]
        wants_tools = isinstance(last, AIMessage) and bool(last.tool_calls)
        if wants_tools and _tool_rounds(state["messages"]) <= self.max_tool_rounds:
            return "tools"
        return "summarise"

    def summarise(self, state: AgentState) -> dict[str, Any]:
        """Close the turn: record what it did, and answer if the tool budget ran out."""
        step = Step("summarise", "summary", "summarise")
        update: dict[str, Any] = {}
        last = state["messages"][-1]
        if isinstance(last, AIMessage) and last.tool_calls:
            # Every tool call needs an answer before the next turn, or providers reject the history.
            skipped = [
                ToolMessage(
                    "Not run: the tool-call limit for this turn was reached.",
                    tool_call_id=c["id"] or "",
                    name=c["name"],
                    status="error",
                )
                for c in last.tool_calls
            ]
            final = AIMessage(
                f"I stopped after {self.max_tool_rounds} rounds of tool calls without reaching an answer."
            )
            update["messages"] = [*skipped, final]
            answer = final.text
        else:
            answer = last.text
        turn = []
        for entry in reversed(state.get("automation_trace") or []):
            turn.append(entry)
            if entry.get("kind") == "plan":
                break
        tools = [e for e in reversed(turn) if e.get("kind") == "tool"]
        step.input = {"entries": len(turn)}
        output: dict[str, Any] = {
            "answer": clip(answer),
            "tools": [e["name"] for e in tools],
            "errors": sum(1 for e in turn if e.get("status") == "error"),
        }
        if turn and turn[-1].get("kind") == "plan":
            began = datetime.fromisoformat(turn[-1]["started_at"])
            output["turn_ms"] = round((step.started_at - began).total_seconds() * 1000, 3)
        update["automation_trace"] = [step.entry(output)]
        return update


def build_graph(
    model: BaseChatModel | None = None,
    checkpointer: Checkpointer = None,
    *,
    tools: Sequence[BaseTool] | None = None,
    max_tool_rounds: int = MAX_TOOL_ROUNDS,
) -> CompiledStateGraph:
    """Build and compile the automation agent.

    Args:
        model: the chat model; default :func:`agent.get_model` (offline unless ``LLM_MODEL``).
        checkpointer: where conversations persist, e.g. from :func:`agent.make_checkpointer`
            or a ``MemorySaver``; ``None`` keeps no state between invocations.
        tools: the tools to offer; default :data:`agent.TOOLS`.
        max_tool_rounds: model/tool round trips allowed per turn before the turn is closed.

    Returns:
        The compiled graph. Invoke it with :func:`user_input` and, with a checkpointer,
        ``{"configurable": {"thread_id": ...}}``.
    """
    nodes = AgentNodes(model or get_model(), list(TOOLS if tools is None else tools), max_tool_rounds)
    builder = StateGraph(AgentState)
    builder.add_node("planner", nodes.planner)
    builder.add_node("model", nodes.model)
    builder.add_node("tools", nodes.run_tools)
    builder.add_node("summarise", nodes.summarise)
    builder.add_edge(START, "planner")
    builder.add_edge("planner", "model")
    builder.add_conditional_edges("model", nodes.after_model, ["tools", "summarise"])
    builder.add_edge("tools", "model")
    builder.add_edge("summarise", END)
    return builder.compile(checkpointer=checkpointer, name="automation_agent")
