"""The 29 bodies of the 3D-SGRL benchmark (Chen et al., ICML 2023), by name.

The four full bodies (hopper_5_full, walker_7_full, humanoid_9_full and
cheetah_14_full) are written out in `equirl.morphology.sgrl_bodies` as `Body`
data with the numbers of the published MJCF files; every other body is one of
them with limbs removed (`Body.without`), as listed here. Names are the published file names without "3d_" and ".xml".

Deliberate differences from the published files: friction cones are elliptic
(see `Body.cone`), and all bodies share one scene (sky, floor texture, light,
a side-on tracking camera). Limb tree, hinges, gears, masses, contact
parameters, start positions and physics step are those of the references.

`task_facts(name)` gives the per-body task constants of SPEC.md (termination,
reward terms, reset noise) that the environments need.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from equirl.errors import MorphologyError
from equirl.morphology.description import Body
from equirl.morphology.sgrl_bodies import FULL_BODIES

# --------------------------------------------------------------------- variants
# name -> (limbs removed, limbs reattached {name: new pos}, torso start height or None)
_VARIANTS: dict[str, tuple[tuple[str, ...], dict, Optional[float]]] = {
    # The short hoppers keep their foot, moved up to the end of the last segment
    # left, and start half a metre lower.
    "hopper_3_shin": (("shin",), {"foot": (0.065, 0.0, -0.45)}, 1.25),
    "hopper_4_lower_shin": (("lower_shin",), {"foot": (0.065, 0.0, -0.25)}, 1.25),
    "hopper_5_full": ((), {}, None),
    "walker_2_right_leg_left_knee": (("right_thigh", "left_shin"), {}, None),
    "walker_3_left_leg_right_foot": (("left_thigh", "right_foot"), {}, None),
    "walker_4_right_knee_left_foot": (("right_shin", "left_foot"), {}, None),
    "walker_5_foot": (("right_foot", "left_foot"), {}, None),
    "walker_5_left_knee": (("left_shin",), {}, None),
    "walker_7_full": ((), {}, None),
    "walker_3_left_knee_right_knee": (("left_shin", "right_shin"), {}, None),
    "walker_6_right_foot": (("right_foot",), {}, None),
    "humanoid_7_left_arm": (("left_upper_arm",), {}, None),
    "humanoid_7_lower_arms": (("right_lower_arm", "left_lower_arm"), {}, None),
    "humanoid_7_right_arm": (("right_upper_arm",), {}, None),
    "humanoid_7_right_leg": (("right_thigh",), {}, None),
    "humanoid_8_left_knee": (("left_shin",), {}, None),
    "humanoid_9_full": ((), {}, None),
    "humanoid_7_left_leg": (("left_thigh",), {}, None),
    "humanoid_8_right_knee": (("right_shin",), {}, None),
    "cheetah_10_tail_leftbleg": (("upper_tail", "left_bthigh"), {}, None),
    "cheetah_11_leftfleg": (("left_fthigh",), {}, None),
    "cheetah_11_tail_rightfknee": (("upper_tail", "right_fshin"), {}, None),
    "cheetah_12_rightbknee": (("right_bshin",), {}, None),
    "cheetah_12_tail_leftbfoot": (("upper_tail", "left_bfoot"), {}, None),
    "cheetah_13_rightffoot": (("right_ffoot",), {}, None),
    "cheetah_13_tail": (("upper_tail",), {}, None),
    "cheetah_14_full": ((), {}, None),
    "cheetah_11_leftbkneen_rightffoot": (("left_bshin", "right_ffoot"), {}, None),
    "cheetah_12_tail_leftffoot": (("upper_tail", "left_ffoot"), {}, None),
}

TRAIN: dict[str, tuple[str, ...]] = {
    "hopper": ("hopper_3_shin", "hopper_4_lower_shin", "hopper_5_full"),
    "walker": (
        "walker_2_right_leg_left_knee", "walker_3_left_leg_right_foot", "walker_4_right_knee_left_foot",
        "walker_5_foot", "walker_5_left_knee", "walker_7_full",
    ),
    "humanoid": (
        "humanoid_7_left_arm", "humanoid_7_lower_arms", "humanoid_7_right_arm", "humanoid_7_right_leg",
        "humanoid_8_left_knee", "humanoid_9_full",
    ),
    "cheetah": (
        "cheetah_10_tail_leftbleg", "cheetah_11_leftfleg", "cheetah_11_tail_rightfknee", "cheetah_12_rightbknee",
        "cheetah_12_tail_leftbfoot", "cheetah_13_rightffoot", "cheetah_13_tail", "cheetah_14_full",
    ),
}  # fmt: skip
ZERO_SHOT: dict[str, tuple[str, ...]] = {
    "hopper": (),
    "walker": ("walker_3_left_knee_right_knee", "walker_6_right_foot"),
    "humanoid": ("humanoid_7_left_leg", "humanoid_8_right_knee"),
    "cheetah": ("cheetah_11_leftbkneen_rightffoot", "cheetah_12_tail_leftffoot"),
}
FAMILIES: dict[str, tuple[str, ...]] = {f: TRAIN[f] + ZERO_SHOT[f] for f in TRAIN}
BODY_NAMES: tuple[str, ...] = tuple(n for f in FAMILIES for n in FAMILIES[f])

SUITES: dict[str, tuple[str, ...]] = {
    **TRAIN,
    "WHH": TRAIN["walker"] + TRAIN["humanoid"] + TRAIN["hopper"],
    "CWHH": TRAIN["cheetah"] + TRAIN["walker"] + TRAIN["humanoid"] + TRAIN["hopper"],
    **{f"{f}_zero_shot": ZERO_SHOT[f] for f in ZERO_SHOT if ZERO_SHOT[f]},
    "zero_shot": tuple(n for f in ZERO_SHOT for n in ZERO_SHOT[f]),
    "all": BODY_NAMES,
}

assert set(BODY_NAMES) == set(_VARIANTS) and len(BODY_NAMES) == 29


def family_of(name: str) -> str:
    """The family of a benchmark body ('hopper', 'walker', 'humanoid' or 'cheetah')."""
    _check_name(name)
    return name.split("_", 1)[0]


def _check_name(name: str) -> None:
    if name not in _VARIANTS:
        raise MorphologyError(f"unknown 3D-SGRL body {name!r}; valid names: {', '.join(BODY_NAMES)}")


def sgrl_body(name: str) -> Body:
    """The benchmark body called `name` (e.g. "walker_3_left_leg_right_foot")."""
    _check_name(name)
    drop, reattach, height = _VARIANTS[name]
    body = FULL_BODIES[family_of(name)]
    if drop:
        body = body.without(drop, reattach=reattach)
    if height is not None:
        x, y, _ = body.root.pos
        body = body.with_root_pos((x, y, height))
    return body.renamed(name)


def reference_path(name: str, root: Path = Path("../shared/sgrl3d")) -> Path:
    """Where the published MJCF file of body `name` lies under `root` (used by tests)."""
    family = family_of(name)
    folder = "zero_shot" if name in ZERO_SHOT[family] else f"3d_{family}s"
    return Path(root) / "envs" / folder / f"3d_{name}.xml"


# ------------------------------------------------------------------ task facts
@dataclasses.dataclass(frozen=True)
class TaskFacts:
    """Per-body task constants of the published benchmark (SPEC.md).

    Termination: the episode ends when a listed condition fails (limits that are
    None do not apply). Angles are radians; heights are world z in metres.
    """

    family: str
    # --- termination
    height_band: Optional[tuple[float, float]]  # torso z must stay strictly inside (walker, humanoid)
    h_min: Optional[float]  # min z over `height_limbs` must stay above (hopper, cheetah)
    height_limbs: tuple[str, ...]  # limbs whose lowest z is compared with h_min
    max_tilt: Optional[float]  # angle between torso z axis and vertical (hopper)
    max_pitch: Optional[float]
    max_roll: Optional[float]
    min_qvel_sq: Optional[float]  # sum of qvel^2 must stay above: the robot must keep moving (cheetah)
    state_limit: Optional[float]  # |qpos[2:]| and |qvel| must stay below (hopper)
    # --- reward: progress to target + heading term + alive bonus - ctrl_cost |a|^2
    alive_bonus: float
    heading_reward: bool
    ctrl_cost: float = 0.001
    # --- reset noise
    qpos_noise: float = 0.005  # qpos += U(-qpos_noise, qpos_noise)
    qvel_noise: float = 0.005  # qvel += U(±qvel_noise), or N(0, qvel_noise^2) if normal
    qvel_noise_normal: bool = False
    # --- timing
    frame_skip: int = 4  # physics steps per control step
    max_steps: int = 1000  # control steps before truncation (not termination)


_HOPPER_H_MIN = {"hopper_3_shin": 0.45, "hopper_4_lower_shin": 0.6, "hopper_5_full": 0.95}
_WALKER_BAND = {
    "walker_5_foot": (0.8, 2.0),
    "walker_6_right_foot": (0.8, 2.0),
    "walker_7_full": (0.8, 2.0),
    "walker_3_left_leg_right_foot": (0.664, 2.0),
    "walker_5_left_knee": (0.664, 2.0),
    "walker_4_right_knee_left_foot": (0.664, 1.864),
    "walker_2_right_leg_left_knee": (0.54, 1.74),
    "walker_3_left_knee_right_knee": (0.54, 1.74),
}


def task_facts(name: str) -> TaskFacts:
    """The task constants of benchmark body `name`."""
    family = family_of(name)
    if family == "hopper":
        return TaskFacts(
            family, height_band=None, h_min=_HOPPER_H_MIN[name], height_limbs=("torso",), max_tilt=1.0,
            max_pitch=None, max_roll=None, min_qvel_sq=None, state_limit=100.0,
            alive_bonus=1.0, heading_reward=False,  # the published hopper leaves the heading term out
        )  # fmt: skip
    if family in ("walker", "humanoid"):
        band = _WALKER_BAND[name] if family == "walker" else (0.834625, 1.834625)
        return TaskFacts(
            family, height_band=band, h_min=None, height_limbs=("torso",), max_tilt=None,
            max_pitch=1.0, max_roll=1.0, min_qvel_sq=None, state_limit=None,
            alive_bonus=1.0, heading_reward=True,
        )  # fmt: skip
    # cheetah: the lowest of the torso and the front thighs it still has
    limbs = set(sgrl_body(name).limb_names)
    thighs = tuple(t for t in ("right_fthigh", "left_fthigh") if t in limbs)
    return TaskFacts(
        family, height_band=None, h_min=0.26, height_limbs=("torso", *thighs), max_tilt=None,
        max_pitch=1.35, max_roll=1.35, min_qvel_sq=1.0, state_limit=None,
        alive_bonus=0.0, heading_reward=True,
        qpos_noise=0.1, qvel_noise=0.1, qvel_noise_normal=True,
    )  # fmt: skip
