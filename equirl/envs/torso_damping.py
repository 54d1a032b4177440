"""A training aid: viscous damping on the torso's rotation, fading out over training.

A 3D hopper tips over in about 200 steps with no torque at all, and every learner here
falls at 150-230 steps: before a gait pays, the body is down. Damping the torso's three
rotational degrees of freedom (torque -d * angular velocity, the same about every axis)
slows every fall alike, as a hand steadying the torso would, and leaves the legs free.
Taken down linearly to zero over training, it is a curriculum: the policy learns to hop
while falls are slow, then to balance as they speed up. Isotropic damping commutes with
rotations about gravity and with mirrors, so the task's symmetry is kept exactly.

Damping lives in each body's MjModel (`dof_damping`). The native backend reads the
models at every step, so the fade works there; MJX copies the model onto the device when
the environment is built, so it gets a constant damping only.
"""

from __future__ import annotations

import mujoco
import numpy as np

from equirl.errors import ConfigError


def rotation_dofs(model: mujoco.MjModel, source: str) -> np.ndarray:
    """The degrees of freedom of the root free joint's rotation (the torso's)."""
    free = np.nonzero(model.jnt_type == mujoco.mjtJoint.mjJNT_FREE)[0]
    if free.size != 1:
        raise ConfigError(
            f"{source}: training_torso_damping needs exactly one free joint (the torso's), found {free.size}"
        )
    return model.jnt_dofadr[free[0]] + np.arange(3, 6)


class TorsoDamping:
    """Sets the torso's rotational damping of every body from the number of environment steps done."""

    def __init__(self, morphologies, damping: float, fade_steps: int):
        self.damping = float(damping)
        self.fade_steps = int(fade_steps)
        self.models = [m.model for m in morphologies]
        self.dofs = [rotation_dofs(m.model, m.source) for m in morphologies]
        self.base = [model.dof_damping[dofs].copy() for model, dofs in zip(self.models, self.dofs)]

    def value(self, env_steps: int) -> float:
        """The added damping after `env_steps` steps: full, then linearly to zero at fade_steps."""
        if self.fade_steps == 0:
            return self.damping
        return self.damping * max(0.0, 1.0 - env_steps / self.fade_steps)

    def set(self, env_steps: int) -> None:
        added = self.value(env_steps)
        for model, dofs, base in zip(self.models, self.dofs, self.base):
            model.dof_damping[dofs] = base + added
