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

import csv
import dataclasses
import json
import logging
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
from equirl.worldmodels.config import WMTrainConfig
from equirl.worldmodels.data import FlowRange, WindowDataset, flowed
from equirl.worldmodels.interface import FeatureStats, make_world_model

CHECKPOINTS = "checkpoints"
CONFIG_YAML = "config.yaml"
STATS_JSON = "stats.json"
METRICS_CSV = "metrics.csv"


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


def _manager(run_dir: Path, keep: int | None, read_only: bool = False):
    import orbax.checkpoint as ocp

    absl = logging.getLogger("absl")
    level = absl.level
    if read_only:
        absl.setLevel(logging.ERROR)  # orbax warns that a read-only manager will not save
    try:
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=not read_only, read_only=read_only, cleanup_tmp_directories=not read_only
        )
        return ocp.CheckpointManager((run_dir / CHECKPOINTS).absolute(), options=options, item_names=("state", "meta"))
    finally:
        absl.setLevel(level)


def _save(manager, step: int, state: Any, meta: dict) -> None:
    import orbax.checkpoint as ocp

    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    manager.wait_until_finished()


def _restore(manager, step: int, target: Any) -> Any:
    import orbax.checkpoint as ocp

    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
    return restored["state"]


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
        metrics = dict(metrics, loss=loss, grad_norm=optax.global_norm(grads))
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


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys = sorted({k for row in rows for k in row}, key=lambda k: (k not in ("step", "wall_seconds"), k))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, keys)
        writer.writeheader()
        writer.writerows(rows)


def train_world_model(config: WMTrainConfig, resume: bool = False, log=None) -> WMTrainResult:
    """Train config.model on config.data; resume=True goes on from the newest checkpoint."""
    from tensorboardX import SummaryWriter

    if not isinstance(config, WMTrainConfig):
        raise ConfigError(f"config: expected a WMTrainConfig, got {type(config).__name__}")
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    run_dir = config.run.directory
    has_checkpoints = (run_dir / CHECKPOINTS).is_dir() and any(
        p.name.isdigit() for p in (run_dir / CHECKPOINTS).iterdir()
    )
    if has_checkpoints and not resume:
        raise ConfigError(f"{run_dir}: already holds checkpoints; resume it (--resume) or choose another --out")
    if resume and not has_checkpoints:
        raise ConfigError(f"{run_dir}: no checkpoint to resume from in {run_dir / CHECKPOINTS}")

    train_data = WindowDataset.load(config.data.path, config.data.window, "train", config.data.test_fraction)
    test_data = WindowDataset.load(config.data.path, config.data.window, "test", config.data.test_fraction)
    run_dir.mkdir(parents=True, exist_ok=True)
    if resume and (run_dir / STATS_JSON).exists():
        stats = stats_from_json(json.loads((run_dir / STATS_JSON).read_text()))
    else:
        stats = train_data.stats()
        (run_dir / STATS_JSON).write_text(json.dumps(stats_to_json(stats)))
    with open(run_dir / CONFIG_YAML, "w") as handle:
        yaml.safe_dump(to_dict(config), handle, sort_keys=False)

    model, init, update, evaluate = _compiled(config, stats)
    opt = optimizer(config)
    key = jax.random.PRNGKey(config.run.seed)
    first = batch_for_step(train_data, config, 0)
    params = init(jax.random.fold_in(key, 1), first)
    state = {"params": params, "opt_state": opt.init(params), "step": jnp.zeros((), jnp.int32)}
    manager = _manager(run_dir, config.run.keep_checkpoints)
    writer = None
    try:
        step = 0
        rows: list[dict] = []
        if resume:
            step = max(manager.all_steps())
            state = _restore(manager, step, state)
            log(f"equirl: resuming {run_dir} from its checkpoint at step {step}")
            if (run_dir / METRICS_CSV).exists():
                with open(run_dir / METRICS_CSV, newline="") as handle:
                    rows = [
                        {k: float(v) for k, v in r.items() if v != ""}
                        for r in csv.DictReader(handle)
                        if float(r["step"]) <= step
                    ]
        writer = SummaryWriter(str(run_dir), purge_step=step if resume else None)
        eval_batch = test_data.windows(
            np.linspace(0, len(test_data) - 1, min(len(test_data), config.run.eval_windows)).astype(np.int64)
        )
        params, opt_state = state["params"], state["opt_state"]
        start = time.perf_counter()
        window: list[dict] = []
        bar = _progress(config, step)
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
                for k, v in row.items():
                    if k != "step" and math.isfinite(v):
                        writer.add_scalar(k, v, step)
                _write_csv(run_dir / METRICS_CSV, rows)
                window = []
                if bar is not None:
                    bar.update(step - bar.n)
                    bar.set_postfix({"loss": f"{row['loss']:.3g}", "test": f"{row['test/total']:.3g}"}, refresh=False)
                if not math.isfinite(row["loss"]):
                    raise EquirlError(f"{run_dir}: the loss is {row['loss']} at step {step}; lower optim.learning_rate")
            if step % config.run.checkpoint_every == 0 or step == config.optim.steps:
                meta = {"step": step, "config": to_dict(config)}
                _save(
                    manager,
                    step,
                    {"params": params, "opt_state": opt_state, "step": jnp.asarray(step, jnp.int32)},
                    meta,
                )
        if bar is not None:
            bar.close()
        return WMTrainResult(params, rows, run_dir, time.perf_counter() - start)
    finally:
        if writer is not None:
            writer.close()
        manager.wait_until_finished()
        manager.close()


def _progress(config: WMTrainConfig, start: int):
    if not config.run.progress:
        return None
    from tqdm import tqdm

    return tqdm(
        total=config.optim.steps, initial=start, unit="step", file=sys.stderr, desc=config.run.name, dynamic_ncols=True
    )


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
    manager = _manager(run_dir, None, read_only=True)
    try:
        steps = sorted(manager.all_steps())
        if not steps:
            raise ConfigError(f"{run_dir}: no checkpoint in {run_dir / CHECKPOINTS}")
        if step is not None and step not in steps:
            raise ConfigError(f"{run_dir}: no checkpoint at step {step} (there are {steps})")
        step = steps[-1] if step is None else step
        data = WindowDataset.load(config.data.path, config.data.window, "all", config.data.test_fraction)
        sample = data.windows(np.arange(min(2, len(data))))
        params = jax.eval_shape(model.init, jax.random.PRNGKey(0), sample)
        opt_state = jax.eval_shape(optimizer(config).init, params)
        target = {"params": params, "opt_state": opt_state, "step": jax.ShapeDtypeStruct((), jnp.int32)}
        try:
            state = _restore(manager, step, target)
        except Exception as err:  # orbax raises many kinds
            reason = " ".join(str(err).split())[:200]
            raise EquirlError(f"{run_dir / CHECKPOINTS / str(step)}: unreadable checkpoint ({reason})") from None
    finally:
        manager.close()
    return model, state["params"], config, stats
