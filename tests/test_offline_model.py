"""The offline chat model: tool-call decisions, answers from results, streaming, binding."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from agent import TOOLS, OfflineChatModel
from agent.intents import parse_request


@pytest.fixture()
def model():
    return OfflineChatModel().bind_tools(TOOLS)


def _calls(model, text: str) -> list[tuple[str, dict]]:
    reply = model.invoke([HumanMessage(text)])
    return [(c["name"], c["args"]) for c in reply.tool_calls]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("what is 17 * 23?", [("calculator", {"expression": "17 * 23"})]),
        ("Please compute (2+3)*4", [("calculator", {"expression": "(2 + 3) * 4"})]),
        ("what's 3 squared plus 1", [("calculator", {"expression": "3 ** 2 + 1"})]),
        ("15% of 200", [("calculator", {"expression": "15 / 100 * 200"})]),
        ("convert 5 km to miles", [("convert_units", {"value": 5.0, "from_unit": "km", "to_unit": "miles"})]),
        (
            "how many feet in a mile?",
            [("convert_units", {"value": 1.0, "from_unit": "mile", "to_unit": "feet"})],
        ),
        (
            "what is 100 fahrenheit in celsius",
            [("convert_units", {"value": 100.0, "from_unit": "fahrenheit", "to_unit": "celsius"})],
        ),
        ("what is the date today?", [("today", {"timezone": "UTC"})]),
        ("what time is it in Europe/Paris", [("today", {"timezone": "Europe/Paris"})]),
        ("what day of the week is 2024-07-04?", [("weekday", {"day": "2024-07-04"})]),
        (
            "how many days between 2024-01-01 and 2024-03-01?",
            [("days_between", {"start": "2024-01-01", "end": "2024-03-01"})],
        ),
        ("how many days until 2030-01-01", [("days_between", {"start": "today", "end": "2030-01-01"})]),
        ("what is 30 days after 2024-01-31", [("add_days", {"start": "2024-01-31", "days": 30})]),
        ("add 2 weeks to 2024-02-20", [("add_days", {"start": "2024-02-20", "days": 14})]),
        (
            "save a note: call Ana. She moved to Lisbon",
            [("save_note", {"text": "call Ana. She moved to Lisbon"})],
        ),
        ("remember that the deploy is on Friday", [("save_note", {"text": "the deploy is on Friday"})]),
        ("search my notes for deploy", [("search_notes", {"query": "deploy"})]),
        ("show my notes", [("search_notes", {"query": ""})]),
        ("list pages", [("list_pages", {})]),
        ("read page recording", [("read_page", {"name": "recording"})]),
        ("open the storage page", [("read_page", {"name": "storage"})]),
        ("what do the docs say about indexes?", [("search_pages", {"query": "indexes"})]),
        (
            "what is 2+2? then convert 1 kg to lb",
            [
                ("calculator", {"expression": "2 + 2"}),
                ("convert_units", {"value": 1.0, "from_unit": "kg", "to_unit": "lb"}),
            ],
        ),
    ],
)
def test_requests_become_tool_calls(model, text: str, expected: list) -> None:
    assert _calls(model, text) == expected


@pytest.mark.parametrize("text", ["tell me a joke", "what is 5", "hello", "what can you do?"])
def test_no_tool_for_other_requests(model, text: str) -> None:
    reply = model.invoke([HumanMessage(text)])
    assert reply.tool_calls == []
    assert "what is 17 * 23?" in reply.text  # it says what it can do


def test_unknown_request_says_what_it_can_do(model) -> None:
    text = model.invoke([HumanMessage("tell me a joke")]).text
    assert text.startswith("I cannot answer that offline. I work offline and can help with:\n- arithmetic")
    assert "- searching the docs" in text


def test_answers_from_tool_results(model) -> None:
    first = model.invoke([HumanMessage("what is 17 * 23?")])
    call = first.tool_calls[0]
    history = [
        HumanMessage("what is 17 * 23?"),
        first,
        ToolMessage("391", tool_call_id=call["id"], name="calculator"),
    ]
    assert model.invoke(history).text == "17 * 23 = 391"


def test_reports_a_failed_tool(model) -> None:
    first = model.invoke([HumanMessage("what is 1 / 0 and 2 + 2")])
    a, b = first.tool_calls
    history = [
        HumanMessage("x"),
        first,
        ToolMessage("Error: division by zero", tool_call_id=a["id"], name="calculator", status="error"),
        ToolMessage("4", tool_call_id=b["id"], name="calculator"),
    ]
    assert model.invoke(history).text == "The calculator tool failed: division by zero.\n2 + 2 = 4"


def test_only_bound_tools_are_called() -> None:
    @tool
    def shout(text: str) -> str:
        """Upper-case the text."""
        return text.upper()

    bare = OfflineChatModel()
    reply = bare.invoke([HumanMessage("what is 17 * 23?")])
    assert reply.tool_calls == []
    assert reply.text.startswith("That needs the calculator tool, which is not available to me.")
    only_calc = OfflineChatModel().bind_tools([TOOLS[0], shout])
    assert [c["name"] for c in only_calc.invoke([HumanMessage("2+2 then list pages")]).tool_calls] == [
        "calculator"
    ]
    assert "list_pages" not in only_calc.invoke([HumanMessage("help")]).text


def test_recalls_earlier_messages_and_ignores_system_prompts(model) -> None:
    assert (
        model.invoke([HumanMessage("what did I ask before?")]).text
        == "This is the first message of our conversation."
    )
    history = [
        SystemMessage("be terse"),
        HumanMessage("what is 17 * 23?"),
        AIMessage("17 * 23 = 391"),
        HumanMessage("what did I ask before?"),
    ]
    assert model.invoke(history).text == "Earlier in this conversation you said:\n1. what is 17 * 23?"


def test_deterministic_and_stateless(model) -> None:
    conversation = [HumanMessage("convert 5 km to miles")]
    first = model.invoke(conversation)
    model.invoke([HumanMessage("what is 1 + 1")])  # nothing carries over between calls
    again = OfflineChatModel().bind_tools(TOOLS).invoke(conversation)
    assert first.tool_calls == again.tool_calls
    assert first.tool_calls[0]["id"].startswith("call_")
    # The same words later in a thread get a different id, so ids stay unique per thread.
    later = model.invoke([HumanMessage("hi"), AIMessage("Hello!"), *conversation])
    assert later.tool_calls[0]["id"] != first.tool_calls[0]["id"]


def test_streams_word_by_word(model) -> None:
    chunks = list(model.stream([HumanMessage("hello")]))
    texts = [c.text for c in chunks if c.text]
    assert len(texts) > 10
    assert texts[:3] == ["Hello! ", "I ", "work "]
    assert "".join(texts) == model.invoke([HumanMessage("hello")]).text


def test_streams_a_tool_call_as_one_chunk(model) -> None:
    chunks = list(model.stream([HumanMessage("what is 17 * 23?")]))
    with_calls = [c for c in chunks if c.tool_call_chunks]
    assert len(with_calls) == 1
    assert with_calls[0].tool_calls == [
        {
            "name": "calculator",
            "args": {"expression": "17 * 23"},
            "id": with_calls[0].tool_call_chunks[0]["id"],
            "type": "tool_call",
        }
    ]
    merged = chunks[0]
    for c in chunks[1:]:
        merged += c
    assert isinstance(merged, AIMessageChunk)
    assert merged.tool_calls[0]["args"] == {"expression": "17 * 23"}


def test_bind_tools_formats_openai_schemas() -> None:
    bound = OfflineChatModel().bind_tools(TOOLS, tool_choice="auto")
    assert bound.kwargs["tool_choice"] == "auto"
    names = [t["function"]["name"] for t in bound.kwargs["tools"]]
    assert names == [t.name for t in TOOLS]


def test_cacheable_with_an_in_memory_cache() -> None:
    from langchain_core.caches import InMemoryCache

    cache = InMemoryCache()
    cached = OfflineChatModel(cache=cache).bind_tools(TOOLS)
    a = cached.invoke([HumanMessage("what is 6 * 7")])
    b = cached.invoke([HumanMessage("what is 6 * 7")])
    assert a.tool_calls == b.tool_calls
    assert len(cache._cache) == 1


def test_parse_request_flags() -> None:
    assert parse_request("Hello there!").greeting
    assert parse_request("what can you do").asks_help
    assert parse_request("what was my previous question?").asks_history


@pytest.mark.parametrize(
    "question",
    [
        "what did I ask before?",
        "remind me what I asked first",
        "Remind me what I said earlier, please",
        "what did I ask you first?",
        "what was my first question?",
        "what have I asked so far?",
        "can you repeat my last question",
        "tell me what I asked",
        "what have we talked about?",
        "recap our conversation",
        "summarise this chat",
        "what's our conversation so far",
        "what did I want to know earlier?",
    ],
)
def test_the_usual_ways_of_asking_about_earlier_turns(question: str) -> None:
    assert parse_request(question).asks_history, question


@pytest.mark.parametrize(
    "question",
    ["what is 17 * 23?", "what day is 2026-12-24?", "tell me a joke", "save a note: ask Ana first"],
)
def test_other_questions_are_not_about_earlier_turns(question: str) -> None:
    assert not parse_request(question).asks_history, question
    assert parse_request("what is 2024-01-01").calls == []  # a date is not arithmetic


def test_usage_is_counted_from_the_text(model) -> None:
    from agent.offline import count_tokens

    assert count_tokens("what is 17 * 23?") == 6  # what, is, 17, *, 23, ?
    reply = model.invoke([SystemMessage("be brief"), HumanMessage("what is 17 * 23?")])
    # input: 2 + 6 tokens; output: the call's name and its arguments as JSON
    assert reply.usage_metadata == {"input_tokens": 8, "output_tokens": 12, "total_tokens": 20}
    assert reply.response_metadata["model_name"] == "offline"


def test_streamed_usage_arrives_in_the_last_chunk(model) -> None:
    for text in ("hello", "what is 17 * 23?"):
        chunks = list(model.stream([HumanMessage(text)]))
        with_usage = [i for i, c in enumerate(chunks) if c.usage_metadata]
        assert with_usage == [len(chunks) - 1]
        merged = chunks[0]
        for c in chunks[1:]:
            merged += c
        invoked = model.invoke([HumanMessage(text)])
        assert merged.usage_metadata == invoked.usage_metadata
        assert merged.response_metadata["model_name"] == "offline" and merged.text == invoked.text
