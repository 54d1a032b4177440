"""Off-policy learning on the 3D suites: CrossQ, SAC and TD3 with heading-MLP and SET networks.

Each run trains `configs/train/<suite>_<algorithm>_<network>.yaml` through
`equirl train`'s driver for a budget of environment steps (one update per
collected transition in the presets). Run directories (checkpoints with the
replay buffer: hundreds of MB) go to --runs; each run's metrics.csv is copied
to results/offpolicy/metrics/<name>.csv, from which this script writes

  summary.csv   suite, algorithm, network, seed, env_steps, final_return,
                final_episode_length, wall_seconds (final = mean of the
                training episodes' logged means over the last 10% of the
                budget, as benchmarks/learning.py)
  <suite>.png   return and episode length against environment steps
  table.md      the summary beside 3D-SGRL's published numbers

    python benchmarks/offpolicy.py --suite hopper --algorithm crossq --network mlp_heading --steps 300000 --seed 0
    python benchmarks/offpolicy.py --table-only        # summary, plots and table from the copied metrics

A run whose copied metrics already reach the budget is not trained again;
a stopped one resumes from its checkpoint in --runs.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np

OUT = Path("results/offpolicy")
LAST_FRACTION = 0.1
# 3D-SGRL's SET (TD3, about 2.5M transitions), mean return over each suite's training bodies.
PUBLISHED = {"hopper": 2700, "walker": 2650}
FIELDS = ("suite", "algorithm", "network", "seed", "env_steps", "final_return", "final_episode_length", "wall_seconds")


def run_name(suite: str, algorithm: str, network: str, seed: int, tag: str = "") -> str:
    return f"{suite}_{algorithm}_{network}{'_' + tag if tag else ''}_seed{seed}"


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as handle:
        return list(csv.DictReader(handle))


def train_one(args) -> None:
    from equirl.agents.train import load_train_config, train

    name = run_name(args.suite, args.algorithm, args.network, args.seed, args.tag)
    copied = OUT / "metrics" / f"{name}.csv"
    rows = read_metrics(copied)
    if rows and float(rows[-1]["env_steps"]) >= args.steps:
        print(f"{name}: done already ({copied})")
        return
    run_dir = Path(args.runs) / name
    config = load_train_config(
        Path("configs/train") / f"{args.suite}_{args.algorithm}_{args.network}.yaml",
        [
            f"run.total_steps={args.steps}",
            f"run.seed={args.seed}",
            f"run.out_dir={run_dir}",
            f"run.name={name}",
            "run.keep_checkpoints=1",
            *args.set,
        ],
    )
    resume = (run_dir / "checkpoints").is_dir() and any(p.name.isdigit() for p in (run_dir / "checkpoints").iterdir())
    (OUT / "metrics").mkdir(parents=True, exist_ok=True)
    try:
        train(config, resume=resume)
    finally:
        if (run_dir / "metrics.csv").is_file():
            shutil.copy(run_dir / "metrics.csv", copied)


def final(rows: list[dict], key: str, steps: float) -> float:
    tail = [float(r[key]) for r in rows if float(r["env_steps"]) > (1 - LAST_FRACTION) * steps and r.get(key)]
    return float(np.mean(tail)) if tail else math.nan


def summarize() -> list[dict]:
    summary = []
    for path in sorted((OUT / "metrics").glob("*.csv")):
        rows = read_metrics(path)
        if not rows:
            continue
        suite, algorithm, *rest = path.stem.split("_")
        seed = int(rest[-1].removeprefix("seed"))
        network = "_".join(rest[:-1])
        steps = float(rows[-1]["env_steps"])
        summary.append(
            dict(
                suite=suite,
                algorithm=algorithm,
                network=network,
                seed=seed,
                env_steps=int(steps),
                final_return=round(final(rows, "return/mean", steps), 1),
                final_episode_length=round(final(rows, "episode_length/mean", steps), 1),
                wall_seconds=round(float(rows[-1]["wall_seconds"]), 0),
                rows=rows,
            )
        )
    return summary


def plot(summary: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(rows, key):
        if key == "q/bias":  # recomputed, so runs logged before the column existed have it too
            return [
                (float(r["env_steps"]), float(r["q/mean"]) - float(r["q/mc_return"]))
                for r in rows
                if r.get("q/mc_return") and r.get("q/mean") and float(r["q/mean"]) != 0.0
            ]
        return [(float(r["env_steps"]), float(r[key])) for r in rows if r.get(key)]

    panels = (
        ("return/mean", "episodic return (mean over bodies)"),
        ("episode_length/mean", "episode length"),
        ("q/bias", "Q bias: mean Q - Monte-Carlo return"),
    )
    for suite in sorted({s["suite"] for s in summary}):
        fig, axes = plt.subplots(1, 3, figsize=(16, 4))
        for s in (s for s in summary if s["suite"] == suite):
            label = f"{s['algorithm']} {s['network']} seed {s['seed']}"
            for ax, (key, _) in zip(axes, panels):
                pts = series(s["rows"], key)
                if len(pts) > 1:
                    x, y = map(np.asarray, zip(*pts))
                    width = max(1, len(y) // 40)
                    smooth = np.convolve(y, np.ones(width) / width, mode="valid")
                    ax.plot(x[width - 1 :], smooth, label=label)
        for ax, (_, what) in zip(axes, panels):
            ax.set_xlabel("environment steps")
            ax.set_ylabel(what)
        axes[2].set_yscale("symlog", linthresh=100)
        axes[0].set_title(f"{suite} suite, task v1, training episodes")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(OUT / f"{suite}.png", dpi=110)
        plt.close(fig)


def write_tables(summary: list[dict]) -> None:
    with open(OUT / "summary.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(summary)
    from equirl.machine import describe as machine

    lines = [
        f"Off-policy learners on the 3D suites, task v1; generated {datetime.date.today()} by "
        f"benchmarks/offpolicy.py on {machine()}. Final: mean of the logged training-episode means over the last "
        f"{LAST_FRACTION:.0%} of each run's steps. Published: 3D-SGRL's SET (TD3, about 2.5M transitions).",
        "",
        "| suite | algorithm | network | seed | env steps | final return | final episode length | wall clock | "
        "published SET |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for s in summary:
        lines.append(
            f"| {s['suite']} | {s['algorithm']} | {s['network']} | {s['seed']} | {s['env_steps']:,} | "
            f"{s['final_return']:.0f} | {s['final_episode_length']:.0f} | {s['wall_seconds'] / 60:.0f} min | "
            f"{PUBLISHED.get(s['suite'], '')} |"
        )
    (OUT / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="hopper")
    parser.add_argument("--algorithm", default="crossq")
    parser.add_argument("--network", default="mlp_heading")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=300_000)
    parser.add_argument("--tag", default="", help="a name for a variant run (its --set overrides)")
    parser.add_argument("--runs", default="runs/offpolicy", help="where run directories (checkpoints) go")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args(argv)
    if not args.table_only:
        train_one(args)
    summary = summarize()
    if summary:
        plot(summary)
        write_tables(summary)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
