"""The imagined environment: state recovery, step-for-step parity with the physics, PPO in imagination."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl.agents.config import PPOConfig
from equirl.agents.ppo import make_ppo
from equirl.errors import ConfigError
from equirl.nn import NetworkConfig, make_networks
from equirl.worldmodels.data import feature_stats
from equirl.worldmodels.imagined_env import (
    ImaginedEnv,
    physics_dynamics,
    recover_state,
    world_model_dynamics,
)
from equirl.worldmodels.interface import RemulOptions, Sequence, WorldModelConfig
from equirl.worldmodels.remul import make_remul
from helpers.common import compile_fast

BODIES = ("hopper_3_shin", "walker_2_right_leg_left_knee")
LIMBS = 5
STEPS = 40


@pytest.fixture(scope="module")
def real_env(make_env):
    # A short time limit so that truncations, terminations and autoresets all happen
    # (the same environment as the other world-model tests: compiled once per session).
    return make_env(bodies=BODIES, num_envs=4, max_limbs=LIMBS, episode_length=25)


def _actions(env, steps, seed=0):
    """Random torques, except full reverse torque on the hoppers (rows 0, 2, ...): it
    makes them fall within about 15 steps, so terminations happen too."""
    shape = (steps, env.num_envs) + env.action_shape
    random = jax.random.uniform(jax.random.PRNGKey(seed), shape, minval=-1.0, maxval=1.0)
    return random.at[:, ::2].set(-1.0)


@pytest.fixture(scope="module")
def real_run(real_env):
    """The physics environment's states over STEPS steps of random actions."""
    state = real_env.reset(jax.random.PRNGKey(3))
    states = [state]
    for action in _actions(real_env, STEPS):
        state = real_env.step(state, action)
        states.append(state)
    return states


def test_recover_state_inverts_the_observation(real_env, real_run):
    first = real_run[0]
    recover = compile_fast(lambda obs, xy: recover_state(real_env.tables, obs, xy), first.obs, first.qpos[:, :2])
    valid_q, valid_v = np.asarray(real_env.tables.qpos_valid), np.asarray(real_env.tables.qvel_valid)
    for state in real_run[::7]:
        qpos, qvel = recover(state.obs, state.qpos[:, :2])
        q, true_q = np.array(qpos), np.asarray(state.qpos)
        # A quaternion and its negative are the same rotation.
        sign = np.sign(np.sum(q[:, 3:7] * true_q[:, 3:7], -1, keepdims=True))
        q[:, 3:7] *= sign
        np.testing.assert_allclose(np.where(valid_q, q, 0), np.where(valid_q, true_q, 0), atol=2e-5)
        np.testing.assert_allclose(np.where(valid_v, qvel, 0), np.where(valid_v, state.qvel, 0), atol=2e-4, rtol=1e-5)


@pytest.fixture(scope="module")
def exact(real_env):
    """(reset, step) of the imagined environment driven by the physics itself, compiled once."""
    imagined = ImaginedEnv(real_env.env, physics_dynamics(real_env.env))
    key = jax.random.PRNGKey(3)
    reset = compile_fast(imagined.reset, key)
    return reset, compile_fast(imagined.step, reset(key), jnp.zeros((real_env.num_envs,) + real_env.action_shape))


def test_both_environments_are_an_env(real_env):
    from equirl.envs.base import Env

    imagined = ImaginedEnv(real_env.env, physics_dynamics(real_env.env))  # nothing compiles
    assert isinstance(real_env.env, Env) and isinstance(imagined, Env)
    assert not isinstance(object(), Env)


def test_exact_dynamics_steps_exactly_like_the_physics(real_env, real_run, exact):
    reset, step = exact
    state = reset(jax.random.PRNGKey(3))
    ended = {"terminated": 0, "truncated": 0}
    for t, action in enumerate(_actions(real_env, STEPS)):
        state = step(state, action)
        real = real_run[t + 1]
        for name in ("terminated", "truncated"):
            np.testing.assert_array_equal(getattr(state, name), getattr(real, name), err_msg=f"{name} at step {t}")
            ended[name] += int(np.sum(getattr(real, name)))
        np.testing.assert_allclose(state.reward, real.reward, rtol=1e-4, atol=1e-4, err_msg=f"reward at step {t}")
        np.testing.assert_allclose(state.info["episode_return"], real.info["episode_return"], rtol=1e-4, atol=1e-3)
        np.testing.assert_array_equal(state.info["episode_length"], real.info["episode_length"])
        for got, want in ((state.obs, real.obs), (state.info["final_obs"], real.info["final_obs"])):
            np.testing.assert_allclose(got.vectors, want.vectors, atol=1e-4, err_msg=f"vectors at step {t}")
            np.testing.assert_allclose(got.scalars, want.scalars, atol=1e-4, err_msg=f"scalars at step {t}")
            np.testing.assert_array_equal(got.limb_mask, want.limb_mask)
        np.testing.assert_array_equal(state.steps, real.steps)
    # The run went through both kinds of episode end and the autoresets after them.
    assert ended["terminated"] > 0 and ended["truncated"] > 0, ended


def test_a_diverged_prediction_ends_the_episode(real_env, exact):
    """Row 0's simulator state is broken (NaN speeds): the dynamics predicts a non-finite
    observation, and the episode ends as unstable with the last finite observation."""
    reset, step = exact
    state = reset(jax.random.PRNGKey(0))
    broken = state.model._replace(qvel=state.model.qvel.at[0].set(jnp.nan))
    after = step(state.replace(model=broken), jnp.zeros((real_env.num_envs,) + real_env.action_shape))
    assert bool(after.terminated[0]) and bool(after.info["unstable"][0])
    assert not bool(after.info["unstable"][1:].any())
    np.testing.assert_array_equal(after.info["final_obs"].vectors[0], state.obs.vectors[0])
    assert np.isfinite(after.obs.vectors).all() and np.isfinite(after.obs.scalars).all()
    assert int(after.steps[0]) == 0, "the broken episode was reset"
    with pytest.raises(ConfigError, match="dynamics"):
        ImaginedEnv(real_env.env, physics_dynamics(real_env.env).step)


@pytest.mark.benchmark  # 30 s; the exact-dynamics test above covers the interface in the default suite
def test_ppo_trains_in_a_learned_world_model(real_env, real_run):
    """A REMUL world model behind the env interface; one PPO iteration on it."""
    states = real_run[:9]
    seq = Sequence(
        obs=jax.tree.map(lambda *x: jnp.stack(x, 1), *[s.obs for s in states]),
        actions=jnp.swapaxes(_actions(real_env, 9), 0, 1),
        torso_position=jnp.stack([s.qpos[:, :3] for s in states], 1),
        body=jnp.asarray(real_env.body_of_env, jnp.int32),
    )
    config = WorldModelConfig(kind="remul", width=8, depth=1, heads=2, remul=RemulOptions(history=2))
    model = make_remul(config, feature_stats(seq))
    params = compile_fast(model.init, jax.random.PRNGKey(0), seq)(jax.random.PRNGKey(0), seq)
    imagined = ImaginedEnv(real_env.env, world_model_dynamics(model, params, real_env.body_of_env))

    nets = make_networks(NetworkConfig(kind="mlp", mlp_hidden=(16,)), max_limbs=LIMBS)
    agent = make_ppo(imagined, nets, PPOConfig(rollout_length=4, minibatches=2, epochs=1), total_iterations=1)
    state = compile_fast(agent.init, jax.random.PRNGKey(1))(jax.random.PRNGKey(1))
    after, metrics = compile_fast(agent.iteration, state)(state)
    assert int(after.env_steps) == 4 * real_env.num_envs
    assert all(np.isfinite(np.asarray(v)).all() for v in metrics.values())
    assert np.isfinite(after.env_state.obs.vectors).all()
    changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), after.params.actor, state.params.actor)
    assert any(jax.tree.leaves(changed))
    # The imagined states moved: the model's predictions, not the start states, are observed.
    assert not np.allclose(after.env_state.obs.vectors, state.env_state.obs.vectors)
