"""Replay augmentation by the physical mirror: stored observations and actions reflected
exactly as the physics would reflect the scene (checked against the environment's own
observation of the reflected state), and the learner's batches mirrored when asked."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl.envs import symmetry
from equirl.morphology.mirror import mirror_map
from equirl.observation import HINGE_AXES
from helpers.common import float64

BODIES = ("walker_7_full", "hopper_5_full", "walker_3_left_leg_right_foot")  # the last has no mirror
ENVS = 6


@pytest.fixture(scope="module")
def scene(make_env):
    """A mixed batch after some random steps, and the same scene reflected by the physics."""
    env = make_env(x64=True, bodies=BODIES, num_envs=ENVS, autoreset=False)
    tables = symmetry.mirror_tables(env.morphologies, env.body_of_env, env.num_limbs)
    state = env.reset(jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(1)
    for _ in range(8):
        key, sub = jax.random.split(key)
        with float64():
            action = jnp.where(
                state.obs.action_mask, jax.random.uniform(sub, state.obs.action_mask.shape, jnp.float64, -1, 1), 0.0
            )
        state = env.step(state, action)
    normal = np.random.default_rng(3).uniform(-np.pi, np.pi, ENVS)
    qpos, qvel, target = (np.array(x) for x in (state.qpos, state.qvel, state.target))
    body_of_env = np.asarray(env.body_of_env)
    for b, morph in enumerate(env.morphologies):
        rows = np.flatnonzero(body_of_env == b)
        if BODIES[b] == "walker_3_left_leg_right_foot":
            continue
        with float64():
            q, v, t = symmetry.reflect_state(
                jnp.asarray(qpos[rows]),
                jnp.asarray(qvel[rows]),
                jnp.asarray(target[rows]),
                mirror_map(morph),
                jnp.asarray(normal[rows]),
            )
        qpos[rows], qvel[rows], target[rows] = q, v, t
    with float64():
        reflected = env.with_state(state, jnp.asarray(qpos), jnp.asarray(qvel), jnp.asarray(target))
    return env, tables, state, reflected, normal


def test_only_mirror_symmetric_bodies_are_mirrorable(scene):
    env, tables, *_ = scene
    expected = [BODIES[b] != "walker_3_left_leg_right_foot" for b in np.asarray(env.body_of_env)]
    assert np.asarray(tables.mirrorable).tolist() == expected


def test_mirrored_observation_is_the_reflected_scenes(scene):
    env, tables, state, reflected, normal = scene
    with float64():
        mirrored = symmetry.mirror_observation(state.obs, tables, jnp.asarray(normal))
    rows = np.asarray(tables.mirrorable)
    for field in ("vectors", "scalars"):
        got, want = np.asarray(getattr(mirrored, field))[rows], np.asarray(getattr(reflected.obs, field))[rows]
        scale = 1.0 + np.abs(want).max()
        assert np.abs(got - want).max() / scale < 1e-8, field
        # Measured, not assumed: the scene really changed under the mirror.
        assert np.abs(np.asarray(getattr(state.obs, field))[rows] - want).max() > 1e-2, field
    for field in ("limb_mask", "parent", "action_mask"):
        np.testing.assert_array_equal(getattr(mirrored, field), getattr(reflected.obs, field))


def test_mirrored_action_drives_the_mirrored_body_alike(scene):
    env, tables, state, reflected, normal = scene
    action = jnp.where(
        state.obs.action_mask,
        jax.random.uniform(jax.random.PRNGKey(7), state.obs.action_mask.shape, jnp.float32, -1, 1),
        0.0,
    )
    moved = symmetry.mirror_action(action, tables)
    for b, morph in enumerate(env.morphologies):
        rows = np.flatnonzero(np.asarray(env.body_of_env) == b)
        if BODIES[b] == "walker_3_left_leg_right_foot":
            continue
        np.testing.assert_allclose(moved[rows], symmetry.transform_action(action[rows], mirror_map(morph)), atol=1e-7)
    # The mirror is an involution: twice is the identity (same plane).
    obs = state.obs.replace(
        vectors=state.obs.vectors.astype(jnp.float32), scalars=state.obs.scalars.astype(jnp.float32)
    )
    twice = symmetry.mirror_observation(symmetry.mirror_observation(obs, tables, normal), tables, normal)
    np.testing.assert_allclose(twice.vectors, obs.vectors, atol=1e-5)
    np.testing.assert_allclose(twice.scalars, obs.scalars, atol=1e-5)
    np.testing.assert_allclose(symmetry.mirror_action(moved, tables), action, atol=1e-7)


def _float32(obs):
    return obs.replace(vectors=jnp.asarray(obs.vectors, jnp.float32), scalars=jnp.asarray(obs.scalars, jnp.float32))


def test_learner_batches_are_mirrored_where_asked(scene):
    from equirl.agents import offpolicy, replay

    env, tables, state, reflected, _ = scene
    obs = _float32(state.obs)
    action = jnp.where(
        obs.action_mask, jax.random.uniform(jax.random.PRNGKey(8), obs.action_mask.shape, minval=-1, maxval=1), 0.0
    )
    rows = jnp.arange(3 * ENVS, dtype=jnp.int32)  # three buffer rows per environment, time-major
    tile = lambda x: jnp.concatenate([x] * 3)  # noqa: E731
    sample = replay.NStep(
        jax.tree.map(tile, obs),
        tile(action),
        jnp.ones(3 * ENVS),
        jax.tree.map(tile, obs),
        jnp.zeros(3 * ENVS, bool),
        jnp.ones(3 * ENVS, jnp.int32),
        rows,
    )
    kept = offpolicy.mirror_sample(sample, tables, ENVS, 0.0, jax.random.PRNGKey(9))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(kept), jax.tree.leaves(sample)))

    out = offpolicy.mirror_sample(sample, tables, ENVS, 1.0, jax.random.PRNGKey(9))
    mirrorable = np.tile(np.asarray(tables.mirrorable), 3)
    # Scalars do not depend on which vertical plane: they must be the reflected scene's.
    want = np.tile(np.asarray(reflected.obs.scalars, np.float32), (3, 1, 1))
    np.testing.assert_allclose(np.asarray(out.obs.scalars)[mirrorable], want[mirrorable], atol=1e-5)
    np.testing.assert_allclose(out.next_obs.scalars, out.obs.scalars)
    np.testing.assert_allclose(out.action, tile(symmetry.mirror_action(action, tables)))
    # Vectors: lengths kept, directions changed; the asymmetric body's rows left as they were.
    source = np.tile(np.asarray(tables.source_limb), (3, 1))  # each row's image limb <- source limb
    lengths = np.take_along_axis(np.linalg.norm(sample.obs.vectors, axis=-1), source[..., None], 1)
    not_axes = [c for c in range(lengths.shape[-1]) if c not in range(8)[HINGE_AXES]]
    np.testing.assert_allclose(
        np.linalg.norm(out.obs.vectors, axis=-1)[..., not_axes], lengths[..., not_axes], atol=1e-5
    )
    np.testing.assert_array_equal(np.asarray(out.obs.vectors)[~mirrorable], np.asarray(sample.obs.vectors)[~mirrorable])
    assert np.abs(np.asarray(out.obs.vectors)[mirrorable] - np.asarray(sample.obs.vectors)[mirrorable]).max() > 1e-2
    np.testing.assert_array_equal(out.reward, sample.reward)


def test_training_with_mirrored_batches(make_env):
    import dataclasses

    from helpers.offpolicy import ENV, SAC, make_agent

    env = make_env(**ENV)
    config = dataclasses.replace(SAC, mirror_probability=0.5)
    agent, _ = make_agent(env.env, "crossq", "mlp_heading", config)
    state = jax.jit(agent.init)(jax.random.PRNGKey(0))
    step = jax.jit(agent.iteration)
    for _ in range(3):
        state, metrics = step(state)
    assert float(metrics["optim/learning"]) == 1.0
    assert all(np.all(np.isfinite(np.asarray(v))) for v in metrics.values())


def test_mirroring_is_refused_where_it_cannot_act(make_env):
    from equirl.agents.config import OffPolicyConfig
    from equirl.errors import ConfigError
    from helpers.offpolicy import SAC, make_agent

    with pytest.raises(ConfigError, match="mirror_probability=1.5"):
        OffPolicyConfig(mirror_probability=1.5)
    import dataclasses

    env = make_env(bodies=("walker_3_left_leg_right_foot",), num_envs=2, max_limbs=7)
    with pytest.raises(ConfigError, match="walker_3_left_leg_right_foot"):
        make_agent(env.env, "sac", "mlp", dataclasses.replace(SAC, mirror_probability=0.5))
