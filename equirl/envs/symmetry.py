"""O_g(3) acting on environment states, observations and actions.

Rotations about z act on any body. Reflections through a vertical plane act
on a robot's state only through its mirror map (left and right limbs swap,
some hinge angles change sign), so they need a mirror-symmetric body.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from equirl.envs.task import rotate_root
from equirl.geometry import mat_to_quat, quat_to_mat, reflection_matrix, yaw_matrix
from equirl.morphology.mirror import MirrorMap
from equirl.observation import HINGE_AXES, parity_signs

_SAGITTAL = np.diag(np.array([1.0, -1.0, 1.0], np.float32))  # NumPy: importing starts no JAX backend


def rotate_state(qpos, qvel, target, angle):
    """Turn the whole scene (robots and targets) about the vertical axis by `angle` [B]."""
    rot = yaw_matrix(angle)
    qpos = rotate_root(qpos, angle)
    qvel = qvel.at[:, :3].set(jnp.einsum("bij,bj->bi", rot, qvel[:, :3]))  # body-frame spin is unchanged
    target = jnp.einsum("bij,bj->bi", rot[:, :2, :2], target)
    return qpos, qvel, target


def reflect_state(qpos, qvel, target, mirror: MirrorMap, normal_angle):
    """Reflect the scene through the vertical plane with normal (cos a, sin a, 0)."""
    world = reflection_matrix(normal_angle)  # [B, 3, 3]
    rot = quat_to_mat(qpos[:, 3:7])
    nq, nv = len(mirror.qpos_perm), len(mirror.dof_perm)
    hinges_q = jnp.zeros_like(qpos[:, :nq]).at[:, mirror.qpos_perm].set(qpos[:, :nq] * mirror.qpos_sign)
    hinges_v = jnp.zeros_like(qvel[:, :nv]).at[:, mirror.dof_perm].set(qvel[:, :nv] * mirror.dof_sign)
    new_q = qpos.at[:, 7:nq].set(hinges_q[:, 7:])
    new_q = new_q.at[:, :3].set(jnp.einsum("bij,bj->bi", world, qpos[:, :3]))
    new_q = new_q.at[:, 3:7].set(mat_to_quat(world @ rot @ _SAGITTAL))
    new_v = qvel.at[:, 6:nv].set(hinges_v[:, 6:])
    new_v = new_v.at[:, :3].set(jnp.einsum("bij,bj->bi", world, qvel[:, :3]))
    new_v = new_v.at[:, 3:6].set(-(qvel[:, 3:6] @ _SAGITTAL))  # body-frame spin: -M w
    target = jnp.einsum("bij,bj->bi", world[:, :2, :2], target)
    return new_q, new_v, target


def transform_vectors(vectors, g, mirror: MirrorMap | None = None):
    """The observation vectors [B, L, 8, 3] that g [B, 3, 3] applied to the scene produces: each
    channel turned by its parity, then (a reflection of a mirror-symmetric body) limbs and hinges
    relabelled."""
    moved = jnp.einsum("bij,blcj->blci", g, vectors) * parity_signs(g)[:, None, :, None]
    if mirror is not None:
        axes = _permute_hinges(moved[:, :, HINGE_AXES], mirror, channel_axis=2)
        moved = _permute_limbs(moved.at[:, :, HINGE_AXES].set(axes), mirror)
    return moved


def transform_action(action, mirror: MirrorMap):
    """The action [B, L, 3] that acts on the mirrored robot as `action` on the original."""
    return _permute_limbs(_permute_hinges(action, mirror, channel_axis=2), mirror)


def _permute_hinges(x, mirror: MirrorMap, channel_axis: int):
    """Move hinge slot j of limb i to its image slot, times the hinge's sign (within each limb)."""
    n = len(mirror.limb_perm)
    sign = np.where(mirror.hinge_sign == 0, 1.0, mirror.hinge_sign)
    out = jnp.zeros_like(x)
    for i in range(n):
        for j in range(3):
            dst = int(mirror.hinge_perm[i, j])
            src = jnp.take(x[:, i], j, axis=channel_axis - 1)
            out = out.at[(slice(None), i) + (slice(None),) * (channel_axis - 2) + (dst,)].set(sign[i, j] * src)
    return out


def _permute_limbs(x, mirror: MirrorMap):
    n = len(mirror.limb_perm)
    return x.at[:, mirror.limb_perm].set(x[:, :n])
