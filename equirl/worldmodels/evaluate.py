"""Evaluate a trained world model: k-step errors, flow generalisation, length generalisation, equivariance."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jax
import numpy as np

from equirl.errors import ConfigError
from equirl.worldmodels.data import WindowDataset, _load_shard, read_metadata
from equirl.worldmodels.flows import ObserverFlow
from equirl.worldmodels.metrics import K_STEPS, equivariance_report, kstep_errors

EQUIVARIANCE_WINDOWS = 8
EQUIVARIANCE_HORIZON = 10


def test_windows(data_path, context: int, ks, test_fraction: float, windows: int):
    """(Sequence of up to `windows` evenly spaced test windows, the ks that fit)."""
    meta = read_metadata(data_path)
    shards = [_load_shard(Path(data_path) / name) for name in meta["shards"]]
    ks = sorted(ks)
    while ks:
        try:
            data = WindowDataset.from_shards(shards, meta, context + ks[-1], "test", test_fraction, str(data_path))
            index = np.linspace(0, len(data) - 1, min(len(data), windows)).astype(np.int64)
            return data.windows(index), tuple(ks)
        except ConfigError:
            ks = ks[:-1]  # episodes too short for this horizon: drop it
    raise ConfigError(f"{data_path}: no test window of {context + 1} frames or more")


def evaluate_model(
    model,
    params,
    config,
    stats,
    data_path,
    ks=K_STEPS,
    flows: dict[str, ObserverFlow] | None = None,
    windows: int = 64,
    seed: int = 0,
    equivariance: bool = True,
) -> dict:
    """A report dict: rows of k-step errors per flow ("none" = no flow), equivariance errors
    (if `equivariance`), settings."""
    context = config.model.context
    batch, ks = test_windows(data_path, context, ks, config.data.test_fraction, windows)
    rows = [dict(flow="none", **kstep_errors(model, params, batch, context, stats, ks))]
    for name, flow in (flows or {}).items():
        rows.append(dict(flow=name, **kstep_errors(model, params, batch, context, stats, ks, flow)))
    errors = {}
    if equivariance:
        small = jax.tree.map(lambda x: x[:EQUIVARIANCE_WINDOWS], batch)
        horizon = min(EQUIVARIANCE_HORIZON, max(ks))
        errors = equivariance_report(
            model,
            params,
            small.frames(0, context),
            small.actions[:, context - 1 : context - 1 + horizon],
            jax.random.PRNGKey(seed),
            flows,
        )
    return {
        "kind": config.model.kind,
        "ks": list(ks),
        "training_horizon": config.data.window - config.model.context,
        "context": context,
        "windows": int(batch.actions.shape[0]),
        "train_flows": {"max_yaw_rate": config.data.max_yaw_rate, "max_speed": config.data.max_speed},
        "kstep": rows,
        "equivariance": errors,
    }


def evaluate_run(run_dir, data_path=None, ks=K_STEPS, flows=None, windows: int = 64, out=None):
    """Evaluate a run's newest checkpoint; writes OUT/wm_eval.json and wm_eval.csv (OUT = RUN/eval)."""
    from equirl.worldmodels.train import load_world_model

    model, params, config, stats = load_world_model(run_dir)
    report = evaluate_model(
        model, params, config, stats, data_path or config.data.path, ks, flows, windows, config.run.seed
    )
    out = Path(out) if out else Path(run_dir) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = out / "wm_eval.json", out / "wm_eval.csv"
    json_path.write_text(json.dumps(report, indent=1))
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(report["kstep"][0]))
        writer.writeheader()
        writer.writerows(report["kstep"])
    return report, (json_path, csv_path)


def format_report(report: dict) -> str:
    ks = report["ks"]
    lines = [
        f"{report['kind']}: {report['windows']} test windows, context {report['context']}, "
        f"trained on {report['training_horizon']}-step rollouts",
        f"{'flow':16s} "
        + " ".join(f"{'z@' + str(k):>9s}" for k in ks)
        + " "
        + " ".join(f"{'m@' + str(k):>9s}" for k in ks),
    ]
    for row in report["kstep"]:
        lines.append(
            f"{row['flow']:16s} "
            + " ".join(f"{row[f'z_{k}']:9.4g}" for k in ks)
            + " "
            + " ".join(f"{row[f'position_m_{k}']:9.4g}" for k in ks)
        )
    if report["equivariance"]:
        lines.append("equivariance errors: " + ", ".join(f"{k} {v:.2e}" for k, v in report["equivariance"].items()))
    return "\n".join(lines)
