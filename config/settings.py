"""Settings: one pydantic model read from the environment.

Everything configurable lives here so the CLI, `langgraph dev` (via the `env` block of
langgraph.json) and plain Python share one source of truth. Per-run overrides come from the
run config's ``configurable`` dict (see :func:`settings_from_config`), which is how
`langgraph dev` and `graph.invoke(..., config=...)` change a run without touching the
environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ProviderName = str  # "offline" | "openai" | "local" | any registered provider

#: Where runs are checkpointed unless ``RELAYGRAPH_CHECKPOINT_DB`` / ``--checkpoint-db`` say otherwise.
DEFAULT_CHECKPOINT_DB = "sqlite:///relaygraph.db"


class ModelPrice(BaseModel):
    """USD per 1M tokens."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class Settings(BaseSettings):
    """relaygraph configuration (environment prefix ``RELAYGRAPH_``)."""

    model_config = SettingsConfigDict(
        env_prefix="RELAYGRAPH_", extra="ignore", populate_by_name=True
    )

    model: ProviderName | None = Field(
        default=None,
        description="Model provider: offline, openai or local. Default: openai when "
        "OPENAI_API_KEY is set, otherwise offline.",
    )
    model_id: str = Field(default="gpt-4o-mini", description="Model name sent to the provider.")
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "RELAYGRAPH_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "RELAYGRAPH_OPENAI_BASE_URL")
    )
    temperature: float = Field(default=0.0, ge=0, description="Sampling temperature sent to the provider.")

    data_dir: Path = Field(default=Path("relaygraph-data"))
    output_dir: Path = Field(default=Path("relaygraph-out"))
    dataset: str | None = Field(
        default=None, description="Dataset file (CSV/Parquet) inside data_dir; default: the sample."
    )

    checkpoint_db: str = Field(default=DEFAULT_CHECKPOINT_DB)
    db_reconnect_s: float = Field(
        default=20.0, ge=0, le=3600,
        description="For how long a lost checkpoint-database connection is retried before the run "
                    "stops (resume it once the database is back).",
    )
    max_steps: int = Field(default=8, ge=1, le=100)
    max_retries: int = Field(default=2, ge=1, le=10, description="Attempts per agent node.")
    observation_chars: int = Field(
        default=2000, ge=200, description="Characters of each tool result the model reads (the typed "
        "result is kept whole).")

    local_model_path: Path | None = Field(
        default=None,
        description="GGUF file the local provider serves instead of the bundled SmolLM2 "
        "(any chat model llama.cpp loads).",
    )

    trace_content: bool = Field(
        default=False, description="Record prompts, messages and tool arguments on spans (opt-in)."
    )
    trace_store: bool = Field(
        default=True, description="Persist spans with the run in the checkpoint database."
    )
    model_prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description='USD per 1M tokens by model name, over the built-in list: '
        '\'{"my-model": {"input": 0.2, "output": 0.8}}\'. A model without a price costs None.',
    )

    # Tracing exporters: the standard OpenTelemetry variables, under their own names.
    otel_service_name: str = Field(
        default="relaygraph", validation_alias=AliasChoices("OTEL_SERVICE_NAME", "otel_service_name")
    )
    otel_traces_exporter: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_TRACES_EXPORTER", "otel_traces_exporter"),
        description="otlp, console or none (comma-separated); an OTLP endpoint alone means otlp.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "otel_exporter_otlp_endpoint"),
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "otel_exporter_otlp_traces_endpoint"
        ),
    )
    otel_exporter_otlp_protocol: str = Field(
        default="http/protobuf",
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_PROTOCOL", "otel_exporter_otlp_protocol"),
    )
    otel_exporter_otlp_traces_protocol: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "otel_exporter_otlp_traces_protocol"
        ),
    )
    otel_sdk_disabled: bool = Field(
        default=False, validation_alias=AliasChoices("OTEL_SDK_DISABLED", "otel_sdk_disabled")
    )

    @field_validator("model")
    @classmethod
    def _normalise_model(cls, value: str | None) -> str | None:
        return value.strip().lower() if value else None

    @property
    def provider(self) -> str:
        """The provider actually used: explicit choice, else openai with a key, else offline."""
        if self.model:
            return self.model
        return "openai" if self.openai_api_key else "offline"


#: Settings a run's ``configurable`` may set; every other field is the process's (see below).
OVERRIDABLE = ("model", "model_id", "dataset", "max_steps", "max_retries", "temperature", "observation_chars")
#: Deployment settings: where tools may read and write. A run's ``configurable`` (from Python or
#: any ``langgraph dev`` caller) must not widen the sandbox, so naming them there is an error.
DEPLOYMENT_ONLY = ("data_dir", "output_dir", "checkpoint_db")


class SandboxOverride(ValueError):
    """A run config tried to set a deployment-only setting (data_dir, output_dir, ...)."""


class ProcessSetting(ValueError):
    """A run config named a setting that only the process can set (tracing, credentials, ...).

    Why an error and not a silent default: ``configurable={"trace_content": True}`` once did
    nothing at all. Tracing and the span store are set up once per process, the credentials and
    the server address must not come from a ``langgraph dev`` caller, and the local model and the
    database retry bound are built once."""


def env_name(field: str) -> str:
    """The environment variable that sets ``field`` (``RELAYGRAPH_X``, or its own name: ``OTEL_*``)."""
    alias = Settings.model_fields[field].validation_alias
    choices = getattr(alias, "choices", None)
    return str(choices[0]) if choices else f"RELAYGRAPH_{field.upper()}"


#: Environment variables Settings reads (pydantic-settings compares names case-insensitively).
_ENV_PREFIXES = ("RELAYGRAPH_", "OPENAI_", "OTEL_")


def get_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with explicit overrides (None values are ignored).

    Parsing the environment costs ~1 ms of CPU and nodes, stores and the span exporter ask on
    every call, so a parsed model is kept per (the variables it reads, the overrides): a
    changed variable is a new key, never a stale answer. Each caller gets its own copy.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    if not all(isinstance(v, _KEYABLE) for v in given.values()):  # e.g. a SecretStr: its repr hides it
        return Settings(**given)
    env = tuple(sorted((k.upper(), v) for k, v in os.environ.items() if k.upper().startswith(_ENV_PREFIXES)))
    key = (env, tuple(sorted((k, type(v).__name__, str(v)) for k, v in given.items())))
    parsed = _PARSED.get(key)
    if parsed is None:
        parsed = Settings(**given)
        if len(_PARSED) >= 64:
            _PARSED.clear()
        _PARSED[key] = parsed
    return parsed.model_copy(deep=True)


#: Environment variables Settings reads (pydantic-settings compares names case-insensitively).
_ENV_PREFIXES = ("RELAYGRAPH_", "OPENAI_", "OTEL_")
_KEYABLE = (str, int, float, bool, Path)
_PARSED: dict[tuple[Any, ...], Settings] = {}


def settings_from_config(config: Mapping[str, Any] | None) -> Settings:
    """Settings for one run: environment plus the run config's ``configurable`` overrides."""
    configurable = (config or {}).get("configurable", {}) or {}
    named = [k for k in DEPLOYMENT_ONLY if configurable.get(k) is not None]
    if named:
        raise SandboxOverride(
            f"configurable.{named[0]} cannot be set per run: it is a deployment setting "
            f"(RELAYGRAPH_{named[0].upper()} in the server's environment)."
        )
    fixed = [k for k in Settings.model_fields
             if k not in OVERRIDABLE and k not in DEPLOYMENT_ONLY and configurable.get(k) is not None]
    if fixed:
        raise ProcessSetting(
            f"{', '.join(f'configurable.{k}' for k in fixed)} cannot be set per run: set "
            f"{', '.join(env_name(k) for k in fixed)} in the process's environment instead "
            f"(per run: {', '.join(OVERRIDABLE)})."
        )
    return get_settings(**{k: configurable.get(k) for k in OVERRIDABLE})

