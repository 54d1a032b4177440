"""BraxEnv: Brax's wrappers and Brax's own PPO run on an equirl body."""

import functools
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # harmless here; keeps rendering tests working in one process

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("brax")

from brax.envs.wrappers import training as brax_wrappers  # noqa: E402
from brax.training.agents.ppo import networks as ppo_networks  # noqa: E402
from brax.training.agents.ppo import train as ppo  # noqa: E402

from equirl.envs.brax_env import BraxEnv  # noqa: E402
from equirl.observation import NUM_SCALARS, NUM_VECTORS  # noqa: E402

BODY = "hopper_3_shin"  # 3 limbs: the smallest 3D-SGRL body


@pytest.fixture(scope="module")
def env():
    env = BraxEnv(BODY)
    yield env
    env.close()


def test_sizes(env):
    limbs = env.num_limbs
    assert limbs == 3
    assert env.observation_size == limbs * (NUM_VECTORS * 3 + NUM_SCALARS)
    assert env.action_size == limbs * 3
    assert env.backend == "native"


def test_reset_step_shapes(env):
    # Shapes only: eval_shape traces without compiling, so this stays cheap.
    state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))
    assert state.obs.shape == (env.observation_size,)
    assert state.reward.shape == () and state.done.shape == ()
    assert all(m.shape == () for m in state.metrics.values())
    after = jax.eval_shape(env.step, state, jnp.zeros(env.action_size))
    assert after.obs.shape == (env.observation_size,)
    assert after.obs.dtype == jnp.float32 and after.reward.dtype == jnp.float32
    assert after.reward.shape == () and after.done.shape == ()
    assert jax.tree.structure(after) == jax.tree.structure(state)

    # Brax's training wrappers (vmap, episode, autoreset) add their keys to info.
    wrapped = brax_wrappers.wrap(env, episode_length=10)
    batch = jax.eval_shape(wrapped.reset, jax.random.split(jax.random.PRNGKey(0), 4))
    assert batch.obs.shape == (4, env.observation_size)
    assert {"steps", "truncation", "first_obs", "first_pipeline_state"} <= set(batch.info)
    batch_after = jax.eval_shape(wrapped.step, batch, jnp.zeros((4, env.action_size)))
    assert batch_after.obs.shape == (4, env.observation_size)
    assert batch_after.done.shape == (4,)


# About a minute of compiles; benchmarks/train_throughput.py runs brax's PPO through the adapter too.
@pytest.mark.benchmark
def test_brax_ppo_trains(env):
    progress = []
    make_policy, params, metrics = ppo.train(
        env,
        num_timesteps=2000,
        num_envs=8,
        batch_size=8,
        num_minibatches=2,
        unroll_length=5,
        episode_length=50,
        # One epoch then one evaluation: brax compiles its eval unroll again for
        # the initial evaluation that num_evals > 1 adds, which costs ~10 s here.
        num_evals=1,
        num_eval_envs=8,
        # Small networks compile faster; the point is the plumbing, not learning.
        network_factory=functools.partial(
            ppo_networks.make_ppo_networks, policy_hidden_layer_sizes=(32,), value_hidden_layer_sizes=(32,)
        ),
        seed=0,
        progress_fn=lambda step, m: progress.append((step, m)),
    )
    assert progress and progress[-1][0] >= 2000
    leaves = jax.tree.leaves(params)
    assert leaves and all(np.all(np.isfinite(np.asarray(x))) for x in leaves)
    for name in ("eval/episode_reward", "training/policy_loss", "training/v_loss"):
        assert np.isfinite(float(metrics[name])), name
    assert float(metrics["eval/avg_episode_length"]) > 0
    assert float(metrics["eval/episode_unstable"]) == 0.0

    # The trained policy acts on a flat observation with actions in [-1, 1].
    policy = make_policy(params, deterministic=True)
    obs = jnp.zeros((1, env.observation_size))
    action, _ = policy(obs, jax.random.PRNGKey(1))
    assert action.shape == (1, env.action_size)
    assert np.all(np.abs(np.asarray(action)) <= 1.0)
