"""The equivariance metrics on functions whose errors are known in closed form,
and the group elements and actions they are built on."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl import equivariance as eq
from equirl.geometry import (
    ROTATION_GENERATOR_Z,
    TRANSLATION_GENERATOR_Y,
    Isometry,
    compose_isometries,
    identity_isometry,
    invert_isometry,
    isometry_along,
    random_isometry,
    yaw_matrix,
)
from equirl.observation import AXIAL_CHANNELS, POLAR_CHANNELS, VECTOR_NAMES
from helpers.synthetic import random_observation

POINTS = jnp.asarray(np.random.default_rng(0).normal(size=(5, 3)), jnp.float32)


@jax.jit
def squared_norm_scaled(p):
    """Equivariant for O(3) acting on vectors: p |p|^2."""
    return p * jnp.sum(p * p, -1, keepdims=True)


def test_equivariant_function_has_zero_error():
    key = jax.random.PRNGKey(0)
    err = eq.finite_group_error(squared_norm_scaled, POINTS, key, 16, eq.act_on_limb_vectors, eq.act_on_limb_vectors)
    lie = eq.rotation_lie_error(squared_norm_scaled, POINTS, eq.act_on_limb_vectors, eq.act_on_limb_vectors)
    assert float(err) < 1e-6 and float(lie) < 1e-6
    # Absolute positions: the centroid is equivariant to rotations and translations.
    centroid = jax.jit(lambda p: jnp.mean(p, 0))
    assert float(eq.finite_group_error(centroid, POINTS, key, 16, eq.act_on_positions, eq.act_on_positions)) < 1e-5
    lie_t = eq.translation_lie_error(centroid, POINTS, eq.act_on_positions, eq.act_on_positions)
    assert float(lie_t) < 1e-6


def test_errors_of_a_non_equivariant_function_match_closed_forms():
    # f(p) = p, declared invariant: g.f(x) = f(x), so the finite error of one
    # element is |R p - p| / |p| and the Lie derivative is |A p| / |p|.
    identity = jax.jit(lambda p: p)
    key = jax.random.PRNGKey(1)
    errors = eq.finite_group_errors(identity, POINTS, key, 8, eq.act_on_limb_vectors, eq.invariant)
    elements = random_isometry(key, (8,))
    expected = [
        float(jnp.linalg.norm(POINTS @ elements.rotation[i].T - POINTS) / jnp.linalg.norm(POINTS)) for i in range(8)
    ]
    np.testing.assert_allclose(errors, expected, rtol=1e-5)
    lie = eq.rotation_lie_error(identity, POINTS, eq.act_on_limb_vectors, eq.invariant)
    horizontal = jnp.linalg.norm(POINTS[:, :2]) / jnp.linalg.norm(POINTS)
    np.testing.assert_allclose(lie, horizontal, rtol=1e-5)
    # Translating absolute positions along y, declared invariant: |b| sqrt(N) / |p|.
    lie_t = eq.translation_lie_error(identity, POINTS, eq.act_on_positions, eq.invariant, TRANSLATION_GENERATOR_Y)
    np.testing.assert_allclose(lie_t, np.sqrt(5.0) / jnp.linalg.norm(POINTS), rtol=1e-5)


def test_metrics_are_jittable_and_take_pytrees():
    def fn(p):
        return {"v": squared_norm_scaled(p), "s": jnp.sum(p * p, -1)}

    def act(g, y):
        return {"v": eq.act_on_limb_vectors(g, y["v"]), "s": y["s"]}

    @jax.jit
    def both(p, key):
        return (
            eq.finite_group_error(fn, p, key, 4, eq.act_on_limb_vectors, act),
            eq.rotation_lie_error(fn, p, eq.act_on_limb_vectors, act),
        )

    err, lie = both(POINTS, jax.random.PRNGKey(2))
    assert float(err) < 1e-6 and float(lie) < 1e-6
    bad = lambda p: {"v": p, "s": p[:, 0]}  # noqa: E731
    assert float(jax.jit(lambda p: eq.rotation_lie_error(bad, p, eq.act_on_limb_vectors, act))(POINTS)) > 0.1


def test_observation_actions():
    obs = random_observation(0, 2, 4)
    g = Isometry(yaw_matrix(jnp.array(0.7)), jnp.array([1.0, 2.0, 0.0]))
    moved = eq.act_on_observation(g, obs)
    np.testing.assert_allclose(moved.vectors, jnp.einsum("ij,...j->...i", g.rotation, obs.vectors), rtol=1e-6)
    np.testing.assert_array_equal(moved.scalars, obs.scalars)
    np.testing.assert_array_equal(moved.parent, obs.parent)
    # Gravity is fixed by O_g(3).
    np.testing.assert_allclose(moved.vectors[..., 1, :], obs.vectors[..., 1, :], atol=1e-6)
    mirror = Isometry(jnp.diag(jnp.array([1.0, -1.0, 1.0])), jnp.zeros(3))
    # A reflection flips the axial channels (angular velocity, hinge axes) once more: det = -1.
    moved, plain = eq.act_on_observation(mirror, obs).vectors, jnp.einsum("ij,...j->...i", mirror.rotation, obs.vectors)
    polar, axial = list(POLAR_CHANNELS), list(AXIAL_CHANNELS)
    assert VECTOR_NAMES[4] == "angular_velocity" and set(axial) == {4, 5, 6, 7}
    np.testing.assert_allclose(moved[..., polar, :], plain[..., polar, :])
    np.testing.assert_allclose(moved[..., axial, :], -plain[..., axial, :])
    dist_like = type("D", (), {"mode": lambda self: jnp.ones((2, 3)), "stddev": lambda self: jnp.zeros((2, 3))})()
    assert eq.distribution_summary(dist_like).shape == (2, 3, 2)


def test_isometries():
    a, b = (jax.tree_util.tree_map(lambda x: x[i], random_isometry(jax.random.PRNGKey(3), (2,))) for i in range(2))
    for g in (a, b):
        np.testing.assert_allclose(g.rotation @ g.rotation.T, jnp.eye(3), atol=1e-6)
        np.testing.assert_allclose(g.rotation[:, 2], [0.0, 0.0, 1.0], atol=1e-6)
        assert float(g.translation[2]) == 0.0
    p = POINTS
    ab = compose_isometries(a, b)
    np.testing.assert_allclose(eq.act_on_positions(ab, p), eq.act_on_positions(a, eq.act_on_positions(b, p)), atol=1e-5)
    back = compose_isometries(invert_isometry(a), a)
    np.testing.assert_allclose(back.rotation, identity_isometry().rotation, atol=1e-6)
    np.testing.assert_allclose(back.translation, 0.0, atol=1e-6)
    # The one-parameter subgroup of the z generator is the yaw rotation.
    np.testing.assert_allclose(
        isometry_along(ROTATION_GENERATOR_Z, TRANSLATION_GENERATOR_Y, jnp.array(0.4)).rotation,
        yaw_matrix(jnp.array(0.4)),
        atol=1e-6,
    )


@pytest.mark.parametrize("reflections", [True, False])
def test_sampled_elements_cover_the_group(reflections):
    g = random_isometry(jax.random.PRNGKey(4), (64,), reflections=reflections)
    det = np.linalg.det(np.asarray(g.rotation))
    assert np.any(det < 0) == reflections and np.all(np.abs(np.abs(det) - 1) < 1e-5)
