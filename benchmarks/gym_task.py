"""A gymnasium task named with its settings: shared by the reference checks
(reference_gym.py, and reference_sbx.py, which runs in a venv without equirl,
so this module imports nothing of ours)."""

from __future__ import annotations

import ast

# summary.csv's columns; eval_length (the evaluation episodes' mean length) came later: older rows leave it empty.
FIELDS = ("task", "algorithm", "seed", "env_steps", "eval_return", "wall_seconds", "eval_length")


def env_kwargs(pairs: list[str]) -> dict:
    """--env-kwarg KEY=VALUE pairs (values as Python literals) for gymnasium.make."""
    kwargs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env-kwarg {pair!r}: expected KEY=VALUE, e.g. healthy_angle_range=(-1,1)")
        try:
            kwargs[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise SystemExit(f"--env-kwarg {pair!r}: {value!r} is not a Python literal") from None
    return kwargs


def task_label(task: str, kwargs: dict) -> str:
    """The task's name in summary.csv: with changed gymnasium settings, they are named in it."""
    if not kwargs:
        return task
    return task + "[" + ";".join(f"{k}={v!r}".replace(" ", "") for k, v in kwargs.items()) + "]"
