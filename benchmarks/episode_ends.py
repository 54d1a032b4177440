"""How do a policy's episodes end: a crouch into the height limit, or a fall?

`equirl eval` names the condition that ended each episode (too_low, roll, ...). That
does not say how the body got there: a walker whose torso sinks below its height band
while upright (a crouch, or legs folding under it) and one that topples over and hits
the same limit look alike. For each body this runs deterministic episodes on the
published task and reads the torso's state where each episode ends, and over it:

- height, pitch and roll at the end (pitch and roll as the task measures them);
- the first step at which |pitch| or |roll| passed 0.5 rad (where the fall began);
- upright at the end: |pitch| and |roll| both under 0.5 rad (the end was a sinking,
  not a toppling).

    python benchmarks/episode_ends.py runs/<a walker run> --bodies walker_7_full --episodes 16
"""

from __future__ import annotations

import argparse
import importlib
import sys

import jax
import jax.numpy as jnp
import numpy as np

from equirl.envs import rollout, task
from equirl.evaluation import pretrained
from equirl.geometry import pitch_roll_of, quat_to_mat

evaluate = importlib.import_module("equirl.evaluation.evaluate")  # the package exports a function of that name

TIPPING = 0.5  # rad: a torso this far from upright is falling, not walking
NEVER = 10_000  # the tipping step of an episode that never tipped (longer than any episode)


def torso_pose(qpos):
    """Height, pitch and roll of the free root of each environment ([B] each)."""
    pitch, roll = pitch_roll_of(quat_to_mat(qpos[:, 3:7]))
    return qpos[:, 2], pitch, roll


def measure(policy, body: str, episodes: int, seed: int = 7, training_aids: bool = False) -> dict:
    """Per-episode arrays: length, the end reasons' bit mask (0: the time limit), the torso's height,
    pitch and roll at the end and the tipping step."""
    env = evaluate.make_env(policy, body, episodes, policy.max_limbs, training_aids=training_aids)
    n = episodes
    never = jnp.full(n, NEVER, jnp.int32)

    def fold(acc, step, first_end):
        t, alive, end, tipped, reason = acc
        z, pitch, roll = torso_pose(step.after.qpos)
        leaning = (jnp.abs(pitch) > TIPPING) | (jnp.abs(roll) > TIPPING)
        tipped = jnp.where(alive & leaning & (tipped == NEVER), t + 1, tipped)
        reason = jnp.where(first_end, step.after.info["end_reasons"], reason)
        end = jnp.where(first_end[:, None], jnp.stack([z, pitch, roll, jnp.full(n, t + 1.0)], -1), end)
        return t + 1, alive & ~first_end, end, tipped, reason

    @jax.jit
    def run(agent_state, key):
        acting = rollout.deterministic(lambda obs: policy.act(agent_state, obs))
        start = (jnp.int32(0), jnp.ones(n, bool), jnp.zeros((n, 4)), never, jnp.zeros(n, jnp.int32))
        return rollout.run_episodes(env, env.reset(key), acting, key, fold, start, env.config.episode_length)

    try:
        _, _, end, tipped, reason = jax.device_get(run(policy.state, jax.random.PRNGKey(seed)))
    finally:
        env.close()
    return {
        "length": end[:, 3],
        "reason": reason,
        "z_end": end[:, 0],
        "pitch_end": end[:, 1],
        "roll_end": end[:, 2],
        "tipped_at": np.where(tipped == NEVER, np.nan, tipped),
    }


def summary_row(source: str, body: str, m: dict) -> str:
    bits = jnp.asarray(m["reason"])
    counts = task.reason_counts(bits, bits > 0)  # each condition broken, as `equirl eval` counts
    reasons = {"time_limit": int(np.sum(m["reason"] == 0)), **dict(zip(task.END_REASONS, map(int, counts)))}
    upright = (np.abs(m["pitch_end"]) < TIPPING) & (np.abs(m["roll_end"]) < TIPPING) & (m["reason"] > 0)
    tipped = m["tipped_at"][~np.isnan(m["tipped_at"])]
    lead = np.mean(m["length"][~np.isnan(m["tipped_at"])] - tipped) if len(tipped) else float("nan")
    ends = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items()) if v)
    pose = f"{np.mean(m['z_end']):.2f} | {np.mean(np.abs(m['pitch_end'])):.2f} | {np.mean(np.abs(m['roll_end'])):.2f}"
    n = len(upright)
    return (
        f"| {source} | {body} | {np.mean(m['length']):.0f} | {ends} | {pose} | {int(upright.sum())} of {n} "
        f"| {len(tipped)} of {n}, {lead:.0f} steps before the end |"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policies", nargs="+", help="run directories or shipped controller names")
    parser.add_argument("--bodies", nargs="+", required=True)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--training-aids", action="store_true", help="the run's own aided task, as `equirl eval`")
    a = parser.parse_args(argv)
    print(
        "| policy | body | episode length | conditions broken at the end | torso height at the end | |pitch| | |roll| "
        f"| upright at the end (|pitch|, |roll| < {TIPPING}) | tipped past {TIPPING} rad |"
    )
    print("|---|---|---:|---|---:|---:|---:|---|---|")
    for source in a.policies:
        policy = pretrained.load_any(source)
        for body in a.bodies:
            m = measure(policy, body, a.episodes, training_aids=a.training_aids)
            print(summary_row(source, body, m), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
