"""Shared fixtures: environments are built and compiled once per session."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# Headless rendering: MuJoCo picks its GL backend when it is first imported.
os.environ.setdefault("MUJOCO_GL", "egl")

# Tests run tiny programs: XLA compiles every one of them (here and in the
# subprocesses, which inherit the environment) for compile time, not run time
# (about 3x faster to compile here). Set before jax starts its backend.
FAST_XLA_FLAGS = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
if FAST_XLA_FLAGS not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_XLA_FLAGS}".strip()

import jax  # noqa: E402  (after XLA_FLAGS: jax reads them when it starts its backend)
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
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


@pytest.fixture(scope="session")
def make_env():
    """Build (and cache) compiled environments by their config fields; x64=True builds in float64."""
    from equirl.envs.batched import BatchedEnv
    from equirl.envs.config import EnvConfig

    cache: dict = {}

    def make(x64: bool = False, **fields):
        key = (x64,) + tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in fields.items()))
        if key not in cache:
            with float64(x64):
                cache[key] = CompiledEnv(BatchedEnv(EnvConfig(**fields)), x64)
        return cache[key]

    yield make
    for compiled in cache.values():
        compiled.env.close()
