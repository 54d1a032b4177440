"""`equirl curve`: a run's learning curve as a table of step windows, read from its metrics.csv.

A log row covers a few thousand steps and its means swing with the few episodes that ended
in it; a window of tens of thousands of steps shows the trend. Return and episode length
are printed side by side because a return can grow by speed while the body still falls at
the same step; the critic columns (mean Q beside the discounted Monte-Carlo return, the
temperature, the entropy) show a critic running away before the return does.

    equirl curve runs/hopper_crossq_mlp_heading --window 20000 --bodies --critic
    equirl curve results/offpolicy/metrics/*.csv --window 50000
"""

from __future__ import annotations

import csv
import math
import os
import sys
from pathlib import Path

from equirl.errors import EquirlError
from equirl.runs.checkpoints import METRICS_CSV

CRITIC_COLUMNS = ("q/mean", "q/mc_return", "alpha", "policy/entropy")


def read_metrics(path: str | Path) -> tuple[Path, list[dict[str, float]]]:
    """(the csv file, its rows as floats) for a run directory or a metrics.csv path."""
    path = Path(path)
    file = path / METRICS_CSV if path.is_dir() else path
    if not file.is_file():
        raise EquirlError(f"{file}: no such metrics file (give a run directory or a metrics.csv)")
    with open(file, newline="") as handle:
        reader = csv.DictReader(handle)
        if "env_steps" not in (reader.fieldnames or []):
            raise EquirlError(f"{file}: no 'env_steps' column; is this a training run's metrics.csv?")
        rows = [{k: _number(v) for k, v in row.items() if k is not None} for row in reader]
    return file, rows


def _number(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else math.nan
    except ValueError:
        return math.nan


def windows(rows: list[dict[str, float]], width: int, columns: list[str]) -> list[dict[str, float]]:
    """One row per window of `width` environment steps, labelled by its last step.

    A log row at step s falls in the window (w - width, w]. `return/mean` and
    `episode_length/mean` are weighted by the episodes each log row counted, so a row
    that saw one fall weighs less than one that saw ten; other columns (per-body figures,
    critic statistics) are plain means of the rows that logged them. `episodes` is summed.
    """
    if width < 1:
        raise EquirlError(f"window {width}: must be a positive number of environment steps")
    groups: dict[int, list[dict[str, float]]] = {}
    for row in rows:
        if not math.isnan(row.get("env_steps", math.nan)):
            groups.setdefault(width * math.ceil(row["env_steps"] / width), []).append(row)
    out = []
    for end, group in sorted(groups.items()):
        result = {"env_steps": float(end), "episodes": sum(_finite(r.get("episodes", 0.0)) for r in group)}
        for column in columns:
            weighted = column in ("return/mean", "episode_length/mean")
            pairs = [(r[column], r.get("episodes", 1.0) if weighted else 1.0) for r in group if column in r]
            pairs = [(v, w) for v, w in pairs if not math.isnan(v) and w > 0]
            total = sum(w for _, w in pairs)
            result[column] = sum(v * w for v, w in pairs) / total if total else math.nan
        out.append(result)
    return out


def _finite(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def body_names(rows: list[dict[str, float]]) -> list[str]:
    """The bodies with a per-body return column, in the file's order."""
    names = [k.split("/", 1)[1] for k in (rows[0] if rows else {}) if k.startswith("return/")]
    return [n for n in names if n != "mean"]


def format_table(file: Path, rows: list[dict[str, float]], width: int, bodies: bool, critic: bool) -> str:
    """The windows of one metrics file as aligned text: return / length per window, then per body."""
    columns = ["return/mean", "episode_length/mean"]
    names = body_names(rows) if bodies else []
    columns += [c for name in names for c in (f"return/{name}", f"episode_length/{name}")]
    columns += list(CRITIC_COLUMNS) if critic else []
    table = windows(rows, width, columns)
    last = f", {rows[-1]['wall_seconds'] / 60:.0f} min" if rows and "wall_seconds" in rows[-1] else ""
    lines = [f"{file} ({len(rows)} log rows{last}; return / episode length per {width:,}-step window)"]
    header = ["steps", "episodes", "all bodies"] + names + (["Q", "MC return", "alpha", "entropy"] if critic else [])
    body = []
    for w in table:
        cells = [f"{w['env_steps'] / 1000:g}k", f"{w['episodes']:.0f}", _pair(w, "mean")]
        cells += [_pair(w, name) for name in names]
        cells += [_one(w[c], ".3f" if c == "alpha" else ".1f") for c in CRITIC_COLUMNS] if critic else []
        body.append(cells)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    for cells in [header] + body:
        lines.append("  ".join(c.rjust(n) for c, n in zip(cells, widths)))
    return "\n".join(lines)


def _pair(window: dict[str, float], name: str) -> str:
    ret, length = window.get(f"return/{name}", math.nan), window.get(f"episode_length/{name}", math.nan)
    if math.isnan(ret):
        return "-"
    return f"{ret:.0f} / {length:.0f}" if not math.isnan(length) else f"{ret:.0f}"


def _one(value: float, spec: str) -> str:
    return "-" if math.isnan(value) else format(value, spec)


def add_curve_parser(sub) -> None:
    curve = sub.add_parser("curve", help="a run's learning curve in step windows, from its metrics.csv")
    curve.add_argument("runs", nargs="+", help="run directories or metrics.csv files")
    curve.add_argument("--window", type=int, default=20_000, help="environment steps per window (default 20000)")
    curve.add_argument("--bodies", action="store_true", help="a column per body (return / episode length)")
    curve.add_argument("--critic", action="store_true", help="mean Q, Monte-Carlo return, temperature, entropy")
    curve.set_defaults(run=_curve)


def _curve(args) -> None:
    tables = []
    for run in args.runs:
        file, rows = read_metrics(run)
        tables.append(format_table(file, rows, args.window, args.bodies, args.critic))
    try:
        print("\n\n".join(tables))
        sys.stdout.flush()
    except BrokenPipeError:  # `equirl curve RUN | head`: the reader stopped early, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
