"""Model providers: one place that turns settings into a smolagents model and a chat model.

Three built in — ``openai`` (any OpenAI-compatible endpoint), ``local`` (the bundled small LLM,
served by relaygraph over the same protocol, so it shares the ``openai`` code path) and
``offline`` (the rule-based policy of :mod:`relaygraph.providers.offline`). Tests and plugins register more
with :func:`register_provider` — which is how a scripted model double gets exact control.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from pydantic import SecretStr
from relaygraph.config.settings import Settings
from relaygraph.observability.instrument_http import async_http_client, http_client
from relaygraph.providers.local_llm import LocalModelUnavailable, local_available, shared_server
from relaygraph.providers.offline import OFFLINE_LABEL, OfflineChatModel, OfflinePolicyModel
from smolagents import Model


class ProviderError(RuntimeError):
    """A provider cannot be used as configured; the message says how to fix it."""


@dataclass(frozen=True)
class Provider:
    """How to build the two model faces of one provider, and how to label its output."""

    name: str
    agent_model: Callable[[Settings], Model]
    chat_model: Callable[[Settings], BaseChatModel]
    label: Callable[[Settings], str]


def _endpoint(settings: Settings) -> tuple[str | None, str, str]:
    """(base_url, api_key, model_id) of the OpenAI-compatible server this run talks to."""
    if settings.provider == "local":
        try:
            server = shared_server()
        except LocalModelUnavailable as exc:  # not installed here: a configuration problem
            raise ProviderError(f"Provider 'local' is unavailable: {exc}") from exc
        return server.base_url, "local", server.model_id
    if settings.openai_api_key is None:
        raise ProviderError(
            "Provider 'openai' needs OPENAI_API_KEY (and OPENAI_BASE_URL for a non-OpenAI "
            "server). Set them, or use --model offline / --model local."
        )
    return settings.openai_base_url, settings.openai_api_key.get_secret_value(), settings.model_id


def _openai_agent_model(settings: Settings) -> Model:
    from smolagents import OpenAIServerModel

    base_url, api_key, model_id = _endpoint(settings)
    return OpenAIServerModel(model_id=model_id, api_base=base_url, api_key=api_key,
                             temperature=settings.temperature,
                             client_kwargs={"http_client": http_client()})  # W3C traceparent


def _openai_chat_model(settings: Settings) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    base_url, api_key, model_id = _endpoint(settings)
    return ChatOpenAI(model=model_id, base_url=base_url, api_key=SecretStr(api_key),
                      temperature=settings.temperature, http_client=http_client(),
                      http_async_client=async_http_client())  # W3C traceparent


def _openai_label(settings: Settings) -> str:
    if settings.provider == "local":
        return "local (SmolLM2-135M-Instruct via llama.cpp; a tiny model: valid calls, weak choices)"
    return f"openai-compatible ({settings.model_id} at {settings.openai_base_url or 'api.openai.com'})"


_PROVIDERS: dict[str, Provider] = {
    "offline": Provider("offline", lambda s: OfflinePolicyModel(), lambda s: OfflineChatModel(),
                        lambda s: OFFLINE_LABEL),
    "openai": Provider("openai", _openai_agent_model, _openai_chat_model, _openai_label),
    "local": Provider("local", _openai_agent_model, _openai_chat_model, _openai_label),
}


def register_provider(provider: Provider) -> None:
    """Add or replace a provider (tests register scripted doubles this way)."""
    _PROVIDERS[provider.name] = provider


def get_provider(settings: Settings) -> Provider:
    try:
        return _PROVIDERS[settings.provider]
    except KeyError:
        raise ProviderError(
            f"Unknown model provider {settings.provider!r}; choose one of: {', '.join(sorted(_PROVIDERS))}."
        ) from None


def check_provider(settings: Settings) -> Provider:
    """Fail before any work when the provider is unknown or obviously misconfigured."""
    provider = get_provider(settings)
    if provider.name == "openai" and settings.openai_api_key is None:
        _endpoint(settings)  # raises the ProviderError that says what to set
    if provider.name == "local":
        ok, reason = local_available()
        if not ok:
            raise ProviderError(f"Provider 'local' is unavailable: {reason}")
    return provider


def agent_model(settings: Settings) -> Model:
    """A fresh smolagents model for one agent run."""
    return get_provider(settings).agent_model(settings)


def chat_model(settings: Settings) -> BaseChatModel:
    """A LangChain chat model for routing decisions."""
    return get_provider(settings).chat_model(settings)


def provider_label(settings: Settings) -> str:
    """How results name what produced them (the offline policy says it is not an LLM)."""
    return get_provider(settings).label(settings)


def provider_names() -> list[str]:
    return sorted(_PROVIDERS)
