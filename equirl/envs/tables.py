"""Static per-environment tables: every body padded to common sizes and stacked.

Environment i runs body `body_of_env[i]`; all of its constants (kinematic
tree, limb graph, task numbers) sit in row i of these arrays, so the task
functions are plain vectorised JAX with no per-body branches.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from flax import struct

from equirl.envs.kinematics import TreeTables
from equirl.envs.task_params import TaskParams
from equirl.morphology.limb_graph import LIMB_TYPES, Morphology


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Padded sizes shared by every environment of a batch."""

    num_limbs: int  # L
    num_bodies: int  # NB
    nq: int
    nv: int
    nu: int


@struct.dataclass
class EnvTables:
    tree: TreeTables  # [B, NB, ...]
    limb_body: jax.Array  # [B, L] int, index into the tree's bodies
    limb_mask: jax.Array  # [B, L] bool
    parent: jax.Array  # [B, L] int, -1 for the torso and padding
    limb_onehot: jax.Array  # [B, L, 4]
    hinge_qposadr: jax.Array  # [B, L, 3] int
    hinge_dofadr: jax.Array  # [B, L, 3] int
    hinge_valid: jax.Array  # [B, L, 3] bool
    hinge_range: jax.Array  # [B, L, 3, 2] radians
    action_mask: jax.Array  # [B, L, 3] bool
    actuator: jax.Array  # [B, L, 3] int; nu (a dump column) where no motor
    height_mask: jax.Array  # [B, L] bool: limbs whose height decides health
    qpos0: jax.Array  # [B, nq]
    qpos_valid: jax.Array  # [B, nq] bool: coordinates the body really has
    qvel_valid: jax.Array  # [B, nv] bool
    dt: jax.Array  # [B] control step in seconds
    z_lo: jax.Array
    z_hi: jax.Array
    max_tilt: jax.Array
    max_pitch: jax.Array
    max_roll: jax.Array
    min_speed_sq: jax.Array
    state_bound: jax.Array
    alive_bonus: jax.Array
    heading_weight: jax.Array
    progress_weight: jax.Array
    tilt_penalty: jax.Array
    qpos_noise: jax.Array
    qvel_noise: jax.Array
    qvel_noise_gaussian: jax.Array  # [B] bool


def padded_sizes(morphs: list[Morphology], max_limbs: int) -> Sizes:
    return Sizes(
        num_limbs=max_limbs,
        num_bodies=max(m.tree.num_bodies for m in morphs),
        nq=max(m.model.nq for m in morphs),
        nv=max(m.model.nv for m in morphs),
        nu=max(m.model.nu for m in morphs),
    )


def _pad(array: np.ndarray, size: int, fill=0) -> np.ndarray:
    width = [(0, size - array.shape[0])] + [(0, 0)] * (array.ndim - 1)
    return np.pad(array, width, constant_values=fill)


def _body_row(m: Morphology, p: TaskParams, sizes: Sizes, frame_skip: int) -> dict[str, np.ndarray]:
    tree, graph, nb, nl = m.tree, m.graph, sizes.num_bodies, sizes.num_limbs
    rot = np.zeros((tree.num_bodies, 9))
    for k in range(tree.num_bodies):
        mujoco.mju_quat2Mat(rot[k], tree.body_quat[k])
    onehot = np.zeros((graph.num_limbs, len(LIMB_TYPES)))
    typed = graph.limb_type >= 0
    onehot[np.nonzero(typed)[0], graph.limb_type[typed]] = 1.0
    actuator = np.where(graph.action_mask, graph.actuator, sizes.nu)
    height = np.array([i == 0 or name in p.height_limbs for i, name in enumerate(graph.limb_names)])
    return dict(
        tree_parent=_pad(np.maximum(tree.parent, 0), nb),
        tree_body_pos=_pad(tree.body_pos, nb),
        tree_body_rot=_pad(rot.reshape(-1, 3, 3), nb),
        tree_joint_axis=_pad(tree.joint_axis, nb),
        tree_joint_pos=_pad(tree.joint_pos, nb),
        tree_joint_qposadr=_pad(tree.joint_qposadr, nb),
        tree_joint_dofadr=_pad(tree.joint_dofadr, nb),
        tree_joint_ref=_pad(tree.joint_ref, nb),
        tree_joint_valid=_pad(tree.joint_valid, nb, False),
        limb_body=_pad(graph.limb_body, nl),
        limb_mask=_pad(np.ones(graph.num_limbs, bool), nl, False),
        parent=_pad(graph.parent, nl, -1),
        limb_onehot=_pad(onehot, nl),
        hinge_qposadr=_pad(graph.hinge_qposadr, nl),
        hinge_dofadr=_pad(graph.hinge_dofadr, nl),
        hinge_valid=_pad(graph.hinge_joint >= 0, nl, False),
        hinge_range=_pad(graph.hinge_range, nl),
        action_mask=_pad(graph.action_mask, nl, False),
        actuator=_pad(actuator, nl, sizes.nu),
        height_mask=_pad(height, nl, False),
        qpos0=_pad(m.model.qpos0.copy(), sizes.nq),
        qpos_valid=_pad(np.ones(m.model.nq, bool), sizes.nq, False),
        qvel_valid=_pad(np.ones(m.model.nv, bool), sizes.nv, False),
        dt=np.array(m.model.opt.timestep * frame_skip),
        **{f.name: np.array(getattr(p, f.name)) for f in dataclasses.fields(TaskParams) if f.name != "height_limbs"},
    )


def build_tables(
    morphs: list[Morphology],
    params: list[TaskParams],
    body_of_env: np.ndarray,
    sizes: Sizes,
    frame_skip: int,
) -> EnvTables:
    """Stack one row per environment (environments of a body share their row's values)."""
    rows = [_body_row(m, p, sizes, frame_skip) for m, p in zip(morphs, params)]
    stacked = {key: np.stack([rows[b][key] for b in body_of_env]) for key in rows[0]}
    float_dtype = jnp.zeros(()).dtype  # float64 only under jax_enable_x64

    def arr(value):
        value = np.asarray(value)
        return jnp.asarray(value, float_dtype) if value.dtype.kind == "f" else jnp.asarray(value)

    tree = TreeTables(
        parent=arr(stacked.pop("tree_parent")),
        body_pos=arr(stacked.pop("tree_body_pos")),
        body_rot=arr(stacked.pop("tree_body_rot")),
        joint_axis=arr(stacked.pop("tree_joint_axis")),
        joint_pos=arr(stacked.pop("tree_joint_pos")),
        joint_qposadr=arr(stacked.pop("tree_joint_qposadr")),
        joint_dofadr=arr(stacked.pop("tree_joint_dofadr")),
        joint_ref=arr(stacked.pop("tree_joint_ref")),
        joint_valid=arr(stacked.pop("tree_joint_valid")),
    )
    return EnvTables(tree=tree, **{key: arr(value) for key, value in stacked.items()})
