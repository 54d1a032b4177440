"""Is the hopper plateau ours? Brax's `ppo.train` and equirl's PPO learn the same body.

Both train an MLP policy on one 3D-SGRL body (task v1, native MuJoCo) for the
same budget with the same PPO settings: environments, rollout length, epochs,
minibatches, learning rate, gamma, GAE lambda, clip epsilon, gradient clipping,
reward scale, observation normalisation, no entropy bonus.

  ours   `equirl train` from configs/train/hopper_ppo_mlp.yaml with the body
         and the settings above overridden (GELU MLPs, Gaussian with a
         state-dependent log-std, truncated episodes bootstrapped).
  brax   brax.training.agents.ppo.train on our Brax adapter
         (`equirl.envs.brax_env.BraxEnv`) with Brax's own network defaults
         apart from the hidden sizes: tanh-squashed Gaussian with one learned
         noise scale per action (initial std 1), SiLU activations; truncated
         steps masked out of GAE. An independent implementation with its own
         exploration, so a plateau both reach is the task's, not a bug of ours.

Both curves are the returns and lengths of the training episodes (stochastic
policies) that ended in each logging window. Writes into --out
(results/ppo_crosscheck): curves.csv, curves.png and table.md (final return and
length: mean over the last 10% of the budget), all generated here.

    python benchmarks/ppo_crosscheck.py [--body hopper_5_full] [--steps 2000000]
        [--only ours|brax] [--set KEY=VALUE ...] [--table-only]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import functools
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from learning import LAST_FRACTION, final_return  # benchmarks/learning.py: the same "final" as its table

REPO = Path(__file__).resolve().parent.parent
TRAINERS = ("ours", "brax")


def train_ours(args, out: Path) -> list[tuple]:
    from equirl.agents.train import load_train_config, train

    run_dir = out / "runs" / f"ours_{args.body}_seed{args.seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    config = load_train_config(
        REPO / "configs" / "train" / "hopper_ppo_mlp.yaml",
        [
            f"env.bodies=[{args.body}]",
            f"env.num_envs={args.envs}",
            f"ppo.rollout_length={args.rollout}",
            f"ppo.epochs={args.epochs}",
            f"ppo.minibatches={args.minibatches}",
            f"ppo.learning_rate={args.lr}",
            f"ppo.gamma={args.gamma}",
            "ppo.gae_lambda=0.95",
            "ppo.clip_epsilon=0.2",
            "ppo.max_grad_norm=0.5",
            f"ppo.reward_scale={args.reward_scale}",
            "ppo.entropy_coef=0.0",
            "ppo.anneal_learning_rate=false",
            f"network.mlp_hidden=[{','.join(map(str, args.hidden))}]",
            f"run.total_steps={args.steps}",
            f"run.seed={args.seed}",
            f"run.out_dir={run_dir}",
            "run.progress=false",
            "run.name=crosscheck_ours",
            "run.checkpoint_every_steps=100000000",
            "run.keep_checkpoints=1",
            "run.equivariance_every_steps=0",
            *args.set,
        ],
    )
    train(config)
    rows = []
    with open(run_dir / "metrics.csv") as handle:
        for row in csv.DictReader(handle):
            if row.get("return/mean"):
                rows.append(
                    (
                        "ours",
                        int(row["env_steps"]),
                        float(row["wall_seconds"]),
                        float(row["return/mean"]),
                        float(row["episode_length/mean"]),
                    )
                )
    return rows


def train_brax(args) -> list[tuple]:
    from brax.training.agents.ppo import networks as brax_ppo_networks
    from brax.training.agents.ppo import train as brax_ppo

    from equirl.envs.brax_env import BraxEnv

    env = BraxEnv(args.body, backend="native")
    rows: list[tuple] = []
    start = time.perf_counter()

    def progress(step, metrics):
        if "episode/sum_reward" in metrics:
            rows.append(
                (
                    "brax",
                    int(step),
                    time.perf_counter() - start,
                    float(metrics["episode/sum_reward"]),
                    float(metrics["episode/length"]),
                )
            )

    try:
        brax_ppo.train(
            env,
            num_timesteps=args.steps,
            num_envs=args.envs,
            episode_length=1000,
            action_repeat=1,
            unroll_length=args.rollout,
            batch_size=args.envs // args.minibatches,
            num_minibatches=args.minibatches,
            num_updates_per_batch=args.epochs,
            learning_rate=args.lr,
            entropy_cost=0.0,
            discounting=args.gamma,
            gae_lambda=0.95,
            clipping_epsilon=0.2,
            max_grad_norm=0.5,
            reward_scaling=args.reward_scale,
            normalize_observations=True,
            normalize_advantage=True,
            network_factory=functools.partial(
                brax_ppo_networks.make_ppo_networks,
                policy_hidden_layer_sizes=tuple(args.hidden),
                value_hidden_layer_sizes=tuple(args.hidden),
            ),
            seed=args.seed,
            num_evals=2,
            run_evals=False,
            num_eval_envs=1,
            log_training_metrics=True,
            progress_fn=progress,
        )
    finally:
        env.close()
    return rows


def final(rows: list[tuple], steps: int, column: int) -> float:
    """Mean of one column (3: return, 4: length) over the last LAST_FRACTION of the budget."""
    return final_return([(r[1], r[2], r[column]) for r in rows], steps)


def write_report(args, out: Path, rows: list[tuple]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from equirl.machine import describe as machine

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    lines = [
        f"PPO cross-check on {args.body} (task v1, native MuJoCo), {args.steps:,} environment steps, seed "
        f"{args.seed}; {args.envs} environments x {args.rollout} steps per iteration, {args.epochs} epochs x "
        f"{args.minibatches} minibatches, lr {args.lr:g}, gamma {args.gamma:g}, reward scale "
        f"{args.reward_scale:g}, MLP {args.hidden}{'; ours with ' + ', '.join(args.set) if args.set else ''}. "
        f"{datetime.date.today()}, {machine()}. Final: mean over the "
        f"last {LAST_FRACTION:.0%} of the budget of the training episodes' return and length. Generated by "
        "benchmarks/ppo_crosscheck.py.",
        "",
        "| trainer | final return | final episode length | wall clock | env steps/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for trainer in TRAINERS:
        mine = [r for r in rows if r[0] == trainer]
        if not mine:
            continue
        steps, walls = np.array([r[1] for r in mine]), np.array([r[2] for r in mine])
        width = max(1, len(mine) // 50)
        for ax, column in zip(axes, (3, 4)):
            values = np.convolve([r[column] for r in mine], np.ones(width) / width, mode="valid")
            ax.plot(steps[width - 1 :], values, label=trainer)
        lines.append(
            f"| {trainer} | {final(mine, args.steps, 3):.0f} | {final(mine, args.steps, 4):.0f} | "
            f"{walls[-1] / 60:.1f} min | {steps[-1] / walls[-1]:,.0f} |"
        )
    for ax, label in zip(axes, ("training episode return", "training episode length")):
        ax.set_xlabel("environment steps")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle(f"PPO on {args.body}: equirl against brax, same settings")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
    text = "\n".join(lines) + "\n"
    (out / "table.md").write_text(text)
    return text


def read_rows(path: Path) -> list[tuple]:
    if not path.is_file():
        return []
    with open(path) as handle:
        return [
            (r["trainer"], int(r["env_steps"]), float(r["wall_seconds"]), float(r["return"]), float(r["length"]))
            for r in csv.DictReader(handle)
        ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--body", default="hopper_5_full")
    parser.add_argument("--steps", type=int, default=2_000_000)
    parser.add_argument("--envs", type=int, default=128)
    parser.add_argument("--rollout", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--minibatches", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--reward-scale", type=float, default=0.1)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override of our config (e.g. network.squash=true), ours only",
    )
    parser.add_argument("--only", choices=TRAINERS, help="train one trainer; the other's saved rows are kept")
    parser.add_argument("--table-only", action="store_true", help="rewrite table and plot from curves.csv")
    parser.add_argument("--out", default=str(REPO / "results" / "ppo_crosscheck"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = read_rows(out / "curves.csv")
    if not args.table_only:
        for trainer in [args.only] if args.only else TRAINERS:
            print(f"training {trainer}: {args.steps:,} steps on {args.body}", flush=True)
            new = train_ours(args, out) if trainer == "ours" else train_brax(args)
            rows = [r for r in rows if r[0] != trainer] + new
            with open(out / "curves.csv", "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["trainer", "env_steps", "wall_seconds", "return", "length"])
                writer.writerows((t, s, f"{w:.1f}", f"{r:.2f}", f"{n:.1f}") for t, s, w, r, n in rows)
    print(write_report(args, out, rows))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    os.chdir(REPO)
    sys.exit(main())
