"""Does training one network on a suite help each body? Its return against the same body
trained alone, at equal samples of its own.

A suite run gives each body an equal share of its environment steps (one environment
per body in the off-policy presets), so at E steps a body of an N-body suite has
collected E / N transitions of its own. This reads the metrics.csv files that
benchmarks/offpolicy.py copies to results/offpolicy/metrics/ and prints, for one body,
the mean of its logged training return (and episode length where logged) over windows
of its own samples: the suite runs' `return/<body>` column beside the lone runs'
`return/mean`. Above the lone runs: the suite's other bodies' data helps this one; below:
sharing the network costs it.

    python benchmarks/suite_transfer.py --body walker_7_full --suite-bodies 6 \
        --suite results/offpolicy/metrics/walker_crossq_mlp_heading_compact_seed0.csv \
        --alone results/offpolicy/metrics/walker_crossq_mlp_heading_w7only_compact_raw_seed{0,1}.csv \
        --width 10000 --out results/offpolicy/transfer_walker_7_full.md
"""

from __future__ import annotations

import argparse
import csv
import math
import os
from pathlib import Path


def window_means(rows: list[dict], column: str, share: int, width: int) -> dict[int, float]:
    """{own samples at the window's end: mean of `column` over the rows in the window}."""
    sums: dict[int, list[float]] = {}
    for row in rows:
        if row.get(column) in ("", None):
            continue
        own = float(row["env_steps"]) / share
        end = width * math.ceil(own / width)
        sums.setdefault(end, []).append(float(row[column]))
    return {end: sum(v) / len(v) for end, v in sorted(sums.items())}


Curve = tuple[dict[int, float], dict[int, float]]  # return and episode length by window


def curve(path: Path, column: str, share: int, width: int) -> Curve:
    """The body's return and (where the file logs it) episode length by window."""
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    returns = window_means(rows, f"return/{column}", share, width)
    if not returns:
        raise SystemExit(f"{path}: no column 'return/{column}'")
    return returns, window_means(rows, f"episode_length/{column}", share, width)


def cell(c: Curve, end: int) -> str:
    returns, lengths = c
    if end not in returns:
        return ""
    return f"{returns[end]:.0f}" + (f" / {lengths[end]:.0f}" if end in lengths else "")


def mean_cell(curves: list[Curve], end: int) -> str:
    """The mean return over the runs that reach this window, with their count where some stop short."""
    values = [c[0][end] for c in curves if end in c[0]]
    if not values:
        return ""
    short = f" ({len(values)} of {len(curves)} runs)" if len(values) < len(curves) else ""
    return f"{sum(values) / len(values):.0f}{short}"


def table(body: str, n_bodies: int, suite: list[Path], alone: list[Path], width: int) -> str:
    suite_curves = [curve(p, body, n_bodies, width) for p in suite]
    alone_curves = [curve(p, "mean", 1, width) for p in alone]
    ends = sorted(set().union(*(c[0] for c in suite_curves)) & set().union(*(c[0] for c in alone_curves)))
    prefix = os.path.commonprefix([p.stem for p in suite + alone])
    head = ["own samples"] + [f"suite: {p.stem[len(prefix) :]}" for p in suite] + ["suite mean"]
    head += [f"alone: {p.stem[len(prefix) :]}" for p in alone] + ["alone mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for end in ends:
        cells = [f"{end // 1000}k"] + [cell(c, end) for c in suite_curves] + [mean_cell(suite_curves, end)]
        cells += [cell(c, end) for c in alone_curves] + [mean_cell(alone_curves, end)]
        lines.append("| " + " | ".join(cells) + " |")
    intro = (
        f"{body}: mean training return over windows of {width // 1000}k of its own samples, "
        f"in a {n_bodies}-body suite (its `return/{body}`; suite steps = own samples x {n_bodies}) "
        "and trained alone; return / episode length where the file logs the length (runs from "
        f"2026-12-07 on log it per body). Runs: {prefix}*."
    )
    return intro + "\n\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--body", required=True)
    parser.add_argument("--suite-bodies", type=int, required=True, help="how many bodies share the suite's steps")
    parser.add_argument("--suite", type=Path, nargs="+", required=True, help="suite runs' metrics.csv")
    parser.add_argument("--alone", type=Path, nargs="+", required=True, help="lone runs' metrics.csv")
    parser.add_argument("--width", type=int, default=10000, help="window of own samples")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()
    for path in args.suite + args.alone:
        if not path.is_file():
            raise SystemExit(f"{path}: no such metrics file")
    text = table(args.body, args.suite_bodies, args.suite, args.alone, args.width)
    print(text)
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
