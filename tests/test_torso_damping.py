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


def test_roll_damping_slows_sideways_falls_only():
    """Damping about the torso's heading (its x axis) is one degree of freedom; a sideways
    spin dies out under it while a forward pitch keeps its speed as without damping."""
    plain = BatchedEnv(EnvConfig(**BODY))
    rolled = BatchedEnv(EnvConfig(**BODY, training_torso_damping=100.0, training_torso_damping_axes="roll"))
    try:
        model = rolled.morphologies[0].model
        (dof,) = rolled.torso_damping.dofs[0]
        assert model.jnt_type[0] == 0 and dof == model.jnt_dofadr[0] + 3  # the free joint's first rotation
        start = plain.reset(jax.random.PRNGKey(1))
        speeds = {}
        for axis in (3, 4):  # a spin about the torso's x (roll) or y (pitch) axis
            spun = start.replace(qvel=start.qvel.at[:, axis].set(2.0))
            for name, env in (("plain", plain), ("rolled", rolled)):
                state = jax.jit(env.step)(spun, jnp.zeros((env.num_envs,) + env.action_shape))
                speeds[name, axis] = np.abs(np.asarray(state.qvel[:, axis]))
        assert np.all(speeds["rolled", 3] < 0.7 * speeds["plain", 3])
        np.testing.assert_allclose(speeds["rolled", 4], speeds["plain", 4], rtol=0.1)
    finally:
        plain.close()
        rolled.close()


def test_planar_damping_takes_every_rotation_out_of_the_sagittal_plane():
    """ "planar": the torso's roll and yaw and the x and z hinges of every limb, each damped in
    proportion to its own inertia (the yaw's is a few hundredths of the roll's: the same
    damping would blow RK4 up), the pitch hinges untouched; 100 steps stay finite."""
    rolled = BatchedEnv(EnvConfig(**BODY, training_torso_damping=200.0, training_torso_damping_axes="planar"))
    try:
        model = rolled.morphologies[0].model
        dofs = rolled.torso_damping.dofs[0]
        names = [model.joint(model.dof_jntid[d]).name for d in dofs]
        assert names[:2] == ["root", "root"] and list(dofs[:2] - model.jnt_dofadr[0]) == [3, 5]
        side = [model.joint(j).name for j in range(1, model.njnt) if model.joint(j).name[-1] in "xz"]
        assert sorted(names[2:]) == sorted(side)
        added = model.dof_damping[dofs] - 1.0 * (np.arange(len(dofs)) >= 2)  # the hinges' own damping is 1
        assert added[0] == pytest.approx(200.0) and 0 < added[1] < 0.05 * added[0]
        _, state = _tilt_after(rolled, rolled.reset(jax.random.PRNGKey(1)), 100)
        assert np.isfinite(np.asarray(state.qvel)).all() and not np.asarray(state.terminated).any()
    finally:
        rolled.close()


@pytest.mark.parametrize(
    "fields, problem",
    [
        (dict(training_torso_damping=-1.0), "training_torso_damping=-1.0"),
        (dict(training_torso_damping_steps=100), "only applies with a training_torso_damping"),
        (dict(training_torso_damping=10.0, training_torso_damping_steps=100, backend="mjx"), "native backend"),
        (dict(training_torso_damping=10.0, training_torso_damping_axes="pitch"), "training_torso_damping_axes='pitch'"),
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


def test_evaluation_on_the_training_task_keeps_the_aids():
    """`equirl eval --training-aids`: the run's own aided task (damped torso, its tilt limit)."""
    env_config = EnvConfig(bodies=("hopper_5_full",), max_limbs=5, training_torso_damping=50.0, training_tilt_limit=0.3)
    policy = evaluate.Policy(config=TrainConfig(env=env_config), state=None, act=None)
    env = evaluate.make_env(policy, "hopper_5_full", 2, 5, training_aids=True)
    try:
        assert env.config == dataclasses.replace(env_config, num_envs=2, autoreset=False)
        assert env.torso_damping is not None
    finally:
        env.close()


def test_evaluation_on_the_training_task_fades_the_damping_to_the_checkpoints_step():
    """A run whose damping fades over 10k steps, evaluated with its aids at 5k and at 12k: half the
    damping, then none (its training task at those steps), not the full strength it started from."""
    env_config = EnvConfig(
        bodies=("hopper_5_full",), max_limbs=5, training_torso_damping=50.0, training_torso_damping_steps=10_000
    )
    for step, damping in ((5_000, 25.0), (12_000, 0.0)):
        policy = evaluate.Policy(config=TrainConfig(env=env_config), state=None, act=None, step=step)
        env = evaluate.make_env(policy, "hopper_5_full", 2, 5, training_aids=True)
        try:
            torso = env.torso_damping
            model, dofs = torso.models[0], torso.dofs[0]
            np.testing.assert_allclose(model.dof_damping[dofs], torso.base[0] + damping * torso.scale[0])
        finally:
            env.close()
