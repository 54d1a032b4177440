"""How long do the 3D hoppers stay healthy with no learning at all? On the exact training
task (published health bounds, reset noise), three scripted controllers:

- zero torque;
- a stiff hold: every hinge driven back to its initial angle, action g × (angle error);
- the stiff hold (g = 3) plus linear lean feedback: a corrective torque about the world's x
  axis of kx × (the torso's sideways lean plus 0.1 s of its rate) and about y of ky × (its
  forward lean plus rate), shared out over the hinges by their world-frame axes; a grid of
  gains, each pair on `--episodes` episodes;
- LQR (`equirl.envs.lqr`, the distillation teacher): linear state feedback about a
  standing equilibrium, from MuJoCo's own linearisation of the body (`mjd_transitionFD`) and
  the discrete Riccati equation, for two cost weightings.

A reference for the learned policies' episode lengths: a policy whose episodes are no
longer than these has learned speed but not balance. Actions are clipped to ±1.

    python benchmarks/hopper_scripted.py [--episodes 16] [--lqr-only]
    python benchmarks/hopper_scripted.py --hold-only --bodies walker_7_full ...   # any body
"""

from __future__ import annotations

import argparse
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from equirl.envs import lqr
from equirl.envs.batched import BatchedEnv
from equirl.envs.config import EnvConfig
from equirl.observation import ANGLE_SCALARS, HINGE_AXES

BODIES = ("hopper_3_shin", "hopper_4_lower_shin", "hopper_5_full")
HOLD_GAINS = (0.0, 1.0, 3.0, 10.0)
LEAN_GAINS = (-20.0, -5.0, -1.0, 0.0, 1.0, 5.0, 20.0)
# LQR cost weights (hinge angles and height, velocities, actions, torso tilt); the second is the teacher's default.
LQR_WEIGHTS = ((10.0, 10.0, 10.0, 1e4), lqr.WEIGHTS)


def torso_lean(qpos: jax.Array, qvel: jax.Array) -> jax.Array:
    """[B, 2]: the torso axis' world x and y parts, each plus 0.1 s of its rate of change."""
    w, x, y, z = (qpos[:, 3 + i] for i in range(4))
    up = jnp.stack([2 * (x * z + w * y), 2 * (y * z - w * x)], -1)
    # The free joint's angular velocity is in the torso frame; turned into the world frame, the
    # axis tips at spin × up, whose x and y parts are about spin_y and -spin_x for a near-upright torso.
    rot = jnp.stack(
        [
            jnp.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            jnp.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            jnp.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )
    spin = jnp.einsum("bij,bj->bi", rot, qvel[:, 3:6])
    return up + 0.1 * jnp.stack([spin[:, 1], -spin[:, 0]], -1)


def run_episodes(env: BatchedEnv, act, limit: int) -> np.ndarray:
    """Healthy steps of one episode per environment, each acting by act(state) -> [B, L, 3]."""
    step = jax.jit(env.step)
    state = env.reset(jax.random.PRNGKey(0))
    length = np.full(env.num_envs, limit)
    for t in range(limit):
        state = step(state, jnp.asarray(act(state), jnp.float32))
        ended = np.asarray(state.terminated | state.truncated) & (length == limit)
        length[ended] = t + 1
        if (length < limit).all():
            break
    return length


def make_env(body: str, num_envs: int, limit: int) -> BatchedEnv:
    return BatchedEnv(EnvConfig(bodies=(body,), num_envs=num_envs, max_limbs=14, autoreset=False, episode_length=limit))


def episode_lengths(body: str, hold: np.ndarray, kx: np.ndarray, ky: np.ndarray, limit: int = 1000) -> np.ndarray:
    """Stiff hold plus lean feedback: one episode per entry of the gain arrays [B], run as one batch."""
    env = make_env(body, len(hold), limit)
    hold, kx, ky = (jnp.asarray(g, jnp.float32) for g in (hold, kx, ky))
    try:
        angle0 = env.reset(jax.random.PRNGKey(0)).obs.scalars[..., ANGLE_SCALARS]

        @jax.jit
        def act(state):
            obs = state.obs
            lean = torso_lean(state.qpos, state.qvel)
            torque = jnp.stack([kx * lean[:, 1], ky * lean[:, 0], jnp.zeros_like(kx)], -1)  # [B, 3], world
            feedback = jnp.einsum("blhk,bk->blh", obs.vectors[..., HINGE_AXES, :], torque)
            action = -hold[:, None, None] * (obs.scalars[..., ANGLE_SCALARS] - angle0) + feedback
            return jnp.clip(action, -1.0, 1.0) * obs.action_mask

        return run_episodes(env, act, limit)
    finally:
        env.close()


def lqr_lengths(body: str, episodes: int, weights: tuple, limit: int = 1000) -> np.ndarray:
    env = make_env(body, episodes, limit)
    try:
        gains = lqr.tables(env, weights)
        return run_episodes(env, jax.jit(lambda s: lqr.act(gains, env.tables, s.qpos, s.qvel)), limit)
    finally:
        env.close()


def cell(lengths: np.ndarray) -> str:
    return f"{lengths.mean():.0f} ({lengths.min()}–{lengths.max()})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--lqr-only", action="store_true")
    parser.add_argument("--hold-only", action="store_true", help="only zero torque and the stiff holds")
    parser.add_argument("--bodies", nargs="+", default=list(BODIES), help="any body names")
    args = parser.parse_args()
    n = args.episodes
    if not args.lqr_only:
        zeros = np.zeros(n * len(HOLD_GAINS))
        pairs = list(itertools.product(LEAN_GAINS, LEAN_GAINS))
        lean_head = "" if args.hold_only else " best lean gains (kx, ky) | steps |"
        print("| body | " + " | ".join(f"hold {g:g}" for g in HOLD_GAINS) + " |" + lean_head)
        print("|---|" + "---:|" * len(HOLD_GAINS) + ("" if args.hold_only else "---|---:|"))
        for body in args.bodies:
            held = episode_lengths(body, np.repeat(HOLD_GAINS, n), zeros, zeros).reshape(len(HOLD_GAINS), n)
            cells = " | ".join(cell(c) for c in held)
            if args.hold_only:
                print(f"| {body} | {cells} |", flush=True)
                continue
            kx, ky = (np.repeat([p[i] for p in pairs], n) for i in (0, 1))
            lean = episode_lengths(body, np.full(len(kx), 3.0), kx, ky).reshape(len(pairs), n).mean(1)
            best = int(np.argmax(lean))
            print(f"| {body} | {cells} | {pairs[best]} | {lean[best]:.0f} |", flush=True)
        print()
    if args.hold_only:
        return
    names = [f"LQR {w[3]:.0e} / {w[0]:g}, {w[1]:g}, {w[2]:g}" for w in LQR_WEIGHTS]
    print("| body | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for body in args.bodies:
        cells = []
        for weights in LQR_WEIGHTS:
            lengths = lqr_lengths(body, n, weights)
            cells.append(f"{cell(lengths)}, {np.sum(lengths == 1000)}/{n} full")
        print(f"| {body} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
