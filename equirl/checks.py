"""Value checks shared by every config and entry point: one wording for every error.

Each raises `ConfigError` naming the field and its value, e.g.
"num_envs=0: must be an integer >= 1".
"""

from __future__ import annotations

import math

from equirl.errors import ConfigError


def check_int(name: str, value, low: int) -> None:
    """An int (not a bool) >= low."""
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name}={value!r}: must be an integer >= {low}")


def check_float(name: str, value, low: float | None = None, high: float | None = None, *, open_low=False) -> None:
    """A finite number (not a bool), optionally >= low (> low if open_low) and <= high."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name}={value!r}: must be a finite number")
    if low is not None and (value < low or (open_low and value == low)):
        raise ConfigError(f"{name}={value!r}: must be {'>' if open_low else '>='} {low}")
    if high is not None and value > high:
        raise ConfigError(f"{name}={value!r}: must be <= {high}")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name}={value!r}: must be true or false")
