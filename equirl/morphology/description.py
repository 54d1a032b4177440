"""A small typed description of a robot body (`equirl.morphology.builder` builds it with MjSpec).

A `Body` is a tree of `Limb`s. The root limb (the torso) floats on a free joint
added by the builder; every other limb turns on one to three `Hinge`s, each
driven by its own motor. `Geom`s give the limbs their shape and, through their
density, their mass. Everything is frozen data, so bodies can be compared,
hashed and derived from one another (`Body.without` removes limbs).

Every value is checked when a body is made (`Body.__post_init__`), so the
builder only translates. Angles are radians throughout.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Optional

import mujoco

from equirl.errors import MorphologyError

Vec3 = tuple[float, float, float]

MAX_HINGES = 3
GEOM_TYPES = ("capsule", "sphere", "plane")
INTEGRATORS = {
    "Euler": mujoco.mjtIntegrator.mjINT_EULER,
    "RK4": mujoco.mjtIntegrator.mjINT_RK4,
    "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
    "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
}
CONES = {
    "elliptic": mujoco.mjtCone.mjCONE_ELLIPTIC,
    "pyramidal": mujoco.mjtCone.mjCONE_PYRAMIDAL,
}

# MuJoCo's own defaults, repeated here so that a description is explicit.
DEFAULT_FRICTION = (1.0, 0.005, 0.0001)
DEFAULT_SOLREF = (0.02, 1.0)
DEFAULT_SOLIMP = (0.9, 0.95, 0.001, 0.5, 2.0)


def _floats(value, what: str) -> tuple[float, ...]:
    """Coerce a sequence of numbers to a tuple of floats (lists are welcome)."""
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise MorphologyError(f"{what}: expected a sequence of numbers, got {value!r}") from None


def _coerce(obj, **fields) -> None:
    """Set coerced values on a frozen dataclass instance from __post_init__."""
    for name, value in fields.items():
        object.__setattr__(obj, name, value)


@dataclasses.dataclass(frozen=True)
class Hinge:
    """A limited hinge joint about `axis` (limb frame), anchored at `pos`, with its motor's gear.

    A gear of 0 keeps the motor in the model; the environment masks it out.
    """

    name: str
    axis: Vec3
    range: tuple[float, float]  # radians
    gear: float
    damping: float = 0.0
    stiffness: float = 0.0
    armature: float = 0.0
    pos: Vec3 = (0.0, 0.0, 0.0)
    solreflimit: tuple[float, ...] = DEFAULT_SOLREF  # softness of the joint limit
    solimplimit: tuple[float, ...] = DEFAULT_SOLIMP

    def __post_init__(self):
        what = f"hinge {self.name!r}"
        _coerce(
            self,
            axis=_floats(self.axis, what + " axis"),
            range=_floats(self.range, what + " range"),
            pos=_floats(self.pos, what + " pos"),
            solreflimit=_floats(self.solreflimit, what + " solreflimit"),
            solimplimit=_floats(self.solimplimit, what + " solimplimit"),
            gear=float(self.gear),
            damping=float(self.damping),
            stiffness=float(self.stiffness),
            armature=float(self.armature),
        )


@dataclasses.dataclass(frozen=True)
class Geom:
    """A collision and mass shape: a capsule, a sphere, or the floor plane.

    A capsule is given either by `fromto` (two end points) with `size=(radius,)`,
    or by `size=(radius, half_length)` along the local z axis placed by
    `pos`/`quat`. Its mass comes from `density`.
    """

    name: str
    type: str  # 'capsule' | 'sphere' | 'plane'
    size: tuple[float, ...]
    pos: Vec3 = (0.0, 0.0, 0.0)
    quat: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)  # (w, x, y, z)
    fromto: Optional[tuple[float, ...]] = None
    friction: Vec3 = DEFAULT_FRICTION  # sliding, torsional, rolling
    condim: int = 3
    contype: int = 1
    conaffinity: int = 1
    density: float = 1000.0
    solref: tuple[float, ...] = DEFAULT_SOLREF
    solimp: tuple[float, ...] = DEFAULT_SOLIMP
    margin: float = 0.0
    material: str = "self"

    def __post_init__(self):
        what = f"geom {self.name!r}"
        _coerce(
            self,
            size=_floats(self.size, what + " size"),
            pos=_floats(self.pos, what + " pos"),
            quat=_floats(self.quat, what + " quat"),
            fromto=None if self.fromto is None else _floats(self.fromto, what + " fromto"),
            friction=_floats(self.friction, what + " friction"),
            solref=_floats(self.solref, what + " solref"),
            solimp=_floats(self.solimp, what + " solimp"),
            density=float(self.density),
            margin=float(self.margin),
        )


@dataclasses.dataclass(frozen=True)
class Limb:
    """A rigid link at `pos` in its parent's frame, its hinges, shapes and child limbs."""

    name: str
    pos: Vec3
    hinges: tuple[Hinge, ...]
    geoms: tuple[Geom, ...]
    children: tuple[Limb, ...] = ()

    def __post_init__(self):
        _coerce(
            self,
            pos=_floats(self.pos, f"limb {self.name!r} pos"),
            hinges=tuple(self.hinges),
            geoms=tuple(self.geoms),
            children=tuple(self.children),
        )
        for items, kind in ((self.hinges, Hinge), (self.geoms, Geom), (self.children, Limb)):
            for item in items:
                if not isinstance(item, kind):
                    raise MorphologyError(f"limb {self.name!r}: expected a {kind.__name__}, got {item!r}")

    def walk(self) -> Iterator[Limb]:
        """This limb and all below it, depth first (parents before children)."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclasses.dataclass(frozen=True)
class Body:
    """A whole robot: its limb tree plus the world and physics settings it runs in.

    The root limb is the torso; the builder gives it a free joint named "root".
    `floor` is the ground plane (its friction and softness enter every foot contact).
    """

    name: str
    family: str  # 'hopper' | 'walker' | 'humanoid' | 'cheetah' | 'generated' | ...
    root: Limb
    timestep: float
    integrator: str  # 'RK4' | 'Euler' | 'implicit' | 'implicitfast'
    floor: Geom = Geom("floor", "plane", (40.0, 40.0, 0.125), material="grid")
    # Elliptic friction cones by default, unlike the published (pyramidal) models:
    # a pyramidal cone has its facets along the contact frame's tangent axes, so
    # friction depends on the robot's heading and the physics is not invariant to
    # rotations about the vertical axis; an elliptic cone is.
    cone: str = "elliptic"
    camera_distance: float = 3.5  # how far the side-on tracking camera stands

    def __post_init__(self):
        _coerce(self, timestep=float(self.timestep), camera_distance=float(self.camera_distance))
        self.validate()

    # ----------------------------------------------------------------- queries
    def limbs(self) -> list[Limb]:
        """Every limb, depth first from the torso (MuJoCo's body order)."""
        return list(self.root.walk())

    @property
    def limb_names(self) -> tuple[str, ...]:
        return tuple(limb.name for limb in self.root.walk())

    def limb(self, name: str) -> Limb:
        """The limb called `name`."""
        for limb in self.root.walk():
            if limb.name == name:
                return limb
        raise MorphologyError(f"body {self.name!r}: no limb {name!r} (limbs: {', '.join(self.limb_names)})")

    def parents(self) -> dict[str, Optional[str]]:
        """Limb name -> parent limb name (None for the torso)."""
        out: dict[str, Optional[str]] = {self.root.name: None}
        for limb in self.root.walk():
            for child in limb.children:
                out[child.name] = limb.name
        return out

    def hinges(self) -> list[Hinge]:
        """Every hinge, in limb order and then x, y, z order (the actuator order)."""
        return [h for limb in self.root.walk() for h in limb.hinges]

    # ------------------------------------------------------------ derivations
    def renamed(self, name: str) -> Body:
        return dataclasses.replace(self, name=name)

    def with_root_pos(self, pos: Iterable[float]) -> Body:
        """A copy whose torso starts at `pos` (world frame)."""
        return dataclasses.replace(self, root=dataclasses.replace(self.root, pos=tuple(pos)))

    def without(self, limb_names: Iterable[str], reattach: Optional[Mapping[str, Iterable[float]]] = None) -> Body:
        """A copy with the named limbs and everything below them removed.

        `reattach` maps a limb inside a removed subtree to a new position: that
        limb (and what hangs below it) is kept and hung on its nearest surviving
        ancestor at that position, as when a leg loses its middle segments but
        keeps its foot.
        """
        drop = set(limb_names)
        moves = {name: tuple(pos) for name, pos in (reattach or {}).items()}
        known = set(self.limb_names)
        unknown = sorted((drop | set(moves)) - known)
        if unknown:
            raise MorphologyError(f"body {self.name!r}: no limb(s) {unknown} to remove or reattach")
        if self.root.name in drop:
            raise MorphologyError(f"body {self.name!r}: the torso {self.root.name!r} cannot be removed")
        both = sorted(drop & set(moves))
        if both:
            raise MorphologyError(f"body {self.name!r}: limb(s) {both} are both removed and reattached")

        def prune(limb: Limb, removing: bool) -> list[Limb]:
            # Returns what takes `limb`'s place among its parent's children.
            removing = removing or limb.name in drop
            if limb.name in moves:
                if not removing:
                    raise MorphologyError(
                        f"body {self.name!r}: limb {limb.name!r} is reattached but no ancestor of it is removed"
                    )
                limb, removing = dataclasses.replace(limb, pos=moves[limb.name]), False
            kept = [k for child in limb.children for k in prune(child, removing)]
            if removing:
                return kept  # only reattached descendants survive, handed upwards
            return [dataclasses.replace(limb, children=tuple(kept))]

        (root,) = prune(self.root, False)
        return dataclasses.replace(self, root=root)

    # -------------------------------------------------------------- checking
    def validate(self) -> None:
        """Raise MorphologyError, naming this body, for anything the builder cannot build."""

        def fail(problem: str) -> MorphologyError:
            return MorphologyError(f"body {self.name!r}: {problem}")

        if not self.name:
            raise MorphologyError("a body needs a non-empty name")
        if not isinstance(self.root, Limb):
            raise fail("root must be a Limb")
        if not (self.timestep > 0 and math.isfinite(self.timestep)):
            raise fail(f"timestep must be positive, got {self.timestep}")
        if self.integrator not in INTEGRATORS:
            raise fail(f"unknown integrator {self.integrator!r} (use one of {sorted(INTEGRATORS)})")
        if self.cone not in CONES:
            raise fail(f"unknown friction cone {self.cone!r} (use 'elliptic' or 'pyramidal')")
        if self.floor.type != "plane":
            raise fail(f"the floor must be a plane, got {self.floor.type!r}")
        _check_geom(self.floor, "the floor", fail)
        if self.root.hinges:
            raise fail(f"the torso {self.root.name!r} has a free joint and takes no hinges")

        limb_names: set[str] = set()
        joint_names = {"root"}  # the builder's free joint
        geom_names = {self.floor.name}
        for limb in self.root.walk():
            where = f"limb {limb.name!r}"
            if not limb.name:
                raise fail("a limb has an empty name")
            if limb.name in limb_names:
                raise fail(f"duplicate limb name {limb.name!r}")
            limb_names.add(limb.name)
            if len(limb.pos) != 3 or not all(map(math.isfinite, limb.pos)):
                raise fail(f"{where}: pos needs 3 finite numbers, got {limb.pos}")
            if limb is not self.root and len(limb.hinges) > MAX_HINGES:
                raise fail(f"{where} has {len(limb.hinges)} hinges, more than {MAX_HINGES}")
            if limb is not self.root and not limb.hinges:
                raise fail(f"{where} has no hinges; a limb below the torso needs 1 to {MAX_HINGES}")
            if not limb.geoms:
                raise fail(f"{where} has no geoms, so no mass")
            for hinge in limb.hinges:
                if not hinge.name:
                    raise fail(f"{where}: a hinge has an empty name")
                if hinge.name in joint_names:
                    raise fail(f"duplicate joint name {hinge.name!r} (in {where})")
                joint_names.add(hinge.name)
                _check_hinge(hinge, f"{where}, hinge {hinge.name!r}", fail)
            for geom in limb.geoms:
                if geom.name in geom_names and geom.name:
                    raise fail(f"duplicate geom name {geom.name!r} (in {where})")
                geom_names.add(geom.name)
                if geom.type == "plane":
                    raise fail(f"{where}, geom {geom.name!r}: a plane cannot be part of a limb")
                _check_geom(geom, f"{where}, geom {geom.name!r}", fail)


def _check_hinge(h: Hinge, where: str, fail) -> None:
    if len(h.axis) != 3 or not all(map(math.isfinite, h.axis)):
        raise fail(f"{where}: axis needs 3 finite numbers, got {h.axis}")
    if math.hypot(*h.axis) < 1e-9:
        raise fail(f"{where}: zero-length axis")
    if len(h.range) != 2 or not all(map(math.isfinite, h.range)):
        raise fail(f"{where}: range needs 2 finite numbers (radians), got {h.range}")
    lo, hi = h.range
    if lo > hi:
        raise fail(f"{where}: range lower bound {lo} exceeds upper bound {hi}")
    if len(h.pos) != 3:
        raise fail(f"{where}: pos needs 3 numbers, got {h.pos}")
    if not math.isfinite(h.gear):
        raise fail(f"{where}: gear must be finite, got {h.gear}")
    for field in ("damping", "stiffness", "armature"):
        value = getattr(h, field)
        if not (value >= 0 and math.isfinite(value)):
            raise fail(f"{where}: {field} must be finite and >= 0, got {value}")
    if not 1 <= len(h.solreflimit) <= 2 or not 1 <= len(h.solimplimit) <= 5:
        raise fail(f"{where}: solreflimit takes up to 2 numbers and solimplimit up to 5")


def _check_geom(g: Geom, where: str, fail) -> None:
    if g.type not in GEOM_TYPES:
        raise fail(f"{where}: unknown type {g.type!r} (use one of {GEOM_TYPES})")
    if not all(s > 0 and math.isfinite(s) for s in g.size):
        raise fail(f"{where}: sizes must be positive, got {g.size}")
    wanted = {"sphere": (1,), "plane": (3,), "capsule": (1,) if g.fromto is not None else (2,)}[g.type]
    if len(g.size) not in wanted:
        raise fail(
            f"{where}: a {g.type}{' with fromto' if g.fromto else ''} takes size of length {wanted[0]}, got {g.size}"
        )
    if g.fromto is not None:
        if g.type != "capsule":
            raise fail(f"{where}: only capsules take fromto")
        if len(g.fromto) != 6:
            raise fail(f"{where}: fromto needs 6 numbers, got {g.fromto}")
        if math.dist(g.fromto[:3], g.fromto[3:]) < 1e-9:
            raise fail(f"{where}: fromto end points coincide")
    if len(g.pos) != 3:
        raise fail(f"{where}: pos needs 3 numbers, got {g.pos}")
    if len(g.quat) != 4 or math.hypot(*g.quat) < 1e-9:
        raise fail(f"{where}: quat needs 4 numbers, not all zero, got {g.quat}")
    if len(g.friction) != 3 or min(g.friction) < 0:
        raise fail(f"{where}: friction needs 3 non-negative numbers, got {g.friction}")
    if g.condim not in (1, 3, 4, 6):
        raise fail(f"{where}: condim must be 1, 3, 4 or 6, got {g.condim}")
    if not g.density > 0:
        raise fail(f"{where}: density must be positive, got {g.density}")
