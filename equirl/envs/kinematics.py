"""Forward kinematics in JAX: body poses and velocities from (qpos, qvel).

Both physics backends hand the task only generalised coordinates; everything
the observation needs (limb positions, orientations, world-frame velocities,
hinge axes) is derived here, once, in the same way for every backend. This
also means observations always describe the state *after* a step, not the
kinematics MuJoCo cached before its last integration.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from equirl.geometry import axis_angle_matrix, quat_to_mat


@struct.dataclass
class TreeTables:
    """KinematicTree tables for one environment, padded to NB bodies."""

    parent: jax.Array  # [NB] int (padding: 0)
    body_pos: jax.Array  # [NB, 3]
    body_rot: jax.Array  # [NB, 3, 3]
    joint_axis: jax.Array  # [NB, 3, 3]
    joint_pos: jax.Array  # [NB, 3, 3]
    joint_qposadr: jax.Array  # [NB, 3] int
    joint_dofadr: jax.Array  # [NB, 3] int
    joint_ref: jax.Array  # [NB, 3]
    joint_valid: jax.Array  # [NB, 3] bool


@struct.dataclass
class Kinematics:
    xpos: jax.Array  # [NB, 3] body frame origins, world
    xmat: jax.Array  # [NB, 3, 3] body orientations, world
    linvel: jax.Array  # [NB, 3] velocity of each body origin, world
    angvel: jax.Array  # [NB, 3] angular velocity, world
    joint_axis: jax.Array  # [NB, 3, 3] hinge axes, world (zeros where no hinge)


def forward_kinematics(tables: TreeTables, qpos: jax.Array, qvel: jax.Array) -> Kinematics:
    """Poses and velocities of every body of one robot (vmap for batches)."""
    nb = tables.parent.shape[0]
    root_pos, root_rot = qpos[:3], quat_to_mat(qpos[3:7])
    # Free joint velocity: linear part in the world frame, angular part in the body frame.
    root_lin, root_ang = qvel[:3], root_rot @ qvel[3:6]

    xpos = jnp.zeros((nb, 3), qpos.dtype).at[0].set(root_pos)
    xmat = jnp.zeros((nb, 3, 3), qpos.dtype).at[0].set(root_rot)
    lin = jnp.zeros((nb, 3), qpos.dtype).at[0].set(root_lin)
    ang = jnp.zeros((nb, 3), qpos.dtype).at[0].set(root_ang)
    axes = jnp.zeros((nb, 3, 3), qpos.dtype)

    def body_step(carry, k):
        xpos, xmat, lin, ang, axes = carry
        p = tables.parent[k]
        rot = xmat[p] @ tables.body_rot[k]
        pos = xpos[p] + xmat[p] @ tables.body_pos[k]
        omega = ang[p]
        twists = []  # (world axis, world anchor, joint speed) of each hinge
        for j in range(3):
            valid = tables.joint_valid[k, j]
            axis_local = tables.joint_axis[k, j]
            anchor = pos + rot @ tables.joint_pos[k, j]
            axis_world = rot @ axis_local
            angle = jnp.where(valid, qpos[tables.joint_qposadr[k, j]] - tables.joint_ref[k, j], 0.0)
            speed = jnp.where(valid, qvel[tables.joint_dofadr[k, j]], 0.0)
            rot = rot @ axis_angle_matrix(axis_local, angle)
            pos = anchor - rot @ tables.joint_pos[k, j]  # the anchor stays put
            omega = omega + axis_world * speed
            twists.append((jnp.where(valid, axis_world, 0.0), anchor, speed))
        vel = lin[p] + jnp.cross(ang[p], pos - xpos[p])
        for axis_world, anchor, speed in twists:
            vel = vel + jnp.cross(axis_world, pos - anchor) * speed
        carry = (
            xpos.at[k].set(pos),
            xmat.at[k].set(rot),
            lin.at[k].set(vel),
            ang.at[k].set(omega),
            axes.at[k].set(jnp.stack([t[0] for t in twists])),
        )
        return carry, None

    if nb > 1:
        (xpos, xmat, lin, ang, axes), _ = jax.lax.scan(body_step, (xpos, xmat, lin, ang, axes), jnp.arange(1, nb))
    return Kinematics(xpos=xpos, xmat=xmat, linvel=lin, angvel=ang, joint_axis=axes)
