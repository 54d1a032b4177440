"""World models on the locomotion environments: accuracy, flow and length generalisation, equivariance.

    python benchmarks/world_models.py                    # all kinds, seeds 0,1,2 (see --help)
    python benchmarks/world_models.py --kinds gru fernn --steps 200 --seeds 0
    python benchmarks/world_models.py --kinds fernn --merge &   # two processes, one per core,
    python benchmarks/world_models.py --kinds gru remul --merge  # filling one results.json

1. Data: random torques (held for 2 steps) on four small bodies, 64
   environments x 4000 steps by default, recorded with
   `equirl.worldmodels.data.collect` (or --data DIR); the last 20% of every
   shard is the test split.
2. Train every kind (equirl.worldmodels.train.train_world_model: the code
   path of `equirl wm train`) with observer flows inside a small range
   (|yaw rate| <= 0.02 rad/step, speed <= 0.005 m/step), context 4 frames,
   12-step open-loop training rollouts.
3. Evaluate on test windows: open-loop error at k = 1, 5, 10, 25, 50 (past
   the 12-step training horizon: length generalisation), z-scored per
   feature, and the torso position error in metres; the same under observer
   flows far outside the training range (a yaw rate in the FERNN's lifted set
   V, two between its elements, a velocity); equivariance errors (seed 0) with
   equirl.equivariance, for static elements and for flows.

Writes results/world_models/{table.md, kstep.csv, equivariance.csv, training.csv, kstep.png, flows.png}.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from equirl.worldmodels.config import WMDataConfig, WMOptimConfig, WMRunConfig, WMTrainConfig  # noqa: E402
from equirl.worldmodels.flows import ObserverFlow  # noqa: E402
from equirl.worldmodels.interface import FERNNOptions, WorldModelConfig  # noqa: E402

BODIES = ("hopper_3_shin", "hopper_4_lower_shin", "walker_2_right_leg_left_knee", "walker_3_left_leg_right_foot")
KINDS = ("gru", "static_equivariant", "fernn", "fernn_estimated_rate", "remul", "invariant_latent")
KS = (1, 5, 10, 25, 50)
TRAIN_MAX_YAW_RATE = 0.02
TRAIN_MAX_SPEED = 0.005
COPIES = 4  # FERNN's V by default: yaw rates 2 pi k / 4 rad/step
# Yaw rates (rad/step) of the sweep: how far outside the training range each model's
# advantage over the GRU holds. With N = 4 all lie off V (V = {0, pi/2, pi, 3 pi/2}).
SWEEP_RATES = (0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.25, 2.0, 2.5, 3.0)


def test_flows(copies: int = COPIES) -> dict[str, ObserverFlow]:
    return {
        f"yaw_{2 * math.pi / copies:.3f}_in_V": ObserverFlow.make(2 * math.pi / copies),
        "yaw_0.100_off_V": ObserverFlow.make(0.1),
        "yaw_0.500_off_V": ObserverFlow.make(0.5),
        "velocity_0.020": ObserverFlow.make(0.0, (0.02, 0.0)),
    }


def yaw_sweep(model, params, config, stats, data: Path, windows: int) -> list[dict]:
    """The k-step errors under a yaw-rate flow for each of SWEEP_RATES (same test windows as the report)."""
    from equirl.worldmodels.evaluate import test_windows
    from equirl.worldmodels.metrics import kstep_errors

    context = config.model.context
    batch, ks = test_windows(data, context, KS, config.data.test_fraction, windows)
    return [
        dict(yaw_rate=rate, **kstep_errors(model, params, batch, context, stats, ks, ObserverFlow.make(rate)))
        for rate in SWEEP_RATES
    ]


def base_config(args, kind: str, seed: int, data: Path, out: Path) -> WMTrainConfig:
    return WMTrainConfig(
        data=WMDataConfig(
            path=str(data),
            window=16,
            batch_size=args.batch_size,
            test_fraction=0.2,
            max_yaw_rate=TRAIN_MAX_YAW_RATE,
            max_speed=TRAIN_MAX_SPEED,
        ),
        model=WorldModelConfig(
            kind=kind,
            context=4,
            width=args.width,
            vector_channels=args.vector_channels,
            depth=1,
            heads=4,
            fernn=FERNNOptions(args.copies),
        ),
        optim=WMOptimConfig(learning_rate=args.learning_rate, steps=args.steps, warmup_steps=20),
        run=WMRunConfig(
            name=f"{kind}_s{seed}",
            out_dir=str(out / "runs" / f"{kind}_s{seed}"),
            seed=seed,
            log_every=max(args.steps // 5, 1),
            checkpoint_every=args.steps,
            eval_windows=64,
            progress=False,
        ),
    )


def ensure_data(args, out: Path) -> Path:
    from equirl.worldmodels.data import METADATA, CollectConfig, collect

    envs, steps = args.collect_envs, args.collect_steps
    data = Path(args.data) if args.data else out / "runs" / f"data_random_{envs}x{steps}"
    if not (data / METADATA).exists():
        collect(
            CollectConfig(
                bodies=BODIES,
                out=str(data),
                num_envs=envs,
                steps=steps,
                policy="random",
                action_repeat=2,
                shard_steps=max(steps // 4, 1),
                seed=0,
            )
        )
    return data


def run_one(args, kind: str, seed: int, data: Path, out: Path, equivariance: bool) -> dict:
    from equirl.nn import count_parameters
    from equirl.worldmodels import train as wm_train
    from equirl.worldmodels.evaluate import evaluate_model

    config = base_config(args, kind, seed, data, out)
    shutil.rmtree(config.run.directory, ignore_errors=True)
    start = time.perf_counter()
    result = wm_train.train_world_model(config, log=lambda m: None)
    wall = time.perf_counter() - start
    stats = wm_train.stats_from_json(json.loads((result.run_dir / wm_train.STATS_JSON).read_text()))
    model = wm_train._compiled(config, stats)[0]  # the trained model's functions (compiled once per kind)
    start = time.perf_counter()
    report = evaluate_model(
        model,
        result.params,
        config,
        stats,
        data,
        KS,
        test_flows(args.copies),
        windows=args.windows,
        seed=seed,
        equivariance=equivariance,
    )
    report["yaw_sweep"] = yaw_sweep(model, result.params, config, stats, data, args.windows)
    return {
        "kind": kind,
        "seed": seed,
        "report": report,
        "train_seconds": wall,
        "steady_seconds": result.wall_seconds,
        "eval_seconds": time.perf_counter() - start,
        "parameters": count_parameters(result.params),
        "final_loss": result.history[-1]["loss"],
        "final_test": result.history[-1]["test/total"],
    }


def reevaluate(args, r: dict, data: Path, out: Path, equivariance: bool) -> dict:
    """r with its report measured again from its run's checkpoint (e.g. after the test flows changed)."""
    from equirl.worldmodels import train as wm_train
    from equirl.worldmodels.evaluate import evaluate_model

    _, params, config, stats = wm_train.load_world_model(out / "runs" / f"{r['kind']}_s{r['seed']}")
    model = wm_train._compiled(config, stats)[0]  # compiled once per kind, as in run_one
    start = time.perf_counter()
    report = evaluate_model(
        model,
        params,
        config,
        stats,
        data,
        KS,
        test_flows(args.copies),
        windows=args.windows,
        seed=r["seed"],
        equivariance=equivariance,
    )
    report["yaw_sweep"] = yaw_sweep(model, params, config, stats, data, args.windows)
    return dict(r, report=report, eval_seconds=time.perf_counter() - start)


# --- outputs ----------------------------------------------------------------------------


def write_csvs(results: list[dict], out: Path) -> None:
    with open(out / "kstep.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "seed", "flow", "k", "z_mse", "position_m"])
        for r in results:
            for row in r["report"]["kstep"]:
                for k in r["report"]["ks"]:
                    writer.writerow([r["kind"], r["seed"], row["flow"], k, row[f"z_{k}"], row[f"position_m_{k}"]])
    with open(out / "equivariance.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "seed", "measure", "relative_error"])
        for r in results:
            for name, value in r["report"].get("equivariance", {}).items():
                writer.writerow([r["kind"], r["seed"], name, value])
    with open(out / "training.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "kind",
                "seed",
                "parameters",
                "train_seconds",
                "steady_seconds",
                "eval_seconds",
                "final_loss",
                "final_test",
            ]
        )
        for r in results:
            writer.writerow(
                [
                    r["kind"],
                    r["seed"],
                    r["parameters"],
                    f"{r['train_seconds']:.1f}",
                    f"{r['steady_seconds']:.1f}",
                    f"{r['eval_seconds']:.1f}",
                    r["final_loss"],
                    r["final_test"],
                ]
            )


def _saved(out: Path) -> list[dict]:
    """OUT/results.json, read now (another process may have written since)."""
    return json.loads((out / "results.json").read_text()) if (out / "results.json").exists() else []


def _replaced(saved: list[dict], runs: list[dict]) -> list[dict]:
    """`saved` with `runs` in place of those of the same kind and seed, in KINDS order."""
    new = {(r["kind"], r["seed"]): r for r in runs}
    merged = [r for r in saved if (r["kind"], r["seed"]) not in new] + list(new.values())
    return sorted(merged, key=lambda r: (KINDS.index(r["kind"]) if r["kind"] in KINDS else len(KINDS), r["seed"]))


def _flow_names(results) -> list[str]:
    return [row["flow"] for row in results[0]["report"]["kstep"] if row["flow"] != "none"]


def _by_kind(results):
    kinds = []
    for r in results:
        if r["kind"] not in kinds:
            kinds.append(r["kind"])
    return {k: [r for r in results if r["kind"] == k] for k in kinds}


def _value(runs, flow, key):
    values = [row[key] for r in runs for row in r["report"]["kstep"] if row["flow"] == flow and key in row]
    return np.asarray(values, np.float64)


def _fmt(values: np.ndarray) -> str:
    if not values.size:
        return "-"
    if values.size == 1:
        return f"{values[0]:.3g}"
    return f"{values.mean():.3g} ± {values.std():.2g}"


def write_table(args, results: list[dict], out: Path, data: Path) -> None:
    meta = json.loads((data / "metadata.json").read_text())
    groups = _by_kind(results)
    ks = results[0]["report"]["ks"]
    flows = _flow_names(results)
    horizon = results[0]["report"]["training_horizon"]
    day = datetime.date.today().isoformat()
    lines = [
        f"# World models, {args.steps:,} Adam steps per run: open-loop accuracy, flow and length generalisation, "
        "equivariance",
        "",
        f"Generated by benchmarks/world_models.py on {day} ({platform.processor() or platform.machine()}, "
        f"2 shared CPU cores, jax CPU). Data: {meta['steps']} steps x {meta['num_envs']} environments of random "
        f"torques (held 2 steps) on {', '.join(meta['bodies'])}; test split = last 20% of each shard. "
        f"Budget per run: {args.steps} Adam steps, batch {args.batch_size} windows of 16 frames (context 4, "
        f"{horizon}-step open-loop training rollouts), width {args.width}, {args.vector_channels} vector channels; "
        f"training flows |yaw rate| <= {TRAIN_MAX_YAW_RATE} rad/step, speed <= {TRAIN_MAX_SPEED} m/step. "
        f"Seeds: {', '.join(str(s) for s in sorted({r['seed'] for r in results}))} (mean ± std over seeds). "
        f'Test windows: {results[0]["report"]["windows"]}. "train s/run": wall clock of one run, compilation '
        f"included (each kind compiles once, in its first seed), on a machine shared with other jobs.",
        "",
        "Errors: z = mean squared error of the dynamic features after k open-loop steps, each feature z-scored "
        "(scalars by their std; each vector channel by the RMS of its length; the torso position by the RMS of "
        "its one-step displacement), averaged over features, limbs and windows; m = torso position error in metres.",
        "",
        "## Open-loop error without flows (k past " + str(horizon) + " is length generalisation)",
        "",
        "| model | parameters | train s/run | "
        + " | ".join(f"z@{k}" for k in ks)
        + " | m@10 | m@"
        + str(ks[-1])
        + " |",
        "|---|---:|---:|" + "---:|" * (len(ks) + 2),
    ]
    for kind, runs in groups.items():
        wall = np.mean([r["train_seconds"] for r in runs])
        cells = [_fmt(_value(runs, "none", f"z_{k}")) for k in ks]
        lines.append(
            f"| {kind} | {runs[0]['parameters']:,} | {wall:.0f} | "
            + " | ".join(cells)
            + f" | {_fmt(_value(runs, 'none', 'position_m_10'))}"
            + f" | {_fmt(_value(runs, 'none', f'position_m_{ks[-1]}'))} |"
        )
    lines += [
        "",
        "## Flow generalisation: 10-step z error under observer flows outside the training range",
        "",
        "| model | no flow | " + " | ".join(flows) + " |",
        "|---|---:|" + "---:|" * len(flows),
    ]
    for kind, runs in groups.items():
        cells = [_fmt(_value(runs, f, "z_10")) for f in ["none"] + flows]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    compared = [k for k in ("fernn", "fernn_estimated_rate", "static_equivariant") if k in groups]
    if compared and "gru" in groups:
        lines += [
            "",
            "Ratio of the 10-step z error to the GRU's (goal for the FERNN on flows outside the range: <= 0.1):",
            "",
            "| model | " + " | ".join(["no flow"] + flows) + " |",
            "|---|" + "---:|" * (len(flows) + 1),
        ]
        gru = {f: _value(groups["gru"], f, "z_10").mean() for f in ["none"] + flows}
        for kind in compared:
            cells = [f"{_value(groups[kind], f, 'z_10').mean() / gru[f]:.3g}" for f in ["none"] + flows]
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    lines += _sweep_table(groups)
    # One measured run per kind: its lowest seed (with --merge, each process measured its first seed).
    measured = [r for r in results if r["report"].get("equivariance")]
    eq_runs = [min(runs, key=lambda r: r["seed"]) for runs in _by_kind(measured).values()]
    if eq_runs:
        names = list(eq_runs[0]["report"]["equivariance"])
        seeds = sorted({r["seed"] for r in eq_runs})
        lines += [
            "",
            "## Equivariance errors (relative; open-loop predictions of 10 steps, seed "
            f"{', '.join(map(str, seeds))}, equirl.equivariance)",
            "",
            "static_finite: random O_g(3) elements with 1 m shifts; static_lie_*: Lie derivatives along a "
            "rotation about z and a translation; flow_<name>: the flowed sequence vs the flowed prediction; "
            "flow_lie_*: Lie derivative along a yaw-rate / velocity flow at zero. Goal for exact models: <= 1e-5.",
            "",
            "| model | " + " | ".join(names) + " |",
            "|---|" + "---:|" * len(names),
        ]
        for r in eq_runs:
            errors = r["report"]["equivariance"]
            lines.append(
                f"| {r['kind']} | " + " | ".join(f"{errors[n]:.2e}" if n in errors else "-" for n in names) + " |"
            )
    (out / "table.md").write_text("\n".join(lines) + "\n")


def _sweep_values(runs, rate: float) -> np.ndarray:
    return np.asarray(
        [row["z_10"] for r in runs for row in r["report"].get("yaw_sweep", []) if row["yaw_rate"] == rate], np.float64
    )


def _sweep_ratios(groups) -> tuple[np.ndarray, dict[str, np.ndarray]] | None:
    """(the GRU's mean 10-step error at each of SWEEP_RATES, {kind: its mean error / the GRU's}) for the
    kinds with a sweep, or None when the GRU has none (results from before the sweep)."""
    if "gru" not in groups or not _sweep_values(groups["gru"], SWEEP_RATES[0]).size:
        return None
    gru = np.array([_sweep_values(groups["gru"], rate).mean() for rate in SWEEP_RATES])
    return gru, {
        kind: np.array([_sweep_values(runs, rate).mean() for rate in SWEEP_RATES]) / gru
        for kind, runs in groups.items()
        if kind != "gru" and _sweep_values(runs, SWEEP_RATES[0]).size
    }


def _sweep_table(groups) -> list[str]:
    """Ratio to the GRU of the 10-step error under each yaw rate of the sweep, and the GRU's own error."""
    sweep = _sweep_ratios(groups)
    if sweep is None:
        return []
    gru, ratios = sweep
    lines = [
        "",
        "## Yaw-rate sweep: 10-step z error relative to the GRU's, by observer yaw rate (rad/step)",
        "",
        f"Training flows reach {TRAIN_MAX_YAW_RATE} rad/step; FERNN's V = 2 pi k / {COPIES}, so every rate below "
        "is off V. Goal for the FERNN: <= 0.1. Where 10 steps turn the frame by nearly whole turns (1.25 and "
        "2.5 rad/step: 12.5 and 25 rad), the 10-step error of a model that ignores the flow is small again.",
        "",
        "| model | " + " | ".join(f"{rate:g}" for rate in SWEEP_RATES) + " |",
        "|---|" + "---:|" * len(SWEEP_RATES),
        "| gru (its z@10) | " + " | ".join(f"{value:.3g}" for value in gru) + " |",
    ]
    for kind, ratio in ratios.items():
        lines.append(f"| {kind} | " + " | ".join(f"{value:.3g}" for value in ratio) + " |")
    return lines


def write_plots(results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = _by_kind(results)
    ks = results[0]["report"]["ks"]
    flows = _flow_names(results)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for kind, runs in groups.items():
        for ax, flow in zip(axes, ["none", flows[0]]):
            mean = [_value(runs, flow, f"z_{k}").mean() for k in ks]
            ax.plot(ks, mean, marker="o", label=kind)
    for ax, title in zip(axes, ["no flow", f"flow {flows[0]}"]):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("open-loop steps k")
        ax.set_ylabel("z-scored MSE")
        ax.set_title(title)
        ax.axvline(results[0]["report"]["training_horizon"], color="grey", lw=0.8, ls="--")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "kstep.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 4))
    names = ["none"] + flows
    width = 0.8 / len(groups)
    for i, (kind, runs) in enumerate(groups.items()):
        values = [_value(runs, f, "z_10").mean() for f in names]
        ax.bar(np.arange(len(names)) + i * width, values, width, label=kind)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("10-step z-scored MSE")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "flows.png", dpi=120)
    plt.close(fig)

    sweep = _sweep_ratios(groups)
    if sweep is not None:
        fig, ax = plt.subplots(figsize=(7, 4))
        for kind, ratio in sweep[1].items():
            ax.plot(SWEEP_RATES, ratio, marker="o", label=kind)
        ax.axhline(0.1, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("observer yaw rate (rad/step)")
        ax.set_ylabel("10-step error / GRU's")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "yaw_sweep.png", dpi=120)
        plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=3000, help="Adam steps per run (default 3000)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--vector-channels", type=int, default=16)
    parser.add_argument(
        "--copies", type=int, default=COPIES, help=f"FERNN's V: yaw rates 2 pi k / COPIES (default {COPIES})"
    )
    parser.add_argument("--collect-envs", type=int, default=64, help="environments recorded (default 64)")
    parser.add_argument("--collect-steps", type=int, default=4000, help="steps per environment (default 4000)")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="keep the runs of OUT/results.json that this call does not redo (two calls can share the "
        "kinds between processes)",
    )
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--windows", type=int, default=64, help="test windows (default 64)")
    parser.add_argument("--data", help="dataset folder (default: collect one under OUT/runs/)")
    parser.add_argument("--out", default=str(REPO / "results" / "world_models"))
    parser.add_argument("--table-only", action="store_true", help="rewrite table and plots from OUT/results.json")
    parser.add_argument(
        "--reevaluate",
        action="store_true",
        help="measure the runs of OUT/results.json again from their checkpoints (no training)",
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = ensure_data(args, out)
    if args.table_only or args.reevaluate:
        results = json.loads((out / "results.json").read_text())
        if args.reevaluate:  # the runs of --kinds; others are kept as they are
            first = {}
            for r in results:
                first.setdefault(r["kind"], r["seed"])
            again = [
                reevaluate(args, r, data, out, equivariance=first[r["kind"]] == r["seed"])
                for r in results
                if r["kind"] in args.kinds
            ]
            results = _replaced(_saved(out), again)
            (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
        write_csvs(results, out)
        write_table(args, results, out, data)
        write_plots(results, out)
        return 0
    seeds = [int(s) for s in args.seeds.split(",")]
    results = []
    for kind in args.kinds:
        try:
            from equirl.worldmodels.interface import BUILDERS

            module = BUILDERS[kind].split(":")[0]
            __import__(module)
        except ModuleNotFoundError:
            print(f"skipping {kind}: {module} is not there", flush=True)
            continue
        for seed in seeds:
            r = run_one(args, kind, seed, data, out, equivariance=seed == seeds[0])
            results = _replaced(_saved(out) if args.merge else results, [r])
            print(
                f"{kind} seed {seed}: z@10 {r['report']['kstep'][0]['z_10']:.4g}, train {r['train_seconds']:.0f} s, "
                f"eval {r['eval_seconds']:.0f} s",
                flush=True,
            )
            (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
            write_csvs(results, out)
            write_table(args, results, out, data)
            write_plots(results, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
