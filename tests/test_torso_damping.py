"""The torso-damping training aid: it slows falls, fades with the step count, and never reaches eval."""

import dataclasses
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl.agents.config import TrainConfig
from equirl.envs.batched import BatchedEnv
from equirl.envs.config import EnvConfig
from equirl.errors import ConfigError

evaluate = importlib.import_module("equirl.evaluation.evaluate")  # the package exports a function of that name
BODY = dict(bodies=("hopper_5_full",), num_envs=4, autoreset=False, backend="native")


def _tilt_after(env, state, steps):
    """1 - cos(torso tilt) after `steps` zero-torque steps, and the final state."""
    step = jax.jit(env.step)
    zero = jnp.zeros((env.num_envs,) + env.action_shape)
    for _ in range(steps):
        state = step(state, zero)
    w, x, y, z = np.asarray(state.qpos[:, 3:7], np.float64).T
    return 2 * (x * x + y * y), state


def test_torso_damping_slows_the_fall_and_fades_to_the_published_physics():
    plain = BatchedEnv(EnvConfig(**BODY))
    damped = BatchedEnv(EnvConfig(**BODY, training_torso_damping=100.0, training_torso_damping_steps=1000))
    try:
        start = plain.reset(jax.random.PRNGKey(1))
        tilt_plain, _ = _tilt_after(plain, start, 150)
        tilt_damped, _ = _tilt_after(damped, start, 150)
        assert np.all(tilt_damped < 0.5 * tilt_plain) and tilt_plain.max() > 1e-3

        model, dofs = damped.morphologies[0].model, damped.torso_damping.dofs[0]
        np.testing.assert_allclose(model.dof_damping[dofs], 100.0)
        damped.set_training_progress(250)
        np.testing.assert_allclose(model.dof_damping[dofs], 75.0)
        others = np.setdiff1d(np.arange(model.nv), dofs)  # the legs' hinges and the translation: untouched
        np.testing.assert_array_equal(model.dof_damping[others], plain.morphologies[0].model.dof_damping[others])
        damped.set_training_progress(5000)  # faded out: the same physics as the published body
        np.testing.assert_allclose(model.dof_damping, plain.morphologies[0].model.dof_damping)
        a, _ = _tilt_after(plain, start, 40)
        b, _ = _tilt_after(damped, start, 40)
        np.testing.assert_array_equal(a, b)
    finally:
        plain.close()
        damped.close()


@pytest.mark.parametrize(
    "fields, problem",
    [
        (dict(training_torso_damping=-1.0), "training_torso_damping=-1.0"),
        (dict(training_torso_damping_steps=100), "only applies with a training_torso_damping"),
        (dict(training_torso_damping=10.0, training_torso_damping_steps=100, backend="mjx"), "native backend"),
    ],
)
def test_torso_damping_config_errors(fields, problem):
    with pytest.raises(ConfigError, match=problem):
        EnvConfig(bodies=("hopper_5_full",), **fields)


def test_evaluation_drops_every_training_aid_and_keeps_the_controller():
    trained = EnvConfig(
        bodies=("hopper_5_full",),
        training_tilt_limit=0.3,
        training_progress_weight=0.0,
        training_tilt_penalty=5.0,
        training_target_spread=0.0,
        training_torso_damping=50.0,
        training_torso_damping_steps=10_000,
        base_controller="lqr",
        residual_scale=0.3,
    )
    published = trained.without_training_aids()
    assert published == EnvConfig(bodies=("hopper_5_full",), base_controller="lqr", residual_scale=0.3)


def test_the_evaluation_env_of_a_damped_run_has_the_published_physics():
    config = TrainConfig(env=EnvConfig(bodies=("hopper_5_full",), max_limbs=5, training_torso_damping=50.0))
    env = evaluate.make_env(evaluate.Policy(config=config, state=None, act=None), "hopper_5_full", 2, 5)
    try:
        assert env.config == dataclasses.replace(config.env.without_training_aids(), num_envs=2, autoreset=False)
        assert env.torso_damping is None and not env.morphologies[0].model.dof_damping[:6].any()
    finally:
        env.close()
