"""The symmetry group of the task and how it acts.

The task is invariant under O_g(3) -- rotations about the gravity axis z and
reflections through vertical planes -- and under horizontal translations.
An element is stored as a 3x3 orthogonal matrix that fixes z, plus an
optional horizontal translation. Every other module that rotates, reflects or
measures equivariance uses these functions.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def yaw_matrix(angle: jax.Array) -> jax.Array:
    """Rotation about z by `angle` (radians); batched over the angle's shape."""
    c, s = jnp.cos(angle), jnp.sin(angle)
    zero, one = jnp.zeros_like(c), jnp.ones_like(c)
    rows = [
        jnp.stack([c, -s, zero], -1),
        jnp.stack([s, c, zero], -1),
        jnp.stack([zero, zero, one], -1),
    ]
    return jnp.stack(rows, -2)


def reflection_matrix(normal_angle: jax.Array) -> jax.Array:
    """Reflection through the vertical plane whose normal is (cos a, sin a, 0)."""
    n = jnp.stack([jnp.cos(normal_angle), jnp.sin(normal_angle), jnp.zeros_like(normal_angle)], -1)
    return jnp.eye(3) - 2.0 * n[..., :, None] * n[..., None, :]


def random_og3(key: jax.Array, shape: tuple[int, ...] = (), reflections: bool = True) -> jax.Array:
    """Random elements of O_g(3): a uniform yaw, then a reflection with probability 1/2."""
    k_angle, k_flip = jax.random.split(key)
    rot = yaw_matrix(jax.random.uniform(k_angle, shape, minval=-jnp.pi, maxval=jnp.pi))
    if not reflections:
        return rot
    flip = jax.random.bernoulli(k_flip, 0.5, shape)
    mirror = jnp.diag(jnp.array([1.0, -1.0, 1.0]))
    return jnp.where(flip[..., None, None], rot @ mirror, rot)


def act_on_vectors(g: jax.Array, v: jax.Array) -> jax.Array:
    """Apply g to polar vectors v[..., 3] (positions, velocities, directions)."""
    return jnp.einsum("...ij,...j->...i", g, v)


# --- rotations and quaternions (w, x, y, z), as MuJoCo stores them ---------


def quat_to_mat(q: jax.Array) -> jax.Array:
    """Rotation matrix of a (not necessarily unit) quaternion; zero gives identity."""
    norm = jnp.sqrt(jnp.sum(q * q, -1, keepdims=True))
    safe = jnp.where(norm > 0, norm, 1.0)
    unit = jnp.where(norm > 0, q / safe, jnp.array([1.0, 0.0, 0.0, 0.0]))
    w, x, y, z = unit[..., 0], unit[..., 1], unit[..., 2], unit[..., 3]
    rows = [
        jnp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        jnp.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        jnp.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ]
    return jnp.stack(rows, -2)


def mat_to_quat(m: jax.Array) -> jax.Array:
    """Unit quaternion (w >= 0) of a rotation matrix, stable for every rotation."""
    t = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cands = jnp.stack(
        [
            jnp.stack(
                [1 + t, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1
            ),
            jnp.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    1 + 2 * m[..., 0, 0] - t,
                    m[..., 0, 1] + m[..., 1, 0],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            jnp.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 0, 1] + m[..., 1, 0],
                    1 + 2 * m[..., 1, 1] - t,
                    m[..., 1, 2] + m[..., 2, 1],
                ],
                -1,
            ),
            jnp.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 1, 2] + m[..., 2, 1],
                    1 + 2 * m[..., 2, 2] - t,
                ],
                -1,
            ),
        ],
        -2,
    )
    # Pick the candidate with the largest diagonal term: no cancellation.
    diag = jnp.stack([t, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = jnp.take_along_axis(cands, jnp.argmax(diag, -1)[..., None, None], -2)[..., 0, :]
    q = best / jnp.linalg.norm(best, axis=-1, keepdims=True)
    return jnp.where(q[..., :1] < 0, -q, q)


def axis_angle_matrix(axis: jax.Array, angle: jax.Array) -> jax.Array:
    """Rotation about a unit axis[..., 3] by angle[...] (Rodrigues)."""
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = jnp.zeros_like(x)
    k = jnp.stack([jnp.stack([zero, -z, y], -1), jnp.stack([z, zero, -x], -1), jnp.stack([-y, x, zero], -1)], -2)
    s, c = jnp.sin(angle)[..., None, None], jnp.cos(angle)[..., None, None]
    return jnp.eye(3) + s * k + (1 - c) * (k @ k)


def pitch_roll_of(rot: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Pitch and roll (ZYX Euler angles) of rotation matrices; both are yaw-invariant."""
    pitch = jnp.arcsin(jnp.clip(-rot[..., 2, 0], -1.0, 1.0))
    roll = jnp.arctan2(rot[..., 2, 1], rot[..., 2, 2])
    return pitch, roll


def quat_mul(a: jax.Array, b: jax.Array) -> jax.Array:
    """Hamilton product a * b of (w, x, y, z) quaternions."""
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return jnp.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


def yaw_quat(angle: jax.Array) -> jax.Array:
    """Quaternion of a rotation about z by `angle`."""
    half = 0.5 * angle
    zero = jnp.zeros_like(half)
    return jnp.stack([jnp.cos(half), zero, zero, jnp.sin(half)], -1)


# --- group elements with a translation, and Lie-algebra generators ---------
# (added for the equivariance metrics of equirl/equivariance.py)

# Infinitesimal rotation about the gravity axis: d/dt yaw_matrix(t) at t = 0.
ROTATION_GENERATOR_Z = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32)
# Infinitesimal horizontal translations.
TRANSLATION_GENERATOR_X = np.array([1.0, 0.0, 0.0], np.float32)
TRANSLATION_GENERATOR_Y = np.array([0.0, 1.0, 0.0], np.float32)


class Isometry(NamedTuple):
    """An element of O_g(3) x horizontal translations: x -> rotation @ x + translation.

    `rotation` [..., 3, 3] fixes the z axis (it may be a reflection);
    `translation` [..., 3] has zero z. Directions (velocities, axes, relative
    positions) feel only the rotation; absolute positions feel both. Being a
    NamedTuple, it is a pytree: it can be vmapped, jitted and differentiated.
    """

    rotation: jax.Array
    translation: jax.Array


def identity_isometry(shape: tuple[int, ...] = ()) -> Isometry:
    return Isometry(jnp.broadcast_to(jnp.eye(3), shape + (3, 3)), jnp.zeros(shape + (3,)))


def random_isometry(
    key: jax.Array, shape: tuple[int, ...] = (), reflections: bool = True, translation_scale: float = 1.0
) -> Isometry:
    """A random O_g(3) element (see random_og3) with a N(0, scale^2) horizontal translation."""
    k_rot, k_shift = jax.random.split(key)
    shift = translation_scale * jax.random.normal(k_shift, shape + (2,))
    return Isometry(random_og3(k_rot, shape, reflections), jnp.concatenate([shift, jnp.zeros(shape + (1,))], -1))


def isometry_along(rotation_generator: jax.Array, translation_generator: jax.Array, t: jax.Array) -> Isometry:
    """The element reached at parameter t along (rotation generator A, translation generator b).

    Returns (expm(t A), t b): for a pure rotation or a pure translation this is
    exactly the one-parameter subgroup; in general its derivative at t = 0 is
    (A, b), which is all a Lie derivative needs. Differentiable in t.
    """
    rot = jax.scipy.linalg.expm(t * rotation_generator)
    return Isometry(rot, t * translation_generator)


def act_on_points(g: Isometry, p: jax.Array) -> jax.Array:
    """Apply g to absolute positions p[..., 3]: rotation then translation."""
    return act_on_vectors(g.rotation, p) + g.translation


def compose_isometries(a: Isometry, b: Isometry) -> Isometry:
    """a after b."""
    return Isometry(a.rotation @ b.rotation, act_on_vectors(a.rotation, b.translation) + a.translation)


def invert_isometry(g: Isometry) -> Isometry:
    rot_t = jnp.swapaxes(g.rotation, -1, -2)
    return Isometry(rot_t, -act_on_vectors(rot_t, g.translation))
