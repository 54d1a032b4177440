"""The 3D-SGRL task as pure JAX functions over (qpos, qvel) and static tables.

Shapes: B environments, L limbs (padded), nq/nv padded coordinates. Nothing
here knows which physics engine produced the state.

Where this deviates from the published code, it is to keep the task exactly
O_g(3)-symmetric: linear velocities are clipped by length (not per
coordinate), and the control cost counts only actions that drive a motor.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from equirl.envs.kinematics import Kinematics, forward_kinematics
from equirl.envs.tables import EnvTables
from equirl.geometry import pitch_roll_of, quat_mul, quat_to_mat, yaw_quat
from equirl.observation import Observation

GRAVITY = (0.0, 0.0, -9.81)
VELOCITY_CLIP = 10.0
V1_TARGET_DISTANCE = 1.0e4
V2_TARGET_RANGE = (10.0, 20.0)
V2_REACHED = 1.0
CONTROL_COST = 1.0e-3


def kinematics(tables: EnvTables, qpos: jax.Array, qvel: jax.Array) -> Kinematics:
    return jax.vmap(forward_kinematics)(tables.tree, qpos, qvel)


def _gather_limbs(tables: EnvTables, per_body: jax.Array) -> jax.Array:
    """[B, NB, ...] body quantities -> [B, L, ...] limb quantities."""
    index = tables.limb_body.reshape(tables.limb_body.shape + (1,) * (per_body.ndim - 2))
    return jnp.take_along_axis(per_body, index, axis=1)


def _safe_unit(v: jax.Array) -> jax.Array:
    """v / |v| with zero for a zero vector, and finite gradients everywhere."""
    sq = jnp.sum(v * v, -1, keepdims=True)
    safe = jnp.where(sq > 0, sq, 1.0)
    return jnp.where(sq > 0, v / jnp.sqrt(safe), 0.0)


def _clip_length(v: jax.Array, limit: float) -> jax.Array:
    norm = jnp.sqrt(jnp.sum(v * v, -1, keepdims=True))
    return v * jnp.minimum(1.0, limit / jnp.maximum(norm, 1e-12))


def observe(tables: EnvTables, kin: Kinematics, qpos: jax.Array, target: jax.Array) -> Observation:
    pos = _gather_limbs(tables, kin.xpos)  # [B, L, 3]
    torso = kin.xpos[:, 0]
    to_target = jnp.concatenate([target - torso[:, :2], jnp.zeros_like(target[:, :1])], -1)
    b, l = tables.limb_mask.shape
    broadcast = lambda v: jnp.broadcast_to(v[:, None, :], (b, l, 3))  # noqa: E731
    axes = _gather_limbs(tables, kin.joint_axis)  # [B, L, 3, 3]
    vectors = jnp.concatenate(
        [
            jnp.stack(
                [
                    pos - torso[:, None, :],
                    jnp.broadcast_to(jnp.asarray(GRAVITY, pos.dtype), (b, l, 3)),
                    broadcast(_safe_unit(to_target)),
                    _clip_length(_gather_limbs(tables, kin.linvel), VELOCITY_CLIP),
                    _gather_limbs(tables, kin.angvel),
                ],
                axis=2,
            ),
            axes,
        ],
        axis=2,
    )

    valid = tables.hinge_valid
    raw = jnp.take_along_axis(qpos, tables.hinge_qposadr.reshape(b, -1), axis=1).reshape(b, l, 3)
    angle = jnp.where(valid, raw, 0.0)
    lo, hi = tables.hinge_range[..., 0], tables.hinge_range[..., 1]
    span = jnp.where(hi > lo, hi - lo, 1.0)
    normalised = jnp.where(valid & (hi > lo), (angle - lo) / span, 0.5)
    degrees = jnp.rad2deg(tables.hinge_range)
    ranges = ((180.0 + degrees) / 360.0).reshape(b, l, 6)
    scalars = jnp.concatenate([angle, normalised, ranges, tables.limb_onehot, pos[..., 2:3]], -1)

    mask = tables.limb_mask
    vectors = jnp.where(mask[..., None, None], vectors, 0.0)
    scalars = jnp.where(mask[..., None], scalars, 0.0)
    # A diverged simulation must never leak NaN or Inf into an observation.
    vectors = jnp.nan_to_num(vectors, nan=0.0, posinf=0.0, neginf=0.0)
    scalars = jnp.nan_to_num(scalars, nan=0.0, posinf=0.0, neginf=0.0)
    return Observation(
        vectors=vectors,
        scalars=scalars,
        limb_mask=mask,
        parent=tables.parent,
        action_mask=tables.action_mask,
    )


def heading(qpos: jax.Array) -> jax.Array:
    """Unit xy direction of the torso's x axis."""
    rot = quat_to_mat(qpos[:, 3:7])
    return _safe_unit(rot[:, :2, 0])


def reward(
    tables: EnvTables,
    qpos_before: jax.Array,
    qpos_after: jax.Array,
    target: jax.Array,
    action: jax.Array,
) -> jax.Array:
    """Progress toward the target + progress along the heading + alive - control cost
    (the progress terms times `progress_weight`: 1 on the published task), minus
    `tilt_penalty` (0 on the published task) times 1 - cos of the torso's tilt after the step."""
    p0, p1 = qpos_before[:, :2], qpos_after[:, :2]
    # |T-p0| - |T-p1| without cancellation: the v1 target is 1e4 m away, where
    # float32 distances resolve only ~1e-3 m (0.1 reward per step).
    d0, d1 = jnp.linalg.norm(target - p0, axis=-1), jnp.linalg.norm(target - p1, axis=-1)
    closer = jnp.sum((p1 - p0) * (2.0 * target - p0 - p1), -1) / jnp.maximum(d0 + d1, 1e-12)
    progress = closer / tables.dt
    forward = jnp.sum((p1 - p0) * heading(qpos_before), -1) / tables.dt
    control = CONTROL_COST * jnp.sum(jnp.square(action), axis=(-2, -1))
    moving = progress + tables.heading_weight * forward
    tilt = 1.0 - quat_to_mat(qpos_after[:, 3:7])[:, 2, 2]  # 1 - cos(tilt), as the health check's
    return tables.progress_weight * moving + tables.alive_bonus - control - tables.tilt_penalty * tilt


# Why an episode ended: one bit each in info["end_reasons"] (see `end_reasons`).
# A tilt beyond the hopper's limit is split by its direction in the torso's
# frame: forward/back (about the torso's y axis) or sideways (about its x axis).
END_REASONS = (
    "too_low",
    "too_high",
    "tilt_forward",
    "tilt_sideways",
    "pitch",
    "roll",
    "stopped",
    "out_of_bounds",
    "unstable",
)


def health_violations(tables: EnvTables, kin: Kinematics, qpos: jax.Array, qvel: jax.Array) -> jax.Array:
    """[B, 8] bool: which family-specific health conditions (SPEC.md, Termination) each
    state breaks, in the order of END_REASONS (all but "unstable"). A NaN breaks them."""
    limb_z = _gather_limbs(tables, kin.xpos)[..., 2]
    z = jnp.min(jnp.where(tables.height_mask, limb_z, jnp.inf), axis=-1)
    rot = kin.xmat[:, 0]
    tilt = jnp.arccos(jnp.clip(rot[:, 2, 2], -1.0, 1.0))
    tilted = ~(tilt < tables.max_tilt)
    # rot[:, 2, :2]: the world's vertical in the torso's frame, x (forward) and y (left) parts.
    sideways = jnp.abs(rot[:, 2, 1]) > jnp.abs(rot[:, 2, 0])
    pitch, roll = pitch_roll_of(rot)
    joints = jnp.arange(qpos.shape[-1]) >= 2
    bound = jnp.maximum(jnp.max(jnp.where(joints, jnp.abs(qpos), 0.0), -1), jnp.max(jnp.abs(qvel), -1))
    return jnp.stack(
        [
            ~(z > tables.z_lo),
            ~(z < tables.z_hi),
            tilted & ~sideways,
            tilted & sideways,
            ~(jnp.abs(pitch) < tables.max_pitch),
            ~(jnp.abs(roll) < tables.max_roll),
            ~(jnp.sum(qvel * qvel, -1) > tables.min_speed_sq),
            ~(bound < tables.state_bound),
        ],
        -1,
    )


def end_reasons(violations: jax.Array, unstable: jax.Array) -> jax.Array:
    """int32 [B] bit mask over END_REASONS: bit i set when reason i holds."""
    flags = jnp.concatenate([violations, unstable[:, None]], -1).astype(jnp.int32)
    return jnp.sum(flags << jnp.arange(len(END_REASONS), dtype=jnp.int32), -1)


def reason_names(bits: int) -> tuple[str, ...]:
    """The END_REASONS set in one bit mask (host side)."""
    return tuple(name for i, name in enumerate(END_REASONS) if int(bits) >> i & 1)


def reason_counts(bits: jax.Array, ended: jax.Array) -> jax.Array:
    """[len(END_REASONS)] float: how many of the `ended` entries of `bits` (any shape)
    had each reason; an episode can count under several."""
    flags = (bits[..., None] >> jnp.arange(len(END_REASONS), dtype=jnp.int32)) & 1
    return jnp.sum(jnp.where(ended[..., None], flags, 0), axis=tuple(range(bits.ndim))).astype(jnp.float32)


def _per_env_uniform(keys: jax.Array, size: int) -> jax.Array:
    """One independent U(0, 1) block per environment key: a row never depends on the batch size.

    Draws are taken in as few calls as possible: each call is a PRNG kernel to compile.
    """
    return jax.vmap(lambda k: jax.random.uniform(k, (size,)))(keys)


def random_targets(
    keys: jax.Array, origin: jax.Array, task: str, around: jax.Array | None = None, spread: float = math.pi
) -> jax.Array:
    """Targets from `origin` [B, 2] in a uniformly random direction, or, given unit
    directions `around` [B, 2], within `spread` radians of them."""
    u = _per_env_uniform(keys, 2)
    angle = jnp.pi * (2.0 * u[:, 0] - 1.0)
    if around is not None:
        angle = jnp.arctan2(around[:, 1], around[:, 0]) + (spread / jnp.pi) * angle
    if task == "v1":
        distance = jnp.full_like(angle, V1_TARGET_DISTANCE)
    else:
        low, high = V2_TARGET_RANGE
        distance = low + (high - low) * u[:, 1]
    return origin + distance[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)


def initial_state(tables: EnvTables, keys: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Reset: default pose plus noise, then a uniformly random heading."""
    nq, nv = tables.qpos_valid.shape[-1], tables.qvel_valid.shape[-1]
    u = 2.0 * _per_env_uniform(keys, nq + nv + 1) - 1.0  # U(-1, 1)
    normal = jax.vmap(lambda k: jax.random.normal(jax.random.fold_in(k, 1), (nv,)))(keys)
    noise_q = u[:, :nq] * tables.qpos_noise[:, None]
    noise_v = jnp.where(tables.qvel_noise_gaussian[:, None], normal, u[:, nq : nq + nv]) * tables.qvel_noise[:, None]
    qpos = tables.qpos0 + jnp.where(tables.qpos_valid, noise_q, 0.0)
    qvel = jnp.where(tables.qvel_valid, noise_v, 0.0)
    yaw = jnp.pi * u[:, -1]
    return rotate_root(qpos, yaw), qvel


def rotate_root(qpos: jax.Array, yaw: jax.Array) -> jax.Array:
    """Turn whole robots about the vertical axis through the world origin."""
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    x, y = qpos[:, 0], qpos[:, 1]
    quat = qpos[:, 3:7] / jnp.linalg.norm(qpos[:, 3:7], axis=-1, keepdims=True)
    quat = quat_mul(yaw_quat(yaw), quat)
    return qpos.at[:, 0].set(c * x - s * y).at[:, 1].set(s * x + c * y).at[:, 3:7].set(quat)
