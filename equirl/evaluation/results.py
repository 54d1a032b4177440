"""The evaluation table: one `BodyResult` per body, as text, CSV and JSON."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Sequence


@dataclasses.dataclass
class BodyResult:
    """One row of the evaluation table."""

    body: str
    family: str = ""
    limbs: int | None = None
    source: str = ""
    episodes: int = 0
    return_mean: float = float("nan")
    return_std: float = float("nan")
    length_mean: float = float("nan")
    fell: int = 0
    time_limit: int = 0
    unstable: int = 0
    fell_by: dict = dataclasses.field(default_factory=dict)  # task.END_REASONS -> episodes (one can have several)
    padded_limbs: int | None = None
    note: str = ""
    error: str = ""  # why the body was not evaluated (empty when it was)
    returns: list[float] = dataclasses.field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return not self.error

    def row(self) -> dict:
        """The CSV row (per-episode returns left out)."""
        d = dataclasses.asdict(self)
        d.pop("returns")
        d["fell_by"] = fell_by_text(self.fell_by)
        return d


def _finite(x: float):
    return x if isinstance(x, float) and math.isfinite(x) else None


def fell_by_text(counts: dict) -> str:
    """Text like "tilt_sideways 14, too_low 2": the reasons episodes ended for, most frequent first."""
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if v)


def format_table(results: Sequence[BodyResult]) -> str:
    """The evaluation table as text (one line per body)."""
    lines = [
        f"{'body':36s} {'limbs':>5s} {'episodes':>8s} {'return (mean ± std)':>20s} {'length':>7s}  "
        f"{'fell':>4s} {'time':>4s} {'unst':>4s}  {'fell by':28s}  note"
    ]
    for r in results:
        limbs = f"{r.limbs:5d}" if r.limbs is not None else f"{'-':>5s}"
        if r.error:
            lines.append(
                f"{r.body:36s} {limbs} {'-':>8s} {'-':>20s} {'-':>7s}  {'-':>4s} {'-':>4s} {'-':>4s}  "
                f"{'-':28s}  NOT EVALUATED: {r.error}"
            )
            continue
        ret = f"{r.return_mean:9.1f} ± {r.return_std:7.1f}"
        lines.append(
            f"{r.body:36s} {limbs} {r.episodes:8d} {ret:>20s} {r.length_mean:7.1f}  "
            f"{r.fell:4d} {r.time_limit:4d} {r.unstable:4d}  {fell_by_text(r.fell_by) or '-':28s}  {r.note}"
        )
    lines.append(
        "ends: fell = terminated (unhealthy), time = time limit reached, unst = simulation diverged; "
        "fell by: the health conditions broken (tilt_forward / tilt_sideways: the torso leaned past its "
        "limit to its front or back / to a side)"
    )
    return "\n".join(lines)


def write_csv(results: Sequence[BodyResult], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = list(BodyResult("x").row())
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fields)
        writer.writeheader()
        for r in results:
            writer.writerow(
                {k: ("" if isinstance(v, float) and not math.isfinite(v) else v) for k, v in r.row().items()}
            )
    return path


def write_json(results: Sequence[BodyResult], path: str | os.PathLike, meta: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in results:
        d = dataclasses.asdict(r)
        for k, v in d.items():
            if isinstance(v, float):
                d[k] = _finite(v)
        rows.append(d)
    with open(path, "w") as handle:
        json.dump({"meta": meta or {}, "results": rows}, handle, indent=2)
    return path


def output_stem(bodies: Sequence[str]) -> str:
    """A file name for an evaluation of `bodies` ("zero_shot", "hopper_3_shin+random_3_0", ...)."""
    parts = [re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(b).stem if b.endswith(".xml") else b).strip("_") for b in bodies]
    stem = "+".join(p for p in parts if p) or "eval"
    return stem if len(stem) <= 80 else stem[:72] + f"_{len(bodies)}bodies"


def default_output_dir(policy) -> Path:
    return (policy.run_dir / "eval") if policy.run_dir is not None else Path("eval")


def write_outputs(
    results: Sequence[BodyResult],
    policy,
    bodies: Sequence[str],
    out: str | os.PathLike | None,
    meta: dict | None = None,
) -> tuple[Path, Path]:
    """Write <out>/<stem>.csv and .json (out defaults to RUN_DIR/eval); returns both paths."""
    out_dir = Path(out) if out is not None else default_output_dir(policy)
    stem = output_stem(bodies)
    meta = dict(
        meta or {},
        run_dir=str(policy.run_dir) if policy.run_dir else None,
        checkpoint_env_steps=policy.step,
        network=policy.config.network.kind,
        trained_on=list(policy.config.env.bodies),
        max_limbs=policy.max_limbs,
        bodies=list(bodies),
    )
    return write_csv(results, out_dir / f"{stem}.csv"), write_json(results, out_dir / f"{stem}.json", meta)


def stderr_log(message: str) -> None:
    print(f"equirl: {message}", file=sys.stderr, flush=True)
