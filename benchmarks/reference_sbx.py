"""A second opinion on the reference check: sbx's CrossQ on the same gymnasium task.

When our CrossQ falls short of a published curve (Humanoid-v5: 362-572 at
40-70k steps, critic 512 wide, where the paper's passes 1,000 at about 38k
with a critic 2,048 wide), two causes look the same: our learner, or the
settings (critic width, one seed). This runs the CrossQ of Stable-Baselines-Jax
(sbx, written by other people) at the width we can afford, with the paper's
settings otherwise, and writes its evaluations beside ours in
results/reference_gym/summary.csv, so the two curves are read side by side.

sbx is not a dependency of equirl (it pulls stable-baselines3 and torch):

    python -m venv /tmp/sbxvenv && /tmp/sbxvenv/bin/pip install torch==2.13.0 \\
        "jax==0.9.2" "jaxlib==0.9.2" "gymnasium[mujoco]==1.4.0" "mujoco==3.17.0" sbx-rl
    /tmp/sbxvenv/bin/python benchmarks/reference_sbx.py --task Humanoid-v5 --critic 512 --steps 50000

Evaluation as in reference_gym.py: every --eval-every steps, the deterministic
policy for --eval-episodes episodes on a separate environment; rows carry the
mean return and episode length. The algorithm column reads
`sbx_crossq_q<width>` plus `_noactorbn` when the actor has no batch renorm.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gym_table import OUT, append  # noqa: E402  (beside this script; neither imports equirl at load)
from gym_task import env_kwargs, task_label  # noqa: E402


def evaluate(model, env, episodes: int, seed: int) -> tuple[float, float]:
    """Mean return and length of `episodes` deterministic episodes."""
    returns, lengths = [], []
    for k in range(episodes):
        obs, _ = env.reset(seed=10_000 + 100 * seed + k)
        done, total, length = False, 0.0, 0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total, length, done = total + float(reward), length + 1, terminated or truncated
        returns.append(total)
        lengths.append(length)
    return float(np.mean(returns)), float(np.mean(lengths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="Humanoid-v5")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--critic", type=int, default=512, help="critic width (two layers); the paper's is 2048")
    parser.add_argument("--no-actor-bn", action="store_true", help="actor without batch renorm (as equirl's)")
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT / "summary.csv")
    parser.add_argument(
        "--env-kwarg", action="append", default=[], help="a gymnasium.make setting, as in reference_gym.py"
    )
    args = parser.parse_args()
    if args.critic < 1 or args.steps < 1 or args.eval_every < 1 or args.eval_episodes < 1:
        raise SystemExit("--critic, --steps, --eval-every and --eval-episodes must be positive")
    try:
        import gymnasium as gym
        from sbx import CrossQ
    except ImportError as error:
        raise SystemExit(f"reference_sbx.py needs sbx-rl and gymnasium[mujoco] ({error}); see this file's docstring")

    algorithm = f"sbx_crossq_q{args.critic}" + ("_noactorbn" if args.no_actor_bn else "")
    kwargs = env_kwargs(args.env_kwarg)
    env, eval_env = gym.make(args.task, **kwargs), gym.make(args.task, **kwargs)
    task = task_label(args.task, kwargs)
    # The paper's settings (sbx's defaults: Adam beta1 0.5, lr 1e-3, policy delay 3,
    # renorm momentum 0.99 and 100k warm-up updates), 5,000 random steps first.
    model = CrossQ(
        "MlpPolicy",
        env,
        learning_starts=5_000,
        seed=args.seed,
        policy_kwargs={
            "net_arch": {"pi": [256, 256], "qf": [args.critic, args.critic]},
            "batch_norm_actor": not args.no_actor_bn,
        },
        verbose=0,
    )
    start = time.time()
    done_steps = 0
    while done_steps < args.steps:
        chunk = min(args.eval_every, args.steps - done_steps)
        model.learn(total_timesteps=chunk, reset_num_timesteps=False)
        done_steps += chunk
        eval_return, eval_length = evaluate(model, eval_env, args.eval_episodes, args.seed)
        row = dict(
            task=task,
            algorithm=algorithm,
            seed=args.seed,
            env_steps=done_steps,
            eval_return=round(eval_return, 1),
            wall_seconds=round(time.time() - start, 1),
            eval_length=round(eval_length, 1),
        )
        append([row], args.out)
        print(
            f"{task} {algorithm} seed {args.seed}: {done_steps} steps, eval {row['eval_return']} "
            f"over {eval_length:.0f} steps, {row['wall_seconds']:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
