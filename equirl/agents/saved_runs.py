"""An agent run's checkpoints as the rest of the library reads them: the stored config,
whether a changed config may resume a state, and loading a run to act with it.

Orbax itself is driven by `equirl.runs.checkpoints`, shared with the world models.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import jax.numpy as jnp

from equirl.agents import distributed, registry
from equirl.agents.config import TrainConfig
from equirl.config_io import from_dict, load_yaml, to_dict
from equirl.errors import ConfigError, EquirlError
from equirl.runs import checkpoints
from equirl.runs.checkpoints import CHECKPOINTS, CONFIG_YAML

# The layout of a checkpoint's state pytree and stored config. 4: the environment's `info`
# is not stored (`without_info`) and off-policy optimiser states are flat (`sac.adam`);
# 3: run intervals are counted in environment steps (run.*_every_steps); 2: off-policy
# learners share `OffPolicyState` (2026-12-02); 1 (no "format" in the meta): PPOState /
# SACState of before.
CHECKPOINT_FORMAT = 4
_FORMAT_CHANGES = (
    "format 2 moved the off-policy learners' state into one OffPolicyState; "
    "format 3 counts run intervals in environment steps; "
    "format 4 leaves the environment's info out of the checkpoint and keeps off-policy optimiser states flat"
)

# Env fields that change nothing in the state's shapes or the meaning of its arrays.
_ENV_FIELDS_FREE_ON_RESUME = ("backend", "num_threads", "episode_length")


def without_info(state):
    """The agent state as it is checkpointed: the environment's `info` left out.

    `info` holds the last step's outputs (final observation, episode totals,
    end reasons), which the next step rewrites before anything reads them; left
    out, its keys can change without making every stored run unreadable.
    """
    env_state = getattr(state, "env_state", None)
    if env_state is None or not getattr(env_state, "info", None):
        return state
    return state.replace(env_state=env_state.replace(info={}))


def restore(manager, target, run_dir: Path, step: int | None = None):
    """(state, meta, step) of the newest readable checkpoint (or of `step`), restored into
    `target` (ShapeDtypeStructs with shardings); the info it does not store is zeros."""
    stored = without_info(target)
    state, meta, step = checkpoints.restore_latest(manager, stored, run_dir, step)
    if stored is target:
        return state, meta, step
    zeros = lambda s: jax.device_put(jnp.zeros(s.shape, s.dtype), s.sharding)  # noqa: E731
    info = jax.tree.map(zeros, target.env_state.info)
    return state.replace(env_state=state.env_state.replace(info=info)), meta, step


def checkpoint_meta(config: TrainConfig, counters: dict) -> dict:
    """What a checkpoint stores beside the state: counters, the config and the format."""
    return dict(counters, config=to_dict(config), format=CHECKPOINT_FORMAT)


def config_from_meta(meta: dict, where: str) -> TrainConfig:
    checkpoints.check_format(meta, where, CHECKPOINT_FORMAT, _FORMAT_CHANGES)
    return from_dict(TrainConfig, meta["config"], source=f"{where}: stored config")


def stored_config(manager, run_dir: Path, step: int) -> TrainConfig | None:
    """The config stored with checkpoint `step`, else the run's config.yaml (metadata
    unreadable: a damaged checkpoint), else None."""
    try:
        return config_from_meta(checkpoints.read_meta(manager, step), str(run_dir / CHECKPOINTS / str(step)))
    except EquirlError:
        raise
    except Exception:  # orbax raises many kinds
        if not (run_dir / CONFIG_YAML).exists():
            return None
        return load_yaml(TrainConfig, run_dir / CONFIG_YAML)


def shape_changes(saved: TrainConfig, config: TrainConfig) -> list[str]:
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


def check_resumable(manager, run_dir: Path, config: TrainConfig) -> None:
    """Refuse a resume whose config would not fit the stored state (before anything is built)."""
    saved = stored_config(manager, run_dir, max(manager.all_steps()))
    changes = shape_changes(saved, config) if saved is not None else []
    if changes:
        raise ConfigError(f"{run_dir}: cannot resume, the config changed the state's shapes: {'; '.join(changes)}")


def run_config(run_dir: str | os.PathLike, step: int | None = None) -> TrainConfig:
    """The config a run was trained with, from its newest checkpoint (or checkpoint `step`);
    nothing is built."""
    run_dir = Path(run_dir)
    if not (run_dir / CHECKPOINTS).is_dir():
        raise ConfigError(f"{run_dir}: not a run directory (no {CHECKPOINTS}/ folder)")
    manager = checkpoints.open_manager(run_dir, None, read_only=True)
    try:
        steps = sorted(manager.all_steps(), reverse=True)
        if not steps:
            raise ConfigError(f"{run_dir}: no checkpoint in {run_dir / CHECKPOINTS}")
        config = stored_config(manager, run_dir, step if step is not None else steps[0])
    finally:
        manager.close()
    if config is None:
        raise ConfigError(f"{run_dir}: neither the checkpoint's metadata nor {CONFIG_YAML} is readable")
    return config


def load_run(run_dir: str | os.PathLike, step: int | None = None):
    """(config, agent state, agent) of a run's newest readable checkpoint, or of
    checkpoint `step` (env steps); the environment is built only to get the state's shapes."""
    from equirl.agents.train import build

    run_dir = Path(run_dir)
    config = run_config(run_dir, step)
    manager = checkpoints.open_manager(run_dir, None, read_only=True)
    try:
        env, _, agent = build(config)
        try:
            shapes = jax.eval_shape(agent.init, jax.random.PRNGKey(config.run.seed))
            target = distributed.abstract_state(env.mesh, shapes)
        finally:
            env.close()
        state, _, _ = restore(manager, target, run_dir, step)
    finally:
        manager.close()
    return config, state, agent
