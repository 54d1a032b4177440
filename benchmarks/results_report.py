"""Regenerate results/README.md from the files the benchmark scripts wrote into results/.

    python benchmarks/results_report.py [--results results]

Sections, each present only when its files are:
  reference      results/reference_gym/table.md, *.png      (benchmarks/reference_gym.py)
  off-policy     results/offpolicy/table.md, *.png          (benchmarks/offpolicy.py)
  distillation   results/distill/table.md                   (benchmarks/distill.py)
  learning       results/learning/table.md and *.png       (benchmarks/learning.py)
  PPO cross-check results/ppo_crosscheck/table.md, *.png    (benchmarks/ppo_crosscheck.py)
  zero-shot      results/zero_shot/zero_shot.json           (benchmarks/zero_shot.py),
                 beside the published SET / SWAT / SMP numbers
  world models   results/world_models*/table.md and *.png  (benchmarks/world_models.py [--out ...])

Nothing here is measured or typed in by hand except the published numbers
below (Chen et al., "Subequivariant Graph Reinforcement Learning in 3D
Environments", ICML 2023: zero-shot returns on the held-out bodies of each
family, trained on that family, mean ± std).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
from pathlib import Path

# body: {method: (mean, std)}
PUBLISHED_ZERO_SHOT = {
    "walker_3_left_knee_right_knee": {"SET": (276.2, 17.4), "SWAT": (207.0, 52.7), "SMP": (56.8, 15.1)},
    "walker_6_right_foot": {"SET": (431.3, 146.2), "SWAT": (358.0, 58.9), "SMP": (143.4, 50.7)},
    "humanoid_7_left_leg": {"SET": (244.8, 7.9), "SWAT": (170.3, 51.7), "SMP": (190.9, 16.2)},
    "humanoid_8_right_knee": {"SET": (299.6, 23.7), "SWAT": (141.4, 22.1), "SMP": (185.4, 9.2)},
    "cheetah_11_leftbkneen_rightffoot": {"SET": (4643.9, 292.6), "SWAT": (1785.3, 999.3), "SMP": (2.0, 2.9)},
    "cheetah_12_tail_leftffoot": {"SET": (916.0, 39.7), "SWAT": (744.1, 317.1), "SMP": (29.8, 10.7)},
}
PUBLISHED_METHODS = ("SET", "SWAT", "SMP")


def _pm(mean: float, std: float, digits: int = 1) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _included(path: Path) -> str:
    """A generated Markdown file, its headings one level down so they nest under this report's."""
    return "\n".join("#" + line if line.startswith("#") else line for line in path.read_text().strip().splitlines())


def _images(folder: Path, base: Path) -> list[str]:
    return [f"![{png.stem}]({png.relative_to(base).as_posix()})" for png in sorted(folder.glob("*.png"))]


def _curves_section(results: Path, name: str, title: str) -> list[str]:
    """A benchmark's table.md, a pointer to its curves.csv, and its plots."""
    folder = results / name
    if not (folder / "table.md").is_file():
        return []
    return [
        f"## {title}",
        "",
        _included(folder / "table.md"),
        "",
        f"Raw curves: `{name}/curves.csv`.",
        "",
        *_images(folder, results),
        "",
    ]


def learning_section(results: Path) -> list[str]:
    return _curves_section(results, "learning", "Learning curves")


def crosscheck_section(results: Path) -> list[str]:
    return _curves_section(results, "ppo_crosscheck", "PPO cross-check against Brax")


def reference_section(results: Path) -> list[str]:
    folder = results / "reference_gym"
    if not (folder / "table.md").is_file():
        return []
    return [
        "## Reference check on gymnasium's Hopper-v5",
        "",
        _included(folder / "table.md"),
        "",
        "Raw rows: `reference_gym/summary.csv`.",
        "",
        *_images(folder, results),
        "",
    ]


def offpolicy_section(results: Path) -> list[str]:
    folder = results / "offpolicy"
    if not (folder / "table.md").is_file():
        return []
    return [
        "## Off-policy learners on the 3D suites",
        "",
        _included(folder / "table.md"),
        "",
        "Raw rows: `offpolicy/summary.csv`; each run's metrics: `offpolicy/metrics/*.csv`.",
        "",
        *_images(folder, results),
        "",
    ]


def distill_section(results: Path) -> list[str]:
    folder = results / "distill"
    if not (folder / "table.md").is_file():
        return []
    return [
        "## Distillation into one SET student",
        "",
        _included(folder / "table.md"),
        "",
        "Raw rows: `distill/summary.csv`.",
        "",
    ]


def zero_shot_section(results: Path) -> list[str]:
    path = results / "zero_shot" / "zero_shot.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text())
    meta, rows = data["meta"], data["rows"]
    seeds = sorted({row["seed"] for row in rows})
    lines = [
        "## Zero-shot transfer to held-out bodies",
        "",
        f"SET-PPO (equirl, {meta['task']} task) trained on each family's training bodies for "
        f"{meta['steps']:,} environment steps per run, seeds {', '.join(map(str, seeds))}; deterministic policy, "
        f"{meta['episodes']} episodes per body and seed; {meta['date']}, {meta['machine']}. Generated by "
        f"{meta['generated_by']}. Published: SET, SWAT and SMP trained with TD3 for far longer (their training "
        "curves run to about 2.5M steps); equirl's budget and wall clock are in each row.",
        "",
        "| family | held-out body | equirl SET-PPO | budget (steps) | wall clock (min) | "
        + " | ".join(f"published {m}" for m in PUBLISHED_METHODS)
        + " |",
        "|---|---|---:|---:|---:|" + "---:|" * len(PUBLISHED_METHODS),
    ]
    for row in [r for r in rows if r["split"] == "zero-shot"]:
        published = PUBLISHED_ZERO_SHOT.get(row["body"], {})
        measured = row["error"] or _pm(row["return_mean"], row["return_std"])
        lines.append(
            f"| {row['family']} | {row['body']} (seed {row['seed']}) | {measured} | {row['train_steps']:,} | "
            f"{row['train_minutes']} | "
            + " | ".join(_pm(*published[m]) if m in published else "–" for m in PUBLISHED_METHODS)
            + " |"
        )
    train_rows = [r for r in rows if r["split"] != "zero-shot"]
    if train_rows:
        lines += [
            "",
            "For scale, the same runs' training bodies (stochastic policy, mean over the last 10% of the "
            "budget, from the run's metrics):",
            "",
            "| family | training body | return |",
            "|---|---|---:|",
        ]
        lines += [
            f"| {r['family']} | {r['body']} (seed {r['seed']}) | {_pm(r['return_mean'], r['return_std'])} |"
            for r in train_rows
        ]
    return lines + [""]


def world_models_section(results: Path) -> list[str]:
    """results/world_models and any other world_models* folder (e.g. a longer budget run with --out)."""
    lines = []
    for folder in sorted(results.glob("world_models*")):
        if not (folder / "table.md").is_file():
            continue
        table = _included(folder / "table.md")
        title = [] if table.startswith("## ") else ["## World models", ""]  # the script's table may bring its own
        lines += [*title, table, "", *_images(folder, results), ""]
    return lines


SECTIONS = (
    reference_section,
    offpolicy_section,
    distill_section,
    learning_section,
    crosscheck_section,
    zero_shot_section,
    world_models_section,
)


def report(results: Path) -> str:
    body = [line for section in SECTIONS for line in section(results)]
    head = [
        "# Results",
        "",
        f"Regenerated by `python benchmarks/results_report.py` on {datetime.date.today()} from the files in this "
        "folder; each section says which script measured it, when, on what machine and at what budget.",
        "",
    ]
    if not body:
        body = [
            "No results yet: run benchmarks/learning.py, benchmarks/zero_shot.py or benchmarks/world_models.py.",
            "",
        ]
    return "\n".join(head + body)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default="results")
    args = parser.parse_args(argv)
    results = Path(args.results)
    if not results.is_dir():
        print(f"results_report: no such folder: {results}", file=sys.stderr)
        return 2
    text = report(results)
    (results / "README.md").write_text(text)
    print(f"wrote {results / 'README.md'}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.exit(main())
