"""The generic MJCF loader: files written by others load; bad files fail clearly."""

import re

import pytest

from equirl.errors import MorphologyError
from equirl.morphology.loader import load_mjcf
from helpers.common import SHARED, gymnasium_ant

REFERENCES = sorted(SHARED.glob("envs/*/*.xml"))


@pytest.mark.skipif(not REFERENCES, reason="../shared/sgrl3d is absent")
@pytest.mark.parametrize("path", REFERENCES, ids=lambda p: p.stem)
def test_loads_reference_bodies_unchanged(path):
    morph = load_mjcf(path)
    graph = morph.graph
    # The number in a 3D-SGRL name is its limb count.
    assert graph.num_limbs == int(re.search(r"_(\d+)_", path.stem).group(1))
    assert graph.parent[0] == -1 and all(0 <= p < i for i, p in enumerate(graph.parent[1:], 1))
    assert (graph.hinge_joint[1:] >= 0).any(axis=1).all()  # every limb but the torso has a hinge
    # Gear-0 motors exist in these files and must be masked out, not dropped.
    gears = morph.model.actuator_gear[:, 0]
    assert graph.action_mask.sum() == (gears != 0).sum()


def test_loads_gymnasium_ant():
    morph = load_mjcf(gymnasium_ant())
    assert morph.graph.num_limbs == 9  # torso + 4 hips + 4 ankles (the welded leg roots are not limbs)
    assert morph.graph.action_mask.sum() == 8
    assert list(morph.graph.parent) == [-1, 0, 1, 0, 3, 0, 5, 0, 7]


ROBOT = """<mujoco><worldbody><geom type="plane" size="5 5 .1"/>
<body name="torso" pos="0 0 1">{root_joint}<geom type="capsule" size=".05 .2"/>
  <body name="thigh" pos="0 0 -.2">{joints}<geom type="capsule" size=".05 .2"/></body>
</body></worldbody><actuator>{actuators}</actuator></mujoco>"""


def _write(tmp_path, text, name="body.xml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _robot(
    root_joint='<freejoint name="root"/>',
    joints='<joint name="h" type="hinge" axis="0 1 0"/>',
    actuators='<motor joint="h" gear="50"/>',
):
    return ROBOT.format(root_joint=root_joint, joints=joints, actuators=actuators)


def test_a_minimal_valid_robot_loads(tmp_path):
    morph = load_mjcf(_write(tmp_path, _robot()))
    assert morph.graph.limb_names == ("torso", "thigh")


@pytest.mark.parametrize(
    "text, problem",
    [
        ("<mujoco><worldbody><body>", "could not load"),
        (_robot(root_joint=""), "free joint"),
        (_robot(actuators=""), "no actuated hinge"),
        (_robot(actuators='<motor joint="h" gear="0"/>'), "no actuated hinge"),
        (_robot(joints='<joint name="h" type="ball"/>', actuators=""), "ball joint"),
        (_robot(joints='<joint name="h" type="slide" axis="0 0 1"/>', actuators=""), "slide joint"),
        (
            _robot(
                joints="".join(f'<joint name="h{i}" type="hinge" axis="0 1 0"/>' for i in range(4)),
                actuators='<motor joint="h0" gear="1"/>',
            ),
            "4 hinges",
        ),
    ],
    ids=["malformed", "no-free-root", "no-actuator", "gear-zero", "ball", "slide", "four-hinges"],
)
def test_bad_bodies_fail_with_one_clear_error(tmp_path, text, problem):
    path = _write(tmp_path, text)
    with pytest.raises(MorphologyError) as err:
        load_mjcf(path)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_missing_file(tmp_path):
    with pytest.raises(MorphologyError, match="no such MJCF file"):
        load_mjcf(tmp_path / "nowhere.xml")


def test_too_many_limbs(tmp_path):
    path = _write(tmp_path, _robot())
    with pytest.raises(MorphologyError, match="2 limbs is more than the configured maximum of 1"):
        load_mjcf(path, max_limbs=1)


def test_a_file_named_after_a_published_body_runs_the_published_task(tmp_path):
    """The builder's own file of hopper_5_full, loaded through the MJCF path under either of
    the published names, gets the builder's task numbers (its height and tilt limits, no
    heading reward); under any other name, the generic ones."""
    from equirl.envs.bodies import resolve
    from equirl.morphology.builder import to_xml
    from equirl.morphology.sgrl import sgrl_body

    text = to_xml(sgrl_body("hopper_5_full"))
    (_, built), *_ = resolve("hopper_5_full", max_limbs=6)
    for name in ("hopper_5_full.xml", "3d_hopper_5_full.xml"):
        (_, loaded), *_ = resolve(str(_write(tmp_path, text, name)), max_limbs=6)
        assert loaded == built and loaded.max_tilt == 1.0 and loaded.heading_weight == 0.0
    (_, other), *_ = resolve(str(_write(tmp_path, text, "my_hopper.xml")), max_limbs=6)
    assert other.max_tilt == float("inf") and other.heading_weight == 1.0
