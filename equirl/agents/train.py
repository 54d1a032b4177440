"""The training driver: build a run from a `TrainConfig`, train, log, checkpoint, resume.

    from equirl.agents.train import load_train_config, train

    config = load_train_config("configs/train/hopper_ppo_set.yaml", ["run.total_steps=100000"])
    result = train(config)                 # runs/<name>/: config.yaml, metrics.csv, events, checkpoints/
    result = train(config, resume=True)    # goes on from the newest readable checkpoint

The compiled part is `agent.iteration` alone (jitted once).
Everything else -- summing episode statistics between logs, the CSV and
TensorBoard rows, the progress bar, checkpoints and the equivariance probe --
is host-side bookkeeping around it, and only touches device values every
`run.log_every` iterations (or when a checkpoint or probe is due).

A checkpoint holds the agent's whole state pytree (parameters, optimiser,
normaliser, environment state, replay buffer, RNG key, counters), so a run
resumed from it continues exactly as the uninterrupted run would have.
Checkpoints are numbered by environment steps.

Every run is data parallel over all devices of all processes
(`equirl.agents.distributed`; one device is a mesh of one). A multi-host run
is the same command on every host with EQUIRL_COORDINATOR,
EQUIRL_NUM_PROCESSES and EQUIRL_PROCESS_ID set (or under SLURM): only process
0 writes config.yaml, metrics.csv, TensorBoard events and the progress bar;
checkpoints are written by orbax, process 0 committing them and every process
its own environments' shards (so the run directory must be shared).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import os
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from equirl.agents import distributed, registry
from equirl.agents.config import TrainConfig
from equirl.agents.divergence import Q_BIAS_COLUMNS, DivergenceGuard, add_q_bias
from equirl.config_io import apply_overrides, from_dict, load_yaml, to_dict
from equirl.envs.task import END_REASONS
from equirl.errors import ConfigError, EquirlError, TrainingDiverged

CHECKPOINTS = "checkpoints"
# The layout of a checkpoint's state pytree. 2: off-policy learners share `OffPolicyState`
# (2026-12-02); 1 (no "format" in the meta): PPOState / SACState of before.
CHECKPOINT_FORMAT = 2
METRICS_CSV = "metrics.csv"
CONFIG_YAML = "config.yaml"

# Env fields that change nothing in the state's shapes or meaning of its arrays.
_ENV_FIELDS_FREE_ON_RESUME = ("backend", "num_threads", "episode_length")


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    state: the agent state after the last iteration.
    history: one dict per logged iteration of this call (the rows of metrics.csv).
    run_dir: where config, logs and checkpoints went.
    """

    state: Any
    history: list[dict[str, float]]
    run_dir: Path


def warn(message: str) -> None:
    """One line on stderr: something went wrong but the run goes on."""
    print(f"equirl: warning: {message}", file=sys.stderr, flush=True)


# --- building a run -------------------------------------------------------------


def load_train_config(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """A TrainConfig from a YAML file with dotted `key=value` overrides applied."""
    config = load_yaml(TrainConfig, path)
    return apply_overrides(config, list(overrides)) if overrides else config


def command_line_config(path, sets=(), out: str | None = None, steps: int | None = None) -> TrainConfig:
    """The config `equirl train` runs: a YAML file, --set overrides, then --out and --steps."""
    config = load_train_config(path, list(sets or ()))
    run = config.run
    try:
        if out is not None:
            run = dataclasses.replace(run, out_dir=str(out))
        if steps is not None:
            run = dataclasses.replace(run, total_steps=steps)
    except EquirlError as err:
        raise ConfigError(f"{path}: run.{err}") from None
    return dataclasses.replace(config, run=run)


def steps_per_iteration(config: TrainConfig) -> int:
    """Environment steps (all environments) one iteration of `config.algorithm` takes."""
    return config.env.num_envs * registry.spec(config.algorithm).steps_per_env(config)


def total_iterations(config: TrainConfig) -> int:
    return math.ceil(config.run.total_steps / steps_per_iteration(config))


def make_agent(config: TrainConfig, env, networks):
    """The `Agent` of `config.algorithm` on an already built env and networks."""
    return registry.spec(config.algorithm).make(config, env, networks, total_iterations(config))


def build(config: TrainConfig, mesh=None):
    """(env, networks, agent) of a run on `mesh` (default: this process's first
    device); the caller closes env."""
    from equirl.envs.batched import BatchedEnv
    from equirl.nn import make_networks

    if not isinstance(config, TrainConfig):
        raise ConfigError(f"config: expected a TrainConfig, got {type(config).__name__}")
    mesh = mesh if mesh is not None else distributed.single_device_mesh()
    distributed.check_divisible("env.num_envs", config.env.num_envs, mesh.size)
    env = BatchedEnv(config.env, mesh=mesh)
    try:
        networks = make_networks(config.network, env.num_limbs)
        agent = make_agent(config, env, networks)
    except BaseException:
        env.close()
        raise
    return env, networks, agent


# --- metrics (host side) ----------------------------------------------------------

_EPISODE_KEYS = ("episodes/count", "episodes/return_sum", "episodes/length_sum")
_END_KEY = "episodes/end_reasons"
# Columns: the share of the episodes ended in a log window that ended for each reason
# (an episode can have several) or by the time limit (none); see policy.episode_metrics.
END_COLUMNS = tuple(f"ends/{name}" for name in END_REASONS + ("time_limit",))


def summarize(window: list[dict], body_names: list[str]) -> dict[str, float]:
    """One log row from the metrics of the iterations since the last log.

    Scalars are averaged over the window; episode sums are added up, so a body's
    return is the mean over every episode it finished in the window. Bodies
    that finished none are left out (and so is the mean return if none did).
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
        for name, value in zip(np.asarray(body_names)[ended], per_body):
            row[f"return/{name}"] = float(value)
    add_q_bias(row)
    return row


class MetricsCSV:
    """metrics.csv: a fixed header, one row per log; a resumed run cuts rows past its step."""

    FIRST = (
        "iteration",
        "env_steps",
        "wall_seconds",
        "steps_per_second",
        "return/mean",
        "episode_length/mean",
        "episodes",
    )

    def __init__(self, path: Path, resume_step: int | None):
        self.path = path
        self.header: list[str] | None = None
        if resume_step is not None and path.exists():
            self._truncate(resume_step)
        elif path.exists():
            path.unlink()

    def _truncate(self, step: int) -> None:
        with open(self.path, newline="") as handle:
            reader = csv.DictReader(handle)
            self.header = list(reader.fieldnames or [])
            rows = [row for row in reader if row.get("env_steps") and float(row["env_steps"]) <= step]
        if not self.header:
            self.header = None
            return
        with open(self.path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, self.header)
            writer.writeheader()
            writer.writerows(rows)

    def write(self, row: dict[str, float], body_names: list[str], occasional: tuple[str, ...] = ()) -> None:
        """Append `row`; `occasional` names columns that the first row may lack."""
        if self.header is None:
            keys = set(row) | set(occasional)
            rest = sorted(k for k in keys if k not in self.FIRST and not k.startswith("return/"))
            self.header = list(self.FIRST) + rest + [f"return/{name}" for name in body_names]
            with open(self.path, "w", newline="") as handle:
                csv.DictWriter(handle, self.header).writeheader()
        with open(self.path, "a", newline="") as handle:
            csv.DictWriter(handle, self.header, extrasaction="ignore").writerow(row)


# --- checkpoints --------------------------------------------------------------------


def _checkpoint_manager(run_dir: Path, keep: int | None, read_only: bool = False):
    """Orbax's manager of run_dir/checkpoints: items "state" (the pytree) and "meta" (JSON)."""
    import orbax.checkpoint as ocp

    absl = logging.getLogger("absl")
    level = absl.level
    if read_only:
        absl.setLevel(logging.ERROR)  # orbax warns that a read-only manager will not save
    try:
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            create=not read_only,
            read_only=read_only,
            # A save cut short (a killed process) leaves a temporary folder: drop it.
            cleanup_tmp_directories=not read_only,
        )
        return ocp.CheckpointManager((run_dir / CHECKPOINTS).absolute(), options=options, item_names=("state", "meta"))
    finally:
        absl.setLevel(level)


def save_checkpoint(manager, step: int, state: Any, config: TrainConfig, meta: dict) -> None:
    """Save the state pytree and, as JSON, the config and run counters.

    It waits until the checkpoint is written: the next iteration is given the
    state's buffers to reuse (donation), so nothing may still read them.
    """
    import orbax.checkpoint as ocp

    meta = dict(meta, config=to_dict(config), format=CHECKPOINT_FORMAT)
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    manager.wait_until_finished()


def _read_meta(manager, step: int) -> dict:
    import orbax.checkpoint as ocp

    return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


def _restore_step(manager, step: int, target: Any) -> tuple[Any, dict]:
    import orbax.checkpoint as ocp

    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
    )
    return restored["state"], restored["meta"]


def restore_latest(manager, target: Any, run_dir: Path, step: int | None = None) -> tuple[Any, dict, int]:
    """(state, meta, step) of the newest readable checkpoint (or of `step`).

    An unreadable checkpoint (damaged or missing files) is reported in one
    line and the one before it is tried.
    """
    steps = sorted(manager.all_steps(), reverse=True)
    if step is not None:
        if step not in steps:
            raise ConfigError(f"{run_dir}: no checkpoint at step {step} (there are {sorted(steps) or 'none'})")
        steps = [step]
    if not steps:
        raise ConfigError(f"{run_dir}: no checkpoint to resume from in {run_dir / CHECKPOINTS}")
    for candidate in steps:
        try:
            state, meta = _restore_step(manager, candidate, target)
            return state, meta, candidate
        except Exception as err:  # orbax and tensorstore raise many kinds
            # TensorStore appends pages of details after ". See ": the first sentence says it.
            reason = " ".join(str(err).split()).split(". See ")[0][:200]
            where = run_dir / CHECKPOINTS / str(candidate)
            if candidate == steps[-1]:
                raise EquirlError(f"checkpoint {where} is unreadable ({type(err).__name__}: {reason})") from None
            warn(f"checkpoint {where} is unreadable ({type(err).__name__}: {reason}); using the previous one")
    raise AssertionError("unreachable")


def _shape_changes(saved: TrainConfig, config: TrainConfig) -> list[str]:
    """Config fields that differ between a checkpoint and the run resuming it in a way that
    changes the state's structure or shapes (or what its arrays mean)."""
    old, new = to_dict(saved), to_dict(config)
    changes = []
    if old["algorithm"] != new["algorithm"]:
        changes.append(f"algorithm: {old['algorithm']} -> {new['algorithm']}")
    for block, free in (("env", _ENV_FIELDS_FREE_ON_RESUME), ("network", ())):
        for field, value in old[block].items():
            if field not in free and new[block][field] != value:
                changes.append(f"{block}.{field}: {value} -> {new[block][field]}")
    for dotted in registry.spec(config.algorithm).state_shape_fields:
        block, field = dotted.split(".")
        if old.get(block, {}).get(field) != new[block][field]:
            changes.append(f"{dotted}: {old.get(block, {}).get(field)} -> {new[block][field]}")
    return changes


def _config_from_meta(meta: dict, where: str) -> TrainConfig:
    version = meta.get("format", 1)
    if version != CHECKPOINT_FORMAT:
        raise ConfigError(
            f"{where}: checkpoint format {version}, this equirl reads format {CHECKPOINT_FORMAT} "
            "(format 2 moved the off-policy learners' state into one OffPolicyState); train the run again"
        )
    return from_dict(TrainConfig, meta["config"], source=f"{where}: stored config")


def load_run(run_dir: str | os.PathLike, step: int | None = None):
    """(config, agent state, agent) of a run's newest readable checkpoint, or of
    checkpoint `step` (env steps); the environment is built only to get the state's shapes."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINTS).is_dir():
        raise ConfigError(f"{run_dir}: not a run directory (no {CHECKPOINTS}/ folder)")
    manager = _checkpoint_manager(run_dir, None, read_only=True)
    try:
        steps = sorted(manager.all_steps(), reverse=True)
        if not steps:
            raise ConfigError(f"{run_dir}: no checkpoint in {run_dir / CHECKPOINTS}")
        first = step if step is not None else steps[0]
        try:
            config = _config_from_meta(_read_meta(manager, first), str(run_dir / CHECKPOINTS / str(first)))
        except EquirlError:
            raise
        except Exception:  # metadata unreadable: the run's config.yaml says the same
            config = load_yaml(TrainConfig, run_dir / CONFIG_YAML)
        env, _, agent = build(config)
        try:
            shapes = jax.eval_shape(agent.init, jax.random.PRNGKey(config.run.seed))
            target = distributed.abstract_state(env.mesh, shapes)
        finally:
            env.close()
        state, _, _ = restore_latest(manager, target, run_dir, step)
    finally:
        manager.close()
    return config, state, agent


def load_checkpoint(run_dir: str | os.PathLike, step: int | None = None) -> tuple[TrainConfig, Any]:
    """(config, agent state) of a run's newest readable checkpoint, or of checkpoint `step` (env steps)."""
    config, state, _ = load_run(run_dir, step)
    return config, state


def load_policy(run_dir: str | os.PathLike, step: int | None = None):
    """(config, act) of a trained run; act(obs, key=None, deterministic=True) -> action [..., L, 3].

    act needs no environment: it takes any batch of observations padded to
    `config.env.max_limbs` limbs (the MLP kinds need exactly that many).
    """
    config, state, agent = load_run(run_dir, step)
    jitted = jax.jit(agent.act, static_argnames=("deterministic",))

    def act(obs, key: jax.Array | None = None, deterministic: bool = True) -> jax.Array:
        if key is None:
            if not deterministic:
                raise ConfigError("act: a key is needed to sample actions (deterministic=False)")
            key = jax.random.PRNGKey(0)
        return jitted(state, obs, key, deterministic=deterministic)

    return config, act


# --- the equivariance probe --------------------------------------------------------------


def make_equivariance_probe(config: TrainConfig, networks, obs) -> Callable[[Any, jax.Array], float]:
    """probe(state, key) -> the policy's finite-group equivariance error on a fixed batch `obs`.

    Rotations about gravity and reflections through vertical planes act on
    the observations before normalisation (the normaliser commutes with
    them); the action distribution's mode and standard deviation should not
    change. Reads `state.params.actor` and `state.normalizer` (PPO and SAC
    both have them); `_probe` turns any failure into a warning. It runs on
    one device of process 0: `obs` is a host array and the (replicated)
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


# --- the loop ------------------------------------------------------------------------------


def _prepare_run_dir(config: TrainConfig, resume: bool) -> Path:
    run_dir = Path(config.run.directory)
    has_checkpoints = (run_dir / CHECKPOINTS).is_dir() and any(
        p.name.isdigit() for p in (run_dir / CHECKPOINTS).iterdir()
    )
    if not resume and has_checkpoints:
        raise ConfigError(
            f"{run_dir}: already holds checkpoints; resume it (--resume) or choose another run.name/--out"
        )
    if resume and not has_checkpoints:
        raise ConfigError(f"{run_dir}: no checkpoint to resume from in {run_dir / CHECKPOINTS}")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def _check_resumable(manager, run_dir: Path, config: TrainConfig) -> None:
    """Refuse a resume whose config would not fit the stored state."""
    step = max(manager.all_steps())
    try:
        saved = _config_from_meta(_read_meta(manager, step), str(run_dir / CHECKPOINTS / str(step)))
    except EquirlError:
        raise
    except Exception:
        # Metadata unreadable (damaged checkpoint): fall back to the run's config.yaml.
        if not (run_dir / CONFIG_YAML).exists():
            return
        saved = load_yaml(TrainConfig, run_dir / CONFIG_YAML)
    changes = _shape_changes(saved, config)
    if changes:
        raise ConfigError(f"{run_dir}: cannot resume, the config changed the state's shapes: {'; '.join(changes)}")


class _Progress:
    """A tqdm bar over environment steps on stderr (steps/s and ETA from tqdm), or nothing."""

    def __init__(self, config: TrainConfig, start: int, total: int, show: bool = True):
        self.bar = None
        if config.run.progress and show:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total,
                initial=start,
                unit="step",
                unit_scale=True,
                file=sys.stderr,
                desc=config.run.name,
                dynamic_ncols=True,
                smoothing=0.1,
            )

    def update(self, env_steps: int, row: dict) -> None:
        if self.bar is None:
            return
        self.bar.update(env_steps - self.bar.n)
        postfix = {"steps/s": f"{row['steps_per_second']:.0f}"}
        if "return/mean" in row:
            postfix["return"] = f"{row['return/mean']:.1f}"
        self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


_JITTED: "weakref.WeakKeyDictionary[Callable, Callable]" = weakref.WeakKeyDictionary()


def _jit_once(fn: Callable) -> Callable:
    """jax.jit(fn), made once per function, so training the same built agent
    twice in a process compiles once."""
    if fn not in _JITTED:
        _JITTED[fn] = jax.jit(fn)
    return _JITTED[fn]


_COMPILED: "weakref.WeakKeyDictionary[Callable, Any]" = weakref.WeakKeyDictionary()


def _compiled_iteration(agent, state):
    """agent.iteration compiled for `state`'s shapes (once per agent: they never change).

    The state is donated: without it XLA copies every array of the state each
    iteration, the whole SAC replay buffer included (about 20x slower). Orbax
    copies arrays to the host before `save` returns, so the next iteration may
    reuse their buffers (and `save` waits for the write to finish anyway).
    """
    if agent.iteration not in _COMPILED:
        _COMPILED[agent.iteration] = jax.jit(agent.iteration, donate_argnums=0).lower(state).compile()
    return _COMPILED[agent.iteration]


def _own_buffers(state):
    """`state` with every leaf in a buffer of its own: donation refuses a buffer
    that appears twice (a restored or hand-built state may share them)."""
    return jax.tree.map(lambda x: jnp.array(x, copy=True), state)


def _deleted(state) -> bool:
    return any(getattr(leaf, "is_deleted", lambda: False)() for leaf in jax.tree.leaves(state))


class _Logger:
    """Host-side bookkeeping of one `train` call: log rows to metrics.csv, TensorBoard,
    the progress bar and the history, and the equivariance probe.

    Every process keeps the history (the rows come from replicated metrics);
    only process 0 (`write`) writes files, shows progress and probes.
    """

    def __init__(
        self,
        config: TrainConfig,
        run_dir: Path,
        env,
        networks,
        state,
        resume_step: int | None,
        total_steps: int,
        write: bool = True,
    ):
        self.config = config
        self.write = write
        self.body_names = [m.name for m in env.morphologies]
        env_steps = int(state.env_steps)
        every = config.run.equivariance_every
        self.csv = self.writer = self.probe = None
        if write:
            from tensorboardX import SummaryWriter

            self.csv = MetricsCSV(run_dir / METRICS_CSV, resume_step)
            # purge_step: TensorBoard drops the killed run's events past the restored step.
            self.writer = SummaryWriter(str(run_dir), purge_step=env_steps if resume_step is not None else None)
            if every:
                # A fixed batch of real observations (this process's environments' at the start of this call).
                obs = jax.tree.map(distributed.local_rows, state.env_state.obs)
                self.probe = make_equivariance_probe(config, networks, obs)
        self.progress = _Progress(config, min(env_steps, total_steps), total_steps, show=write)
        self.probe_key = jax.random.PRNGKey(config.run.seed + 1)
        self.probed_at = int(state.iteration)
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
        every = self.config.run.equivariance_every
        if self.probe is not None and (iteration // every > self.probed_at // every or last):
            self.probed_at = iteration
            row["equivariance/policy"] = _probe(self.probe, state, jax.random.fold_in(self.probe_key, iteration))
            if math.isnan(row["equivariance/policy"]):
                self.probe = None  # it failed (and said so): do not try again every time
        if self.write:
            _log_row(self.writer, row, env_steps)
            occasional = (("equivariance/policy",) if every else ()) + END_COLUMNS
            self.csv.write(row, self.body_names, occasional + (Q_BIAS_COLUMNS if "q/mean" in row else ()))
        self.history.append(row)
        self.progress.update(env_steps, row)
        self.window, self.window_start, self.window_steps = [], time.perf_counter(), env_steps
        return row

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        if self.write:
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.progress.close()
        if self.writer is not None:
            self.writer.close()


def _starting_state(agent, mesh, manager, run_dir: Path, config: TrainConfig, resume: bool):
    """(state, meta, restored step or None): a fresh state, or the newest readable checkpoint's,
    placed on `mesh`."""
    key = jax.random.PRNGKey(config.run.seed)
    if not resume:
        return _jit_once(agent.init)(key), {}, None
    # Only the shapes (and where each array goes) are needed to restore into: nothing is computed.
    target = distributed.abstract_state(mesh, jax.eval_shape(agent.init, key))
    state, meta, step = restore_latest(manager, target, run_dir)
    if distributed.is_primary():
        print(
            f"equirl: resuming {run_dir} from its checkpoint at {step} environment steps", file=sys.stderr, flush=True
        )
    for newer in [s for s in manager.all_steps() if s > step]:
        manager.delete(newer)  # unreadable ones: their steps get saved again
    return state, meta, step


def train(config: TrainConfig, resume: bool = False, callback: Callable[[Any, dict], Any] | None = None) -> TrainResult:
    """Train `config` (or go on from the newest checkpoint of its run directory, `resume=True`).

    callback(state, row) is called after every logged iteration with the state
    and the log row; returning True stops the run early (after a checkpoint).
    A KeyboardInterrupt saves a checkpoint of the last finished iteration first.
    """
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"config: expected a TrainConfig, got {type(config).__name__}")
    distributed.initialize_from_env()  # a multi-host launch: join it before any device is used
    mesh = distributed.global_mesh()
    primary = distributed.is_primary()
    run = config.run
    run_dir = _prepare_run_dir(config, resume)
    manager = _checkpoint_manager(run_dir, run.keep_checkpoints)
    try:
        if resume:
            _check_resumable(manager, run_dir, config)  # before anything is built
        env, networks, agent = build(config, mesh)
    except BaseException:
        manager.close()
        raise
    logger = None
    try:
        if primary and mesh.size > 1:
            print(
                f"equirl: training on {distributed.describe(mesh)}, {config.env.num_envs // mesh.size} "
                "environments per device",
                file=sys.stderr,
                flush=True,
            )
        state, meta, resume_step = _starting_state(agent, mesh, manager, run_dir, config, resume)
        if primary:
            with open(run_dir / CONFIG_YAML, "w") as handle:
                yaml.safe_dump(to_dict(config), handle, sort_keys=False)
        compile_start = time.perf_counter()
        step_fn = _compiled_iteration(agent, state)  # before the clock (and the progress bar) starts
        compile_seconds = time.perf_counter() - compile_start
        last = total_iterations(config)
        logger = _Logger(
            config, run_dir, env, networks, state, resume_step, last * agent.steps_per_iteration, write=primary
        )
        logger.add_scalar("time/compile_seconds", compile_seconds, int(state.env_steps))

        iteration, env_steps = int(state.iteration), int(state.env_steps)
        saved_at = resume_step
        start, wall_offset = time.perf_counter(), float(meta.get("wall_seconds", 0.0))
        wall = lambda: wall_offset + time.perf_counter() - start  # noqa: E731

        def save() -> None:
            nonlocal saved_at
            meta = {"iteration": iteration, "env_steps": env_steps, "wall_seconds": wall()}
            save_checkpoint(manager, env_steps, state, config, meta)
            saved_at = env_steps

        stop = False
        state = _own_buffers(state)
        guard = DivergenceGuard(run.max_q_bias, run.divergence_window)
        try:
            while iteration < last and not stop:
                new_state, metrics = step_fn(state)
                state, iteration, env_steps = new_state, iteration + 1, env_steps + agent.steps_per_iteration
                logger.add(metrics)
                final = iteration == last
                checkpoint_due = iteration % run.checkpoint_every == 0 or final
                # A checkpoint is always logged (and checked) first: a diverged state is never saved.
                if iteration % run.log_every == 0 or checkpoint_due:
                    row = logger.log(state, iteration, env_steps, wall(), final)
                    try:
                        guard.check(row, env_steps)
                    except TrainingDiverged as err:
                        where = f"its last checkpoint ({saved_at} environment steps)" if saved_at else "no checkpoint"
                        raise TrainingDiverged(f"{run_dir}: {err}; the run stopped, {where} stands") from None
                    stop = bool(callback is not None and callback(state, row))
                # While the critic runs away (not yet for a whole window) no checkpoint is written:
                # the last one on disk stays one from before.
                if (checkpoint_due and not guard.suspect) or stop:
                    save()
        except KeyboardInterrupt:
            if _deleted(state):  # interrupted inside an iteration: its input was donated
                warn(f"interrupted; the last checkpoint ({saved_at} environment steps) stands (resume with --resume)")
            elif saved_at != env_steps:
                save()
                warn(f"interrupted; saved a checkpoint at {env_steps} environment steps (resume with --resume)")
            raise
        return TrainResult(state=state, history=logger.history, run_dir=run_dir)
    finally:
        if logger is not None:
            logger.close()
        manager.wait_until_finished()
        manager.close()
        env.close()


def _probe(probe, state, key) -> float:
    """The equivariance error, or NaN (with a warning) if measuring it failed: it never stops a run."""
    try:
        return probe(state, key)
    except Exception as err:
        warn(f"equivariance probe failed ({type(err).__name__}: {' '.join(str(err).split())[:200]})")
        return float("nan")


def _log_row(writer, row: dict[str, float], step: int) -> None:
    for key, value in row.items():
        if key in ("iteration", "env_steps") or not math.isfinite(value):
            continue
        tag = "time/steps_per_second" if key == "steps_per_second" else key
        tag = "time/wall_seconds" if key == "wall_seconds" else tag
        writer.add_scalar(tag, value, step)
