"""Position control: the policy's action on a hinge sets a target angle, a PD servo turns it to torque.

The published task drives every hinge by torque (MuJoCo `motor` actuators, gear 100-200).
A zero torque leaves a hinge free, so a hinge the policy does not yet drive flops. Legged-robot RL
(MuJoCo Playground, legged_gym) drives joints by position instead: the action is a target
angle, and a stiff servo holds the joint there, so a zero action is a held pose, not a limp
one. This module turns chosen motors into such servos in the body's MjModel, so both
physics backends run the servo at every physics step (MuJoCo's own `gaintype fixed`,
`biastype affine`), and the motor's torque limit stays its gear, as before. Measured
(results/offpolicy/investigation.md, "Locked side hinges to 60k, and position servos"):
bodies stand longer without a policy, but CrossQ's learned policies fall at the same step as with torque motors.

For a hinge with range [lo, hi] and gear g, action a in [-1, 1] gives the target
a * max(|lo|, |hi|) (0: the hinge's zero angle, every 3D-SGRL body's standing pose; beyond
a limit the joint's limit holds it) and the torque
  g * clip(gain * (target - q) - damping * dq, -1, 1),
gain in motor-fractions per radian, damping per rad/s. A body's mirror maps each hinge to one
whose range is the same or its negative, so max(|lo|, |hi|) is the same and the servo keeps
the task's mirror symmetry; it acts in joint space, which rotations about gravity leave alone.
"""

from __future__ import annotations

import mujoco
import numpy as np

from equirl.errors import ConfigError


def apply(morphology, axes: tuple[bool, bool, bool], gain: float, damping: float) -> int:
    """Turn the motors on each limb's hinge axes (x, y, z) where `axes` is True into
    position servos, in place; returns how many motors changed."""
    model, graph = morphology.model, morphology.graph
    changed = 0
    for limb, axis in zip(*np.nonzero(graph.action_mask & np.asarray(axes, bool))):
        actuator = graph.actuator[limb, axis]
        if model.actuator_trntype[actuator] != mujoco.mjtTrn.mjTRN_JOINT:
            raise ConfigError(f"{morphology.source}: position control needs joint-driven motors")
        lo, hi = graph.hinge_range[limb, axis] if graph.hinge_limited[limb, axis] else (-np.pi, np.pi)
        gear = model.actuator_gear[actuator, 0]
        # MuJoCo: force = gainprm0 * ctrl + biasprm0 + biasprm1 * length + biasprm2 * velocity,
        # with length = gear * q and velocity = gear * dq; the joint gets gear * force.
        model.actuator_gaintype[actuator] = mujoco.mjtGain.mjGAIN_FIXED
        model.actuator_biastype[actuator] = mujoco.mjtBias.mjBIAS_AFFINE
        model.actuator_gainprm[actuator, :] = 0.0
        model.actuator_biasprm[actuator, :] = 0.0
        model.actuator_gainprm[actuator, 0] = gain * max(abs(lo), abs(hi))
        model.actuator_biasprm[actuator, 1:3] = (-gain / gear, -damping / gear)
        model.actuator_forcelimited[actuator] = 1
        model.actuator_forcerange[actuator] = (-1.0, 1.0)
        changed += 1
    return changed
