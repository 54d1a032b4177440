"""Shared by the world-model tests: one tiny dataset per test process, recorded through the CLI.

`tiny_dataset()` runs `equirl wm collect` once (hopper_3_shin and
walker_2_right_leg_left_knee, random torques, 2 environments, 2 shards) and
returns its folder; later calls reuse it. `tiny_batch(window, size)` cuts
windows from it. (No tests here: this module only shares the data.)
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from equirl.worldmodels.interface import Sequence

TINY_BODIES = ("hopper_3_shin", "walker_2_right_leg_left_knee")
TINY_STEPS = 80
TINY_SHARD_STEPS = 40


@functools.lru_cache(maxsize=None)
def tiny_dataset() -> Path:
    from equirl.cli import main

    out = Path(tempfile.mkdtemp(prefix="equirl_wm_")) / "data"
    code = main(
        [
            "wm",
            "collect",
            "--out",
            str(out),
            "--bodies",
            *TINY_BODIES,
            "--envs",
            "2",
            "--steps",
            str(TINY_STEPS),
            "--set",
            f"shard_steps={TINY_SHARD_STEPS}",
            "--set",
            "action_repeat=2",
        ]
    )
    assert code == 0
    return out


@functools.lru_cache(maxsize=None)
def tiny_data(window: int, split: str = "all"):
    from equirl.worldmodels.data import WindowDataset

    return WindowDataset.load(tiny_dataset(), window, split)


def tiny_batch(window: int, size: int, seed: int = 0):
    return tiny_data(window).sample(np.random.default_rng(seed), size)


def recorded_windows(env, window: int, steps: int = 24, seed: int = 0):
    """Random-action episodes of `env` (no episode ends within `steps`), cut into windows of `window` frames."""
    state = env.reset(jax.random.PRNGKey(seed))
    shape = (steps, env.num_envs) + env.action_shape
    actions = jax.random.uniform(jax.random.PRNGKey(seed + 1), shape, minval=-1.0, maxval=1.0)
    frames = []
    for action in actions:
        frames.append((state.obs, state.qpos[:, :3]))
        state = env.step(state, action * state.obs.action_mask)
        assert not bool(jnp.any(state.terminated | state.truncated)), "an episode ended inside the recording"
    obs = jax.tree.map(lambda *x: jnp.stack(x, 1), *[f[0] for f in frames])
    seq = Sequence(
        obs,
        jnp.swapaxes(actions, 0, 1) * obs.action_mask,
        jnp.stack([f[1] for f in frames], 1),
        jnp.asarray(env.body_of_env, jnp.int32),
    )
    cut = lambda x: x.reshape((x.shape[0] * (steps // window), window) + x.shape[2:])  # noqa: E731
    return Sequence(
        jax.tree.map(cut, seq.obs), cut(seq.actions), cut(seq.torso_position), jnp.repeat(seq.body, steps // window)
    )


def pad_limbs(seq: Sequence, extra: int) -> Sequence:
    """The same windows with `extra` more (padding) limb slots."""

    def pad(x, value=0):
        width = [(0, 0)] * x.ndim
        width[2] = (0, extra)
        return jnp.pad(x, width, constant_values=value)

    obs = seq.obs.replace(
        vectors=pad(seq.obs.vectors),
        scalars=pad(seq.obs.scalars),
        limb_mask=pad(seq.obs.limb_mask, False),
        parent=pad(seq.obs.parent, -1),
        action_mask=pad(seq.obs.action_mask, False),
    )
    return seq.replace(obs=obs, actions=pad(seq.actions))
