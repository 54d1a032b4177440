"""What a run writes while it goes: metrics.csv, TensorBoard events and a progress bar.

Shared by agent training and world-model training; neither knows the other's columns.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path


class MetricsCSV:
    """metrics.csv with a header set by its first row; a resumed run cuts the rows past its step.

    first: the columns that lead, in this order; the rest follow sorted, and
    `last(row)` (optional) names columns that go at the end (e.g. per body).
    step_key: the column a resume cuts on. `kept` holds the rows kept on resume.
    A column first seen later (a run resumed by a version that logs more) is appended to the
    header, the earlier rows left blank in it, instead of being dropped from the file.
    """

    def __init__(self, path: Path, first: tuple[str, ...], step_key: str, resume_step: int | None = None):
        self.path, self.first, self.step_key = Path(path), tuple(first), step_key
        self.header: list[str] | None = None
        self.kept: list[dict[str, float]] = []
        if resume_step is not None and self.path.exists():
            self._truncate(resume_step)
        elif self.path.exists():
            self.path.unlink()

    def _truncate(self, step: int) -> None:
        with open(self.path, newline="") as handle:
            reader = csv.DictReader(handle)
            self.header = list(reader.fieldnames or [])
            rows = [r for r in reader if r.get(self.step_key) and float(r[self.step_key]) <= step]
        if not self.header:
            self.header = None
            return
        self._rewrite(rows)
        self.kept = [{k: float(v) for k, v in r.items() if v not in ("", None)} for r in rows]

    def write(self, row: dict[str, float], occasional: tuple[str, ...] = (), last: tuple[str, ...] = ()) -> None:
        """Append `row`. On the first write: `occasional` names columns the first row may
        lack, `last` the columns that end the header."""
        if self.header is None:
            keys = set(row) | set(occasional)
            rest = sorted(k for k in keys if k not in self.first and k not in last)
            self.header = list(self.first) + rest + list(last)
            self._rewrite([])
        new = [k for k in dict.fromkeys([*row, *occasional, *last]) if k not in self.header]
        if new:
            self._extend(new)
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, self.header).writerow(row)

    def _extend(self, columns: list[str]) -> None:
        """Append `columns` to the header and rewrite the rows so far (blank in them)."""
        with open(self.path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        self.header = self.header + columns
        self._rewrite(rows)

    def _rewrite(self, rows: list[dict]) -> None:
        """The file anew: the current header, then `rows`."""
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, self.header)
            writer.writeheader()
            writer.writerows(rows)


class TensorBoard:
    """tensorboardX events in the run directory; a resumed run drops the events past its step."""

    def __init__(self, run_dir: Path, resume_step: int | None = None, renames: dict[str, str] | None = None):
        from tensorboardX import SummaryWriter

        self.writer = SummaryWriter(str(run_dir), purge_step=resume_step)
        self.renames = renames or {}

    def row(self, row: dict[str, float], step: int, skip: tuple[str, ...] = ()) -> None:
        """Every finite value of `row` but those in `skip`, as a scalar at `step`."""
        for key, value in row.items():
            if key not in skip and math.isfinite(value):
                self.writer.add_scalar(self.renames.get(key, key), value, step)

    def scalar(self, tag: str, value: float, step: int) -> None:
        self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.close()


class Progress:
    """A tqdm bar over a run's steps on stderr (rate and ETA from tqdm), or nothing when not shown."""

    def __init__(self, name: str, start: int, total: int, show: bool = True, unit_scale: bool = True):
        self.bar = None
        if show:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=start,
                unit="step",
                unit_scale=unit_scale,
                file=sys.stderr,
                desc=name,
                dynamic_ncols=True,
                smoothing=0.1,
            )

    def update(self, step: int, postfix: dict[str, str]) -> None:
        if self.bar is None:
            return
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
