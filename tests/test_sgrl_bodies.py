"""The 29 3D-SGRL bodies built by equirl against the published MJCF files.

The reference files live outside the repository (../shared/sgrl3d); the
comparisons skip cleanly without them. The checks of the shipped envs/ files,
of the named suites and of the builder's error handling always run.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import mujoco
import numpy as np
import pytest

from equirl.errors import MorphologyError
from equirl.morphology.builder import build_model, to_xml
from equirl.morphology.description import Body, Geom, Hinge, Limb
from equirl.morphology.sgrl import (
    BODY_NAMES,
    FAMILIES,
    SUITES,
    TRAIN,
    ZERO_SHOT,
    reference_path,
    sgrl_body,
    task_facts,
)
from equirl.morphology.write_envs import env_path

REPO = Path(__file__).resolve().parents[1]
SGRL_ROOT = REPO.parent / "shared" / "sgrl3d"
needs_reference = pytest.mark.skipif(not SGRL_ROOT.is_dir(), reason=f"reference bodies not found at {SGRL_ROOT}")


def _names(model: mujoco.MjModel, kind: str, count: int) -> list[str]:
    return [getattr(model, kind)(i).name for i in range(count)]


def _tree(model: mujoco.MjModel) -> list[tuple[str, str]]:
    """(body, parent body) for every body but the world, in body order."""
    return [(model.body(b).name, model.body(model.body_parentid[b]).name) for b in range(1, model.nbody)]


def _hinges(model: mujoco.MjModel) -> dict[str, int]:
    return {model.joint(j).name: j for j in range(model.njnt) if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE}


def _gear_by_joint(model: mujoco.MjModel) -> dict[str, float]:
    return {model.joint(model.actuator_trnid[a, 0]).name: float(model.actuator_gear[a, 0]) for a in range(model.nu)}


# ------------------------------------------------------------ against the paper
@needs_reference
@pytest.mark.parametrize("name", BODY_NAMES)
def test_body_matches_reference(name):
    ours = build_model(sgrl_body(name))
    ref = mujoco.MjModel.from_xml_path(str(reference_path(name, SGRL_ROOT)))

    # same limb tree, in the same depth-first order, torso floating on "root"
    assert _tree(ours) == _tree(ref)
    assert ours.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE and ours.joint(0).name == "root"
    np.testing.assert_allclose(ours.body_pos, ref.body_pos, atol=1e-6)  # start positions

    # hinges: unit axis, range in radians, anchor, damping, stiffness, armature
    ours_h, ref_h = _hinges(ours), _hinges(ref)
    assert list(ours_h) == list(ref_h)
    for joint, j in ours_h.items():
        r = ref_h[joint]
        assert ours.jnt_bodyid[j] == ref.jnt_bodyid[r], joint
        axis = ref.jnt_axis[r] / np.linalg.norm(ref.jnt_axis[r])
        np.testing.assert_allclose(ours.jnt_axis[j], axis, atol=1e-6, err_msg=joint)
        np.testing.assert_allclose(ours.jnt_range[j], ref.jnt_range[r], atol=1e-4, err_msg=joint)
        np.testing.assert_allclose(ours.jnt_pos[j], ref.jnt_pos[r], atol=1e-6, err_msg=joint)
        assert ours.jnt_limited[j] and ref.jnt_limited[r], joint
        d, rd = ours.jnt_dofadr[j], ref.jnt_dofadr[r]
        got = (ours.dof_damping[d], ours.jnt_stiffness[j], ours.dof_armature[d])
        np.testing.assert_allclose(
            got, (ref.dof_damping[rd], ref.jnt_stiffness[r], ref.dof_armature[rd]), err_msg=joint
        )

    # one motor per hinge, same gear (matched by joint), ctrl in [-1, 1]
    assert ours.nu == len(ours_h)
    assert _gear_by_joint(ours) == pytest.approx(_gear_by_joint(ref))
    assert np.all(ours.actuator_ctrllimited) and np.all(ours.actuator_ctrlrange == [-1.0, 1.0])

    # masses within 5% (they are in fact equal), contact parameters of every geom
    np.testing.assert_allclose(ours.body_mass, ref.body_mass, rtol=0.05)
    assert _names(ours, "geom", ours.ngeom) == _names(ref, "geom", ref.ngeom)
    for field in ("geom_friction", "geom_condim", "geom_contype", "geom_conaffinity", "geom_solref", "geom_solimp"):
        np.testing.assert_allclose(getattr(ours, field), getattr(ref, field), atol=1e-9, err_msg=field)

    # physics step; friction cones are elliptic on purpose (the references are pyramidal)
    assert ours.opt.timestep == pytest.approx(ref.opt.timestep)
    assert ours.opt.integrator == ref.opt.integrator
    assert ours.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC


# ------------------------------------------------------------ shipped env files
_COMPARED_FIELDS = (
    "body_parentid", "body_pos", "body_quat", "body_mass", "body_inertia",
    "jnt_type", "jnt_bodyid", "jnt_pos", "jnt_axis", "jnt_range", "jnt_stiffness", "jnt_solref", "jnt_solimp",
    "dof_damping", "dof_armature",
    "geom_type", "geom_bodyid", "geom_size", "geom_pos", "geom_quat", "geom_friction", "geom_condim",
    "geom_contype", "geom_conaffinity", "geom_solref", "geom_solimp", "geom_margin",
    "actuator_trnid", "actuator_gear", "actuator_ctrlrange", "cam_pos", "cam_quat",
)  # fmt: skip


@pytest.mark.parametrize("name", BODY_NAMES)
def test_envs_file_is_current(name):
    """envs/<family>/<name>.xml loads and equals what the builder builds now."""
    path = env_path(name, REPO / "envs")
    assert path.is_file(), f"{path} missing: run python -m equirl.morphology.write_envs"
    shipped = mujoco.MjModel.from_xml_path(str(path))
    built = build_model(sgrl_body(name))
    for kind, count in (("body", "nbody"), ("joint", "njnt"), ("geom", "ngeom"), ("actuator", "nu")):
        assert _names(shipped, kind, getattr(shipped, count)) == _names(built, kind, getattr(built, count)), kind
    for field in _COMPARED_FIELDS:
        # MJCF text keeps 6 significant digits, hence the tolerance
        np.testing.assert_allclose(getattr(shipped, field), getattr(built, field), rtol=1e-5, atol=1e-6, err_msg=field)
    for field in ("timestep", "integrator", "cone"):
        assert getattr(shipped.opt, field) == getattr(built.opt, field), field


# ------------------------------------------------------------------- the sets
def test_suite_sizes():
    assert len(BODY_NAMES) == len(set(BODY_NAMES)) == 29
    assert {f: len(n) for f, n in FAMILIES.items()} == {"hopper": 3, "walker": 8, "humanoid": 8, "cheetah": 10}
    assert len(SUITES["WHH"]) == 15 and len(SUITES["CWHH"]) == 23
    assert set(SUITES["CWHH"]) == {n for f in TRAIN for n in TRAIN[f]}
    assert {f: len(SUITES[f]) for f in TRAIN} == {"hopper": 3, "walker": 6, "humanoid": 6, "cheetah": 8}
    for family in ("walker", "humanoid", "cheetah"):
        assert len(SUITES[f"{family}_zero_shot"]) == 2
        assert not set(ZERO_SHOT[family]) & set(SUITES["CWHH"])
    for name in BODY_NAMES:
        body = sgrl_body(name)
        assert body.name == name and name.startswith(body.family)
        assert len(body.limbs()) == int(name.split("_")[1])  # the number in a name is the limb count


def test_unknown_body_lists_valid_names():
    with pytest.raises(MorphologyError, match="walker_7_full"):
        sgrl_body("nope")
    with pytest.raises(MorphologyError):
        task_facts("nope")


def test_task_facts():
    assert task_facts("hopper_4_lower_shin").h_min == 0.6
    assert task_facts("hopper_5_full").heading_reward is False
    assert task_facts("walker_4_right_knee_left_foot").height_band == (0.664, 1.864)
    assert task_facts("humanoid_9_full").height_band == (0.834625, 1.834625)
    cheetah = task_facts("cheetah_11_leftfleg")
    assert cheetah.alive_bonus == 0.0 and cheetah.qpos_noise == 0.1 and cheetah.qvel_noise_normal
    assert cheetah.height_limbs == ("torso", "right_fthigh")  # its left front leg is gone


# ------------------------------------------------------------ builder checks
def _tiny(**limb_changes) -> Body:
    hinge = Hinge("leg_x", (1, 0, 0), (-0.5, 0.5), gear=10.0)
    leg = Limb("leg", (0, 0, -0.2), (hinge,), (Geom("leg_geom", "capsule", (0.05, 0.2)),))
    leg = dataclasses.replace(leg, **limb_changes)
    torso = Limb("torso", (0, 0, 1.0), (), (Geom("torso_geom", "sphere", (0.1,)),), (leg,))
    return Body("tiny", "generated", torso, timestep=0.002, integrator="RK4")


def test_builder_rejects_bad_bodies():
    model = build_model(_tiny())
    assert model.nu == 1 and model.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC
    assert "<mujoco" in to_xml(_tiny())
    h = Hinge("leg_x", (1, 0, 0), (-0.5, 0.5), gear=10.0)
    cases = {
        "more than 3": dict(hinges=tuple(dataclasses.replace(h, name=f"h{i}") for i in range(4))),
        "zero-length axis": dict(hinges=(dataclasses.replace(h, axis=(0, 0, 0)),)),
        "exceeds upper bound": dict(hinges=(dataclasses.replace(h, range=(0.5, -0.5)),)),
        "duplicate limb name": dict(name="torso"),
        "duplicate joint name": dict(hinges=(h, h)),
        "no geoms": dict(geoms=()),
    }
    for problem, change in cases.items():
        with pytest.raises(MorphologyError, match=f"'tiny'.*{problem}"):
            _tiny(**change)
    with pytest.raises(MorphologyError, match="integrator"):
        dataclasses.replace(_tiny(), integrator="leapfrog")


def test_without_removes_subtrees_and_reattaches():
    full = sgrl_body("walker_7_full")
    assert full.without(["right_thigh"]).limb_names == ("torso", "left_thigh", "left_shin", "left_foot")
    hopper = sgrl_body("hopper_5_full").without(["shin"], reattach={"foot": (0.065, 0, -0.45)})
    assert hopper.parents() == {"torso": None, "thigh": "torso", "foot": "thigh"}
    assert hopper.limb("foot").pos == (0.065, 0.0, -0.45)
    with pytest.raises(MorphologyError, match="torso"):
        full.without(["torso"])
    with pytest.raises(MorphologyError, match="no limb"):
        full.without(["tail"])
    assert math.isclose(sgrl_body("hopper_3_shin").root.pos[2], 1.25)


def test_the_published_physics_option_gives_every_body_the_published_contacts():
    """env.isotropic_friction=false reads the published physics: a body built by name gets the
    published pyramidal cones and keeps its frictionless condim-1 geoms, as its file would;
    the default is elliptic cones with those geoms at condim 3."""
    from equirl.envs.bodies import resolve

    ref = mujoco.MjModel.from_xml_path(str(reference_path("hopper_5_full", SGRL_ROOT))) if SGRL_ROOT.is_dir() else None
    ((ours, _),) = resolve("hopper_5_full", max_limbs=8)
    ((published, _),) = resolve("hopper_5_full", max_limbs=8, isotropic_friction=False)
    assert ours.model.opt.cone == mujoco.mjtCone.mjCONE_ELLIPTIC and not np.any(ours.model.geom_condim == 1)
    assert published.model.opt.cone == mujoco.mjtCone.mjCONE_PYRAMIDAL and np.any(published.model.geom_condim == 1)
    if ref is not None:
        assert published.model.opt.cone == ref.opt.cone
        np.testing.assert_array_equal(published.model.geom_condim, ref.geom_condim)
