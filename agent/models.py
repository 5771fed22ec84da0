"""Which chat model the agent uses: the offline one, or ``LLM_MODEL`` through ``init_chat_model``."""

from __future__ import annotations

import os
from typing import Any

from langchain_core.language_models import BaseChatModel

from .offline import OfflineChatModel

MODEL_ENV = "LLM_MODEL"
OFFLINE = "offline"
# The variable each hosted provider's integration reads its key from, for the error hint.
_KEY_ENV = {
    "openai": "OPENAI_API_KEY",
    "azure_openai": "AZURE_OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google_genai": "GOOGLE_API_KEY",
    "mistralai": "MISTRAL_API_KEY",
    "groq": "GROQ_API_KEY",
    "cohere": "COHERE_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
    "together": "TOGETHER_API_KEY",
    "xai": "XAI_API_KEY",
}


class ModelUnavailable(RuntimeError):
    """The configured chat model cannot be used here; the message says why and what to do."""


def _hint(spec: str) -> str:
    provider = spec.split(":", 1)[0] if ":" in spec else ""
    key = _KEY_ENV.get(provider)
    parts = []
    if key and not os.environ.get(key):
        parts.append(f"{key} is not set.")
    parts.append(f"Unset {MODEL_ENV} (or set it to '{OFFLINE}') to use the built-in offline model.")
    return " ".join(parts)


def get_model(spec: str | None = None, **kwargs: Any) -> BaseChatModel:
    """The chat model to run the agent with.

    Args:
        spec: ``"offline"``, or a ``provider:model`` string for
            ``langchain.chat_models.init_chat_model`` such as ``"openai:gpt-4o-mini"`` or
            ``"ollama:llama3.1"``. Default: the ``LLM_MODEL`` environment variable, else
            the offline model.
        **kwargs: passed to ``init_chat_model`` (e.g. ``temperature=0``).

    Returns:
        A chat model that supports ``bind_tools``.

    Raises:
        ModelUnavailable: when the provider's package is missing, the provider is
            unknown, or the model cannot be created (usually a missing API key).
    """
    spec = (spec if spec is not None else os.environ.get(MODEL_ENV, "")).strip()
    if not spec or spec.lower() == OFFLINE:
        return OfflineChatModel()
    from langchain.chat_models import init_chat_model

    try:
        return init_chat_model(spec, **kwargs)
    except ImportError as exc:
        raise ModelUnavailable(
            f"{MODEL_ENV}={spec!r} needs a package that is not installed: {exc}. {_hint(spec)}"
        ) from exc
    except ValueError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailable(
            f"{MODEL_ENV}={spec!r} is not a model init_chat_model knows: {first_line} "
            f"Write it as provider:model, e.g. openai:gpt-4o-mini. {_hint(spec)}"
        ) from exc
    # Provider clients fail at construction with their own exception types (a missing API
    # key is the usual cause); any of them means the same thing here.
    except Exception as exc:
        raise ModelUnavailable(
            f"{MODEL_ENV}={spec!r} could not be created: {type(exc).__name__}: {exc}. {_hint(spec)}"
        ) from exc


def model_label(model: BaseChatModel) -> str:
    """A short name for ``model`` to show in traces, such as ``offline`` or ``openai:gpt-4o-mini``."""
    if isinstance(model, OfflineChatModel):
        return model.model_name
    try:
        params = model._get_ls_params()
    except (AttributeError, TypeError, ValueError):
        return type(model).__name__
    provider, name = params.get("ls_provider"), params.get("ls_model_name")
    if provider and name:
        return f"{provider}:{name}"
    return str(name or provider or type(model).__name__)
