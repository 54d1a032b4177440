"""How long do the 3D hoppers stay healthy with no learning at all? Zero torque and a
proportional hold of every hinge at its initial angle, on the exact training task.

A reference for the learned policies' episode lengths: a policy whose episodes are no
longer than these has learned speed but not balance.

    python benchmarks/hopper_scripted.py [--episodes 16]
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from equirl.envs.batched import BatchedEnv
from equirl.envs.config import EnvConfig
from equirl.observation import ANGLE_SCALARS

BODIES = ("hopper_3_shin", "hopper_4_lower_shin", "hopper_5_full")
GAINS = (0.0, 1.0, 3.0, 10.0)  # action per radian away from the initial angle (actions are clipped to ±1)


def episode_lengths(body: str, gain: float, episodes: int, limit: int = 1000) -> np.ndarray:
    env = BatchedEnv(EnvConfig(bodies=(body,), num_envs=episodes, max_limbs=5, autoreset=False, episode_length=limit))
    try:
        state = env.reset(jax.random.PRNGKey(0))
        angle0 = state.obs.scalars[..., ANGLE_SCALARS]

        @jax.jit
        def step(state):
            angle = state.obs.scalars[..., ANGLE_SCALARS]
            action = jnp.clip(-gain * (angle - angle0), -1.0, 1.0) * state.obs.action_mask
            return env.step(state, action)

        length = np.full(episodes, limit)
        for t in range(limit):
            state = step(state)
            ended = np.asarray(state.terminated | state.truncated) & (length == limit)
            length[ended] = t + 1
            if (length < limit).all():
                break
        return length
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=16)
    args = parser.parse_args()
    print("| body | " + " | ".join(f"gain {g:g}" for g in GAINS) + " |")
    print("|---|" + "---:|" * len(GAINS))
    for body in BODIES:
        cells = [episode_lengths(body, g, args.episodes) for g in GAINS]
        print(f"| {body} | " + " | ".join(f"{c.mean():.0f} ({c.min()}–{c.max()})" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
