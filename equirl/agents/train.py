"""The training driver: build a run from a `TrainConfig`, train, log, checkpoint, resume.

    from equirl.agents.train import load_train_config, train

    config = load_train_config("configs/train/hopper_ppo_set.yaml", ["run.total_steps=100000"])
    result = train(config)                 # runs/<name>/: config.yaml, metrics.csv, events, checkpoints/
    result = train(config, resume=True)    # goes on from the newest readable checkpoint

The compiled part is `agent.iteration` alone (jitted once).
Everything else -- summing episode statistics between logs, the CSV and
TensorBoard rows, the progress bar, checkpoints and the equivariance probe --
is host-side bookkeeping around it (`equirl.agents.train_log`, on the shared
run machinery of `equirl.runs`), and only touches device values every
`run.log_every_steps` environment steps (or when a checkpoint or probe is due).

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

import dataclasses
import math
import os
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp

from equirl.agents import distributed, registry, saved_runs
from equirl.agents.config import TrainConfig
from equirl.agents.divergence import DivergenceGuard
from equirl.agents.saved_runs import check_resumable, checkpoint_meta
from equirl.agents.train_log import TrainLogger, crossed
from equirl.config_io import apply_overrides, load_yaml
from equirl.errors import ConfigError, EquirlError, TrainingDiverged
from equirl.runs import checkpoints
from equirl.runs.checkpoints import warn


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


def _starting_state(agent, mesh, manager, run_dir: Path, config: TrainConfig, resume: bool):
    """(state, meta, restored step or None): a fresh state, or the newest readable checkpoint's,
    placed on `mesh`."""
    key = jax.random.PRNGKey(config.run.seed)
    if not resume:
        return _jit_once(agent.init)(key), {}, None
    # Only the shapes (and where each array goes) are needed to restore into: nothing is computed.
    target = distributed.abstract_state(mesh, jax.eval_shape(agent.init, key))
    state, meta, step = saved_runs.restore(manager, target, run_dir)
    if distributed.is_primary():
        print(
            f"equirl: resuming {run_dir} from its checkpoint at {step} environment steps", file=sys.stderr, flush=True
        )
    checkpoints.drop_newer(manager, step)  # unreadable ones: their steps get saved again
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
    run_dir = checkpoints.prepare_run_dir(run.directory, resume)
    manager = checkpoints.open_manager(run_dir, run.keep_checkpoints)
    try:
        if resume:
            check_resumable(manager, run_dir, config)  # before anything is built
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
            checkpoints.write_config(run_dir, config)
        compile_start = time.perf_counter()
        step_fn = _compiled_iteration(agent, state)  # before the clock (and the progress bar) starts
        compile_seconds = time.perf_counter() - compile_start
        last = total_iterations(config)
        logger = TrainLogger(
            config, run_dir, env, networks, state, resume_step, last * agent.steps_per_iteration, write=primary
        )
        logger.add_scalar("time/compile_seconds", compile_seconds, int(state.env_steps))

        iteration, env_steps = int(state.iteration), int(state.env_steps)
        saved_at = resume_step
        start, wall_offset = time.perf_counter(), float(meta.get("wall_seconds", 0.0))
        wall = lambda: wall_offset + time.perf_counter() - start  # noqa: E731

        def save() -> None:
            nonlocal saved_at
            counters = {"iteration": iteration, "env_steps": env_steps, "wall_seconds": wall()}
            checkpoints.save(manager, env_steps, saved_runs.without_info(state), checkpoint_meta(config, counters))
            saved_at = env_steps

        stop = False
        state = _own_buffers(state)
        guard = DivergenceGuard(run.max_q_bias, run.divergence_window)
        try:
            while iteration < last and not stop:
                env.set_training_progress(env_steps)  # a fading training aid follows the step count
                new_state, metrics = step_fn(state)
                before, env_steps = env_steps, env_steps + agent.steps_per_iteration
                state, iteration = new_state, iteration + 1
                logger.add(metrics)
                final = iteration == last
                checkpoint_due = crossed(run.checkpoint_every_steps, before, env_steps) or final
                # A checkpoint is always logged (and checked) first: a diverged state is never saved.
                if crossed(run.log_every_steps, before, env_steps) or checkpoint_due:
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
