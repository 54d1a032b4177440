"""Training driver of world models: run directory, optax, orbax checkpoints, tensorboardX, metrics.csv.

    from equirl.worldmodels.config import load_wm_config
    from equirl.worldmodels.train import train_world_model, load_world_model

    result = train_world_model(load_wm_config("configs/wm/fernn.yaml"))   # runs/wm/<name>/
    model, params, config, stats = load_world_model(result.run_dir)

A run directory holds config.yaml, stats.json (the feature scales of the
training data, which every model's inputs and the z-scored errors use),
metrics.csv, TensorBoard events and checkpoints/ (orbax: parameters,
optimiser state, step). Batches are drawn from a generator seeded by
(run.seed, step), so a resumed run sees the batches the uninterrupted one
would have.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import yaml

from equirl.config_io import from_dict, to_dict
from equirl.errors import ConfigError, EquirlError
from equirl.runs import checkpoints
from equirl.runs.checkpoints import CHECKPOINTS, CONFIG_YAML, METRICS_CSV
from equirl.runs.log import MetricsCSV, Progress, TensorBoard
from equirl.worldmodels.config import WMTrainConfig
from equirl.worldmodels.data import FlowRange, WindowDataset, flowed
from equirl.worldmodels.interface import FeatureStats, make_world_model

STATS_JSON = "stats.json"
# The layout of a world-model checkpoint: params, opt_state and step (none stored: 1).
# 2: the FERNN family reads axial channels as polar images (physical parity, 2026-12-02),
# so its input layer's shapes changed; the format is checked before anything is restored.
WM_CHECKPOINT_FORMAT = 2
# (format, what changed) as checkpoints.restore_latest checks it before restoring.
_WM_FORMAT = (WM_CHECKPOINT_FORMAT, "format 2: the FERNN world models act on axial channels with the physical parity")


@dataclasses.dataclass
class WMTrainResult:
    params: Any
    history: list[dict[str, float]]
    run_dir: Path
    wall_seconds: float


def optimizer(config: WMTrainConfig) -> optax.GradientTransformation:
    o = config.optim
    # A run shorter than the warmup (a smoke test) warms up over all but its last step.
    warmup = max(min(o.warmup_steps, o.steps - 1), 1)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, o.learning_rate, warmup, max(o.steps, warmup + 1), end_value=0.1 * o.learning_rate
    )
    return optax.chain(optax.clip_by_global_norm(o.grad_clip), optax.adam(schedule))


def stats_to_json(stats: FeatureStats) -> dict:
    return {k: np.asarray(v).tolist() for k, v in dataclasses.asdict(stats).items()}


def stats_from_json(values: dict) -> FeatureStats:
    return FeatureStats(**{k: jnp.asarray(v, jnp.float32) for k, v in values.items()})


def batch_for_step(data: WindowDataset, config: WMTrainConfig, step: int):
    rng = np.random.default_rng([config.run.seed, step])
    return data.sample(rng, config.data.batch_size)


def make_update(model, opt: optax.GradientTransformation, flows: FlowRange):
    """update(params, opt_state, batch, key) -> (params, opt_state, metrics), jitted."""

    def update(params, opt_state, batch, key):
        k_flow, k_loss = jax.random.split(key)
        batch = flowed(batch, k_flow, flows)
        (loss, metrics), grads = jax.value_and_grad(model.loss, has_aux=True)(params, batch, k_loss)
        updates, opt_state = opt.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = dict(metrics, loss=loss, grad_norm=optax.tree.norm(grads))
        return params, opt_state, metrics

    return jax.jit(update, donate_argnums=(0, 1))


_COMPILED: dict = {}


def _compiled(config: WMTrainConfig, stats: FeatureStats):
    """(model, jitted init, jitted update, jitted test error), shared by runs that differ only in
    their run block (seeds of a benchmark): each compiles once per process."""
    from equirl.worldmodels.metrics import test_error

    key = json.dumps({k: v for k, v in to_dict(config).items() if k != "run"}, sort_keys=True) + json.dumps(
        stats_to_json(stats), sort_keys=True
    )
    if key not in _COMPILED:
        model = make_world_model(config.model, stats)
        update = make_update(model, optimizer(config), FlowRange(config.data.max_yaw_rate, config.data.max_speed))
        evaluate = jax.jit(lambda p, b: test_error(model, p, b, config.model.context, stats))
        _COMPILED.clear()  # one entry: old programs are not needed again
        _COMPILED[key] = (model, jax.jit(model.init), update, evaluate)
    return _COMPILED[key]


def train_world_model(config: WMTrainConfig, resume: bool = False, log=None) -> WMTrainResult:
    """Train config.model on config.data; resume=True goes on from the newest checkpoint."""
    if not isinstance(config, WMTrainConfig):
        raise ConfigError(f"config: expected a WMTrainConfig, got {type(config).__name__}")
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    run_dir = checkpoints.prepare_run_dir(config.run.directory, resume)  # before the data is read

    train_data = WindowDataset.load(config.data.path, config.data.window, "train", config.data.test_fraction)
    test_data = WindowDataset.load(config.data.path, config.data.window, "test", config.data.test_fraction)
    if resume and (run_dir / STATS_JSON).exists():
        stats = stats_from_json(json.loads((run_dir / STATS_JSON).read_text()))
    else:
        stats = train_data.stats()
        (run_dir / STATS_JSON).write_text(json.dumps(stats_to_json(stats)))
    checkpoints.write_config(run_dir, config)

    model, init, update, evaluate = _compiled(config, stats)
    opt = optimizer(config)
    key = jax.random.PRNGKey(config.run.seed)
    first = batch_for_step(train_data, config, 0)
    params = init(jax.random.fold_in(key, 1), first)
    state = {"params": params, "opt_state": opt.init(params), "step": jnp.zeros((), jnp.int32)}
    manager = checkpoints.open_manager(run_dir, config.run.keep_checkpoints)
    board = bar = None
    try:
        step = 0
        if resume:
            state, _, step = checkpoints.restore_latest(manager, state, run_dir, expected_format=_WM_FORMAT)
            checkpoints.drop_newer(manager, step)
            log(f"equirl: resuming {run_dir} from its checkpoint at step {step}")
        metrics_csv = MetricsCSV(run_dir / METRICS_CSV, ("step", "wall_seconds"), "step", step if resume else None)
        rows: list[dict] = list(metrics_csv.kept)
        board = TensorBoard(run_dir, step if resume else None)
        eval_batch = test_data.windows(
            np.linspace(0, len(test_data) - 1, min(len(test_data), config.run.eval_windows)).astype(np.int64)
        )
        params, opt_state = state["params"], state["opt_state"]
        start = time.perf_counter()
        window: list[dict] = []
        bar = Progress(config.run.name, step, config.optim.steps, show=config.run.progress, unit_scale=False)
        while step < config.optim.steps:
            batch = batch_for_step(train_data, config, step)
            params, opt_state, metrics = update(params, opt_state, batch, jax.random.fold_in(key, step + 2))
            step += 1
            window.append(metrics)
            if step % config.run.log_every == 0 or step == config.optim.steps:
                row = {k: float(np.mean([float(m[k]) for m in window])) for k in window[0]}
                row.update({f"test/{k}": float(v) for k, v in evaluate(params, eval_batch).items()})
                row.update(step=step, wall_seconds=time.perf_counter() - start)
                rows.append(row)
                board.row(row, step, skip=("step",))
                metrics_csv.write(row)
                window = []
                bar.update(step, {"loss": f"{row['loss']:.3g}", "test": f"{row['test/total']:.3g}"})
                if not math.isfinite(row["loss"]):
                    raise EquirlError(f"{run_dir}: the loss is {row['loss']} at step {step}; lower optim.learning_rate")
            if step % config.run.checkpoint_every == 0 or step == config.optim.steps:
                meta = {"step": step, "config": to_dict(config), "format": WM_CHECKPOINT_FORMAT}
                saved = {"params": params, "opt_state": opt_state, "step": jnp.asarray(step, jnp.int32)}
                checkpoints.save(manager, step, saved, meta)
        return WMTrainResult(params, rows, run_dir, time.perf_counter() - start)
    finally:
        if bar is not None:
            bar.close()
        if board is not None:
            board.close()
        manager.wait_until_finished()
        manager.close()


def load_world_model(run_dir, step: int | None = None):
    """(model, params, config, stats) of a world-model run's newest checkpoint (or `step`)."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINTS).is_dir():
        raise ConfigError(f"{run_dir}: not a world-model run directory (no {CHECKPOINTS}/)")
    try:
        config = from_dict(
            WMTrainConfig, yaml.safe_load((run_dir / CONFIG_YAML).read_text()), source=str(run_dir / CONFIG_YAML)
        )
        stats = stats_from_json(json.loads((run_dir / STATS_JSON).read_text()))
    except FileNotFoundError as err:
        raise ConfigError(f"{run_dir}: missing {Path(err.filename).name}") from None
    model = make_world_model(config.model, stats)
    manager = checkpoints.open_manager(run_dir, None, read_only=True)
    try:
        data = WindowDataset.load(config.data.path, config.data.window, "all", config.data.test_fraction)
        sample = data.windows(np.arange(min(2, len(data))))
        params = jax.eval_shape(model.init, jax.random.PRNGKey(0), sample)
        opt_state = jax.eval_shape(optimizer(config).init, params)
        target = {"params": params, "opt_state": opt_state, "step": jax.ShapeDtypeStruct((), jnp.int32)}
        state, _, step = checkpoints.restore_latest(manager, target, run_dir, step, expected_format=_WM_FORMAT)
    finally:
        manager.close()
    return model, state["params"], config, stats
