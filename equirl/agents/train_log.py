"""What a training run reports: log rows from the iterations' metrics, written to
metrics.csv, TensorBoard and the progress bar, and the policy's equivariance probe.

All of it is host-side and touches device values only when a row is due.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

from equirl.agents import distributed, registry
from equirl.agents.config import TrainConfig
from equirl.agents.divergence import Q_BIAS_COLUMNS, add_q_bias
from equirl.envs.task import END_REASONS
from equirl.runs.checkpoints import METRICS_CSV, warn
from equirl.runs.log import MetricsCSV, Progress, TensorBoard

_EPISODE_KEYS = ("episodes/count", "episodes/return_sum", "episodes/length_sum")
_END_KEY = "episodes/end_reasons"
# Columns: the share of the episodes ended in a log window that ended for each reason
# (an episode can have several) or by the time limit (none); see policy.episode_metrics.
END_COLUMNS = tuple(f"ends/{name}" for name in END_REASONS + ("time_limit",))
FIRST_COLUMNS = (
    "iteration",
    "env_steps",
    "wall_seconds",
    "steps_per_second",
    "return/mean",
    "episode_length/mean",
    "episodes",
)


def summarize(window: list[dict], body_names: list[str]) -> dict[str, float]:
    """One log row from the metrics of the iterations since the last log.

    Scalars are averaged over the window; episode sums are added up, so a body's
    return and episode length are the means over every episode it finished in
    the window. Bodies that finished none are left out (and so is the mean
    return if none did).
    """
    window = jax.device_get(window)
    row: dict[str, float] = {}
    for key in window[0]:
        if key not in _EPISODE_KEYS and key != _END_KEY:
            row[key] = float(np.mean([np.asarray(m[key], np.float64) for m in window]))
    count, returns, lengths = (np.sum([np.asarray(m[k], np.float64) for m in window], 0) for k in _EPISODE_KEYS)
    row["episodes"] = float(count.sum())
    ended = count > 0
    if ended.any():
        per_body = returns[ended] / count[ended]
        # Each body counts once, however many environments it has.
        row["return/mean"] = float(per_body.mean())
        row["episode_length/mean"] = float(lengths.sum() / count.sum())
        if _END_KEY in window[0]:
            ends = np.sum([np.asarray(m[_END_KEY], np.float64) for m in window], 0) / count.sum()
            row.update(zip(END_COLUMNS, map(float, ends)))
        # Per body, the length beside the return: a return can grow while the body still falls at the same step.
        for name, value, length in zip(np.asarray(body_names)[ended], per_body, lengths[ended] / count[ended]):
            row[f"return/{name}"] = float(value)
            row[f"episode_length/{name}"] = float(length)
    add_q_bias(row)
    return row


def make_equivariance_probe(config: TrainConfig, networks, obs) -> Callable[[Any, jax.Array], float]:
    """probe(state, key) -> the policy's finite-group equivariance error on a fixed batch `obs`.

    Rotations about gravity and reflections through vertical planes act on
    the observations before normalisation (the normaliser commutes with
    them); the action distribution's mode and standard deviation should not
    change. Reads `state.params.actor` and `state.normalizer`. It runs on one
    device of process 0: `obs` is a host array and the (replicated)
    parameters are copied to the host first.
    """
    from equirl.agents.policy import maybe_normalize
    from equirl.equivariance import distribution_summary, finite_group_error

    enabled = registry.spec(config.algorithm).normalize_observations(config)

    @jax.jit
    def summary(actor_params, normalizer, o):
        return distribution_summary(networks.actor.apply(actor_params, maybe_normalize(enabled, normalizer, o)))

    def probe(state, key: jax.Array) -> float:
        actor, normalizer = jax.device_get((state.params.actor, state.normalizer))
        fn = lambda o: summary(actor, normalizer, o)  # noqa: E731
        return float(finite_group_error(fn, obs, key, reflections=True))

    return probe


def crossed(every: int, before: int, after: int) -> bool:
    """Whether going from `before` to `after` steps crossed a multiple of `every` (0: never)."""
    return every > 0 and after // every > before // every


class TrainLogger:
    """Host-side bookkeeping of one `train` call: log rows to metrics.csv, TensorBoard,
    the progress bar and the history, and the equivariance probe.

    Every process keeps the history (the rows come from replicated metrics);
    only process 0 (`write`) writes files, shows progress and probes.
    """

    def __init__(self, config: TrainConfig, run_dir: Path, env, networks, state, resume_step, total, write=True):
        self.config, self.write = config, write
        self.body_names = [m.name for m in env.morphologies]
        env_steps = int(state.env_steps)
        self.csv = self.board = self.probe = None
        if write:
            self.csv = MetricsCSV(run_dir / METRICS_CSV, FIRST_COLUMNS, "env_steps", resume_step)
            renames = {"steps_per_second": "time/steps_per_second", "wall_seconds": "time/wall_seconds"}
            self.board = TensorBoard(run_dir, env_steps if resume_step is not None else None, renames)
            if config.run.equivariance_every_steps:
                # A fixed batch of real observations (this process's environments' at the start of this call).
                obs = jax.tree.map(distributed.local_rows, state.env_state.obs)
                self.probe = make_equivariance_probe(config, networks, obs)
        self.progress = Progress(config.run.name, min(env_steps, total), total, show=write and config.run.progress)
        self.probe_key = jax.random.PRNGKey(config.run.seed + 1)
        self.probed_at = env_steps
        self.history: list[dict[str, float]] = []
        self.window: list[dict] = []
        self.window_start, self.window_steps = time.perf_counter(), env_steps

    def add(self, metrics: dict) -> None:
        """Keep an iteration's metrics (still on the device) until the next log."""
        self.window.append(metrics)

    def log(self, state, iteration: int, env_steps: int, wall_seconds: float, last: bool) -> dict[str, float]:
        """Pull the window's metrics to the host and write one row everywhere."""
        now = time.perf_counter()
        row = summarize(self.window, self.body_names)
        row.update(
            iteration=iteration,
            env_steps=env_steps,
            wall_seconds=wall_seconds,
            steps_per_second=(env_steps - self.window_steps) / max(now - self.window_start, 1e-9),
        )
        every = self.config.run.equivariance_every_steps
        if self.probe is not None and (crossed(every, self.probed_at, env_steps) or last):
            self.probed_at = env_steps
            row["equivariance/policy"] = _probe(self.probe, state, jax.random.fold_in(self.probe_key, iteration))
            if math.isnan(row["equivariance/policy"]):
                self.probe = None  # it failed (and said so): do not try again every time
        if self.write:
            self.board.row(row, env_steps, skip=("iteration", "env_steps"))
            occasional = (("equivariance/policy",) if every else ()) + END_COLUMNS
            occasional += Q_BIAS_COLUMNS if "q/mean" in row else ()
            per_body = tuple(f"{kind}/{name}" for kind in ("return", "episode_length") for name in self.body_names)
            self.csv.write(row, occasional, last=per_body)
        self.history.append(row)
        postfix = {"steps/s": f"{row['steps_per_second']:.0f}"}
        if "return/mean" in row:
            postfix["return"] = f"{row['return/mean']:.1f}"
        self.progress.update(env_steps, postfix)
        self.window, self.window_start, self.window_steps = [], time.perf_counter(), env_steps
        return row

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if self.write:
            self.board.scalar(tag, value, step)

    def close(self) -> None:
        self.progress.close()
        if self.board is not None:
            self.board.close()


def _probe(probe, state, key) -> float:
    """The equivariance error, or NaN (with a warning) if measuring it failed: it never stops a run."""
    try:
        return probe(state, key)
    except Exception as err:
        warn(f"equivariance probe failed ({type(err).__name__}: {' '.join(str(err).split())[:200]})")
        return float("nan")
