"""Procedurally generated legged bodies for training on many morphologies.

A generated body is a horizontal capsule torso on a free joint with legs hung
around it. Each leg is a chain of one to four capsule segments named, from the
torso down, "thigh", "shin", ("lower_shin",) "foot", so the environment's
limb-type one-hot applies to them as to the benchmark bodies. As in 3D-SGRL,
limb frames are not rotated: every hinge turns about one of its limb's local
x, y or z axes (mirrored on the left side), and each limb carries a random
subset of one to three of them.

Bodies are deterministic in their seed:

    random_body(7)                      # one body, named "random_7"
    random_bodies(4, 7, max_limbs=6)    # "random_7_0" ... "random_7_3", at most 6 limbs

and the command line writes them as MJCF:

    python -m equirl.morphology.generator --count 8 --seed 0 --out generated/
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import operator
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from equirl.errors import ConfigError
from equirl.morphology.builder import to_xml
from equirl.morphology.description import INTEGRATORS, Body, Geom, Hinge, Limb

FAMILY = "generated"

# Hinge axes of right-side and left-side limbs; the left ones mirror x and z
# through the sagittal (x-z) plane, as the benchmark bodies do.
_RIGHT_AXES = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, 1.0))
_LEFT_AXES = ((-1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))

# Segment names along a leg with 1, 2, 3 or 4 segments.
_SEGMENT_ROLES = {
    1: ("thigh",),
    2: ("thigh", "shin"),
    3: ("thigh", "shin", "foot"),
    4: ("thigh", "shin", "lower_shin", "foot"),
}
MAX_LEG_SEGMENTS = max(_SEGMENT_ROLES)

_DIGITS = 4  # numbers are rounded so that the MJCF text stays readable


# ---------------------------------------------------------------------- config
@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """What the generator may draw. Pairs are inclusive (low, high) ranges.

    Lengths are metres, angles degrees. Limb counts include the torso. Leg
    angles are measured from straight down, positive tilting away from the
    torso: the thigh by `splay_deg`, middle segments by `bend_deg` and the
    last segment of a leg of three or more by `foot_deg`.
    """

    min_limbs: int = 3
    max_limbs: int = 9
    legs: tuple[int, int] = (2, 4)  # branches hung on the torso
    leg_segments: tuple[int, int] = (1, 3)  # limbs per leg
    hinges_per_limb: tuple[int, int] = (1, 3)
    torso_half_length: tuple[float, float] = (0.1, 0.3)
    torso_radius: tuple[float, float] = (0.06, 0.1)
    segment_length: tuple[float, float] = (0.2, 0.45)
    segment_radius: tuple[float, float] = (0.035, 0.06)
    splay_deg: tuple[float, float] = (10.0, 60.0)
    bend_deg: tuple[float, float] = (-20.0, 30.0)
    foot_deg: tuple[float, float] = (45.0, 90.0)
    yaw_jitter_deg: float = 15.0  # how far legs stray from evenly spaced headings
    range_width_deg: tuple[float, float] = (40.0, 120.0)  # hinge range width; it always contains 0
    gear: tuple[float, float] = (50.0, 150.0)
    passive_hinge_prob: float = 0.0  # chance a hinge gets gear 0 (one per limb always stays driven)
    damping: tuple[float, float] = (0.5, 2.0)
    stiffness: tuple[float, float] = (0.0, 0.0)  # springs to the zero pose (none, as in walker and hopper)
    armature: tuple[float, float] = (0.02, 0.1)
    density: float = 1000.0
    friction: float = 0.9  # sliding friction of the body's geoms
    start_clearance: tuple[float, float] = (0.05, 0.2)  # lowest point above the floor at reset
    timestep: float = 0.004
    integrator: str = "RK4"

    def __post_init__(self):
        # Lists are welcome where pairs are expected.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, list):
                object.__setattr__(self, field.name, tuple(value))
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError, naming the field, for any value out of range."""
        _integer("min_limbs", self.min_limbs, 2, None)
        _integer("max_limbs", self.max_limbs, 2, None)
        if self.min_limbs > self.max_limbs:
            raise ConfigError(f"GeneratorConfig.min_limbs={self.min_limbs} exceeds max_limbs={self.max_limbs}")
        _pair("legs", self.legs, 1, None, integer=True)
        _pair("leg_segments", self.leg_segments, 1, MAX_LEG_SEGMENTS, integer=True)
        _pair("hinges_per_limb", self.hinges_per_limb, 1, 3, integer=True)
        _pair("torso_half_length", self.torso_half_length, 0.01, 5.0)
        _pair("torso_radius", self.torso_radius, 0.005, 1.0)
        _pair("segment_length", self.segment_length, 0.02, 5.0)
        _pair("segment_radius", self.segment_radius, 0.005, 1.0)
        _pair("splay_deg", self.splay_deg, 0.0, 80.0)
        _pair("bend_deg", self.bend_deg, -60.0, 60.0)
        _pair("foot_deg", self.foot_deg, 0.0, 90.0)
        _number("yaw_jitter_deg", self.yaw_jitter_deg, 0.0, 90.0)
        _pair("range_width_deg", self.range_width_deg, 2.0, 340.0)
        _pair("gear", self.gear, 1e-3, 1e4)
        _number("passive_hinge_prob", self.passive_hinge_prob, 0.0, 1.0)
        _pair("damping", self.damping, 0.0, 1e3)
        _pair("stiffness", self.stiffness, 0.0, 1e4)
        _pair("armature", self.armature, 0.0, 1e2)
        _number("density", self.density, 1.0, 1e5)
        _number("friction", self.friction, 0.0, 10.0)
        _pair("start_clearance", self.start_clearance, 0.0, 1.0)
        _number("timestep", self.timestep, 1e-4, 0.02)
        if self.integrator not in INTEGRATORS:
            raise ConfigError(f"GeneratorConfig.integrator={self.integrator!r}: use one of {sorted(INTEGRATORS)}")
        # Capsules must not vanish into each other: a segment outlasts its radius.
        if self.segment_length[0] <= 2 * self.segment_radius[1]:
            raise ConfigError(
                f"GeneratorConfig.segment_length={self.segment_length}: the shortest segment must be longer "
                f"than the widest one's diameter ({2 * self.segment_radius[1]})"
            )
        # Every limb count in range must split into legs of allowed lengths.
        for limbs in range(self.min_limbs, self.max_limbs + 1):
            if not _leg_counts(limbs - 1, self.legs, self.leg_segments):
                raise ConfigError(
                    f"GeneratorConfig.legs={self.legs} / leg_segments={self.leg_segments}: a body of {limbs} limbs "
                    f"(min_limbs..max_limbs = {self.min_limbs}..{self.max_limbs}) cannot be split into such legs"
                )


# The checks below name a GeneratorConfig field; `owner=""` names a plain argument.
def _integer(name: str, value, low: Optional[int], high: Optional[int], owner: str = "GeneratorConfig.") -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise ConfigError(f"{owner}{name}={value!r}: must be an integer")
    _bounds(owner + name, value, low, high)


def _number(name: str, value, low: Optional[float], high: Optional[float]) -> None:
    if (
        not isinstance(value, (int, float, np.integer, np.floating))
        or isinstance(value, bool)
        or not math.isfinite(value)
    ):
        raise ConfigError(f"GeneratorConfig.{name}={value!r}: must be a finite number")
    _bounds("GeneratorConfig." + name, value, low, high)


def _bounds(what: str, value, low, high) -> None:
    if (low is not None and value < low) or (high is not None and value > high):
        span = f"[{'-inf' if low is None else low}, {'inf' if high is None else high}]"
        raise ConfigError(f"{what}={value!r}: must lie in {span}")


def _pair(name: str, value, low, high, *, integer: bool = False) -> None:
    """A (low, high) range with low <= high, both within [low, high] bounds."""
    if not isinstance(value, tuple) or len(value) != 2:
        raise ConfigError(f"GeneratorConfig.{name}={value!r}: must be a (low, high) pair")
    for item in value:
        (_integer if integer else _number)(name, item, low, high)
    if value[0] > value[1]:
        raise ConfigError(f"GeneratorConfig.{name}={value!r}: low exceeds high")


def _leg_counts(segments: int, legs: tuple[int, int], per_leg: tuple[int, int]) -> list[int]:
    """Leg counts in `legs` that can share `segments` limbs with `per_leg` limbs each."""
    return [k for k in range(legs[0], legs[1] + 1) if k * per_leg[0] <= segments <= k * per_leg[1]]


# ------------------------------------------------------------------ generation
def random_body(
    seed: int,
    config: Optional[GeneratorConfig] = None,
    name: Optional[str] = None,
    *,
    max_limbs: Optional[int] = None,
) -> Body:
    """One random body, the same for the same seed and config; named "random_<seed>" by default."""
    seed = _seed(seed)
    return _generate(np.random.default_rng(seed), _config(config), name or f"random_{seed}", max_limbs)


def random_bodies(
    count: int, seed: int, *, max_limbs: Optional[int] = None, config: Optional[GeneratorConfig] = None
) -> list[Body]:
    """`count` random bodies named "random_<seed>_<i>", with at most `max_limbs` limbs each.

    Body i depends only on (seed, i), so asking for more bodies keeps the first ones.
    """
    _integer("count", count, 1, None, owner="")
    seed, config = _seed(seed), _config(config)
    return [_generate(np.random.default_rng([seed, i]), config, f"random_{seed}_{i}", max_limbs) for i in range(count)]


def _seed(seed) -> int:
    try:
        seed = operator.index(seed)
    except TypeError:
        raise ConfigError(f"seed={seed!r}: must be an integer") from None
    if seed < 0:
        raise ConfigError(f"seed={seed}: must be >= 0")
    return seed


def _config(config) -> GeneratorConfig:
    if config is None:
        return GeneratorConfig()
    if not isinstance(config, GeneratorConfig):
        raise ConfigError(f"config: expected a GeneratorConfig, got {type(config).__name__}")
    return config


def _r(x: float) -> float:
    return round(float(x), _DIGITS)


def _uniform(rng: np.random.Generator, pair) -> float:
    return float(rng.uniform(pair[0], pair[1]))


def _integers(rng: np.random.Generator, pair) -> int:
    return int(rng.integers(pair[0], pair[1], endpoint=True))


def _generate(rng: np.random.Generator, cfg: GeneratorConfig, name: str, cap: Optional[int]) -> Body:
    # --- how many limbs, split into how many legs of how many segments
    low, high = cfg.min_limbs, cfg.max_limbs
    if cap is not None:
        _integer("max_limbs", cap, 2, None, owner="")  # a torso alone has nothing to drive
        low, high = min(low, cap), min(high, cap)
    segments = _integers(rng, (low, high)) - 1
    leg_sizes = _split_into_legs(rng, segments, cfg)

    # --- the torso: a capsule along x
    half = _r(_uniform(rng, cfg.torso_half_length))
    radius = _r(_uniform(rng, cfg.torso_radius))
    geom = dict(friction=(cfg.friction, 0.005, 0.0001), density=cfg.density, conaffinity=0)
    torso_geom = Geom("torso_geom", "capsule", (radius,), fromto=(-half, 0.0, 0.0, half, 0.0, 0.0), **geom)

    # --- the legs, at evenly spaced headings with some jitter
    first_heading = rng.uniform(0.0, 2 * math.pi)
    legs, lowest, extent = [], -radius, half + radius
    for i, size in enumerate(leg_sizes):
        yaw = first_heading + 2 * math.pi * i / len(leg_sizes) + math.radians(rng.uniform(-1, 1) * cfg.yaw_jitter_deg)
        leg, leg_lowest, leg_extent = _leg(rng, cfg, f"leg{i}", size, yaw, half, radius, geom)
        legs.append(leg)
        lowest, extent = min(lowest, leg_lowest), max(extent, leg_extent)

    # --- start so that the lowest point is `start_clearance` above the floor
    height = _r(-lowest + _uniform(rng, cfg.start_clearance))
    torso = Limb("torso", (0.0, 0.0, height), (), (torso_geom,), tuple(legs))
    return Body(
        name, FAMILY, torso, timestep=cfg.timestep, integrator=cfg.integrator,
        camera_distance=_r(max(2.5, 2.0 + 2.0 * extent)),
    )  # fmt: skip


def _split_into_legs(rng: np.random.Generator, segments: int, cfg: GeneratorConfig) -> list[int]:
    """Limbs per leg, summing to `segments`, each within the configured range."""
    per_leg = cfg.leg_segments
    counts = _leg_counts(segments, cfg.legs, per_leg)
    if not counts:
        # Only a max_limbs cap below min_limbs gets here: allow short legs and
        # take the leg count nearest to the configured one.
        per_leg = (1, per_leg[1])
        fits = [k for k in range(1, segments + 1) if segments <= k * per_leg[1]]
        counts = [min(fits, key=lambda k: abs(k - cfg.legs[0]))]
    legs = int(rng.choice(counts))
    sizes = [per_leg[0]] * legs
    for _ in range(segments - sum(sizes)):  # hand out the rest one limb at a time
        open_legs = [i for i, s in enumerate(sizes) if s < per_leg[1]]
        sizes[int(rng.choice(open_legs))] += 1
    return sizes


def _leg(rng, cfg: GeneratorConfig, prefix: str, size: int, yaw: float, half: float, radius: float, geom: dict):
    """One leg as nested limbs; also its lowest z and farthest reach from the torso origin."""
    out = (math.cos(yaw), math.sin(yaw))  # horizontal direction away from the torso
    axes = _LEFT_AXES if out[1] > 0 else _RIGHT_AXES
    # Hip on the torso's surface: the ends of the capsule face +-x, its sides +-y.
    start = np.array([_r(half * out[0]), _r(radius * out[1]), 0.0])

    specs = []  # (name, offset from the parent limb, direction, segment end, radius)
    offset = start  # the first segment hangs at the hip, each next one at the end of the last
    for k, role in enumerate(_SEGMENT_ROLES[size]):
        tilt = cfg.splay_deg if k == 0 else cfg.foot_deg if role == "foot" else cfg.bend_deg
        angle = math.radians(_uniform(rng, tilt))
        direction = np.array([math.sin(angle) * out[0], math.sin(angle) * out[1], -math.cos(angle)])
        end = np.array([_r(v) for v in direction * _uniform(rng, cfg.segment_length)])
        specs.append((f"{prefix}_{role}", offset, direction, end, _r(_uniform(rng, cfg.segment_radius))))
        offset = end

    # Walk the chain for the lowest point and reach (limbs are not rotated, so
    # positions simply add up), then build it from the foot upwards.
    lowest, reach, origin = math.inf, 0.0, np.zeros(3)
    for _, step, _, end, r in specs:
        origin = origin + step
        tip = origin + end
        lowest = min(lowest, origin[2] - r, tip[2] - r)
        reach = max(reach, float(np.linalg.norm(tip)) + r)

    child: tuple[Limb, ...] = ()
    for limb_name, offset, direction, end, r in reversed(specs):
        hinges = _hinges(rng, cfg, limb_name, axes, direction)
        capsule = Geom(f"{limb_name}_geom", "capsule", (r,), fromto=(0.0, 0.0, 0.0, *map(float, end)), **geom)
        child = (Limb(limb_name, tuple(float(v) for v in offset), hinges, (capsule,), child),)
    return child[0], lowest, reach


def _hinges(rng, cfg: GeneratorConfig, limb: str, axes, direction: np.ndarray) -> tuple[Hinge, ...]:
    """1-3 hinges about the limb's local axes, preferring axes across the segment.

    A hinge about the segment's own axis only twists the capsule, so an axis is
    drawn with weight 1 - cos^2(angle to the segment) (plus a little, so any
    subset can occur).
    """
    count = _integers(rng, cfg.hinges_per_limb)
    weights = np.array([1.0 - float(np.dot(a, direction)) ** 2 + 0.05 for a in axes])
    chosen = sorted(rng.choice(3, size=count, replace=False, p=weights / weights.sum()))
    driven = int(rng.choice(chosen))  # this one keeps its motor whatever passive_hinge_prob says
    hinges = []
    for i in chosen:
        width = math.radians(_uniform(rng, cfg.range_width_deg))
        below = width * rng.uniform(0.2, 0.8)  # share of the range below 0: the range contains 0
        gear = _uniform(rng, cfg.gear)
        if i != driven and rng.uniform() < cfg.passive_hinge_prob:
            gear = 0.0
        hinges.append(
            Hinge(
                f"{limb}_joint_{'xyz'[i]}",
                axes[i],
                (_r(-below), _r(width - below)),
                _r(gear),
                damping=_r(_uniform(rng, cfg.damping)),
                armature=_r(_uniform(rng, cfg.armature)),
                stiffness=_r(_uniform(rng, cfg.stiffness)),
            )  # fmt: skip
        )
    return tuple(hinges)


# ------------------------------------------------------------------------- CLI
def write_bodies(count: int, seed: int, out: Path, *, max_limbs: Optional[int] = None) -> list[Path]:
    """Write `random_bodies(count, seed)` as MJCF files under `out`; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for body in random_bodies(count, seed, max_limbs=max_limbs):
        path = out / f"{body.name}.xml"
        path.write_text(to_xml(body))
        paths.append(path)
    return paths


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Write procedurally generated bodies as MJCF files.")
    parser.add_argument("--count", type=int, default=1, help="how many bodies (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--max-limbs", type=int, default=None, help="cap on limbs per body, torso included")
    args = parser.parse_args(argv)
    try:
        paths = write_bodies(args.count, args.seed, args.out, max_limbs=args.max_limbs)
    except ConfigError as err:
        parser.error(str(err))
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
