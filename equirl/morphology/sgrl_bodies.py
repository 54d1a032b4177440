"""The four full bodies of the 3D-SGRL benchmark as `Body` data.

hopper_5_full, walker_7_full, humanoid_9_full and cheetah_14_full, with the
numbers of the published MJCF files (limb tree, hinges, gears, masses, contact
parameters, start positions, physics step); `equirl.morphology.sgrl` derives
the other 25 bodies from them by removing limbs.
"""

from __future__ import annotations

import math

from equirl.morphology.description import Body, Geom, Hinge, Limb

# --------------------------------------------------------------------- helpers
# Hinge axes: the three local axes of a limb. Left-side limbs mirror the right
# side's x and z axes (a reflection through the sagittal plane).
_RIGHT = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0))
_LEFT = ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))


def _hinges(limb: str, ranges_deg, gears, axes=_RIGHT, **shared) -> tuple[Hinge, ...]:
    """The x, y, z hinges of `limb`, named '<limb>_joint_<x|y|z>', ranges given in degrees.

    Keyword values given as lists hold one value per hinge; others are shared.
    """
    hinges = []
    for i, suffix in enumerate("xyz"):
        kw = {k: (v[i] if isinstance(v, list) else v) for k, v in shared.items()}
        lo, hi = ranges_deg[i]
        hinges.append(Hinge(f"{limb}_joint_{suffix}", axes[i], (math.radians(lo), math.radians(hi)), gears[i], **kw))
    return tuple(hinges)


def _about_y(degrees: float) -> tuple[float, float, float, float]:
    """Quaternion of a rotation by `degrees` about the y axis (MJCF's axisangle="0 1 0 deg")."""
    half = math.radians(degrees) / 2
    return (math.cos(half), 0.0, math.sin(half), 0.0)


def _mirror(v):
    """Reflect a point (or a fromto pair) through the x-z plane."""
    return tuple(-c if i % 3 == 1 else c for i, c in enumerate(v))


# A capsule lying along x: MJCF's quat="0.707107 0 -0.707107 0".
_ALONG_X = _about_y(-90.0)


# ---------------------------------------------------------------------- hopper
def _hopper() -> Body:
    # Published defaults: armature 1, damping 1 on hinges; contact dimension 1,
    # soft contacts and a 1 mm margin on every geom (the floor included).
    solimp = (0.8, 0.8, 0.01, 0.5, 2.0)
    contact = dict(condim=1, solimp=solimp, margin=0.001)
    joint = dict(armature=1.0, damping=1.0)
    side = (-10.0, 10.0)  # the two added axes of each planar joint
    bend = [side, (-150.0, 0.0), side]
    gears = (200.0, 200.0, 200.0)
    friction = (0.9, 0.005, 0.0001)

    foot = Limb(
        "foot", (0.065, 0.0, -0.25),
        _hinges("foot", [side, (-45.0, 45.0), side], gears, pos=(-0.065, 0.0, 0.0), **joint),
        (Geom("foot_geom", "capsule", (0.06, 0.195), quat=_ALONG_X, friction=(2.0, 0.005, 0.0001), **contact),),
    )  # fmt: skip
    lower_shin = Limb(
        "lower_shin", (0.0, 0.0, -0.5),
        _hinges("lower_shin", bend, gears, pos=(0.0, 0.0, 0.25), **joint),
        (Geom("lower_shin_geom", "capsule", (0.04, 0.25), friction=friction, **contact),),
        (foot,),
    )  # fmt: skip
    shin = Limb(
        "shin", (0.0, 0.0, -0.7),
        _hinges("shin", bend, gears, pos=(0.0, 0.0, 0.25), **joint),
        (Geom("shin_geom", "capsule", (0.04, 0.25), friction=friction, **contact),),
        (lower_shin,),
    )  # fmt: skip
    thigh = Limb(
        "thigh", (0.0, 0.0, -0.2),
        _hinges("thigh", bend, gears, **joint),
        (Geom("thigh_geom", "capsule", (0.05, 0.225), pos=(0.0, 0.0, -0.225), friction=friction, **contact),),
        (shin,),
    )  # fmt: skip
    torso = Limb(
        "torso", (0.0, 0.0, 1.75), (),
        (Geom("torso_geom", "capsule", (0.05, 0.2), friction=friction, **contact),),
        (thigh,),
    )  # fmt: skip
    floor = Geom("floor", "plane", (20.0, 20.0, 0.125), condim=3, solimp=solimp, margin=0.001, material="grid")
    return Body("hopper_5_full", "hopper", torso, timestep=0.002, integrator="RK4", floor=floor)


# ---------------------------------------------------------------------- walker
def _walker_leg(side: str) -> Limb:
    right = side == "right"
    axes = _RIGHT if right else _LEFT
    joint = dict(armature=0.01, damping=0.1)
    geom = dict(friction=(0.9, 0.1, 0.1), conaffinity=0)
    # The published file names the right thigh's and shin's geoms after the limb.
    foot = Limb(
        f"{side}_foot", (0.0, 0.0, -0.384),
        _hinges(f"{side}_foot", [(-1, 1), (-45, 45), (-30, 5)], (0.0, 100.0, 100.0), axes, **joint),
        (Geom(f"{side}_foot_geom", "capsule", (0.06, 0.1), pos=(0.1, 0.0, 0.0), quat=_ALONG_X, **geom),),
    )  # fmt: skip
    shin = Limb(
        f"{side}_shin", (0.0, 0.0, -0.48),
        _hinges(f"{side}_shin", [(-1, 1), (-160, -2), (-1, 1)], (0.0, 100.0, 0.0), axes, **joint),
        (Geom(f"{side}_shin" if right else f"{side}_shin_geom", "capsule", (0.0448, 0.192), pos=(0.0, 0.0, -0.192),
              **geom),),
        (foot,),
    )  # fmt: skip
    return Limb(
        f"{side}_thigh", (0.0, 0.0, -0.6),
        _hinges(f"{side}_thigh", [(-25, 5), (-20, 110), (-60, 35)], (100.0, 100.0, 100.0), axes, **joint),
        (Geom(f"{side}_thigh" if right else f"{side}_thigh_geom", "capsule", (0.056, 0.24), pos=(0.0, 0.0, -0.24),
              **geom),),
        (shin,),
    )  # fmt: skip


def _walker() -> Body:
    torso = Limb(
        "torso", (0.0, 0.0, 1.6), (),
        (Geom("torso_geom", "capsule", (0.07, 0.3), pos=(0.0, 0.0, -0.3), friction=(0.9, 0.1, 0.1), conaffinity=0),),
        (_walker_leg("right"), _walker_leg("left")),
    )  # fmt: skip
    floor = Geom("floor", "plane", (40.0, 40.0, 40.0), friction=(0.7, 0.1, 0.1), material="grid")
    return Body("walker_7_full", "walker", torso, timestep=0.002, integrator="RK4", floor=floor)


# -------------------------------------------------------------------- humanoid
_HUMANOID_GEOM = dict(friction=(0.7, 0.1, 0.1), conaffinity=0)


def _capsule(name, radius, fromto, **kw) -> Geom:
    return Geom(name, "capsule", (radius,), fromto=fromto, **{**_HUMANOID_GEOM, **kw})


def _sphere(name, radius, pos, **kw) -> Geom:
    return Geom(name, "sphere", (radius,), pos=pos, **{**_HUMANOID_GEOM, **kw})


def _humanoid_leg(side: str) -> Limb:
    right = side == "right"
    axes = _RIGHT if right else _LEFT
    m = (lambda v: v) if right else _mirror
    shin = Limb(
        f"{side}_shin", m((0.0, 0.01, -0.403)),
        _hinges(f"{side}_shin", [(-1, 1), (-160, -2), (-1, 1)], (0.0, 200.0, 0.0), axes,
                pos=(0.0, 0.0, 0.02), armature=0.006, damping=1.0, stiffness=1.0),
        (_capsule(f"{side}_shin1", 0.049, (0.0, 0.0, 0.0, 0.0, 0.0, -0.3)),
         _sphere(f"{side}_foot", 0.075, (0.0, 0.0, -0.35))),
    )  # fmt: skip
    # The published right hip's y hinge has armature 0.008, the left one 0.01.
    return Limb(
        f"{side}_thigh", m((0.0, -0.1, -0.299625)),
        _hinges(f"{side}_thigh", [(-25, 5), (-20, 110), (-60, 35)], (100.0, 300.0, 100.0), axes,
                armature=[0.01, 0.008 if right else 0.01, 0.01], damping=5.0, stiffness=[10.0, 20.0, 10.0]),
        (_capsule(f"{side}_thigh1", 0.06, m((0.0, 0.0, 0.0, 0.0, 0.01, -0.34))),),
        (shin,),
    )  # fmt: skip


def _humanoid_arms() -> tuple[Limb, Limb]:
    right_lower = Limb(
        "right_lower_arm", (0.18, -0.18, -0.18),
        _hinges("right_lower_arm", [(-1, 1), (-90, 50), (-1, 1)], (0.0, 25.0, 0.0),
                ((1.0, 0.0, 0.0), (0.0, -1.0, 1.0), (0.0, 0.0, 1.0)), armature=0.0028, damping=1.0),
        (_capsule("right_larm", 0.031, (0.01, 0.01, 0.01, 0.17, 0.17, 0.17)),
         _sphere("right_hand", 0.04, (0.18, 0.18, 0.18))),
    )  # fmt: skip
    right_upper = Limb(
        "right_upper_arm", (0.0, -0.17, 0.225375),
        _hinges("right_upper_arm", [(-85, 60), (-85, 60), (-1, 1)], (25.0, 25.0, 0.0),
                ((2.0, 1.0, 1.0), (0.0, -1.0, 1.0), (0.0, 0.0, 1.0)),
                armature=[0.0068, 0.0051, 0.0051], damping=1.0, stiffness=1.0),
        (_capsule("right_uarm1", 0.04, (0.0, 0.0, 0.0, 0.16, -0.16, -0.16)),),
        (right_lower,),
    )  # fmt: skip
    left_lower = Limb(
        "left_lower_arm", (0.18, 0.18, -0.18),
        _hinges("left_lower_arm", [(-1, 1), (-90, 50), (-1, 1)], (0.0, 25.0, 0.0),
                ((-1.0, 0.0, 0.0), (0.0, -1.0, -1.0), (0.0, 0.0, -1.0)), armature=0.0028, damping=1.0),
        (_capsule("left_larm", 0.031, (0.01, -0.01, 0.01, 0.17, -0.17, 0.17)),
         _sphere("left_hand", 0.04, (0.18, -0.18, 0.18))),
    )  # fmt: skip
    left_upper = Limb(
        "left_upper_arm", (0.0, 0.17, 0.225375),
        _hinges("left_upper_arm", [(-60, 85), (-60, 85), (-1, 1)], (25.0, 25.0, 0.0),
                ((2.0, -1.0, 1.0), (0.0, 1.0, 1.0), (0.0, 0.0, -1.0)),
                armature=[0.0068, 0.0051, 0.0028], damping=1.0, stiffness=1.0),
        (_capsule("left_uarm1", 0.04, (0.0, 0.0, 0.0, 0.16, 0.16, -0.16)),),
        (left_lower,),
    )  # fmt: skip
    return right_upper, left_upper


def _humanoid() -> Body:
    # The published torso is one body carrying chest, head, waist and hips.
    torso = Limb(
        "torso", (0.0, 0.0, 1.234625), (),
        (_capsule("torso1", 0.07, (0.0, -0.07, 0.165375, 0.0, 0.07, 0.165375)),
         _sphere("head", 0.09, (0.0, 0.0, 0.355375)),
         _capsule("uwaist", 0.06, (-0.01, -0.06, 0.045375, -0.01, 0.06, 0.045375)),
         _capsule("lwaist", 0.06, (-0.01, -0.06, -0.094625, -0.01, 0.06, -0.094625)),
         _capsule("butt", 0.09, (-0.02, -0.07, -0.259625, -0.02, 0.07, -0.259625))),
        (_humanoid_leg("right"), _humanoid_leg("left"), *_humanoid_arms()),
    )  # fmt: skip
    floor = Geom("floor", "plane", (200.0, 200.0, 0.125), friction=(0.7, 0.1, 0.1), material="grid")
    return Body(
        "humanoid_9_full", "humanoid", torso, timestep=0.002, integrator="RK4", floor=floor, camera_distance=4.0
    )


# --------------------------------------------------------------------- cheetah
# Published defaults: stiff, soft-limited hinges (armature 0.1) and soft contacts.
_CHEETAH_CONTACT = dict(friction=(0.4, 0.1, 0.1), solimp=(0.0, 0.8, 0.01), solref=(0.02, 1.0))
_CHEETAH_JOINT = dict(armature=0.1, solreflimit=(0.02, 1.0), solimplimit=(0.0, 0.8, 0.03))


def _cheetah_segment(name, pos, ranges, gears, damping, stiffness, geom_size, geom_pos, geom_deg, axes, children=()):
    """One leg segment: three hinges and one capsule tilted about y."""
    return Limb(
        name, pos,
        _hinges(name, ranges, gears, axes, damping=damping, stiffness=stiffness, **_CHEETAH_JOINT),
        (Geom(name, "capsule", geom_size, pos=geom_pos, quat=_about_y(geom_deg), conaffinity=0, **_CHEETAH_CONTACT),),
        children,
    )  # fmt: skip


def _cheetah_leg(side: str, end: str) -> Limb:
    """The back ('b') or front ('f') leg of one side: thigh, shin, foot."""
    axes = _RIGHT if side == "right" else _LEFT
    y = -1.0 if side == "right" else 1.0
    p = f"{side}_{end}"
    if end == "b":
        foot = _cheetah_segment(
            f"{p}foot",
            (-0.28, 0.0, -0.14),
            [(-1, 1), (-45, 25), (-15, 5)],
            (0.0, 60.0, 60.0),
            3.0,
            120.0,
            (0.046, 0.094),
            (0.03, 0.0, -0.097),
            -15.4698604685,
            axes,
        )
        shin = _cheetah_segment(
            f"{p}shin",
            (0.16, 0.0, -0.25),
            [(-1, 1), (-45, 45), (-1, 1)],
            (0.0, 90.0, 0.0),
            4.5,
            180.0,
            (0.046, 0.15),
            (-0.14, 0.0, -0.07),
            -116.3104324116,
            axes,
            (foot,),
        )
        return _cheetah_segment(
            f"{p}thigh",
            (-0.445, 0.12 * y, 0.0),
            [(-10, 0), (-60, 30), (-15, 5)],
            (120.0, 120.0, 120.0),
            6.0,
            240.0,
            (0.06, 0.145),
            (0.1, 0.0, -0.13),
            -217.7239621497,
            axes,
            (shin,),
        )
    foot = _cheetah_segment(
        f"{p}foot",
        (0.13, 0.0, -0.18),
        [(-1, 1), (-30, 30), (-20, 5)],
        (0.0, 30.0, 30.0),
        1.5,
        60.0,
        (0.046, 0.07),
        (0.045, 0.0, -0.07),
        -34.3774677078,
        axes,
    )
    shin = _cheetah_segment(
        f"{p}shin",
        (-0.14, 0.0, -0.24),
        [(-1, 1), (-50, 70), (-1, 1)],
        (0.0, 60.0, 0.0),
        3.0,
        120.0,
        (0.046, 0.106),
        (0.065, 0.0, -0.09),
        -34.3774677078,
        axes,
        (foot,),
    )
    return _cheetah_segment(f"{p}thigh", (0.4, 0.09 * y, 0.0), [(-15, 5), (-40, 60), (-20, 10)],
                            (120.0, 120.0, 120.0), 4.5, 180.0, (0.055, 0.133), (-0.07, 0.0, -0.12),
                            29.7938053468, axes, (shin,))  # fmt: skip


def _cheetah() -> Body:
    def cap(name, radius, fromto):
        return Geom(name, "capsule", (radius,), fromto=fromto, conaffinity=0, **_CHEETAH_CONTACT)

    def tail_geom(name, half, pos, deg):
        return Geom(name, "capsule", (0.04, half), pos=pos, quat=_about_y(deg), conaffinity=0, **_CHEETAH_CONTACT)

    tail = Limb(
        "upper_tail", (-0.445, 0.0, 0.0),
        _hinges("upper_tail", [(-20, 20), (-80, 80), (-1, 1)], (70.0, 70.0, 0.0),
                damping=3.5, stiffness=0.0, **_CHEETAH_JOINT),
        (tail_geom("upper_tail", 0.25, (-0.25, 0.0, 0.0), -90.0),
         tail_geom("lower_tail", 0.07, (-0.55, 0.0, 0.05), -45.0)),
    )  # fmt: skip
    torso = Limb(
        "torso", (0.0, 0.0, 0.7), (),
        (cap("torso1", 0.07, (0.4, -0.08, 0.0, 0.4, 0.08, 0.0)),
         cap("waist1", 0.06, (0.28, -0.07, -0.01, 0.28, 0.07, -0.01)),
         cap("waist2", 0.06, (0.14, -0.07, -0.01, 0.14, 0.07, -0.01)),
         cap("waist3", 0.06, (0.0, -0.06, -0.01, 0.0, 0.06, -0.01)),
         cap("waist4", 0.06, (-0.14, -0.06, -0.01, -0.14, 0.06, -0.01)),
         cap("waist5", 0.06, (-0.28, -0.06, -0.01, -0.28, 0.06, -0.01)),
         cap("butt", 0.09, (-0.445, -0.09, -0.02, -0.445, 0.09, -0.02)),
         Geom("head", "sphere", (0.09,), pos=(0.5, 0.0, 0.1), conaffinity=0, **_CHEETAH_CONTACT)),
        (tail, _cheetah_leg("right", "b"), _cheetah_leg("right", "f"),
         _cheetah_leg("left", "b"), _cheetah_leg("left", "f")),
    )  # fmt: skip
    floor = Geom("floor", "plane", (200.0, 200.0, 0.125), material="grid", **_CHEETAH_CONTACT)
    # No integrator in the published file: MuJoCo's default, Euler.
    return Body("cheetah_14_full", "cheetah", torso, timestep=0.01, integrator="Euler", floor=floor)


FULL_BODIES: dict[str, Body] = {b.family: b for b in (_hopper(), _walker(), _humanoid(), _cheetah())}
