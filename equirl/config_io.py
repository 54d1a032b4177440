"""Typed configs from YAML files: unknown keys and bad values are rejected early."""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any, TypeVar

import yaml

from equirl.errors import ConfigError, EquirlError

T = TypeVar("T")


def from_dict(cls: type[T], values: dict[str, Any], *, source: str = "config") -> T:
    """Build dataclass `cls` from a mapping, naming `source` in every error."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: expected a mapping of {cls.__name__} fields, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}; {cls.__name__} has {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        if isinstance(value, list) and typing.get_origin(hints[name]) is tuple:
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except EquirlError as err:
        raise ConfigError(f"{source}: {err}") from None
    except TypeError as err:
        raise ConfigError(f"{source}: {err}") from None


def load_yaml(cls: type[T], path: str | os.PathLike) -> T:
    """Read a YAML file into dataclass `cls`."""
    try:
        with open(path) as handle:
            values = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    return from_dict(cls, values, source=str(path))
