"""REMUL world model: shapes and masks across bodies, and equivariance bought with beta."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from equirl.equivariance import finite_group_error
from equirl.observation import Observation
from equirl.worldmodels.common import frame_arrays
from equirl.worldmodels.data import feature_stats
from equirl.worldmodels.interface import (
    Frame,
    RemulOptions,
    WorldModelConfig,
    act_on_frame,
    act_on_sequence,
    make_world_model,
    rollout,
)
from equirl.worldmodels.remul import remul_parts
from helpers.common import compile_fast
from helpers.wm import pad_limbs, recorded_windows

BODIES = ("hopper_3_shin", "walker_2_right_leg_left_knee")
LIMBS = 5
WINDOW = 8
CONTEXT = 4
CONFIG = WorldModelConfig(kind="remul", context=CONTEXT, width=16, depth=1, heads=2, remul=RemulOptions(history=3))


@pytest.fixture(scope="module")
def data(make_env):
    env = make_env(bodies=BODIES, num_envs=4, max_limbs=LIMBS, episode_length=25)
    return recorded_windows(env, WINDOW)


@pytest.fixture(scope="module")
def parts(data):
    return remul_parts(CONFIG, feature_stats(data))


def test_registry_builds_remul(data):
    model = make_world_model(CONFIG, feature_stats(data))
    params = jax.eval_shape(model.init, jax.random.PRNGKey(0), data)
    loss, metrics = jax.eval_shape(model.loss, params, data, jax.random.PRNGKey(1))
    assert loss.shape == () and set(metrics) == {"loss/task", "loss/equivariance", "loss/total"}


def open_loop(parts):
    """(params, windows) -> (vectors, scalars, torso position) of the frames after the context."""
    k = WINDOW - CONTEXT
    return lambda p, seq: frame_arrays(
        rollout(parts.model, p, seq.frames(0, CONTEXT), seq.actions[:, CONTEXT - 1 : CONTEXT - 1 + k])
    )


@pytest.fixture(scope="module")
def predict(parts, params, data):
    """open_loop compiled once for the recorded windows' shapes (any parameters)."""
    return compile_fast(open_loop(parts), params, data)


@pytest.fixture(scope="module")
def params(data, parts):
    return compile_fast(parts.model.init, jax.random.PRNGKey(0), data)(jax.random.PRNGKey(0), data)


def test_rollout_shapes_and_masks_across_bodies(data, parts, predict, params):
    k = WINDOW - CONTEXT
    vectors, scalars, position = predict(params, data)
    b = data.actions.shape[0]
    assert vectors.shape == (b, k, LIMBS, 8, 3) and scalars.shape == (b, k, LIMBS, 17) and position.shape == (b, k, 3)
    mask = np.asarray(data.obs.limb_mask[:, :1])
    assert (~mask).any() and mask.any(axis=-1).all(), "the batch mixes bodies of different limb counts"
    assert np.all(np.where(mask[..., None, None], 0.0, vectors) == 0.0)
    assert np.all(np.where(mask[..., None], 0.0, scalars) == 0.0)
    # Padding is invisible: two more empty limb slots change no real limb's prediction.
    padded = pad_limbs(data, 2)
    more = compile_fast(open_loop(parts), params, padded)(params, padded)
    np.testing.assert_allclose(more[0][:, :, :LIMBS], vectors, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(more[2], position, rtol=1e-5, atol=1e-5)


BETAS = (0.0, 1.0, 10.0)
TRAIN_STEPS = 80


def act_on_frame_arrays(g, arrays):
    """act_on_frame on common.frame_arrays' (vectors, scalars, torso_position)."""
    vectors, scalars, position = arrays
    obs = Observation(vectors, scalars, limb_mask=None, parent=None, action_mask=None)
    return frame_arrays(act_on_frame(g, Frame(obs, position)))


@pytest.fixture(scope="module")
def beta_sweep(data, parts):
    """The same tiny REMUL trained with beta = 0, 1, 10 (one compiled program, vmapped over beta)."""
    optimizer = optax.adam(3e-3)
    betas = jnp.asarray(BETAS)

    def train(params, key):
        def one(params, beta, key):
            opt = optimizer.init(params)

            def update(carry, k):
                params, opt = carry
                grads, _ = jax.grad(parts.objective, has_aux=True)(params, data, k, 1.0, beta)
                updates, opt = optimizer.update(grads, opt, params)
                return (optax.apply_updates(params, updates), opt), None

            (params, _), _ = jax.lax.scan(update, (params, opt), jax.random.split(key, TRAIN_STEPS))
            return params

        return jax.vmap(one, in_axes=(None, 0, None))(params, betas, key)

    params = compile_fast(parts.model.init, jax.random.PRNGKey(0), data)(jax.random.PRNGKey(0), data)
    trained = compile_fast(train, params, jax.random.PRNGKey(1))(params, jax.random.PRNGKey(1))
    return [jax.tree.map(lambda x: x[i], trained) for i in range(len(BETAS))]


def test_equivariance_error_falls_as_beta_grows(data, predict, beta_sweep):
    """Measured with equirl.equivariance: |f(g.x) - g.f(x)| / |f(x)| of open-loop rollouts."""
    errors = []
    for params in beta_sweep:
        fn = lambda seq, p=params: predict(p, seq)  # noqa: E731
        error = finite_group_error(fn, data, jax.random.PRNGKey(7), 8, act_on_sequence, act_on_frame_arrays)
        errors.append(float(error))
    print("REMUL equivariance error at beta", dict(zip(BETAS, errors)))
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[2] < 0.3 * errors[0], errors
