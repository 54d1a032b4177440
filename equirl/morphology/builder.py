"""A `Body` (equirl.morphology.description) built on MuJoCo's MjSpec API.

`build_spec(body)` turns a body into a `mujoco.MjSpec` on a lit, textured
floor, with one motor per hinge; `build_model` compiles it and `to_xml` writes
it as self-contained MJCF (no includes, no files).
"""

from __future__ import annotations

import math

import mujoco

from equirl.errors import MorphologyError
from equirl.morphology.description import (
    CONES,
    DEFAULT_SOLIMP,
    DEFAULT_SOLREF,
    INTEGRATORS,
    Body,
    Geom,
    Limb,
)

_GEOM_ENUM = {
    "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE,
    "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
    "plane": mujoco.mjtGeom.mjGEOM_PLANE,
}


def build_spec(body: Body) -> mujoco.MjSpec:
    """An MjSpec of `body` on a lit, textured floor, with one motor per hinge."""
    if not isinstance(body, Body):
        raise MorphologyError(f"build_spec wants a Body, got {type(body).__name__}")
    body.validate()

    spec = mujoco.MjSpec()
    spec.modelname = body.name
    spec.compiler.degree = False  # every angle here is in radians
    spec.compiler.autolimits = True
    spec.option.timestep = body.timestep
    spec.option.integrator = INTEGRATORS[body.integrator]
    spec.option.cone = CONES[body.cone]  # elliptic unless asked: see Body.cone
    _add_scenery(spec)

    floor = spec.worldbody.add_geom(name=body.floor.name)
    _set_geom(floor, body.floor)

    # The torso floats on a free joint; the camera follows the body's centre of mass.
    torso = spec.worldbody.add_body(name=body.root.name, pos=list(body.root.pos))
    torso.add_freejoint(name="root")
    # Side-on view from -y, tilted down by 15 degrees, aimed half way between
    # the torso's start height and the floor; image up is world +z.
    d, tilt = body.camera_distance, math.radians(15.0)
    aim_z = -0.5 * body.root.pos[2]
    torso.add_camera(
        name="track",
        mode=mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM,
        pos=[0.0, -d * math.cos(tilt), aim_z + d * math.sin(tilt)],
        quat=_quat_about_x(math.pi / 2 - tilt),
    )
    _add_limb_contents(torso, body.root)
    for child in body.root.children:
        _add_limb(torso, child)

    for hinge in body.hinges():
        spec.add_actuator(
            name=hinge.name,
            target=hinge.name,
            trntype=mujoco.mjtTrn.mjTRN_JOINT,
            gear=[hinge.gear, 0, 0, 0, 0, 0],
            ctrlrange=[-1.0, 1.0],
            ctrllimited=mujoco.mjtLimited.mjLIMITED_TRUE,
        )
    return spec


def build_model(body: Body) -> mujoco.MjModel:
    """The compiled MuJoCo model of `body`."""
    spec = build_spec(body)
    try:
        return spec.compile()
    except ValueError as err:
        raise MorphologyError(f"body {body.name!r}: MuJoCo could not compile it: {err}") from None


def to_xml(body: Body) -> str:
    """`body` as self-contained MJCF text."""
    spec = build_spec(body)
    try:
        spec.compile()  # to_xml needs a compiled spec
    except ValueError as err:
        raise MorphologyError(f"body {body.name!r}: MuJoCo could not compile it: {err}") from None
    return spec.to_xml()


def _quat_about_x(angle: float) -> list[float]:
    return [math.cos(angle / 2), math.sin(angle / 2), 0.0, 0.0]


def _add_scenery(spec: mujoco.MjSpec) -> None:
    """Headlight, sky, a checkered floor material, the robot's material and a sun."""
    spec.visual.headlight.ambient = [0.4, 0.4, 0.4]
    spec.visual.headlight.diffuse = [0.8, 0.8, 0.8]
    spec.visual.headlight.specular = [0.1, 0.1, 0.1]
    spec.visual.map.znear = 0.01
    spec.visual.quality.shadowsize = 2048

    spec.add_texture(
        name="skybox", type=mujoco.mjtTexture.mjTEXTURE_SKYBOX, builtin=mujoco.mjtBuiltin.mjBUILTIN_GRADIENT,
        rgb1=[0.4, 0.6, 0.8], rgb2=[0.0, 0.0, 0.0], width=800, height=800,
        mark=mujoco.mjtMark.mjMARK_RANDOM, markrgb=[1.0, 1.0, 1.0],
    )  # fmt: skip
    spec.add_texture(
        name="grid", type=mujoco.mjtTexture.mjTEXTURE_2D, builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
        rgb1=[0.1, 0.2, 0.3], rgb2=[0.2, 0.3, 0.4], width=300, height=300,
        mark=mujoco.mjtMark.mjMARK_EDGE, markrgb=[0.2, 0.3, 0.4],
    )  # fmt: skip
    grid = spec.add_material(name="grid", texrepeat=[1.0, 1.0], texuniform=True, reflectance=0.2)
    grid.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = "grid"
    spec.add_material(name="self", rgba=[0.7, 0.5, 0.3, 1.0])

    spec.worldbody.add_light(
        name="sun", type=mujoco.mjtLightType.mjLIGHT_DIRECTIONAL, pos=[0.0, 0.0, 1.3],
        dir=[-0.5547, 0.0, -0.83205], diffuse=[1.0, 1.0, 1.0], specular=[0.1, 0.1, 0.1],
        cutoff=100.0, exponent=1.0, castshadow=True,
    )  # fmt: skip


def _add_limb(parent, limb: Limb) -> None:
    body = parent.add_body(name=limb.name, pos=list(limb.pos))
    _add_limb_contents(body, limb)
    for child in limb.children:
        _add_limb(body, child)


def _add_limb_contents(body, limb: Limb) -> None:
    for h in limb.hinges:
        body.add_joint(
            name=h.name, type=mujoco.mjtJoint.mjJNT_HINGE, axis=list(h.axis), pos=list(h.pos),
            range=list(h.range), limited=mujoco.mjtLimited.mjLIMITED_TRUE,
            damping=h.damping, stiffness=h.stiffness, armature=h.armature,
            solref_limit=_padded(h.solreflimit, DEFAULT_SOLREF),
            solimp_limit=_padded(h.solimplimit, DEFAULT_SOLIMP),
        )  # fmt: skip
    for g in limb.geoms:
        _set_geom(body.add_geom(name=g.name), g)


def _set_geom(spec_geom, g: Geom) -> None:
    spec_geom.type = _GEOM_ENUM[g.type]
    spec_geom.size = list(g.size) + [0.0] * (3 - len(g.size))
    if g.fromto is not None:
        spec_geom.fromto = list(g.fromto)
    else:
        spec_geom.pos = list(g.pos)
        spec_geom.quat = list(g.quat)
    spec_geom.friction = list(g.friction)
    spec_geom.condim = g.condim
    spec_geom.contype = g.contype
    spec_geom.conaffinity = g.conaffinity
    spec_geom.density = g.density
    spec_geom.solref = _padded(g.solref, DEFAULT_SOLREF)
    spec_geom.solimp = _padded(g.solimp, DEFAULT_SOLIMP)
    spec_geom.margin = g.margin
    spec_geom.material = g.material


def _padded(values: tuple[float, ...], defaults: tuple[float, ...]) -> list[float]:
    """Fill trailing entries MJCF lets one leave out with MuJoCo's defaults."""
    return list(values) + list(defaults[len(values) :])
