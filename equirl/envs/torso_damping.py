"""A training aid: viscous damping on the torso's rotation, fading out over training.

A 3D hopper tips over in about 200 steps with no torque at all, and every learner here
falls at 150-230 steps: before a gait pays, the body is down. Damping the torso's three
rotational degrees of freedom (torque -d * angular velocity, the same about every axis)
slows every fall alike, as a hand steadying the torso would, and leaves the legs free.
Taken down linearly to zero over training, it is a curriculum: the policy learns to hop
while falls are slow, then to balance as they speed up. Isotropic damping commutes with
rotations about gravity and with mirrors, so the task's symmetry is kept exactly.
Damping the roll alone (about the torso's heading) is the same aid for sideways falls
only; it too commutes with rotations about gravity and the sagittal mirror.

Damping lives in each body's MjModel (`dof_damping`). The native backend reads the
models at every step, so the fade works there; MJX copies the model onto the device when
the environment is built, so it gets a constant damping only.
"""

from __future__ import annotations

import mujoco
import numpy as np

from equirl.errors import ConfigError


def rotation_dofs(model: mujoco.MjModel, source: str, axes: str = "all") -> np.ndarray:
    """The degrees of freedom to damp: the root free joint's rotation (the torso's), all three;
    ("roll") the one about the torso's own x axis, which the task calls its heading; or
    ("planar") every rotation out of the torso's sagittal plane: its roll and yaw and each
    hinge whose axis at the start pose is off the torso's y (pitch) axis. A free joint's
    angular velocity is in the body's frame, so dofs 3 and 5 of it are the roll and the yaw."""
    free = np.nonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)[0]
    if free.size != 1:
        raise ConfigError(
            f"{source}: training_torso_damping needs exactly one free joint (the torso's), found {free.size}"
        )
    root = model.jnt_dofadr[free[0]]
    if axes == "all":
        return root + np.arange(3, 6)
    if axes == "roll":
        return root + np.arange(3, 4)
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    pitch_axis = data.xmat[model.jnt_bodyid[free[0]]].reshape(3, 3)[:, 1]
    hinges = np.nonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_HINGE)[0]
    side = [model.jnt_dofadr[j] for j in hinges if abs(data.xaxis[j] @ pitch_axis) < 0.9]
    return np.concatenate([root + np.array([3, 5]), np.asarray(side, int)])


def relative_inertia(model: mujoco.MjModel, dofs: np.ndarray) -> np.ndarray:
    """Each dof's own inertia (the mass matrix's diagonal at the start pose) over the first's.
    The planar damping scales by it so that every dof slows at the roll's rate: the same
    damping on the yaw, whose inertia is a few hundredths of the roll's, would make MuJoCo's
    explicit RK4 step blow up at once."""
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    full = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, data, full)
    diag = np.diag(full)[dofs]
    return diag / diag[0]


class TorsoDamping:
    """Sets the torso's rotational damping of every body from the number of environment steps done."""

    def __init__(self, morphologies, damping: float, fade_steps: int, axes: str = "all"):
        self.damping = float(damping)
        self.fade_steps = int(fade_steps)
        self.models = [m.model for m in morphologies]
        self.dofs = [rotation_dofs(m.model, m.source, axes) for m in morphologies]
        self.base = [model.dof_damping[dofs].copy() for model, dofs in zip(self.models, self.dofs)]
        self.scale = [
            relative_inertia(model, dofs) if axes == "planar" else np.ones(len(dofs))
            for model, dofs in zip(self.models, self.dofs)
        ]

    def value(self, env_steps: int) -> float:
        """The added damping after `env_steps` steps: full, then linearly to zero at fade_steps."""
        if self.fade_steps == 0:
            return self.damping
        return self.damping * max(0.0, 1.0 - env_steps / self.fade_steps)

    def set(self, env_steps: int) -> None:
        added = self.value(env_steps)
        for model, dofs, base, scale in zip(self.models, self.dofs, self.base, self.scale):
            model.dof_damping[dofs] = base + added * scale
