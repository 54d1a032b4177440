"""How much action noise a body tolerates: episode lengths under zero-mean random torques, no policy.

Each body runs 16 episodes (seeded resets, the v1 task; `rollout.run_episodes`) with
actions tanh(sigma * N(0, 1)) on its driven dimensions, for each sigma; it
prints the median (min-max) episode length per body. A SAC-family learner
whose entropy target is H per action dimension keeps its unsquashed std near
exp(H - 1.419) (0.089 at H = -1): this table says whether that much noise
alone throws the body over.

    python benchmarks/action_noise.py [body,body,...]     # default: the three hoppers
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from equirl.envs import rollout
from equirl.envs.batched import BatchedEnv
from equirl.envs.config import EnvConfig

SIGMAS = (0.0, 0.01, 0.03, 0.09, 0.3, 1.0)
EPISODES = 16  # per body


def noise_policy(sigma: float) -> rollout.Policy:
    def act(obs, key, t):
        return jnp.tanh(sigma * jax.random.normal(key, obs.action_mask.shape)) * obs.action_mask, ()

    return act


def main() -> None:
    bodies = sys.argv[1].split(",") if len(sys.argv) > 1 else ["hopper_3_shin", "hopper_4_lower_shin", "hopper_5_full"]
    config = EnvConfig(bodies=tuple(bodies), num_envs=EPISODES * len(bodies), max_limbs=7, episode_length=1000)
    env = BatchedEnv(config)

    def fold(length, step, first_end):
        return jnp.where(first_end, step.after.info["episode_length"], length)

    @jax.jit
    def lengths(sigma):
        start = env.reset(jax.random.PRNGKey(0))  # the same initial states for every sigma
        empty = jnp.zeros(env.num_envs, jnp.int32)
        return rollout.run_episodes(
            env, start, noise_policy(sigma), jax.random.PRNGKey(1), fold, empty, config.episode_length
        )

    try:
        for sigma in SIGMAS:
            length = np.asarray(lengths(jnp.float32(sigma)))
            # Environments cycle through the bodies (env i is body i % len(bodies)): group by body_of_env.
            per_body = [(m.name, length[env.body_of_env == b]) for b, m in enumerate(env.morphologies)]
            by = [f"{name}: {np.median(n):.0f} ({n.min()}-{n.max()})" for name, n in per_body]
            print(f"sigma {sigma}: median (min-max) episode length:", "; ".join(by), flush=True)
    finally:
        env.close()


if __name__ == "__main__":
    main()
