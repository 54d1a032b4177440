"""The scripted LQR controller (a distillation teacher and a base for residual policies): it
balances a 3D hopper that falls without it, and it is symmetric (turns about gravity and mirrors
move its actions as they move the body)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl.agents.distill import distill_config
from equirl.envs import lqr, symmetry
from equirl.envs.batched import BatchedEnv
from equirl.envs.config import EnvConfig
from equirl.errors import ConfigError
from equirl.morphology.mirror import mirror_map

ENVS = 4


@pytest.fixture(scope="module")
def hopper():
    """hopper_5_full bare, and with the LQR as base controller (its gain designed once, there)."""
    config = EnvConfig(bodies=("hopper_5_full",), num_envs=ENVS, max_limbs=5, autoreset=False)
    bare, based = BatchedEnv(config), BatchedEnv(dataclasses.replace(config, base_controller="lqr"))
    yield bare, based
    bare.close()
    based.close()


def healthy_steps(env, steps: int) -> np.ndarray:
    """Steps each environment stayed healthy under zero actions, up to `steps`, from the same starts."""

    def body(carry, _):
        state, alive = carry
        state = env.step(state, jnp.zeros((ENVS,) + env.action_shape))
        alive = alive & ~state.terminated
        return (state, alive), alive

    start = env.reset(jax.random.PRNGKey(0))
    _, alive = jax.lax.scan(body, (start, jnp.ones(ENVS, bool)), None, length=steps)
    return np.asarray(alive.sum(0))


def test_the_lqr_keeps_a_hopper_up_that_falls_without_it(hopper):
    """Zero torque falls; the same zero policy as a residual on the LQR base controller stands."""
    bare, based = hopper
    fallen, held = healthy_steps(bare, 400), healthy_steps(based, 400)
    assert fallen.max() < 300  # zero torque: down within about 160-230 steps
    assert (held == 400).sum() >= 3, held


def test_the_lqr_is_equivariant(hopper):
    _, env = hopper
    act = jax.jit(lambda q, v: lqr.act(env.base_gains, env.tables, q, v))
    # 20 steps off the reset pose (zero residual: the LQR acting), so that every gain column matters.
    state = jax.jit(
        lambda s: jax.lax.fori_loop(0, 20, lambda _, s: env.step(s, jnp.zeros_like(s.obs.action_mask, jnp.float32)), s)
    )(env.reset(jax.random.PRNGKey(1)))
    base = act(state.qpos, state.qvel)
    angle = jax.random.uniform(jax.random.PRNGKey(2), (ENVS,), minval=-np.pi, maxval=np.pi)
    q, v, _ = symmetry.rotate_state(state.qpos, state.qvel, state.target, angle)
    np.testing.assert_allclose(act(q, v), base, atol=1e-4)
    mirror = mirror_map(env.morphologies[0])
    q, v, _ = symmetry.reflect_state(state.qpos, state.qvel, state.target, mirror, angle)
    np.testing.assert_allclose(act(q, v), symmetry.transform_action(base, mirror), atol=1e-3)


def test_the_residual_scale_scales_the_policy_action_only(hopper):
    """residual_scale=0.25 with action a moves the body as scale 1 with action a/4: the LQR part is unscaled."""
    _, based = hopper
    scaled = BatchedEnv(dataclasses.replace(based.config, residual_scale=0.25))
    try:
        start = based.reset(jax.random.PRNGKey(3))
        action = jax.random.uniform(jax.random.PRNGKey(4), (ENVS,) + based.action_shape, minval=-1, maxval=1)
        np.testing.assert_allclose(scaled.step(start, action).qpos, based.step(start, action / 4).qpos, atol=1e-6)
        assert not np.allclose(scaled.step(start, action).qpos, based.step(start, action).qpos, atol=1e-6)
    finally:
        scaled.close()


def test_an_unknown_base_controller_is_refused():
    with pytest.raises(ConfigError, match="base_controller='pd'"):
        EnvConfig(base_controller="pd")
    with pytest.raises(ConfigError, match="residual_scale=0.5: only applies with a base_controller"):
        EnvConfig(residual_scale=0.5)
    with pytest.raises(ConfigError, match="residual_scale=0: must be > 0"):
        EnvConfig(base_controller="lqr", residual_scale=0)


def test_an_lqr_student_needs_its_bodies():
    with pytest.raises(ConfigError, match="name the student's bodies"):
        distill_config(["lqr"])
    config = distill_config(["lqr"], bodies=["hopper"], student="mlp_heading", steps=100)
    assert config.env.max_limbs == 5 and config.distill.teachers == ("lqr",)
