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
import numpy as np

from equirl.evaluation import pretrained

evaluate = importlib.import_module("equirl.evaluation.evaluate")  # the package exports a function of that name

BODIES = ("hopper_3_shin", "hopper_4_lower_shin", "hopper_5_full")
GAMMAS = (0.99, 0.995, 0.999)


def measure(policy, body: str, episodes: int, seed: int = 7, episode_length: int | None = None) -> dict:
    env = evaluate.make_env(policy, body, episodes, policy.max_limbs, episode_length=episode_length)
    try:
        step = jax.jit(env.step)
        act = jax.jit(policy.act)
        state = env.reset(jax.random.PRNGKey(seed))
        alive = np.ones(episodes, bool)
        rewards, lengths = [], np.zeros(episodes)
        for _ in range(env.config.episode_length):
            state = step(state, act(policy.state, state.obs))
            rewards.append(np.asarray(state.reward, np.float64) * alive)
            lengths += alive
            alive &= ~np.asarray(state.terminated | state.truncated)
            if not alive.any():
                break
        r = np.stack(rewards)  # [T, episodes]; zero after each episode's end
        row = {"return": r.sum(0).mean(), "length": lengths.mean()}
        row.update({g: (r * g ** np.arange(len(r))[:, None]).sum(0).mean() for g in GAMMAS})
        return row
    finally:
        env.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policies", nargs="+", help="run directories or shipped controller names")
    parser.add_argument("--bodies", nargs="+", default=list(BODIES))
    parser.add_argument("--episodes", type=int, default=16)
    a = parser.parse_args(argv)
    print("| policy | body | return | episode length | " + " | ".join(f"γ {g}" for g in GAMMAS) + " |")
    print("|---|---|---:|---:|" + "---:|" * len(GAMMAS))
    for source in a.policies:
        names = pretrained.names()
        policy = pretrained.load(source) if source in names else evaluate.load_policy_for_eval(source)
        for body in a.bodies:
            row = measure(policy, body, a.episodes)
            values = " | ".join(f"{row[g]:.0f}" for g in GAMMAS)
            print(f"| {source} | {body} | {row['return']:.0f} | {row['length']:.0f} | {values} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
