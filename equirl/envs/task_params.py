"""Per-body task numbers: termination, reward terms and reset noise (SPEC.md)."""

from __future__ import annotations

import dataclasses
import math

from equirl.morphology import sgrl

INF = math.inf


@dataclasses.dataclass(frozen=True)
class TaskParams:
    """Numbers that differ between bodies; defaults are for bodies of any other origin."""

    # Healthy while the lowest of the `height_limbs`' z lies in (z_lo, z_hi).
    z_lo: float = -INF
    z_hi: float = INF
    height_limbs: tuple[str, ...] = ("torso",)
    max_tilt: float = INF  # angle between torso z axis and world z
    max_pitch: float = INF
    max_roll: float = INF
    min_speed_sq: float = -1.0  # sum of qvel^2 must exceed it (cheetah: it stops)
    state_bound: float = INF  # |qpos[2:]| and |qvel| must stay below it
    alive_bonus: float = 1.0
    heading_weight: float = 1.0
    progress_weight: float = 1.0  # scales both progress terms (EnvConfig.training_progress_weight)
    tilt_penalty: float = 0.0  # times 1 - cos(torso tilt), taken off each reward (EnvConfig.training_tilt_penalty)
    qpos_noise: float = 0.005
    qvel_noise: float = 0.005
    qvel_noise_gaussian: bool = False


def generic_params(initial_height: float) -> TaskParams:
    """Bodies loaded from any MJCF file or generated: end when the torso falls
    below 30% of its starting height, or the state goes bad."""
    return TaskParams(z_lo=0.3 * initial_height)


def sgrl_params(name: str) -> TaskParams:
    """The published task's numbers for one of the 29 3D-SGRL bodies."""
    facts = sgrl.task_facts(name)
    z_lo, z_hi = facts.height_band or (facts.h_min, INF)

    def limit(value):
        return INF if value is None else value

    return TaskParams(
        z_lo=z_lo,
        z_hi=z_hi,
        height_limbs=facts.height_limbs,
        max_tilt=limit(facts.max_tilt),
        max_pitch=limit(facts.max_pitch),
        max_roll=limit(facts.max_roll),
        min_speed_sq=-1.0 if facts.min_qvel_sq is None else facts.min_qvel_sq,
        state_bound=limit(facts.state_limit),
        alive_bonus=facts.alive_bonus,
        heading_weight=1.0 if facts.heading_reward else 0.0,
        qpos_noise=facts.qpos_noise,
        qvel_noise=facts.qvel_noise,
        qvel_noise_gaussian=facts.qvel_noise_normal,
    )
