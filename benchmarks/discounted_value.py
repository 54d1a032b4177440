"""What is a policy's behaviour worth to a learner that discounts?

For each policy (a run directory or a shipped controller's name) and each body, deterministic
episodes on the published task from the same starts: the undiscounted return, the episode
length, and the mean discounted return from the start, sum_t gamma^t r_t, for several gammas.
Comparing a policy that dives toward the target and falls with one that stands for 1,000 steps
says which of the two the learner's own objective prefers (README, issue 15).

    python benchmarks/discounted_value.py hopper_set_balance runs/<a hopper run> [--episodes 16]
"""

from __future__ import annotations

import argparse
import importlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

from equirl.envs import rollout
from equirl.evaluation import pretrained

evaluate = importlib.import_module("equirl.evaluation.evaluate")  # the package exports a function of that name

BODIES = ("hopper_3_shin", "hopper_4_lower_shin", "hopper_5_full")
GAMMAS = (0.99, 0.995, 0.999)


def measure(policy, body: str, episodes: int, seed: int = 7, episode_length: int | None = None) -> dict:
    """Means over `episodes` episodes from the starts of `seed`: return, length and, per gamma,
    the discounted return from the start (each episode's rewards after its first end count 0)."""
    env = evaluate.make_env(policy, body, episodes, policy.max_limbs, episode_length=episode_length)
    discounts = jnp.asarray((1.0,) + GAMMAS, jnp.float32)[:, None]  # gamma 1: the return itself

    def fold(acc, step, first_end):
        t, alive, sums, length = acc
        reward = jnp.where(alive, step.after.reward, 0.0)
        return t + 1, alive & ~first_end, sums + discounts**t * reward, length + alive

    @jax.jit
    def run(agent_state, key):
        acting = rollout.deterministic(lambda obs: policy.act(agent_state, obs))
        start = (jnp.int32(0), jnp.ones(episodes, bool), jnp.zeros((len(discounts), episodes)), jnp.zeros(episodes))
        return rollout.run_episodes(env, env.reset(key), acting, key, fold, start, env.config.episode_length)

    try:
        _, _, sums, length = run(policy.state, jax.random.PRNGKey(seed))
    finally:
        env.close()
    means = np.asarray(sums, np.float64).mean(1)
    return {"return": means[0], "length": float(np.mean(length)), **dict(zip(GAMMAS, means[1:]))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policies", nargs="+", help="run directories or shipped controller names")
    parser.add_argument("--bodies", nargs="+", default=list(BODIES))
    parser.add_argument("--episodes", type=int, default=16)
    a = parser.parse_args(argv)
    print("| policy | body | return | episode length | " + " | ".join(f"γ {g}" for g in GAMMAS) + " |")
    print("|---|---|---:|---:|" + "---:|" * len(GAMMAS))
    for source in a.policies:
        policy = pretrained.load_any(source)
        for body in a.bodies:
            row = measure(policy, body, a.episodes)
            values = " | ".join(f"{row[g]:.0f}" for g in GAMMAS)
            print(f"| {source} | {body} | {row['return']:.0f} | {row['length']:.0f} | {values} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
