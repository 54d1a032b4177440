"""Resolve the body entries of a config into compiled morphologies and task numbers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mujoco

from equirl.envs.task_params import TaskParams, generic_params, sgrl_params
from equirl.errors import MorphologyError
from equirl.morphology import sgrl
from equirl.morphology.builder import build_model
from equirl.morphology.limb_graph import Morphology
from equirl.morphology.loader import load_mjcf, morphology_from_model

RANDOM_PREFIX = "random:"


def resolve(entry: str, *, max_limbs: int, isotropic_friction: bool = True) -> list[tuple[Morphology, TaskParams]]:
    """One entry -> one or more bodies (a suite or random:COUNT:SEED gives several)."""
    if entry in sgrl.SUITES:
        return [
            pair
            for name in sgrl.SUITES[entry]
            for pair in resolve(name, max_limbs=max_limbs, isotropic_friction=isotropic_friction)
        ]
    if entry in sgrl.BODY_NAMES:
        body = sgrl.sgrl_body(entry)
        if not isotropic_friction:  # the published files' cones (the builder's default is elliptic)
            body = dataclasses.replace(body, cone="pyramidal")
        morph = morphology_from_model(
            build_model(body), source=f"builder:{entry}", name=entry, family=body.family, max_limbs=max_limbs
        )
        pairs = [(morph, sgrl_params(entry))]
    elif entry.startswith(RANDOM_PREFIX):
        pairs = _random(entry, max_limbs)
    elif entry.endswith(".xml") or "/" in entry:
        morph = load_mjcf(entry, max_limbs=max_limbs)
        name = published_name(entry)
        params = sgrl_params(name) if name else generic_params(float(morph.model.qpos0[2]))
        pairs = [(morph, params)]
    else:
        raise MorphologyError(
            f"{entry!r}: not a 3D-SGRL body, suite, MJCF path (*.xml) or random:COUNT:SEED; "
            f"bodies: {', '.join(sgrl.BODY_NAMES)}; suites: {', '.join(sgrl.SUITES)}"
        )
    if isotropic_friction:
        for morph, _ in pairs:
            morph.model.opt.cone = mujoco.mjtCone.mjCONE_ELLIPTIC
            # MJX has no frictionless (condim 1) contacts under elliptic cones; the
            # only such geoms in the benchmark are the hopper's, whose floor
            # contacts already use the floor's condim 3. Only self-contacts change.
            morph.model.geom_condim[morph.model.geom_condim == 1] = 3
    return pairs


def published_name(path: str) -> str | None:
    """The 3D-SGRL body a file is named after (`hopper_5_full.xml` as `equirl write-envs`
    names it, `3d_hopper_5_full.xml` as the published code does), or None. Such a file gets
    that body's published task (termination, reward terms, reset noise), so the published
    files run the same task through the MJCF path as through the builder."""
    stem = Path(path).stem
    stem = stem[3:] if stem.startswith("3d_") else stem
    return stem if stem in sgrl.BODY_NAMES else None


def body_names(entries, max_limbs: int) -> tuple[str, ...]:
    """The body names config entries stand for (a suite or random:COUNT:SEED names several)."""
    return tuple(m.name for entry in entries for m, _ in resolve(entry, max_limbs=max_limbs))


def largest_limb_count(entries, limit: int | None = None) -> int:
    """The most limbs any body of the entries has, resolved under `limit` (default: the default
    padding limit): the smallest max_limbs that fits them all."""
    if limit is None:
        from equirl.envs.config import EnvConfig

        limit = EnvConfig().max_limbs
    return max(m.num_limbs for entry in entries for m, _ in resolve(entry, max_limbs=limit))


def _random(entry: str, max_limbs: int) -> list[tuple[Morphology, TaskParams]]:
    from equirl.morphology.generator import random_bodies

    try:
        _, count, seed = entry.split(":")
        count, seed = int(count), int(seed)
    except ValueError:
        raise MorphologyError(f"{entry!r}: expected random:COUNT:SEED with integers") from None
    if count < 1:
        raise MorphologyError(f"{entry!r}: COUNT must be at least 1")
    pairs = []
    for body in random_bodies(count, seed, max_limbs=max_limbs):
        morph = morphology_from_model(
            build_model(body), source=f"generator:{body.name}", name=body.name, family="generated", max_limbs=max_limbs
        )
        pairs.append((morph, generic_params(float(morph.model.qpos0[2]))))
    return pairs
