"""Our 3D hopper read through gymnasium's observation: does the representation stop the learner?

Issue 15, item 5. gymnasium's Hopper-v5 and hopper_4_lower_shin share body, gears, armature,
damping, friction and integrator, yet the same CrossQ hops on the first by 20k steps and falls
at ~110 steps on the second even made near-planar (results/offpolicy/investigation.md, "Is it
the third dimension?"). This steps *our* environment (the published reward, our termination,
plus the given training aids) but hands the learner gymnasium's 11 numbers, computed from our
state in the torso's heading frame: torso height and pitch, the three pitch-hinge angles, the
torso's forward and vertical velocity and its pitch rate (clipped at ±10 as gymnasium clips
every velocity) and the three pitch-hinge velocities (not clipped here). Only the pitch motors
act (the side motors get zero), as in gymnasium. Training runs through `reference_gym.run`
(plain MLP, the reference check's settings), so the rows land in
results/reference_gym/summary.csv under the task name `EquirlHopper4GymObs-v0[<the aids>]`.

To tell which part of the representation matters, `--observation` swaps what the learner reads
(`ours`: exactly what the heading-MLP reads, our per-limb observation turned into the target
frame and flattened; `ours_hinge_velocity`: that plus the hinge velocities, clipped at ±10;
`gym_no_pitch`: gymnasium's numbers without the torso pitch and its rate; `ours_plus_gym`: both
`ours_hinge_velocity` and gymnasium's 11 numbers; `ours_compact`: from our observation in the
target frame, only each limb's hinge angles, hinge rates, height and position from the torso,
and the torso's linear and angular velocity; `ours_compact_axes`: that plus each limb's three
hinge axes (the thigh's first one is fixed in the torso, so they carry its tilt);
`ours_compact_torso`: `ours_compact` plus the torso's x and z axes in its heading frame, from
the simulator; `gym_all_hinges`: gymnasium's numbers with all
nine hinges' angles and velocities, the side hinges' too; `gym_3d`: the same joint-space
numbers for a body free in 3D, as gymnasium's Ant reads its body: torso height, the torso's x
and z axes (pitch and roll), every hinge angle, the torso's linear and angular velocity
(clipped at ±10), every hinge velocity, all in the torso's heading frame) and `--actions all`
lets the side motors act too; each such change is named in the task column.

    python benchmarks/hopper_gym_observation.py --steps 20000 --set-env training_torso_damping=200 \
        --set-env training_torso_damping_axes=planar --set-env training_tilt_limit=0.25 \
        --set-env training_target_spread=0

`--body` reads another body the same way (its *_y hinges stand for gymnasium's joints):
walker_7_full with `--observation gym` is read as Walker2d-v5 reads its walker (17 numbers),
and with `--observation gym_3d --actions all` in 3D joint space.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path

import gymnasium
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from gymnasium import spaces

from equirl.config_io import apply_overrides
from equirl.envs.batched import single_env
from equirl.envs.config import EnvConfig
from equirl.errors import ConfigError
from equirl.nn.baselines import canonicalize_heading, flatten_observation
from equirl.observation import (
    ANGLE_SCALARS,
    ANGULAR_VELOCITY_CHANNEL,
    HEIGHT_SCALAR,
    HINGE_AXES,
    LINEAR_VELOCITY_CHANNEL,
    POSITION_CHANNEL,
    hinge_rates,
)

BODY = "hopper_4_lower_shin"
TASK = "EquirlHopper4GymObs-v0"
OBSERVATIONS = (
    "gym",
    "gym_no_pitch",
    "ours",
    "ours_hinge_velocity",
    "ours_plus_gym",
    "ours_compact",
    "ours_compact_axes",
    "ours_compact_torso",
    "gym_all_hinges",
    "gym_3d",
)


def compact_observation(obs, real: np.ndarray, axes: bool = False):
    """Joint-space numbers and the torso's motion, read from one Observation in the target
    frame; `real` marks the body's limb slots; `axes` adds each limb's three hinge axes
    (the thigh's first one is fixed in the torso: it carries the torso's tilt)."""
    obs = canonicalize_heading(obs)
    parts = [
        obs.scalars[0][:, ANGLE_SCALARS],
        hinge_rates(obs)[0],
        obs.scalars[0][:, HEIGHT_SCALAR : HEIGHT_SCALAR + 1],
        obs.vectors[0][:, POSITION_CHANNEL],
    ]
    if axes:
        parts.append(obs.vectors[0][:, HINGE_AXES].reshape(-1, 9))
    per_limb = jnp.concatenate(parts, -1)[real]
    torso = obs.vectors[0][0, [LINEAR_VELOCITY_CHANNEL, ANGULAR_VELOCITY_CHANNEL]]
    return jnp.concatenate([per_limb.reshape(-1), torso.reshape(-1)])


class GymObservationHopper(gymnasium.Env):
    """One hopper_4_lower_shin (or `body`), our task, gymnasium's observation (or another, see
    `observation`) and pitch-only actions (or every motor: actions="all")."""

    # Per-coordinate running statistics (--per-dim-norm), shared by the training and the
    # evaluation environment; only the first one built (reference_gym's training env) updates them.
    stats: dict | None = None

    def __init__(
        self, observation: str = "gym", actions: str = "pitch", per_dim_norm: bool = False, body: str = BODY, **aids
    ):
        if observation not in OBSERVATIONS or actions not in ("pitch", "all"):
            raise ValueError(f"observation={observation!r} / actions={actions!r}: expected {OBSERVATIONS} / pitch, all")
        self.env = single_env(body, **aids)
        self.kind, self.all_motors = observation, actions == "all"
        model = self.env.morphologies[0].model
        pitch = [j for j in range(model.njnt) if model.joint(j).name.endswith("_y")]
        self.qpos_idx = np.array([model.jnt_qposadr[j] for j in pitch])
        self.dof_idx = np.array([model.jnt_dofadr[j] for j in pitch])
        hinges = [j for j in range(model.njnt) if model.jnt_type[j] == 3]  # mjJNT_HINGE
        self.hinge_qpos = np.array([model.jnt_qposadr[j] for j in hinges])
        self.hinge_dofs = np.array([model.jnt_dofadr[j] for j in hinges])
        # Slot (limb, hinge) of each pitch motor in the [L, 3] action: the y hinge is hinge 1.
        self.limbs = [
            int(np.nonzero(np.asarray(self.env.tables.hinge_qposadr[0])[:, 1] == q)[0][0]) for q in self.qpos_idx
        ]
        self.action_mask = np.asarray(self.env.tables.action_mask[0])
        self._reset = jax.jit(self.env.reset)
        self._step = jax.jit(self.env.step)
        self._ours = jax.jit(lambda obs: flatten_observation(canonicalize_heading(obs))[0])
        real = np.asarray(self.env.tables.limb_mask[0])
        self._compact = jax.jit(lambda obs: compact_observation(obs, real))
        self._compact_axes = jax.jit(lambda obs: compact_observation(obs, real, axes=True))
        self.state = self._reset(jax.random.PRNGKey(0))
        size = self._observe().shape[0]
        acts = int(self.action_mask.sum()) if self.all_motors else len(pitch)
        self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, (acts,), np.float32)
        self.per_dim_norm, self.updates_stats = per_dim_norm, False
        if per_dim_norm and GymObservationHopper.stats is None:
            GymObservationHopper.stats = dict(count=0, mean=np.zeros(size), m2=np.zeros(size))
            self.updates_stats = True

    def _normalized(self, x):
        """x standardised per coordinate by the running statistics (Welford), clipped at 10."""
        if not self.per_dim_norm:
            return x
        st = GymObservationHopper.stats
        if self.updates_stats:
            st["count"] += 1
            delta = x - st["mean"]
            st["mean"] = st["mean"] + delta / st["count"]
            st["m2"] = st["m2"] + delta * (x - st["mean"])
        std = np.sqrt(st["m2"] / max(st["count"], 1) + 1e-8)
        return np.clip((x - st["mean"]) / std, -10, 10)

    def _observe(self):
        if self.kind == "ours_plus_gym":
            return np.concatenate([self._observe_as("ours_hinge_velocity"), self._observe_as("gym")])
        return self._observe_as(self.kind)

    def _observe_as(self, kind: str):
        if kind == "ours_compact":
            return np.asarray(self._compact(self.state.obs), np.float64)
        if kind == "ours_compact_axes":
            return np.asarray(self._compact_axes(self.state.obs), np.float64)
        if kind == "ours_compact_torso":
            return np.concatenate([self._observe_as("ours_compact"), self._torso_axes()])
        if kind.startswith("ours"):
            ours = np.asarray(self._ours(self.state.obs), np.float64)
            if kind == "ours":
                return ours
            qvel = np.asarray(self.state.qvel[0], np.float64)
            return np.concatenate([ours, np.clip(qvel[self.hinge_dofs], -10, 10)])
        qpos, qvel = (np.asarray(x[0], np.float64) for x in jax.device_get((self.state.qpos, self.state.qvel)))
        rot, to_heading = self._torso_frames(qpos)
        forward = rot[:, 0]  # the torso's x axis
        pitch = np.arctan2(-forward[2], np.linalg.norm(forward[:2]))
        v_forward = qvel[:2] @ to_heading[0, :2]  # along the heading
        if kind == "gym_3d":
            # A free joint's linear velocity is in the world frame, its angular one in the body's.
            linear, angular = to_heading @ qvel[:3], to_heading @ rot @ qvel[3:6]
            return np.concatenate(
                [
                    [qpos[2]],
                    (to_heading @ rot[:, [0, 2]]).T.reshape(-1),  # the torso's axes, as _torso_axes
                    qpos[self.hinge_qpos],
                    np.clip(np.concatenate([linear, angular]), -10, 10),
                    qvel[self.hinge_dofs],
                ]
            )
        if kind == "gym_all_hinges":
            velocities = np.clip([v_forward, qvel[2], qvel[4]], -10, 10)
            return np.concatenate([[qpos[2], pitch], qpos[self.hinge_qpos], velocities, qvel[self.hinge_dofs]])
        if kind == "gym_no_pitch":
            velocities = np.clip([v_forward, qvel[2]], -10, 10)
            return np.concatenate([[qpos[2]], qpos[self.qpos_idx], velocities, qvel[self.dof_idx]])
        return np.concatenate(
            [[qpos[2], pitch], qpos[self.qpos_idx], np.clip([v_forward, qvel[2], qvel[4]], -10, 10), qvel[self.dof_idx]]
        )

    def _torso_frames(self, qpos=None):
        """The torso's rotation and the world-to-heading rotation (about gravity, onto its x axis).
        On the host with MuJoCo's own conversion: op-by-op JAX here ran a step ~3x slower."""
        if qpos is None:
            qpos = np.asarray(jax.device_get(self.state.qpos)[0], np.float64)
        quat = qpos[3:7] / np.linalg.norm(qpos[3:7])
        flat = np.zeros(9)
        mujoco.mju_quat2Mat(flat, quat)
        rot = flat.reshape(3, 3)
        c, s = rot[:2, 0] / max(np.linalg.norm(rot[:2, 0]), 1e-9)
        return rot, np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])

    def _torso_axes(self):
        """The torso's x and z axes in its heading frame (6 numbers): its pitch and roll."""
        rot, to_heading = self._torso_frames()
        return (to_heading @ rot[:, [0, 2]]).T.reshape(-1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self._reset(jax.random.PRNGKey(int(self.np_random.integers(0, 2**31))))
        return self._normalized(self._observe()), {}

    def close(self):
        self.env.close()
        super().close()

    def step(self, action):
        full = np.zeros(self.env.action_shape, np.float32)
        if self.all_motors:
            full[self.action_mask] = np.asarray(action, np.float32)
        else:
            for limb, a in zip(self.limbs, np.asarray(action, np.float32)):
                full[limb, 1] = a
        self.state = self._step(self.state, full[None])
        reward, term, trunc = jax.device_get((self.state.reward[0], self.state.terminated[0], self.state.truncated[0]))
        return self._normalized(self._observe()), float(reward), bool(term), bool(trunc), {}


def main(argv=None) -> int:
    sys.path.insert(0, str(Path(__file__).parent))  # reference_gym sits beside this script
    import reference_gym

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--set-env", action="append", default=[], help="an EnvConfig training aid, KEY=VALUE")
    parser.add_argument("--observation", choices=OBSERVATIONS, default="gym", help="what the learner reads")
    parser.add_argument("--actions", choices=("pitch", "all"), default="pitch", help="which motors act")
    parser.add_argument(
        "--body",
        default=BODY,
        help="another body (its pitch hinges, those named *_y, stand for gymnasium's joints: "
        "walker_7_full read this way has Walker2d-v5's 17 numbers); the task is then "
        "Equirl_<body>_GymObs-v0",
    )
    parser.add_argument(
        "--raw",
        action="store_true",
        help="no observation normaliser (algorithm column crossq_raw): the reference loop packs a long "
        "vector into several limb slots, whose scalars the normaliser would pool across slots",
    )
    parser.add_argument(
        "--per-dim-norm",
        action="store_true",
        help="standardise every observation coordinate by its own running statistics inside the "
        "environment (algorithm column crossq_perdim; the learner's normaliser off)",
    )
    parser.add_argument("--runs", default="runs/reference_gym", help="where run checkpoints go ('' for none)")
    args = parser.parse_args(argv)
    # Checked and parsed as `equirl train --set env.KEY=VALUE` would be (unknown keys and bad
    # values refused by name); the aids then go to the environment as the fields that changed.
    config = apply_overrides(EnvConfig(bodies=(args.body,)), args.set_env, source="--set-env")
    aids = {key: getattr(config, key) for key in (pair.partition("=")[0] for pair in args.set_env)}
    task = TASK if args.body == BODY else f"Equirl_{Path(args.body).stem}_GymObs-v0"  # a file: its name
    gymnasium.register(id=task, entry_point=partial(GymObservationHopper, body=args.body))
    # Departures from gymnasium's observation and actions are named first in the task column.
    if args.actions != "pitch":
        aids = {"actions": args.actions, **aids}
    if args.observation != "gym":
        aids = {"observation": args.observation, **aids}
    algorithm, overrides = ("crossq_raw", ["offpolicy.normalize_observations=false"]) if args.raw else ("crossq", [])
    if args.per_dim_norm:
        algorithm, overrides = "crossq_perdim", ["offpolicy.normalize_observations=false"]
        aids = {**aids, "per_dim_norm": True}
    label = reference_gym.task_label(task, aids)
    where = reference_gym.run_directory(args.runs, label, algorithm, args.seed) if args.runs else None
    try:  # checkpointed at each evaluation: the same command goes on from there
        reference_gym.run(task, algorithm, args.steps, args.seed, args.eval_every, 5, overrides, aids, where)
    except ConfigError as err:
        raise SystemExit(f"hopper_gym_observation: {err}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
