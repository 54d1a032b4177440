"""Left-right mirror symmetry of a body.

Reflecting a robot through its own sagittal (body xz) plane gives the same
robot with left and right limbs swapped and some hinge angles negated. This
is what lets a reflection of the world act on a robot's state: the image of
a state is a state of the same robot. Bodies without such a symmetry (most
limb-removal variants) have no mirror map.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from equirl.errors import MorphologyError
from equirl.morphology.limb_graph import Morphology

_SAGITTAL = np.diag([1.0, -1.0, 1.0])  # reflection through the body xz plane
_TOL = 1e-6


@dataclasses.dataclass(frozen=True)
class MirrorMap:
    limb_perm: np.ndarray  # [L]: limb i maps to limb limb_perm[i]
    hinge_perm: np.ndarray  # [L, 3]: hinge slot j of limb i maps to slot hinge_perm[i, j] of its image
    hinge_sign: np.ndarray  # [L, 3]: +1 keeps the angle, -1 negates it (0 where no hinge)
    qpos_perm: np.ndarray  # [nq] hinge coordinates: image index of each coordinate
    qpos_sign: np.ndarray  # [nq]
    dof_perm: np.ndarray  # [nv]
    dof_sign: np.ndarray  # [nv]


def _swap_sides(name: str) -> str:
    return name.replace("left", "\0").replace("right", "left").replace("\0", "right")


def mirror_map(morph: Morphology) -> MirrorMap:
    """Find the mirror map of a body, or raise MorphologyError if it has none."""
    model, graph, tree = morph.model, morph.graph, morph.tree

    def fail(problem: str) -> MorphologyError:
        return MorphologyError(f"{morph.source}: not mirror-symmetric: {problem}")

    names = list(graph.limb_names)
    perm = np.array([names.index(_swap_sides(n)) if _swap_sides(n) in names else i for i, n in enumerate(names)])
    hinge_perm = np.tile(np.arange(3), (len(names), 1))
    sign = np.zeros((len(names), 3))
    qpos_perm, qpos_sign = np.arange(model.nq), np.ones(model.nq)
    dof_perm, dof_sign = np.arange(model.nv), np.ones(model.nv)
    for i, image in enumerate(perm):
        body, image_body = graph.limb_body[i], graph.limb_body[image]
        if not np.allclose(_SAGITTAL @ _frame_position(tree, body), _frame_position(tree, image_body), atol=_TOL):
            raise fail(f"limb '{names[i]}' and its image '{names[image]}' sit at different places")
        if not np.isclose(model.body_mass[tree.body_id[body]], model.body_mass[tree.body_id[image_body]], rtol=1e-6):
            raise fail(f"limb '{names[i]}' and its image '{names[image]}' differ in mass")
        for slot in range(3):
            joint = graph.hinge_joint[i, slot]
            if joint < 0:
                continue
            # Hinge axes are axial vectors: reflected with an extra sign.
            want = -_SAGITTAL @ model.jnt_axis[joint]
            match = None
            for other in range(3):
                target = graph.hinge_joint[image, other]
                if target < 0:
                    continue
                dot = float(np.dot(want, model.jnt_axis[target]))
                if abs(abs(dot) - 1.0) < _TOL:
                    match = (other, int(np.sign(dot)))
            if match is None:
                raise fail(f"no image for hinge {slot} of limb '{names[i]}'")
            other, s = match
            lo, hi = graph.hinge_range[i, slot]
            image_range = graph.hinge_range[image, other]
            expected = (lo, hi) if s > 0 else (-hi, -lo)
            if not np.allclose(image_range, expected, atol=1e-6):
                raise fail(f"hinge ranges of '{names[i]}' and '{names[image]}' are not mirrored")
            hinge_perm[i, slot], sign[i, slot] = other, s
            src_q, dst_q = graph.hinge_qposadr[i, slot], graph.hinge_qposadr[image, other]
            src_v, dst_v = graph.hinge_dofadr[i, slot], graph.hinge_dofadr[image, other]
            qpos_perm[src_q], qpos_sign[src_q] = dst_q, s
            dof_perm[src_v], dof_sign[src_v] = dst_v, s
    return MirrorMap(perm, hinge_perm, sign, qpos_perm, qpos_sign, dof_perm, dof_sign)


def _frame_position(tree, body: int) -> np.ndarray:
    """Position of a body in the root frame at the reference pose (all angles at ref)."""
    pos, k = np.zeros(3), body
    chain = []
    while k > 0:
        chain.append(k)
        k = tree.parent[k]
    rot = np.eye(3)
    for k in reversed(chain):
        pos = pos + rot @ tree.body_pos[k]
        local = np.zeros(9)
        mujoco.mju_quat2Mat(local, tree.body_quat[k])
        rot = rot @ local.reshape(3, 3)
    return pos
