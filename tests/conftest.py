"""Shared fixtures: environments are built and compiled once per session.

Helpers live in the `helpers` package beside this file (helpers.common, helpers.synthetic, ...).
"""

from __future__ import annotations

import os

from helpers.flags import FAST_XLA_FLAGS

# Headless rendering: MuJoCo picks its GL backend when it is first imported.
os.environ.setdefault("MUJOCO_GL", "egl")
# Set before jax starts its backend (see helpers.flags).
if FAST_XLA_FLAGS not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FAST_XLA_FLAGS}".strip()

import pytest  # noqa: E402

from helpers.common import CompiledEnv, float64  # noqa: E402  (after XLA_FLAGS: it imports jax)


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
