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
        elif hints[name] is float and isinstance(value, str):
            # YAML 1.1 reads "3e-4" (no dot) as a string.
            try:
                value = float(value)
            except ValueError:
                pass
        elif dataclasses.is_dataclass(hints[name]) and isinstance(hints[name], type):
            value = from_dict(hints[name], value, source=f"{source}: {name}")
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


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML-ready values (tuples become lists)."""

    def plain(value):
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return plain(dataclasses.asdict(config))


def apply_overrides(config: T, overrides: list[str], *, source: str = "override") -> T:
    """`config` with dotted `key=value` overrides applied, e.g. "ppo.learning_rate=1e-3"
    or "env.bodies=[hopper_3_shin, walker_7_full]"; values are parsed as YAML."""
    values = to_dict(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{source} {item!r}: expected key=value, e.g. ppo.learning_rate=1e-3")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"{source} {item!r}: the value is not valid YAML") from None
        node = values
        parts = key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, dict) or part not in node:
                where = ".".join(parts[:depth]) or type(config).__name__
                known = ", ".join(node) if isinstance(node, dict) else "nothing"
                raise ConfigError(f"{source} {item!r}: {where} has no field {part!r} (it has {known})")
            if depth == len(parts) - 1:
                node[part] = value
            else:
                node = node[part]
    return from_dict(type(config), values, source=source)
