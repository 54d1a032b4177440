"""Observation normalisation keeps O_g(3)-equivariance and ignores padding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl.agents import normalization
from equirl.agents.config import OffPolicyConfig
from equirl.errors import ConfigError
from equirl.geometry import random_og3


@pytest.fixture(scope="module")
def observations(make_env):
    env = make_env(bodies=("walker_7_full", "hopper_3_shin"), num_envs=4, autoreset=True)
    state = env.reset(jax.random.PRNGKey(0))
    batches = []
    for i in range(5):
        action = jax.random.uniform(jax.random.PRNGKey(i), (4,) + env.action_shape, minval=-1, maxval=1)
        state = env.step(state, action)
        batches.append(state.obs)
    return batches


def _fit(batches):
    stats = normalization.init(8, 17)
    for obs in batches:
        stats = normalization.update(stats, obs)
    return stats


def test_statistics_match_numpy_over_real_limbs(observations):
    stats = _fit(observations)
    mask = np.concatenate([np.asarray(o.limb_mask).reshape(-1) for o in observations])
    scalars = np.concatenate([np.asarray(o.scalars).reshape(-1, 17) for o in observations])[mask]
    vectors = np.concatenate([np.asarray(o.vectors).reshape(-1, 8, 3) for o in observations])[mask]
    assert int(stats.count) == mask.sum()
    np.testing.assert_allclose(stats.scalar_mean, scalars.mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.scalar_m2 / stats.count, scalars.var(0), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(stats.vector_sq, np.square(vectors).sum(-1).mean(0), rtol=1e-4)


def test_statistics_freeze_once_the_step_count_reaches_the_bound(observations):
    first, second = observations[0], observations[1]
    start = normalization.update(normalization.init(8, 17), first)
    moving = normalization.update_until(start, second, env_steps=8, freeze_at=12)
    assert float(moving.count) > float(start.count)  # 8 steps collected before: still learning
    frozen = normalization.update_until(start, second, env_steps=12, freeze_at=12)
    for a, b in zip(jax.tree.leaves(frozen), jax.tree.leaves(start)):
        np.testing.assert_array_equal(a, b)
    never = normalization.update_until(start, second, env_steps=10**6, freeze_at=0)
    np.testing.assert_array_equal(never.scalar_mean, moving.scalar_mean)


def test_a_std_floor_bounds_the_gain_of_a_channel_that_barely_moves(observations):
    stats = _fit(observations)
    obs = observations[-1]
    std = np.sqrt(np.asarray(stats.scalar_m2) / float(stats.count) + normalization.EPS)
    floor = 0.5
    assert (std < floor).any() and (std > floor).any()  # the floor binds on some channels only
    mask = np.asarray(obs.limb_mask)
    plain = np.asarray(normalization.normalize(stats, obs, clip=1e9).scalars)[mask]
    floored = np.asarray(normalization.normalize(stats, obs, clip=1e9, std_floor=floor).scalars)[mask]
    # Both are (x - mean) over their divisor: std, or max(std, floor).
    np.testing.assert_allclose(floored * np.maximum(std, floor), plain * std, rtol=1e-4, atol=1e-4)
    assert np.abs(floored).max() < np.abs(plain).max()


def test_normalising_commutes_with_the_group(observations):
    stats = _fit(observations)
    obs = observations[-1]
    g = random_og3(jax.random.PRNGKey(7), (obs.vectors.shape[0],))
    moved = obs.replace(vectors=jnp.einsum("bij,blcj->blci", g, obs.vectors))
    a = normalization.normalize(stats, moved).vectors
    b = jnp.einsum("bij,blcj->blci", g, normalization.normalize(stats, obs).vectors)
    np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_array_equal(
        normalization.normalize(stats, moved).scalars, normalization.normalize(stats, obs).scalars
    )


def test_a_per_coordinate_normaliser_would_not(observations):
    """The property above is not automatic: per-coordinate statistics break it."""
    obs = observations[-1]
    vectors = np.asarray(obs.vectors)[np.asarray(obs.limb_mask)]
    std = vectors.std(0) + 1e-8  # [8, 3]: one scale per coordinate
    g = np.asarray(random_og3(jax.random.PRNGKey(8), ()))
    moved = vectors @ g.T
    err = np.abs(moved / std - (vectors / std) @ g.T).max()
    assert err > 1e-2


def test_padding_is_ignored_and_stays_zero(observations):
    stats = _fit(observations)
    obs = observations[0]
    padded = obs.replace(
        vectors=jnp.where(obs.limb_mask[..., None, None], obs.vectors, 1e6),
        scalars=jnp.where(obs.limb_mask[..., None], obs.scalars, -1e6),
    )
    same = normalization.update(normalization.init(8, 17), padded)
    ref = normalization.update(normalization.init(8, 17), obs)
    np.testing.assert_allclose(same.vector_sq, ref.vector_sq, rtol=1e-6)
    out = normalization.normalize(stats, padded)
    assert not np.any(np.asarray(out.vectors)[~np.asarray(obs.limb_mask)])
    assert np.isfinite(out.vectors).all() and np.isfinite(out.scalars).all()


def test_rewards_are_scaled_by_the_running_std_of_the_discounted_return():
    """VecNormalize's reward scaling: returns accumulate per environment, restart after an
    episode ends, carry across rollouts, and their running std divides the rewards."""
    gamma, rng = 0.9, np.random.default_rng(0)
    rollouts = [(rng.normal(size=(6, 3)), rng.random((6, 3)) < 0.2) for _ in range(3)]
    state = normalization.return_scale_init(3)
    ret, seen = np.zeros(3), []
    for rewards, done in rollouts:
        state, scaled = normalization.scale_rewards(state, jnp.asarray(rewards), jnp.asarray(done), gamma)
        for r, d in zip(rewards, done):
            ret = gamma * ret + r
            seen.append(ret.copy())
            ret = np.where(d, 0.0, ret)
        std = np.std(np.concatenate(seen))
        np.testing.assert_allclose(np.asarray(scaled), np.clip(rewards / std, -10, 10), rtol=1e-4)
        np.testing.assert_allclose(np.asarray(state.per_env), ret, rtol=1e-5)
    assert float(state.count) == 3 * 6 * 3


@pytest.mark.parametrize("field, value", [("observation_std_floor", -0.1), ("freeze_normalizer_at", -1)])
def test_the_off_policy_normaliser_options_refuse_negative_values(field, value):
    with pytest.raises(ConfigError, match=field):
        OffPolicyConfig(**{field: value})
