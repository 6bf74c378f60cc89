"""Operator configuration: one YAML file and/or environment variables per service.

Each service has a pydantic-settings class with its own env prefix
(``SITEWATCH_INGEST_``, ``SITEWATCH_EDGE_``, ``SITEWATCH_API_``), nested keys joined by
``__`` (``SITEWATCH_INGEST_MQTT__HOST``). Environment variables override the file. An
unknown key, in the file or in the environment, is an error that names it: it is either
a typo or an option that does not exist, and running with it ignored would be worse.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

S = TypeVar("S", bound="ServiceSettings")


class ConfigError(ValueError):
    """Configuration that cannot be used; the message names the key and the reason."""


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", env_nested_delimiter="__")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs are the YAML file's content: the environment overrides it
        return (env_settings, init_settings)


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def describe_errors(source: str, exc: ValidationError, env_prefix: str = "") -> str:
    lines = [f"invalid configuration ({source}):"]
    for err in exc.errors():
        key = _loc(err["loc"])
        hint = ""
        var = f"{env_prefix}{key.upper().replace('.', '__')}"
        if env_prefix and var in os.environ:
            hint = f" (from environment variable {var})"
        value = ""
        if err["type"] != "missing" and "input" in err and not isinstance(err["input"], dict):
            value = f" (got {err['input']!r})"
        lines.append(f"  key {key}{hint}: {err['msg']}{value}")
    return "\n".join(lines)


def _unknown_env(cls: type[ServiceSettings], prefix: str) -> list[str]:
    """Variables that carry this service's prefix but name no setting (typos)."""
    names = {n.upper() for n in cls.model_fields}
    out = []
    for var in os.environ:
        if var.upper().startswith(prefix.upper()):
            top = var[len(prefix) :].split("__", 1)[0].upper()
            if top not in names:
                out.append(var)
    return sorted(out)


def load_settings(cls: type[S], config_file: Path | str | None = None, **overrides: Any) -> S:
    """Build ``cls`` from an optional YAML file, the environment and explicit overrides."""
    data: dict[str, Any] = {}
    source = "environment"
    if config_file is not None:
        path = Path(config_file)
        source = f"{path} + environment"
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {path}: the top level must be a mapping of keys")
        data = loaded
    data.update(overrides)
    prefix = str(cls.model_config.get("env_prefix", ""))
    unknown = _unknown_env(cls, prefix) if prefix else []
    if unknown:
        raise ConfigError(
            "invalid configuration (environment):\n"
            + "\n".join(f"  key {v}: no such setting" for v in unknown)
        )
    try:
        return cls(**data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(source, exc, prefix)) from None
