"""The environment is O_g(3)-symmetric, step after step.

Turning the initial state and the target about the vertical axis (or
reflecting them through a vertical plane, with the robot's mirror map) turns
every observed vector the same way and leaves rewards and episode ends as
they were. The physics uses elliptic (isotropic) friction cones, so the
symmetry is exact up to float rounding: these runs are in float64, where the
tolerances below are tight (in float32, chaotic contact dynamics amplify
rounding to ~1e-4 within 50 steps).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl.envs import symmetry
from equirl.errors import MorphologyError
from equirl.geometry import reflection_matrix, yaw_matrix
from equirl.morphology.mirror import mirror_map
from helpers.common import float64

STEPS = 60
B = 3


def _rollouts(env, transform_state, transform_action=lambda a: a):
    """Step an original and a transformed batch with the same (transformed) actions."""
    state = env.reset(jax.random.PRNGKey(0))
    with float64():
        qpos, qvel, target = transform_state(state.qpos, state.qvel, state.target)
    other = env.with_state(state, qpos, qvel, target)
    key = jax.random.PRNGKey(1)
    pairs = [(state, other)]
    for _ in range(STEPS):
        key, sub = jax.random.split(key)
        with float64():
            action = jax.random.uniform(sub, (B,) + env.action_shape, jnp.float64, minval=-1, maxval=1)
            moved = transform_action(action)
        state, other = env.step(state, action), env.step(other, moved)
        pairs.append((state, other))
    return pairs


def _check(pairs, expected_vectors):
    for step, (a, b) in enumerate(pairs):
        scale = 1.0 + np.abs(a.obs.vectors).max()
        err = np.abs(np.asarray(expected_vectors(a.obs.vectors)) - np.asarray(b.obs.vectors)).max() / scale
        assert err < 1e-8, f"vectors differ by {err:.2e} (relative) at step {step}"
        np.testing.assert_allclose(a.reward, b.reward, atol=1e-7, err_msg=f"step {step}")
        np.testing.assert_array_equal(a.terminated, b.terminated, err_msg=f"step {step}")


@pytest.mark.parametrize("body", ["walker_7_full", pytest.param("cheetah_13_tail", marks=pytest.mark.benchmark)])
def test_rotation_about_gravity(make_env, body):
    env = make_env(x64=True, bodies=(body,), num_envs=B, autoreset=False)
    with float64():
        angle = jnp.asarray(np.random.default_rng(2).uniform(-np.pi, np.pi, B))
    pairs = _rollouts(env, lambda q, v, t: symmetry.rotate_state(q, v, t, angle))
    with float64():
        _check(pairs, lambda vec: symmetry.transform_vectors(vec, yaw_matrix(angle)))
    # Scalars (angles, ranges, limb types, heights) do not change at all.
    for a, b in pairs:
        np.testing.assert_allclose(a.obs.scalars, b.obs.scalars, atol=1e-8)
    # The runs really did move: the symmetry is not checked on a frozen scene.
    assert np.abs(pairs[-1][0].qpos[:, :2] - pairs[0][0].qpos[:, :2]).max() > 0.05


@pytest.mark.parametrize(
    "body, fields",
    [
        ("walker_7_full", {}),
        ("walker_7_full", {"hinge_position_control": (True, True, True)}),  # position servos on every hinge
        pytest.param("hopper_5_full", {}, marks=pytest.mark.benchmark),
    ],
)
def test_reflection_through_a_vertical_plane(make_env, body, fields):
    env = make_env(x64=True, bodies=(body,), num_envs=B, autoreset=False, **fields)
    mirror = mirror_map(env.morphologies[0])
    with float64():
        normal = jnp.asarray(np.random.default_rng(3).uniform(-np.pi, np.pi, B))
    pairs = _rollouts(
        env,
        lambda q, v, t: symmetry.reflect_state(q, v, t, mirror, normal),
        lambda a: symmetry.transform_action(a, mirror),
    )
    with float64():
        _check(pairs, lambda vec: symmetry.transform_vectors(vec, reflection_matrix(normal), mirror))
    # Heights and limb types are invariant; they move with the limb permutation.
    for a, b in pairs:
        perm = mirror.limb_perm
        np.testing.assert_allclose(
            np.asarray(a.obs.scalars)[:, : len(perm), 12:][:, np.argsort(perm)],
            np.asarray(b.obs.scalars)[:, : len(perm), 12:],
            atol=1e-8,
        )


def test_symmetry_is_measured_not_assumed(make_env):
    """A wrong group action on the observation must show up as a large error."""
    env = make_env(x64=True, bodies=("walker_7_full",), num_envs=B, autoreset=False)
    with float64():
        angle = jnp.asarray([0.7, -1.9, 2.5])
    pairs = _rollouts(env, lambda q, v, t: symmetry.rotate_state(q, v, t, angle))
    a, b = pairs[5]
    with float64():
        wrong = symmetry.transform_vectors(a.obs.vectors, yaw_matrix(-angle))
    assert np.abs(np.asarray(wrong) - np.asarray(b.obs.vectors)).max() > 0.1


def test_asymmetric_bodies_have_no_mirror_map():
    from equirl.envs.bodies import resolve

    morph, _ = resolve("walker_3_left_leg_right_foot", max_limbs=16)[0]
    with pytest.raises(MorphologyError, match="not mirror-symmetric"):
        mirror_map(morph)
