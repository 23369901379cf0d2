"""Study config loading and validation against the workflow's JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from .errors import UserError

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"


class ConfigError(UserError, ValueError):
    """A config that does not follow the schema; the message names the key."""


def load_config(source: str | Path) -> dict:
    """Read a config from a YAML/JSON file, or from a JSON string starting with '{'."""
    text = str(source)
    if text.lstrip().startswith("{"):
        return json.loads(text)
    with open(source) as f:
        return yaml.safe_load(f) or {}


def validate_config(config: dict, schema_path: str | Path = SCHEMA) -> None:
    """Raise ConfigError naming the first offending key if config breaks the schema."""
    import jsonschema

    with open(schema_path) as f:
        schema = yaml.safe_load(f)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        key = ".".join(str(p) for p in e.absolute_path) or "(top level)"
        raise ConfigError(f"config key {key}: {e.message}")
