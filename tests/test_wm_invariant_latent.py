"""Invariant-regularised latent world model: the invariant loss, shapes and masks across bodies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl.errors import ConfigError
from equirl.observation import POLAR_CHANNELS
from equirl.worldmodels.data import feature_stats
from equirl.worldmodels.interface import (
    InvariantLatentOptions,
    WorldModelConfig,
    make_world_model,
    rollout,
)
from equirl.worldmodels.invariant_latent import invariant_latent_parts, invariant_loss, shared_transform
from helpers.common import compile_fast
from helpers.wm import pad_limbs, recorded_windows

BODIES = ("hopper_3_shin", "walker_2_right_leg_left_knee")
LIMBS = 5
WINDOW = 8
CONTEXT = 4
CONFIG = WorldModelConfig(
    kind="invariant_latent",
    context=CONTEXT,
    width=16,
    depth=1,
    heads=2,
    invariant_latent=InvariantLatentOptions(latent_dim=4),
)


@pytest.fixture(scope="module")
def data(make_env):
    env = make_env(bodies=BODIES, num_envs=4, max_limbs=LIMBS, episode_length=25)
    return recorded_windows(env, WINDOW)


@pytest.fixture(scope="module")
def pairs(data):
    """Consecutive frames (x_t, x_{t+1}) and a transformation that moves both alike."""
    t = data.length
    return data.frames(0, t - 1), data.frames(1, t), shared_transform(jax.random.PRNGKey(5), data.torso_position[:, 0])


def fixed_linear_map(obs):
    """Exactly equivariant: each limb's latent is a fixed mix of its polar vector channels
    (a [3, 5] block that turns with R, an orthogonal latent action). Axial channels turn with
    det(R) R, so a mix that took them in too would not be equivariant to reflections."""
    polar = obs.vectors[..., POLAR_CHANNELS, :]
    mix = jax.random.normal(jax.random.PRNGKey(0), (len(POLAR_CHANNELS), 5))
    return jnp.einsum("btlcx,ck->btlxk", polar, mix)


def invariant_features(obs):
    """Exactly invariant (trivial latent action): per limb the lengths of its vectors."""
    return jnp.sum(jnp.square(obs.vectors), -1)


def plain_mlp(obs):
    """Not equivariant: a random MLP on the flattened coordinates."""
    flat = obs.vectors.reshape(obs.vectors.shape[:2] + (-1,))
    w = jax.random.normal(jax.random.PRNGKey(1), (flat.shape[-1], 16)) / np.sqrt(flat.shape[-1])
    return jnp.tanh(flat @ w)


@pytest.mark.parametrize("invariant", ["distance", "inner_product"])
def test_invariant_loss_is_zero_exactly_for_equivariant_encoders(pairs, invariant):
    x, x_pair, transform = pairs
    moved = transform(x)
    assert not np.allclose(moved.obs.vectors, x.obs.vectors), "the transformation must move the observations"
    for encode in (fixed_linear_map, invariant_features):
        assert float(invariant_loss(encode, x, x_pair, transform, invariant)) < 1e-10
    assert float(invariant_loss(plain_mlp, x, x_pair, transform, invariant)) > 1e-3
    with pytest.raises(ConfigError, match="invariant='angle'"):
        invariant_loss(fixed_linear_map, x, x_pair, transform, "angle")


@pytest.fixture(scope="module")
def parts(data):
    return invariant_latent_parts(CONFIG, feature_stats(data))


@pytest.fixture(scope="module")
def params(data, parts):
    return compile_fast(parts.model.init, jax.random.PRNGKey(0), data)(jax.random.PRNGKey(0), data)


def test_the_models_own_encoder_is_not_equivariant_and_the_loss_says_so(parts, params, pairs):
    x, x_pair, transform = pairs
    value = compile_fast(lambda p: invariant_loss(lambda obs: parts.encode(p, obs), x, x_pair, transform), params)
    assert float(value(params)) > 1e-3


def test_registry_and_loss_terms(data):
    model = make_world_model(CONFIG, feature_stats(data))
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0), data)
    loss, metrics = jax.eval_shape(model.loss, params, data, jax.random.PRNGKey(1))
    assert loss.shape == ()
    terms = ("reconstruction", "prediction", "consistency", "invariant", "total")
    assert set(metrics) == {f"loss/{t}" for t in terms}


def test_rollout_shapes_and_masks_across_bodies(data, parts, params):
    model = parts.model
    k = WINDOW - CONTEXT

    def run(p, s):
        return rollout(model, p, s.frames(0, CONTEXT), s.actions[:, CONTEXT - 1 : CONTEXT - 1 + k])

    frames = compile_fast(run, params, data)(params, data)
    b = data.actions.shape[0]
    assert frames.obs.vectors.shape == (b, k, LIMBS, 8, 3) and frames.obs.scalars.shape == (b, k, LIMBS, 17)
    assert frames.torso_position.shape == (b, k, 3)
    mask = np.asarray(data.obs.limb_mask[:, :1])
    assert (~mask).any() and mask.any(axis=-1).all(), "the batch mixes bodies of different limb counts"
    assert np.all(np.where(mask[..., None, None], 0.0, frames.obs.vectors) == 0.0)
    assert np.all(np.where(mask[..., None], 0.0, frames.obs.scalars) == 0.0)
    # Static channels (gravity, joint ranges, limb type) are the context's.
    np.testing.assert_array_equal(frames.obs.vectors[:, :, :, 1], data.obs.vectors[:, :k, :, 1])
    np.testing.assert_array_equal(frames.obs.scalars[..., 6:16], data.obs.scalars[:, :k, :, 6:16])
    # Padding is invisible: two more empty limb slots change no real limb's prediction.
    padded = pad_limbs(data, 2)
    more = compile_fast(run, params, padded)(params, padded)
    np.testing.assert_allclose(more.obs.vectors[:, :, :LIMBS], frames.obs.vectors, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(more.torso_position, frames.torso_position, rtol=1e-5, atol=1e-5)
