"""MaskedGaussian: masked dimensions are a point mass at zero that adds nothing;
unmasked ones match distrax's Gaussian (and tanh-squashed Gaussian)."""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl.nn.distributions import MaskedGaussian, log_one_minus_tanh_sq

B, L = 3, 5


@pytest.fixture(scope="module")
def parts():
    rng = np.random.default_rng(0)
    loc = jnp.asarray(rng.normal(size=(B, L, 3)), jnp.float32)
    log_scale = jnp.asarray(0.3 * rng.normal(size=(B, L, 3)), jnp.float32)
    mask = jnp.asarray(rng.random((B, L, 3)) < 0.6)
    value = jnp.asarray(0.9 * rng.uniform(-1.0, 1.0, (B, L, 3)), jnp.float32)
    return loc, log_scale, mask, value


def reference_log_prob(loc, log_scale, mask, value, squash):
    """distrax's per-dimension log-density, summed over the driven dimensions."""
    base = distrax.Normal(loc, jnp.exp(log_scale))
    dist = distrax.Transformed(base, distrax.Tanh()) if squash else base
    return np.sum(np.where(mask, np.asarray(dist.log_prob(value)), 0.0), axis=(-2, -1))


@pytest.mark.parametrize("squash", [False, True])
def test_log_prob_matches_distrax_on_driven_dims(parts, squash):
    loc, log_scale, mask, value = parts
    dist = MaskedGaussian(loc, log_scale, mask, squash=squash)
    expected = reference_log_prob(loc, log_scale, mask, value, squash)
    np.testing.assert_allclose(dist.log_prob(value), expected, rtol=1e-5, atol=1e-5)
    if not squash:
        per_dim = np.asarray(distrax.Normal(loc, jnp.exp(log_scale)).entropy())
        entropy = np.sum(np.where(mask, per_dim, 0.0), axis=(-2, -1))
        np.testing.assert_allclose(dist.entropy(), entropy, rtol=1e-5)


@pytest.mark.parametrize("squash", [False, True])
def test_masked_dims_contribute_nothing(parts, squash):
    loc, log_scale, mask, value = parts
    dist = MaskedGaussian(loc, log_scale, mask, squash=squash)
    other = MaskedGaussian(jnp.where(mask, loc, 100.0), jnp.where(mask, log_scale, 50.0), mask, squash=squash)
    changed = jnp.where(mask, value, 0.99)
    np.testing.assert_allclose(other.log_prob(changed), dist.log_prob(value), rtol=1e-6)
    sample = dist.sample(seed=jax.random.PRNGKey(1), sample_shape=(4,))
    assert sample.shape == (4, B, L, 3)
    assert np.all(np.asarray(sample)[:, ~np.asarray(mask)] == 0.0)
    assert np.all(np.asarray(dist.mode())[~np.asarray(mask)] == 0.0)
    assert np.all(np.asarray(dist.stddev())[~np.asarray(mask)] == 0.0)
    if not squash:
        np.testing.assert_allclose(other.entropy(), dist.entropy(), rtol=1e-6)
    # Fully masked: a point mass, log-prob and entropy exactly zero.
    empty = MaskedGaussian(loc, log_scale, jnp.zeros_like(mask), squash=squash)
    assert np.all(np.asarray(empty.log_prob(value)) == 0.0)


def test_squashed_samples_and_their_log_prob(parts):
    loc, log_scale, mask, _ = parts
    dist = MaskedGaussian(3.0 * loc, log_scale + 1.0, mask, squash=True)
    sample, log_prob = dist.sample_and_log_prob(seed=jax.random.PRNGKey(2), sample_shape=(64,))
    assert np.all(np.abs(np.asarray(sample)) <= 1.0)  # tanh may round to exactly 1 in float32
    assert np.all(np.isfinite(np.asarray(log_prob)))
    inside = np.all(np.abs(np.asarray(sample)) < 0.999, axis=(-2, -1))  # atanh is accurate there
    again = np.asarray(dist.log_prob(sample))
    np.testing.assert_allclose(again[inside], np.asarray(log_prob)[inside], rtol=1e-3, atol=1e-3)
    with pytest.raises(NotImplementedError):
        dist.entropy()


@pytest.mark.parametrize("squash", [False, True])
def test_pre_squash_samples_give_ppo_an_exact_ratio(parts, squash):
    """PPO's stored pre-squash sample gives back its own log-density exactly, even where tanh saturates."""
    loc, log_scale, mask, _ = parts
    dist = MaskedGaussian(4.0 * loc, log_scale + 1.0, mask, squash=squash)  # wide: many samples saturate
    key = jax.random.PRNGKey(3)
    x, log_prob = dist.sample_pre_squash_and_log_prob(key)
    np.testing.assert_array_equal(np.asarray(dist.pre_squash_log_prob(x)), np.asarray(log_prob))
    # the same draw as sample(), squashed or not
    np.testing.assert_array_equal(np.asarray(dist.squash_sample(x)), np.asarray(dist.sample(seed=key)))
    if squash:
        # Inverting the squashed action instead (arctanh of a clipped tanh) gets the saturated
        # samples' density wrong: a ratio computed that way would not be 1.
        jacobian = np.sum(np.where(mask, np.asarray(log_one_minus_tanh_sq(x)), 0.0), axis=(-2, -1))
        inverted = np.asarray(dist.log_prob(dist.squash_sample(x)))
        assert np.max(np.abs(inverted - (np.asarray(log_prob) - jacobian))) > 1.0
        # The entropy estimate averages to -E[log_prob] of squashed samples.
        estimates = jax.vmap(dist.entropy_estimate)(jax.random.split(key, 2000))
        _, lp = dist.sample_and_log_prob(seed=jax.random.PRNGKey(5), sample_shape=(2000,))
        np.testing.assert_allclose(np.asarray(estimates).mean(0), -np.asarray(lp).mean(0), rtol=0.05, atol=0.2)
    else:
        np.testing.assert_allclose(np.asarray(dist.entropy_estimate(key)), np.asarray(dist.entropy()), rtol=1e-6)


def test_log_one_minus_tanh_sq_is_stable():
    x = np.array([-30.0, -3.0, 0.0, 2.0, 40.0], np.float32)
    got = np.asarray(log_one_minus_tanh_sq(jnp.asarray(x)))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got[1:4], np.log1p(-(np.tanh(x[1:4].astype(np.float64)) ** 2)), rtol=1e-5, atol=1e-6)
    far = np.array([0, 4])
    np.testing.assert_allclose(got[far], 2.0 * (np.log(2.0) - np.abs(x[far])), rtol=1e-6)


def test_kl_divergence_and_jit(parts):
    loc, log_scale, mask, _ = parts
    p = MaskedGaussian(loc, log_scale, mask)
    q = MaskedGaussian(loc + 0.5, log_scale - 0.2, mask)
    kl = distrax.Normal(loc, jnp.exp(log_scale)).kl_divergence(distrax.Normal(loc + 0.5, jnp.exp(log_scale - 0.2)))
    expected = np.sum(np.where(mask, np.asarray(kl), 0.0), axis=(-2, -1))
    np.testing.assert_allclose(p.kl_divergence(q), expected, rtol=1e-5)
    np.testing.assert_allclose(p.kl_divergence(p), 0.0, atol=1e-6)
    # A distribution passes through jit and is sliceable along the batch.
    made = jax.jit(lambda a, b, m: MaskedGaussian(a, b, m, squash=True))(loc, log_scale, mask)
    assert made.squash and made.batch_shape == (B,) and made.event_shape == (L, 3)
    np.testing.assert_allclose(made[1].mode(), jnp.where(mask[1], jnp.tanh(loc[1]), 0.0), rtol=1e-6)
    grad = jax.grad(lambda l: jnp.sum(MaskedGaussian(l, log_scale, mask).log_prob(jnp.zeros_like(l))))(loc)
    assert np.all(np.asarray(grad)[~np.asarray(mask)] == 0.0)
