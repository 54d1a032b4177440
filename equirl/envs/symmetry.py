"""O_g(3) acting on environment states, observations and actions.

Rotations about z act on any body. Reflections through a vertical plane act
on a robot's state only through its mirror map (left and right limbs swap,
some hinge angles change sign), so they need a mirror-symmetric body.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from equirl.envs.task import rotate_root
from equirl.errors import MorphologyError
from equirl.geometry import mat_to_quat, quat_to_mat, reflection_matrix, yaw_matrix
from equirl.morphology.mirror import MirrorMap, mirror_map
from equirl.observation import ANGLE_SCALARS, HINGE_AXES, SCALAR_NAMES, Observation, parity_signs

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


# --- the physical mirror on stored observations and actions (replay augmentation) ---

# Per-hinge scalar channels, slot by slot (x, y, z): angle, normalised angle, range ends.
_SLOTS = "xyz"
_NORMALISED = [SCALAR_NAMES.index(f"normalized_angle_{a}") for a in _SLOTS]
_RANGE_LO = [SCALAR_NAMES.index(f"range_lo_{a}") for a in _SLOTS]
_RANGE_HI = [SCALAR_NAMES.index(f"range_hi_{a}") for a in _SLOTS]
_ANGLES = list(range(len(SCALAR_NAMES)))[ANGLE_SCALARS]
_PER_HINGE = set(_ANGLES + _NORMALISED + _RANGE_LO + _RANGE_HI)
_PER_LIMB = [i for i in range(len(SCALAR_NAMES)) if i not in _PER_HINGE]  # limb types, height


@struct.dataclass
class MirrorTables:
    """The physical mirror of each environment slot's body as gathers, padded to L limbs.

    Destination limb l of the image takes source limb source_limb[l]; destination hinge
    slot d (flat limb * 3 + slot) takes source hinge source_hinge[d] times hinge_sign[d]
    (the angle's sign under the mirror). Slots whose body has no mirror map hold the
    identity and mirrorable False.
    """

    source_limb: jax.Array  # [E, L] int32
    source_hinge: jax.Array  # [E, 3L] int32
    hinge_sign: jax.Array  # [E, 3L] float32, +-1
    mirrorable: jax.Array  # [E] bool


def mirror_tables(morphologies, body_of_env, num_limbs: int) -> MirrorTables:
    """MirrorTables for environments stepping `morphologies[body_of_env[e]]`."""
    per_body = []
    for morph in morphologies:
        limb = np.arange(num_limbs, dtype=np.int32)
        hinge = np.arange(3 * num_limbs, dtype=np.int32)
        sign = np.ones(3 * num_limbs, np.float32)
        try:
            m = mirror_map(morph)
        except MorphologyError:
            per_body.append((limb, hinge, sign, False))
            continue
        for i, image in enumerate(m.limb_perm):
            limb[image] = i
            for j in range(3):
                dst = 3 * image + int(m.hinge_perm[i, j])
                hinge[dst], sign[dst] = 3 * i + j, (m.hinge_sign[i, j] if m.hinge_sign[i, j] != 0 else 1.0)
        per_body.append((limb, hinge, sign, True))
    index = np.asarray(body_of_env)
    stack = lambda k, dtype: jnp.asarray(np.stack([b[k] for b in per_body])[index], dtype)  # noqa: E731
    return MirrorTables(stack(0, jnp.int32), stack(1, jnp.int32), stack(2, jnp.float32), stack(3, bool))


def _gather_hinges(x, tables: MirrorTables):
    """x [B, L, 3, ...] per hinge slot -> the image's [B, L, 3, ...] (no sign applied)."""
    b, l = x.shape[:2]
    flat = x.reshape((b, 3 * l) + x.shape[3:])
    index = tables.source_hinge.reshape(tables.source_hinge.shape + (1,) * (x.ndim - 3))
    return jnp.take_along_axis(flat, index, axis=1).reshape(x.shape)


def _gather_limbs(x, tables: MirrorTables):
    index = tables.source_limb.reshape(tables.source_limb.shape + (1,) * (x.ndim - 2))
    return jnp.take_along_axis(x, index, axis=1)


def mirror_observation(obs: Observation, tables: MirrorTables, normal_angle) -> Observation:
    """The observation of the scene reflected through the vertical plane with normal
    (cos a, sin a, 0), for observations [B, L, ...] of mirror-symmetric bodies; tables
    are those of each observation's body ([B, ...] rows). Vectors turn by their parity,
    then limbs and hinges are relabelled; a hinge whose angle changes sign reads the
    negated angle, 1 - its normalised angle and its range reversed. The tree, masks and
    limb types are the body's own (a mirror maps the body onto itself)."""
    g = reflection_matrix(normal_angle)
    moved = jnp.einsum("bij,blcj->blci", g, obs.vectors) * parity_signs(g)[:, None, :, None]
    sign = tables.hinge_sign.reshape(obs.vectors.shape[0], -1, 3)
    axes = _gather_hinges(moved[:, :, HINGE_AXES], tables) * sign[..., None]
    vectors = _gather_limbs(moved, tables).at[:, :, HINGE_AXES].set(axes)

    sc = obs.scalars
    per_hinge = jnp.stack([sc[..., _ANGLES], sc[..., _NORMALISED], sc[..., _RANGE_LO], sc[..., _RANGE_HI]], -1)
    angle, normalised, lo, hi = jnp.moveaxis(_gather_hinges(per_hinge, tables), -1, 0)  # each [B, L, 3]
    flip = sign < 0
    hinge_scalars = {
        **dict(zip(_ANGLES, jnp.moveaxis(jnp.where(flip, -angle, angle), -1, 0))),
        **dict(zip(_NORMALISED, jnp.moveaxis(jnp.where(flip, 1.0 - normalised, normalised), -1, 0))),
        **dict(zip(_RANGE_LO, jnp.moveaxis(jnp.where(flip, 1.0 - hi, lo), -1, 0))),
        **dict(zip(_RANGE_HI, jnp.moveaxis(jnp.where(flip, 1.0 - lo, hi), -1, 0))),
    }
    limb_scalars = _gather_limbs(sc[..., _PER_LIMB], tables)
    columns = [
        hinge_scalars[i] if i in hinge_scalars else limb_scalars[..., _PER_LIMB.index(i)] for i in range(sc.shape[-1])
    ]
    # Padding limbs map to themselves and stay zero, as the environment leaves them.
    scalars = jnp.where(obs.limb_mask[..., None], jnp.stack(columns, -1), 0.0)
    return obs.replace(vectors=vectors, scalars=scalars)


def mirror_action(action, tables: MirrorTables):
    """The action [B, L, 3] that drives the mirrored body as `action` the original."""
    return _gather_hinges(action, tables) * tables.hinge_sign.reshape(action.shape)
