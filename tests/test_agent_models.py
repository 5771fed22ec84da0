"""Choosing the chat model: offline by default, LLM_MODEL through init_chat_model, clear failures."""

from __future__ import annotations

import importlib.util

import pytest
from langchain_core.language_models import GenericFakeChatModel

from agent import ModelUnavailable, OfflineChatModel, get_model, model_label


def test_offline_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_MODEL", raising=False)
    assert isinstance(get_model(), OfflineChatModel)
    monkeypatch.setenv("LLM_MODEL", " offline ")
    assert isinstance(get_model(), OfflineChatModel)
    assert model_label(get_model()) == "offline"


@pytest.mark.skipif(
    importlib.util.find_spec("langchain_openai") is not None, reason="needs langchain-openai to be absent"
)
def test_missing_provider_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODEL", "openai:gpt-4o-mini")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelUnavailable) as info:
        get_model()
    text = str(info.value)
    assert "LLM_MODEL='openai:gpt-4o-mini'" in text
    assert "pip install langchain-openai" in text
    assert "OPENAI_API_KEY is not set" in text
    assert "offline model" in text


@pytest.mark.parametrize("spec", ["nonsense:model-x", "some-model"])
def test_unknown_provider(spec: str) -> None:
    with pytest.raises(ModelUnavailable, match="Write it as provider:model"):
        get_model(spec)


def test_construction_errors_become_model_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import langchain.chat_models

    def refuse(spec: str, **kwargs: object) -> None:
        raise RuntimeError("The api_key client option must be set")

    monkeypatch.setattr(langchain.chat_models, "init_chat_model", refuse)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ModelUnavailable, match="could not be created: RuntimeError: The api_key") as info:
        get_model("anthropic:claude-x")
    assert "ANTHROPIC_API_KEY is not set" in str(info.value)


def test_label_of_other_models() -> None:
    fake = GenericFakeChatModel(messages=iter([]))
    # No model name to report: the provider derived from the class name is what is left.
    assert model_label(fake) == "genericfakechatmodel"
