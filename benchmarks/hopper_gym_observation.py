"""Our 3D hopper read through gymnasium's observation: does the representation stop the learner?

Issue 15, item 5. gymnasium's Hopper-v5 and hopper_4_lower_shin share body, gears, armature,
damping, friction and integrator, yet the same CrossQ hops on the first by 20k steps and falls
at ~110 steps on the second even made near-planar (README, "Is it the third dimension?"). This
steps *our* environment (the published reward, our termination, plus the given training aids)
but hands the learner gymnasium's 11 numbers, computed from our state in the torso's heading
frame: torso height and pitch, the three pitch-hinge angles, the torso's forward and vertical
velocity and its pitch rate (clipped at ±10 as gymnasium clips every velocity) and the three
pitch-hinge velocities (not clipped here). Only the pitch motors act (the
side motors get zero), as in gymnasium. Training runs through `reference_gym.run` (plain MLP,
the reference check's settings), so the rows land in results/reference_gym/summary.csv under
the task name `EquirlHopper4GymObs-v0[<the aids>]`.

    python benchmarks/hopper_gym_observation.py --steps 20000 --set-env training_torso_damping=200 \
        --set-env training_torso_damping_axes=planar --set-env training_tilt_limit=0.25 \
        --set-env training_target_spread=0
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium
import jax
import numpy as np
from gymnasium import spaces

from equirl.config_io import apply_overrides
from equirl.envs.batched import single_env
from equirl.envs.config import EnvConfig

BODY = "hopper_4_lower_shin"
TASK = "EquirlHopper4GymObs-v0"


class GymObservationHopper(gymnasium.Env):
    """One hopper_4_lower_shin, our task, gymnasium's observation and pitch-only actions."""

    def __init__(self, **aids):
        self.env = single_env(BODY, **aids)
        model = self.env.morphologies[0].model
        pitch = [j for j in range(model.njnt) if model.joint(j).name.endswith("_y")]
        self.qpos_idx = np.array([model.jnt_qposadr[j] for j in pitch])
        self.dof_idx = np.array([model.jnt_dofadr[j] for j in pitch])
        # Slot (limb, hinge) of each pitch motor in the [L, 3] action: the y hinge is hinge 1.
        self.limbs = [
            int(np.nonzero(np.asarray(self.env.tables.hinge_qposadr[0])[:, 1] == q)[0][0]) for q in self.qpos_idx
        ]
        self.observation_space = spaces.Box(-np.inf, np.inf, (5 + 2 * len(pitch),), np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, (len(pitch),), np.float32)
        self._reset = jax.jit(self.env.reset)
        self._step = jax.jit(self.env.step)
        self.state = None

    def _observe(self):
        qpos, qvel = (np.asarray(x[0], np.float64) for x in jax.device_get((self.state.qpos, self.state.qvel)))
        w, x, y, z = qpos[3:7] / np.linalg.norm(qpos[3:7])
        forward = np.array([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)])  # torso x axis
        heading = forward[:2] / max(np.linalg.norm(forward[:2]), 1e-9)
        pitch = np.arctan2(-forward[2], np.linalg.norm(forward[:2]))
        v_forward = qvel[:2] @ heading
        return np.concatenate(
            [[qpos[2], pitch], qpos[self.qpos_idx], np.clip([v_forward, qvel[2], qvel[4]], -10, 10), qvel[self.dof_idx]]
        )

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = self._reset(jax.random.PRNGKey(int(self.np_random.integers(0, 2**31))))
        return self._observe(), {}

    def close(self):
        self.env.close()
        super().close()

    def step(self, action):
        full = np.zeros(self.env.action_shape, np.float32)
        for limb, a in zip(self.limbs, np.asarray(action, np.float32)):
            full[limb, 1] = a
        self.state = self._step(self.state, full[None])
        reward, term, trunc = jax.device_get((self.state.reward[0], self.state.terminated[0], self.state.truncated[0]))
        return self._observe(), float(reward), bool(term), bool(trunc), {}


def main(argv=None) -> int:
    sys.path.insert(0, str(Path(__file__).parent))  # reference_gym sits beside this script
    import reference_gym

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--set-env", action="append", default=[], help="an EnvConfig training aid, KEY=VALUE")
    args = parser.parse_args(argv)
    # Checked and parsed as `equirl train --set env.KEY=VALUE` would be (unknown keys and bad
    # values refused by name); the aids then go to the environment as the fields that changed.
    config = apply_overrides(EnvConfig(bodies=(BODY,)), args.set_env, source="--set-env")
    aids = {key: getattr(config, key) for key in (pair.partition("=")[0] for pair in args.set_env)}
    gymnasium.register(id=TASK, entry_point=GymObservationHopper)
    reference_gym.run(TASK, "crossq", args.steps, args.seed, args.eval_every, 5, [], aids)
    return 0


if __name__ == "__main__":
    sys.exit(main())
