"""An SGRL body made planar, for gymnasium's own 2D task: is it the body or our environment?

Issue 15, item 5. The published walker_7_full is a 3D version of gymnasium's Walker2d with its
own build (a torso of 10.7 kg against Walker2d's 3.7, thicker thighs, feet of friction 0.9
against 1.9). This writes its MJCF as a planar body gymnasium's Walker2d-v5 (or Hopper-v5)
can load: the free root becomes gymnasium's rootx / rootz / rooty joints (rootz's reference
at the torso's height, so qpos[1] is the torso's height as there), and every x and z hinge
goes with its motor, so the y hinges and their motors are the body's whole action space. Then
our update code trains on it through gymnasium's own reward, termination and observation:

    python benchmarks/planar_body.py walker_7_full results/reference_gym/bodies/walker_7_full_planar.xml
    python benchmarks/reference_gym.py --task Walker2d-v5 \
        --env-kwarg "xml_file='./results/reference_gym/bodies/walker_7_full_planar.xml'"

`--lock-side-hinges` writes the other half of that comparison: the body still free in 3D for
our environment, its x and z hinges locked and their motors off.

`--free-root-damping D` writes the step between the two, for gymnasium's task again: the planar
body given back the free root's other three degrees of freedom (a sideways slide, then roll and
yaw hinges after gymnasium's rooty, so qpos[1] and qpos[2] stay the height and pitch gymnasium's
termination reads), roll damped by D and yaw by D times its inertia over the roll's, as our
environment's planar aid (`training_torso_damping_axes=planar`) damps the free root. If this
body falls where our planar proxy does, the free root is what separates them. `--free-root-dofs`
gives back only some of the three; `--keep-side-hinges` with D = 0 puts the whole 3D body (free
root undamped, every motor) into gymnasium's task, a check of the 3D walker without our
environment in the way.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np

from equirl.envs.torso_damping import relative_inertia
from equirl.errors import ConfigError
from equirl.morphology.sgrl import reference_path


def _insert_root_joints(torso: ET.Element, at: int, joints: list[dict]) -> None:
    """Unlimited, undamped, armature-free root joints (gymnasium's kind) into `torso` from child `at` on."""
    for offset, attrs in enumerate(joints):
        joint = ET.Element("joint", dict(attrs, pos="0 0 0", limited="false", armature="0", damping="0", stiffness="0"))
        torso.insert(at + offset, joint)


def planar_xml(source: Path, keep_side_hinges: bool = False) -> str:
    """The MJCF text of `source` with its free root replaced by x / z slides and a y hinge,
    and every hinge (and motor) other than the *_y ones removed (or kept: keep_side_hinges)."""
    tree = ET.parse(source)
    root = tree.getroot()
    torso = root.find("./worldbody/body")
    free = torso.find("joint") if torso is not None else None
    if free is None or free.get("type") != "free":
        raise ConfigError(f"{source}: expected a torso with a free joint as the first body")
    height = torso.get("pos", "0 0 0").split()[2]
    at = list(torso).index(free)
    torso.remove(free)
    planar = [
        dict(name="rootx", type="slide", axis="1 0 0"),
        dict(name="rootz", type="slide", axis="0 0 1", ref=height),
        dict(name="rooty", type="hinge", axis="0 1 0"),
    ]
    _insert_root_joints(torso, at, planar)
    dropped = set()
    roots = {attrs["name"] for attrs in planar}
    for body in torso.iter("body"):  # the torso too, whose root joints stay
        for joint in list(body.findall("joint")):
            side = joint.get("name") not in roots and not joint.get("name", "").endswith("_y")
            if side and not keep_side_hinges:
                dropped.add(joint.get("name"))
                body.remove(joint)
    actuators = root.find("actuator")
    for motor in list(actuators if actuators is not None else []):
        if motor.get("joint") in dropped:
            actuators.remove(motor)
    return ET.tostring(root, encoding="unicode")


FREE_ROOT_DOFS = ("side", "roll", "yaw")


def free_root_xml(
    source: Path, damping: float, dofs: tuple[str, ...] = FREE_ROOT_DOFS, keep_side_hinges: bool = False
) -> str:
    """`planar_xml(source)` with a side slide and roll and yaw hinges (or those of them named in
    `dofs`) added after rooty, damped as our environment's planar aid damps the free root's roll
    and yaw (each by its own inertia). keep_side_hinges with damping 0: the whole 3D body, free
    root and every motor, in gymnasium's Walker2d task."""
    unknown = set(dofs) - set(FREE_ROOT_DOFS)
    if unknown or not dofs:
        raise ConfigError(f"free-root dofs {sorted(unknown) or '(none)'}: expected some of {FREE_ROOT_DOFS}")
    root = ET.fromstring(planar_xml(source, keep_side_hinges))
    torso = root.find("./worldbody/body")
    at = list(torso).index(next(j for j in torso.findall("joint") if j.get("name") == "rooty")) + 1
    axes = dict(side=("slide", "0 1 0"), roll=("hinge", "1 0 0"), yaw=("hinge", "0 0 1"))
    _insert_root_joints(torso, at, [dict(name=f"root{dof}", type=axes[dof][0], axis=axes[dof][1]) for dof in axes])
    # Damping scaled as the planar aid scales it, by each hinge's inertia over the roll's, read
    # with all three given back (so the reference is the 3D root's roll even without a roll hinge).
    model = mujoco.MjModel.from_xml_string(ET.tostring(root, encoding="unicode"))
    hinges = [model.jnt_dofadr[model.joint(f"root{dof}").id] for dof in ("roll", "yaw")]
    scale = dict(zip(("roll", "yaw"), relative_inertia(model, np.asarray(hinges))))
    for dof in FREE_ROOT_DOFS:
        joint = next(j for j in torso.findall("joint") if j.get("name") == f"root{dof}")
        if dof not in dofs:
            torso.remove(joint)
        elif dof in scale:
            joint.set("damping", f"{damping * scale[dof]:.6g}")
    return ET.tostring(root, encoding="unicode")


def side_locked_xml(source: Path, half_range: float = 1e-4) -> str:
    """The MJCF text of `source`, still free in 3D, with every hinge other than the *_y ones
    locked (range +-half_range) and its motor at gear 0: our environment's planar tests,
    with rigid side joints instead of passive ones."""
    tree = ET.parse(source)
    root = tree.getroot()
    locked = set()
    for joint in root.find("worldbody").iter("joint"):  # not the <default> class's
        if joint.get("type", "hinge") == "hinge" and not joint.get("name", "").endswith("_y"):
            joint.set("range", f"{-half_range} {half_range}")
            joint.set("limited", "true")
            locked.add(joint.get("name"))
    for motor in root.iter():
        if motor.get("joint") in locked and motor.get("gear") is not None:
            motor.set("gear", "0 0 0 0 0 0")
    return ET.tostring(root, encoding="unicode")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("body", help="a published body's name, e.g. walker_7_full")
    parser.add_argument("out", type=Path)
    parser.add_argument("--root", type=Path, default=Path("../shared/sgrl3d"), help="the published files' folder")
    parser.add_argument(
        "--lock-side-hinges",
        action="store_true",
        help="instead: keep the free root (for our environment) and lock every x and z hinge, motor at gear 0",
    )
    parser.add_argument(
        "--free-root-damping",
        type=float,
        default=None,
        help="instead: the planar body for gymnasium with the free root's side slide, roll and yaw added, "
        "roll and yaw damped by this much (our planar aid's setting, e.g. 200)",
    )
    parser.add_argument(
        "--keep-side-hinges",
        action="store_true",
        help="with --free-root-damping (0 for the plain 3D body): keep every x and z hinge and its motor",
    )
    parser.add_argument(
        "--free-root-dofs",
        default=",".join(FREE_ROOT_DOFS),
        help="with --free-root-damping: which of side, roll, yaw to give back (comma-separated)",
    )
    args = parser.parse_args(argv)
    source = reference_path(args.body, args.root)
    if not source.is_file():
        raise SystemExit(f"{source}: no published file for {args.body!r} (set --root)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.free_root_damping is not None:
        try:
            text = free_root_xml(
                source, args.free_root_damping, tuple(args.free_root_dofs.split(",")), args.keep_side_hinges
            )
        except ConfigError as error:
            raise SystemExit(f"--free-root-dofs: {error}") from None
    else:
        text = side_locked_xml(source) if args.lock_side_hinges else planar_xml(source)
    args.out.write_text(text + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
