"""The observation every layer reads: per-limb 3D vectors and invariant scalars, described once.

The channel tables below are the one place that says what each channel is.
Environments fill it, networks and world models read it, and the symmetry
code acts on it -- all through these tables, never through bare indices.

Parity is what a reflection does to a vector channel. A polar vector
(position, velocity, direction) turns as v -> R v under any element R of
O(3). An axial vector (angular velocity, a hinge's rotation axis) turns as
v -> det(R) R v: a mirror reverses the sense of a rotation. Rotations
(det R = 1) treat both alike. A physical mirror also relabels mirrored limbs
and hinges; that part depends on the body (`equirl.morphology.mirror`) and is
applied by `equirl.envs.symmetry`.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

POLAR, AXIAL = "polar", "axial"


@dataclasses.dataclass(frozen=True)
class VectorChannel:
    """One vector channel: its parity, the fixed scale that brings it to order one
    for the networks, and whether it changes over an episode (world models predict it)."""

    name: str
    parity: str
    scale: float
    dynamic: bool


@dataclasses.dataclass(frozen=True)
class ScalarChannel:
    name: str
    dynamic: bool


VECTOR_CHANNELS = (
    VectorChannel("position_from_torso", POLAR, 1.0, True),  # m
    VectorChannel("gravity", POLAR, 1.0 / 9.81, False),  # m/s^2
    VectorChannel("target_direction", POLAR, 1.0, True),  # unit, horizontal
    VectorChannel("linear_velocity", POLAR, 0.1, True),  # clipped to 10 m/s
    VectorChannel("angular_velocity", AXIAL, 0.1, True),  # rad/s
    VectorChannel("hinge_axis_x", AXIAL, 1.0, True),  # unit, world frame
    VectorChannel("hinge_axis_y", AXIAL, 1.0, True),
    VectorChannel("hinge_axis_z", AXIAL, 1.0, True),
)
SCALAR_CHANNELS = (
    ScalarChannel("angle_x", True),
    ScalarChannel("angle_y", True),
    ScalarChannel("angle_z", True),
    ScalarChannel("normalized_angle_x", True),
    ScalarChannel("normalized_angle_y", True),
    ScalarChannel("normalized_angle_z", True),
    ScalarChannel("range_lo_x", False),
    ScalarChannel("range_hi_x", False),
    ScalarChannel("range_lo_y", False),
    ScalarChannel("range_hi_y", False),
    ScalarChannel("range_lo_z", False),
    ScalarChannel("range_hi_z", False),
    ScalarChannel("is_torso", False),
    ScalarChannel("is_thigh", False),
    ScalarChannel("is_shin", False),
    ScalarChannel("is_foot", False),
    ScalarChannel("height", True),
)

VECTOR_NAMES = tuple(c.name for c in VECTOR_CHANNELS)
SCALAR_NAMES = tuple(c.name for c in SCALAR_CHANNELS)
NUM_VECTORS, NUM_SCALARS = len(VECTOR_CHANNELS), len(SCALAR_CHANNELS)

# Derived indices: nothing else in the library spells these numbers.
POSITION_CHANNEL = VECTOR_NAMES.index("position_from_torso")
GRAVITY_CHANNEL = VECTOR_NAMES.index("gravity")
TARGET_CHANNEL = VECTOR_NAMES.index("target_direction")
LINEAR_VELOCITY_CHANNEL = VECTOR_NAMES.index("linear_velocity")
ANGULAR_VELOCITY_CHANNEL = VECTOR_NAMES.index("angular_velocity")
_AXES = VECTOR_NAMES.index("hinge_axis_x")
HINGE_AXES = slice(_AXES, _AXES + 3)  # the x, y and z hinge axes, in that order
_ANGLES = SCALAR_NAMES.index("angle_x")
ANGLE_SCALARS = slice(_ANGLES, _ANGLES + 3)
POLAR_CHANNELS = tuple(i for i, c in enumerate(VECTOR_CHANNELS) if c.parity == POLAR)
AXIAL_CHANNELS = tuple(i for i, c in enumerate(VECTOR_CHANNELS) if c.parity == AXIAL)
INPUT_VECTOR_SCALE = tuple(c.scale for c in VECTOR_CHANNELS)
DYNAMIC_VECTORS = tuple(i for i, c in enumerate(VECTOR_CHANNELS) if c.dynamic)
DYNAMIC_SCALARS = tuple(i for i, c in enumerate(SCALAR_CHANNELS) if c.dynamic)
HEIGHT_SCALAR = SCALAR_NAMES.index("height")
assert VECTOR_NAMES[HINGE_AXES] == ("hinge_axis_x", "hinge_axis_y", "hinge_axis_z")
assert SCALAR_NAMES[ANGLE_SCALARS] == ("angle_x", "angle_y", "angle_z")


def parity_signs(rotation: jax.Array) -> jax.Array:
    """[..., NUM_VECTORS]: +1 for polar channels, det(R) for axial ones."""
    det = jnp.linalg.det(rotation)[..., None]
    axial = jnp.asarray([c.parity == AXIAL for c in VECTOR_CHANNELS])
    return jnp.where(axial, det, jnp.ones_like(det))


@struct.dataclass
class Observation:
    """Per-limb observation: vectors in the world frame, scalars invariant."""

    vectors: jax.Array  # [..., L, NUM_VECTORS, 3], channels as VECTOR_CHANNELS
    scalars: jax.Array  # [..., L, NUM_SCALARS], channels as SCALAR_CHANNELS
    limb_mask: jax.Array  # [..., L] bool
    parent: jax.Array  # [..., L] int, -1 for the torso and padding
    action_mask: jax.Array  # [..., L, 3] bool

    def transform(self, rotation: jax.Array) -> "Observation":
        """The observation of the scene turned by the orthogonal matrix `rotation` [3, 3]
        (or one per observation, [B, 3, 3] for vectors [B, L, C, 3]): polar channels
        v -> R v, axial channels v -> det(R) R v, scalars unchanged. Limbs are not
        relabelled (see the module doc)."""
        batched = rotation.ndim == 3
        spec = "bij,blcj->blci" if batched else "ij,...j->...i"
        moved = jnp.einsum(spec, rotation, self.vectors)
        signs = parity_signs(rotation)
        signs = signs[:, None, :, None] if batched else signs[:, None]
        return self.replace(vectors=moved * signs)


def observation_shapes(max_limbs: int, batch: tuple[int, ...] = (1,)) -> Observation:
    """An Observation of shapes and dtypes only (`jax.ShapeDtypeStruct` leaves), as an
    environment with `max_limbs` limb slots would fill it: enough for `jax.eval_shape`
    to build a network's parameter tree without building and stepping an environment."""
    lead = (*batch, max_limbs)
    real = jnp.zeros(()).dtype  # float64 only under jax_enable_x64, as the environments
    return Observation(
        vectors=jax.ShapeDtypeStruct((*lead, NUM_VECTORS, 3), real),
        scalars=jax.ShapeDtypeStruct((*lead, NUM_SCALARS), real),
        limb_mask=jax.ShapeDtypeStruct(lead, jnp.bool_),
        parent=jax.ShapeDtypeStruct(lead, jnp.int32),
        action_mask=jax.ShapeDtypeStruct((*lead, 3), jnp.bool_),
    )


# Within about 8 degrees of a gimbal lock (for unit axes the Gram eigenvalues are 1 - cos, 1 and
# 1 + cos of the angle between the first and last axes) the locked pair's rates are read as their
# even split; elsewhere a rate is amplified at most 1 / (2 GIMBAL_CUTOFF) = 100 times.
GIMBAL_CUTOFF = 5e-3


def hinge_rates(obs: Observation) -> jax.Array:
    """[..., L, 3]: each hinge's angular rate (x, y, z slots), read from the vectors.

    A limb turns relative to its parent by the sum of its hinges' rates times their
    world-frame axes, w_limb - w_parent = A^T qdot, so qdot solves the 3x3 system
    (A A^T) qdot = A (w_limb - w_parent) on the limb's real hinges (axes of nonzero
    length; zero elsewhere). Axes and angular velocities are both axial, so every
    entry is invariant to rotations and reflections: it may join the scalars of any
    network. Scaled as the observation is (a normaliser's positive factor per channel
    scales the result by a constant per hinge slot). The torso, with no parent, reads 0.
    """
    w = obs.vectors[..., ANGULAR_VELOCITY_CHANNEL, :]  # [..., L, 3]
    index = jnp.maximum(obs.parent, 0)[..., None]
    parent_w = jnp.take_along_axis(w, jnp.broadcast_to(index, w.shape), axis=-2)
    relative = jnp.where((obs.parent >= 0)[..., None], w - parent_w, 0.0)
    axes = obs.vectors[..., HINGE_AXES, :]  # [..., L, 3 hinges, 3 coords]
    real = jnp.sum(axes * axes, -1) > 1e-12  # [..., L, 3]
    gram = jnp.einsum("...ix,...jx->...ij", axes, axes)
    # Missing hinges get a unit diagonal so that the system stays regular; their rate is 0.
    gram = gram + jnp.eye(3, dtype=gram.dtype) * (~real)[..., None, :]
    rhs = jnp.einsum("...ix,...x->...i", axes, relative)
    # Gimbal lock: with the middle hinge at +-90 degrees (the hoppers' pitch hinges range over
    # [-150, 0]) the first and last axes coincide and only the sum of their rates is defined.
    # A plain solve returned inf / NaN there (a three-hopper run's actor loss went NaN at 108k);
    # directions of the Gram matrix below GIMBAL_CUTOFF of its largest eigenvalue are dropped,
    # which splits such a sum evenly (the least-norm rates).
    values, vectors = jnp.linalg.eigh(gram)
    keep = values > GIMBAL_CUTOFF * values[..., -1:]
    inverse = jnp.where(keep, 1.0 / jnp.where(keep, values, 1.0), 0.0)
    rates = jnp.einsum("...ij,...j,...kj,...k->...i", vectors, inverse, vectors, rhs)
    return jnp.where(real & obs.limb_mask[..., None], rates, 0.0)
