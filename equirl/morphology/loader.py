"""Turn any MJCF body with a free-floating root and hinge joints into a limb graph."""

from __future__ import annotations

import os
from pathlib import Path

import mujoco
import numpy as np

from equirl.errors import MorphologyError
from equirl.morphology.limb_graph import (
    MAX_HINGES,
    KinematicTree,
    LimbGraph,
    Morphology,
    limb_type_of,
)

_JOINT_KIND = {
    mujoco.mjtJoint.mjJNT_FREE: "free",
    mujoco.mjtJoint.mjJNT_BALL: "ball",
    mujoco.mjtJoint.mjJNT_SLIDE: "slide",
    mujoco.mjtJoint.mjJNT_HINGE: "hinge",
}


def load_mjcf(path: str | os.PathLike, *, max_limbs: int | None = None, name: str | None = None) -> Morphology:
    """Load an MJCF file and derive its limb graph.

    Raises MorphologyError naming the file for a missing or malformed file and
    for bodies equirl cannot drive (see `morphology_from_model`).
    """
    path = Path(path)
    if not path.is_file():
        raise MorphologyError(f"{path}: no such MJCF file")
    try:
        model = mujoco.MjModel.from_xml_path(str(path))
    except ValueError as err:  # MuJoCo reports XML and compile errors this way
        detail = " ".join(str(err).split())
        raise MorphologyError(f"{path}: MuJoCo could not load it: {detail}") from None
    return morphology_from_model(model, source=str(path), name=name or path.stem, max_limbs=max_limbs)


def morphology_from_model(
    model: mujoco.MjModel,
    *,
    source: str,
    name: str,
    family: str = "generic",
    max_limbs: int | None = None,
) -> Morphology:
    """Check a compiled model and derive its kinematic tree and limb graph."""

    def fail(problem: str) -> MorphologyError:
        return MorphologyError(f"{source}: {problem}")

    root = _find_root(model, fail)
    bodies = _subtree(model, root)
    joint_ids = [j for j in range(model.njnt) if model.jnt_bodyid[j] in set(bodies)]
    if len(joint_ids) != model.njnt:
        raise fail("joints outside the robot's subtree are not supported (one free-floating robot per file)")
    for j in joint_ids:
        kind = _JOINT_KIND[mujoco.mjtJoint(model.jnt_type[j])]
        if kind in ("ball", "slide"):
            raise fail(
                f"joint '{_name(model, mujoco.mjtObj.mjOBJ_JOINT, j)}' is a {kind} joint; only hinges are supported"
            )
        if kind == "free" and model.jnt_bodyid[j] != root:
            raise fail("more than one free joint; exactly one free-floating root is supported")
    if model.na:
        raise fail("actuators with activation state (dyntype) are not supported")
    if model.nmocap:
        raise fail("mocap bodies are not supported")

    tree = _kinematic_tree(model, bodies, fail)
    graph = _limb_graph(model, bodies, fail)
    if max_limbs is not None and graph.num_limbs > max_limbs:
        raise fail(f"{graph.num_limbs} limbs is more than the configured maximum of {max_limbs}")
    return Morphology(name=name, source=source, model=model, tree=tree, graph=graph, family=family)


def _name(model: mujoco.MjModel, kind: mujoco.mjtObj, index: int) -> str:
    return mujoco.mj_id2name(model, kind, index) or f"#{index}"


def _find_root(model: mujoco.MjModel, fail) -> int:
    free = [int(model.jnt_bodyid[j]) for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE]
    if not free:
        raise fail("no body with a free joint; the robot needs a free-floating root body")
    if len(free) > 1:
        raise fail("more than one free joint; exactly one free-floating root is supported")
    root = free[0]
    if model.jnt_qposadr[model.body_jntadr[root]] != 0:
        raise fail("the root's free joint must be the model's first joint")
    return root


def _subtree(model: mujoco.MjModel, root: int) -> list[int]:
    """Body ids of the root's subtree, in MuJoCo's (topological) order."""
    inside = {root}
    for b in range(root + 1, model.nbody):
        if model.body_parentid[b] in inside:
            inside.add(b)
    return sorted(inside)


def _hinges_of(model: mujoco.MjModel, body: int) -> list[int]:
    start, count = model.body_jntadr[body], model.body_jntnum[body]
    return [j for j in range(start, start + count) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE]


def _kinematic_tree(model: mujoco.MjModel, bodies: list[int], fail) -> KinematicTree:
    index = {b: k for k, b in enumerate(bodies)}
    nb = len(bodies)
    tree = dict(
        body_id=np.array(bodies, np.int32),
        parent=np.full(nb, -1, np.int32),
        body_pos=np.zeros((nb, 3)),
        body_quat=np.tile([1.0, 0.0, 0.0, 0.0], (nb, 1)),
        joint_axis=np.zeros((nb, MAX_HINGES, 3)),
        joint_pos=np.zeros((nb, MAX_HINGES, 3)),
        joint_qposadr=np.zeros((nb, MAX_HINGES), np.int32),
        joint_dofadr=np.zeros((nb, MAX_HINGES), np.int32),
        joint_ref=np.zeros((nb, MAX_HINGES)),
        joint_valid=np.zeros((nb, MAX_HINGES), bool),
    )
    for k, b in enumerate(bodies):
        if k > 0:
            tree["parent"][k] = index[int(model.body_parentid[b])]
        tree["body_pos"][k] = model.body_pos[b]
        tree["body_quat"][k] = model.body_quat[b]
        hinges = _hinges_of(model, b)
        if len(hinges) > MAX_HINGES:
            name = _name(model, mujoco.mjtObj.mjOBJ_BODY, b)
            raise fail(f"body '{name}' has {len(hinges)} hinges; a limb has 1 to {MAX_HINGES}")
        for slot, j in enumerate(hinges):
            tree["joint_axis"][k, slot] = model.jnt_axis[j]
            tree["joint_pos"][k, slot] = model.jnt_pos[j]
            tree["joint_qposadr"][k, slot] = model.jnt_qposadr[j]
            tree["joint_dofadr"][k, slot] = model.jnt_dofadr[j]
            tree["joint_ref"][k, slot] = model.qpos0[model.jnt_qposadr[j]]
            tree["joint_valid"][k, slot] = True
    return KinematicTree(**tree)


def _limb_graph(model: mujoco.MjModel, bodies: list[int], fail) -> LimbGraph:
    root = bodies[0]
    limbs = [b for b in bodies if b == root or _hinges_of(model, b)]
    limb_of_body = {b: i for i, b in enumerate(limbs)}

    actuator_of_joint: dict[int, int] = {}
    for a in range(model.nu):
        trn = model.actuator_trntype[a]
        target = int(model.actuator_trnid[a, 0])
        act_name = _name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, a)
        if trn != mujoco.mjtTrn.mjTRN_JOINT or model.jnt_type[target] != mujoco.mjtJoint.mjJNT_HINGE:
            raise fail(f"actuator '{act_name}' does not drive a hinge joint; only hinge motors are supported")
        if target in actuator_of_joint:
            raise fail(f"two actuators drive joint '{_name(model, mujoco.mjtObj.mjOBJ_JOINT, target)}'")
        actuator_of_joint[target] = a

    n = len(limbs)
    names, parent, ltype = [], np.full(n, -1, np.int32), np.full(n, -1, np.int32)
    hinge_joint = np.full((n, MAX_HINGES), -1, np.int32)
    qposadr = np.zeros((n, MAX_HINGES), np.int32)
    dofadr = np.zeros((n, MAX_HINGES), np.int32)
    hrange = np.zeros((n, MAX_HINGES, 2))
    limited = np.zeros((n, MAX_HINGES), bool)
    actuator = np.full((n, MAX_HINGES), -1, np.int32)
    mask = np.zeros((n, MAX_HINGES), bool)
    for i, b in enumerate(limbs):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, b) or f"body{b}"
        names.append(name)
        ltype[i] = limb_type_of(name, is_root=(b == root))
        if b != root:
            ancestor = int(model.body_parentid[b])
            while ancestor not in limb_of_body:  # skip welded bodies
                ancestor = int(model.body_parentid[ancestor])
            parent[i] = limb_of_body[ancestor]
        for slot, j in enumerate(_hinges_of(model, b)):
            hinge_joint[i, slot] = j
            qposadr[i, slot] = model.jnt_qposadr[j]
            dofadr[i, slot] = model.jnt_dofadr[j]
            limited[i, slot] = bool(model.jnt_limited[j])
            if limited[i, slot]:
                hrange[i, slot] = model.jnt_range[j]
            a = actuator_of_joint.get(j, -1)
            actuator[i, slot] = a
            mask[i, slot] = a >= 0 and model.actuator_gear[a, 0] != 0.0
    if not mask.any():
        raise fail("no actuated hinge: the body has no motor with nonzero gear on a hinge joint")
    return LimbGraph(
        limb_names=tuple(names),
        limb_body=np.array([bodies.index(b) for b in limbs], np.int32),
        parent=parent,
        limb_type=ltype,
        hinge_joint=hinge_joint,
        hinge_qposadr=qposadr,
        hinge_dofadr=dofadr,
        hinge_range=hrange,
        hinge_limited=limited,
        actuator=actuator,
        action_mask=mask,
    )
