"""Procedurally generated bodies: deterministic, valid, standing clear of the floor, stable."""

from __future__ import annotations

import math

import mujoco
import numpy as np
import pytest

from equirl.errors import ConfigError
from equirl.morphology.builder import build_model, to_xml
from equirl.morphology.generator import GeneratorConfig, main, random_bodies, random_body
from equirl.morphology.loader import load_mjcf, morphology_from_model

SEEDS = range(30)
UNIT_AXES = {tuple(float(s) * np.eye(3)[i]) for i in range(3) for s in (1, -1)}


def _morphology(body, max_limbs=None):
    return morphology_from_model(
        build_model(body), source=f"generator:{body.name}", name=body.name, family=body.family, max_limbs=max_limbs
    )


def _lowest_geom_z(model: mujoco.MjModel, data: mujoco.MjData) -> float:
    """Lowest point of the robot's capsules and spheres (the floor plane left out)."""
    lowest = math.inf
    for g in range(model.ngeom):
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_PLANE:
            continue
        radius, half = model.geom_size[g, 0], model.geom_size[g, 1]
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE:
            half = 0.0
        axis_z = data.geom_xmat[g].reshape(3, 3)[2, 2]  # world z of the capsule's own axis
        lowest = min(lowest, data.geom_xpos[g, 2] - abs(axis_z) * half - radius)
    return lowest


# ------------------------------------------------------------ determinism
def test_same_seed_same_body():
    assert random_body(3) == random_body(3)
    assert to_xml(random_body(3)) == to_xml(random_body(3))
    assert random_bodies(4, 11) == random_bodies(4, 11)
    # body i depends only on (seed, i): asking for more keeps the first ones
    assert random_bodies(6, 11)[:4] == random_bodies(4, 11)


def test_seeds_give_variety():
    bodies = [random_body(s) for s in SEEDS]
    assert len({repr(b) for b in bodies}) == len(bodies)  # frozen data: repr shows every number
    limb_counts = {len(b.limbs()) for b in bodies}
    assert len(limb_counts) >= 4, limb_counts
    assert len({len(b.hinges()) for b in bodies}) >= 5
    assert random_bodies(3, 1) != random_bodies(3, 2)


def test_names_and_family():
    assert [b.name for b in random_bodies(3, 7)] == ["random_7_0", "random_7_1", "random_7_2"]
    assert random_body(7).name == "random_7"
    assert random_body(7, name="mine").name == "mine"
    assert {b.family for b in random_bodies(5, 0)} == {"generated"}


# ---------------------------------------------------------- every body is valid
@pytest.mark.parametrize("seed", SEEDS)
def test_body_is_valid_and_stable(seed):
    config = GeneratorConfig()
    body = random_body(seed, config)
    model = build_model(body)
    morph = _morphology(body)
    graph = morph.graph

    # limb graph: torso plus legs, 1..3 hinges per limb, something to drive
    assert config.min_limbs <= graph.num_limbs <= config.max_limbs
    assert graph.num_limbs == len(body.limbs())
    hinge_counts = (graph.hinge_joint >= 0).sum(axis=1)
    assert hinge_counts[0] == 0 and np.all((1 <= hinge_counts[1:]) & (hinge_counts[1:] <= 3))
    assert graph.action_mask.any() and np.all(graph.action_mask[1:].any(axis=1))
    assert model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE

    # hinges: distinct local unit axes, ranges containing 0, finite nonzero motors
    for limb in body.limbs()[1:]:
        axes = [h.axis for h in limb.hinges]
        assert set(axes) <= UNIT_AXES and len({np.argmax(np.abs(a)) for a in axes}) == len(axes), limb.name
        for h in limb.hinges:
            assert h.range[0] < 0 < h.range[1], h.name
            assert h.damping > 0 and h.armature > 0
    assert any(h.gear > 0 for h in body.hinges())
    # limb types come from the names: every leg starts with a thigh
    names = [n for n in graph.limb_names[1:]]
    assert all(any(w in n for w in ("thigh", "shin", "foot")) for n in names)
    assert np.all(graph.limb_type[1:] >= 1)

    # physics settings like the benchmark bodies', plausible masses
    assert 0.002 <= model.opt.timestep <= 0.005
    assert model.opt.integrator in (mujoco.mjtIntegrator.mjINT_RK4, mujoco.mjtIntegrator.mjINT_EULER)
    assert 3.0 < model.body_subtreemass[1] < 150.0

    # at reset the lowest point is start_clearance above the floor, touching nothing
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    assert data.ncon == 0
    low, high = config.start_clearance
    assert low - 1e-3 <= _lowest_geom_z(model, data) <= high + 1e-3

    # 500 physics steps under random controls stay finite and stable
    rng = np.random.default_rng(seed)
    for step in range(500):
        if step % 4 == 0:
            data.ctrl[:] = rng.uniform(-1.0, 1.0, model.nu)
        mujoco.mj_step(model, data)
    assert np.isfinite(data.qpos).all() and np.isfinite(data.qvel).all()
    # MuJoCo resets a diverging simulation itself, so look at its warnings too
    assert data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number == 0
    assert data.qpos[2] > 0.0  # the torso has not sunk through the floor


def test_euler_config_is_stable():
    config = GeneratorConfig(integrator="Euler", timestep=0.005)
    for body in random_bodies(5, 3, config=config):
        model = build_model(body)
        assert model.opt.integrator == mujoco.mjtIntegrator.mjINT_EULER
        data = mujoco.MjData(model)
        rng = np.random.default_rng(0)
        for _ in range(500):
            data.ctrl[:] = rng.uniform(-1.0, 1.0, model.nu)
            mujoco.mj_step(model, data)
        assert np.isfinite(data.qvel).all() and data.warning[mujoco.mjtWarning.mjWARN_BADQACC].number == 0


def test_passive_hinges_keep_one_motor_per_limb():
    config = GeneratorConfig(passive_hinge_prob=1.0, hinges_per_limb=(3, 3))
    for body in random_bodies(5, 0, config=config):
        for limb in body.limbs()[1:]:
            assert sum(h.gear != 0 for h in limb.hinges) == 1, limb.name
        _morphology(body)  # the loader accepts the zero-gear motors


# ----------------------------------------------------------------- MJCF output
def test_cli_writes_loadable_mjcf(tmp_path, capsys):
    assert main(["--count", "3", "--seed", "5", "--out", str(tmp_path)]) == 0
    paths = sorted(tmp_path.glob("*.xml"))
    assert [p.name for p in paths] == ["random_5_0.xml", "random_5_1.xml", "random_5_2.xml"]
    assert str(paths[0]) in capsys.readouterr().out
    for path, body in zip(paths, random_bodies(3, 5)):
        loaded = load_mjcf(path)
        built = _morphology(body)
        assert loaded.name == body.name
        assert loaded.num_limbs == built.num_limbs == len(body.limbs())
        assert loaded.graph.limb_names == built.graph.limb_names
        np.testing.assert_array_equal(loaded.graph.action_mask, built.graph.action_mask)
        assert loaded.model.opt.timestep == pytest.approx(built.model.opt.timestep)


def test_cli_rejects_bad_arguments(tmp_path):
    with pytest.raises(SystemExit):
        main(["--count", "0", "--seed", "1", "--out", str(tmp_path)])


# ------------------------------------------------------------------- max_limbs
@pytest.mark.parametrize("cap", [2, 3, 4, 6])
def test_max_limbs_is_respected(cap):
    bodies = random_bodies(15, 0, max_limbs=cap)
    assert all(len(b.limbs()) <= cap for b in bodies)
    for body in bodies[:5]:
        _morphology(body, max_limbs=cap)  # the loader's own cap agrees


def test_max_limbs_above_config_changes_nothing():
    assert random_bodies(5, 2, max_limbs=50) == random_bodies(5, 2)


def test_envs_resolve_random_entry():
    from equirl.envs.bodies import resolve

    pairs = resolve("random:3:4", max_limbs=5)
    assert [m.name for m, _ in pairs] == ["random_4_0", "random_4_1", "random_4_2"]
    assert all(m.family == "generated" and m.num_limbs <= 5 for m, _ in pairs)


# ------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "field, value",
    [
        ("min_limbs", 1),
        ("max_limbs", 2.5),
        ("min_limbs", 10),  # more than max_limbs
        ("legs", (3, 2)),
        ("legs", (0, 2)),
        ("leg_segments", (1, 7)),
        ("hinges_per_limb", (0, 3)),
        ("hinges_per_limb", (1, 4)),
        ("segment_length", (-0.1, 0.3)),
        ("segment_radius", (0.05,)),
        ("torso_radius", (0.1, math.nan)),
        ("range_width_deg", (0.0, 90.0)),
        ("gear", (0.0, 100.0)),
        ("passive_hinge_prob", 1.5),
        ("damping", (-1.0, 1.0)),
        ("stiffness", (0.0, -5.0)),
        ("start_clearance", (0.3, 0.1)),
        ("timestep", 0.0),
        ("integrator", "leapfrog"),
        ("splay_deg", (10.0, 120.0)),
    ],
)
def test_bad_config_raises(field, value):
    with pytest.raises(ConfigError, match=field):
        GeneratorConfig(**{field: value})


def test_inconsistent_config_raises():
    # 9 limbs cannot be 2 legs of at most 2 segments
    with pytest.raises(ConfigError, match="legs"):
        GeneratorConfig(legs=(2, 2), leg_segments=(1, 2))
    with pytest.raises(ConfigError, match="segment_length"):
        GeneratorConfig(segment_length=(0.05, 0.3), segment_radius=(0.03, 0.05))


def test_bad_arguments_raise():
    with pytest.raises(ConfigError, match="max_limbs"):
        random_bodies(2, 0, max_limbs=1)
    with pytest.raises(ConfigError, match="count"):
        random_bodies(0, 0)
    with pytest.raises(ConfigError, match="seed"):
        random_body(-1)
    with pytest.raises(ConfigError, match="seed"):
        random_body(1.5)
    with pytest.raises(ConfigError, match="config"):
        random_body(1, config={"min_limbs": 3})
