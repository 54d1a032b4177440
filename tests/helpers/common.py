"""Helpers every test module may use: repository paths, float64, fast compiles, a compiled env."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import jax
import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "sgrl3d"


def reference_file(relative: str) -> Path:
    """A file of ../shared/sgrl3d, or skip the test when that folder is absent."""
    path = SHARED / relative
    if not path.is_file():
        pytest.skip(f"reference data not found at {path}")
    return path


def gymnasium_ant() -> Path:
    import gymnasium

    return Path(os.path.dirname(gymnasium.__file__)) / "envs" / "mujoco" / "assets" / "ant.xml"


def compile_fast(fn, *args):
    """jax.jit(fn) compiled ahead of time for `args` (with FAST_XLA_FLAGS, like every test compile)."""
    return jax.jit(fn).lower(*args).compile()


@contextlib.contextmanager
def float64(enabled: bool = True):
    """Switch float64 on for the whole process, callback threads included.

    (`jax.enable_x64` is thread-local: the native backend's host callback runs
    on another thread and would see float32 inputs.)
    """
    old = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", enabled)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", old)


class CompiledEnv:
    """A BatchedEnv with its reset and step jitted once (optionally in float64)."""

    def __init__(self, env, x64: bool = False):
        self.env = env
        self.x64 = x64
        self._reset = jax.jit(env.reset)
        self._step = jax.jit(env.step)

    def _call(self, fn, *args):
        with float64(self.x64):
            return jax.block_until_ready(fn(*args))

    def reset(self, key):
        return self._call(self._reset, key)

    def step(self, state, action):
        return self._call(self._step, state, action)

    def with_state(self, state, qpos, qvel, target):
        return self._call(self.env.with_state, state, qpos, qvel, target)

    def __getattr__(self, name):
        return getattr(self.env, name)
