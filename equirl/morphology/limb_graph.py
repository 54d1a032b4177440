"""The limb graph: what the environments need to know about any body.

A *limb* is the free-floating root (the torso) or a MuJoCo body that carries
hinge joints (1 to 3). Bodies without joints are welded to their parent: they
move the physics but are not limbs. Every array here is NumPy and static; the
environments pad and stack them into JAX tables.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

MAX_HINGES = 3
# Limb-type one-hot of the published observation: [torso, thigh, shin, foot].
LIMB_TYPES = ("torso", "thigh", "shin", "foot")


@dataclasses.dataclass(frozen=True, eq=False)
class KinematicTree:
    """Tables for forward kinematics over every moving body of the robot.

    Index 0 is the root; `parent[k] < k`. Joints are the (at most 3) hinges of
    a body in MuJoCo's order; unused joint slots have `joint_valid == False`.
    """

    body_id: np.ndarray  # [NB] MuJoCo body id
    parent: np.ndarray  # [NB] int, -1 for the root
    body_pos: np.ndarray  # [NB, 3] offset from the parent frame
    body_quat: np.ndarray  # [NB, 4] (w, x, y, z) rotation from the parent frame
    joint_axis: np.ndarray  # [NB, 3, 3] unit axes in the body frame
    joint_pos: np.ndarray  # [NB, 3, 3] anchors in the body frame
    joint_qposadr: np.ndarray  # [NB, 3] int
    joint_dofadr: np.ndarray  # [NB, 3] int
    joint_ref: np.ndarray  # [NB, 3] angle at which the body sits at its offset
    joint_valid: np.ndarray  # [NB, 3] bool

    @property
    def num_bodies(self) -> int:
        return len(self.parent)


@dataclasses.dataclass(frozen=True, eq=False)
class LimbGraph:
    """Limbs, their tree, their hinges and the actuators that drive them."""

    limb_names: tuple[str, ...]
    limb_body: np.ndarray  # [L] index into KinematicTree bodies
    parent: np.ndarray  # [L] parent limb, -1 for the torso
    limb_type: np.ndarray  # [L] index into LIMB_TYPES, -1 for other limbs
    hinge_joint: np.ndarray  # [L, 3] MuJoCo joint id, -1 if absent
    hinge_qposadr: np.ndarray  # [L, 3] int, 0 if absent
    hinge_dofadr: np.ndarray  # [L, 3] int, 0 if absent
    hinge_range: np.ndarray  # [L, 3, 2] radians, 0 if absent
    hinge_limited: np.ndarray  # [L, 3] bool
    actuator: np.ndarray  # [L, 3] actuator id, -1 if none
    action_mask: np.ndarray  # [L, 3] bool: a hinge with an actuator of nonzero gear

    @property
    def num_limbs(self) -> int:
        return len(self.limb_names)

    def limb_index(self, name: str) -> int:
        return self.limb_names.index(name)


@dataclasses.dataclass(frozen=True, eq=False)
class Morphology:
    """A compiled body: its MuJoCo model plus the graphs derived from it."""

    name: str
    source: str  # where it came from: a file path or "builder:<name>"
    model: mujoco.MjModel
    tree: KinematicTree
    graph: LimbGraph
    family: str = "generic"

    @property
    def num_limbs(self) -> int:
        return self.graph.num_limbs

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)


def limb_type_of(name: str, is_root: bool) -> int:
    """Limb type from the body name, as the published benchmark does it."""
    if is_root:
        return 0
    lowered = name.lower()
    for index, word in ((3, "foot"), (2, "shin"), (1, "thigh")):
        if word in lowered:
            return index
    return -1
