"""Run directories and their orbax checkpoints, for every kind of run (agents and world models).

A run directory holds config.yaml, metrics.csv, TensorBoard events and
checkpoints/<step>/ with two items: "state" (any pytree) and "meta" (JSON:
counters, the run's config and the `format` of the state's layout). A
checkpoint is numbered by the run's own step count (environment steps for
agents, gradient steps for world models).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import jax
import yaml

from equirl.config_io import to_dict
from equirl.errors import ConfigError, EquirlError

CHECKPOINTS = "checkpoints"
CONFIG_YAML = "config.yaml"
METRICS_CSV = "metrics.csv"


def warn(message: str) -> None:
    """One line on stderr: something went wrong but the run goes on."""
    print(f"equirl: warning: {message}", file=sys.stderr, flush=True)


def has_checkpoints(run_dir: Path) -> bool:
    folder = Path(run_dir) / CHECKPOINTS
    return folder.is_dir() and any(p.name.isdigit() for p in folder.iterdir())


def prepare_run_dir(run_dir: str | Path, resume: bool) -> Path:
    """Create `run_dir`; refuse to start over a run's checkpoints, or to resume without any."""
    run_dir = Path(run_dir)
    found = has_checkpoints(run_dir)
    if not resume and found:
        raise ConfigError(f"{run_dir}: already holds checkpoints; resume it (--resume) or choose another name/--out")
    if resume and not found:
        raise ConfigError(f"{run_dir}: no checkpoint to resume from in {run_dir / CHECKPOINTS}")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def write_config(run_dir: Path, config) -> None:
    with open(Path(run_dir) / CONFIG_YAML, "w") as handle:
        yaml.safe_dump(to_dict(config), handle, sort_keys=False)


def open_manager(run_dir: str | Path, keep: int | None, read_only: bool = False):
    """Orbax's manager of run_dir/checkpoints, keeping the newest `keep` (None: all)."""
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
        folder = (Path(run_dir) / CHECKPOINTS).absolute()
        return ocp.CheckpointManager(folder, options=options, item_names=("state", "meta"))
    finally:
        absl.setLevel(level)


def save(manager, step: int, state: Any, meta: dict) -> None:
    """Save the state pytree and `meta` (JSON), and wait until both are written.

    Waiting matters to agents: the next iteration is given the state's buffers
    to reuse (donation), so nothing may still read them.
    """
    import orbax.checkpoint as ocp

    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
    manager.wait_until_finished()


def read_meta(manager, step: int) -> dict:
    import orbax.checkpoint as ocp

    return manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]


def check_format(meta: dict, where: str, expected: int, changes: str = "") -> None:
    """Refuse a checkpoint whose state layout is not `expected` (no "format" in meta: 1).
    `changes` says what the newer formats changed, for the message."""
    version = meta.get("format", 1)
    if version != expected:
        raise ConfigError(
            f"{where}: checkpoint format {version}, this equirl reads format {expected}"
            + (f" ({changes})" if changes else "")
            + "; train the run again"
        )


def restore_step(manager, step: int, target: Any) -> tuple[Any, dict]:
    """(state, meta) of checkpoint `step`, restored into the shapes (and shardings) of `target`."""
    import orbax.checkpoint as ocp

    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    restored = manager.restore(
        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore())
    )
    return restored["state"], restored["meta"]


def restore_latest(
    manager, target: Any, run_dir: Path, step: int | None = None, expected_format: tuple[int, str] | None = None
) -> tuple[Any, dict, int]:
    """(state, meta, step) of the newest readable checkpoint (or of `step`).

    An unreadable checkpoint (damaged or missing files) is reported in one
    line and the one before it is tried. With `expected_format` (the format
    and what changed, as `check_format` takes them), a checkpoint's metadata
    is checked before its state is restored: a state of another layout would
    otherwise fail the shape check, naming a layer instead of the change.
    """
    run_dir = Path(run_dir)
    steps = sorted(manager.all_steps(), reverse=True)
    if step is not None:
        if step not in steps:
            raise ConfigError(f"{run_dir}: no checkpoint at step {step} (there are {sorted(steps) or 'none'})")
        steps = [step]
    if not steps:
        raise ConfigError(f"{run_dir}: no checkpoint in {run_dir / CHECKPOINTS}")
    for candidate in steps:
        where = run_dir / CHECKPOINTS / str(candidate)
        try:
            if expected_format is not None:
                check_format(read_meta(manager, candidate), str(where), *expected_format)
            state, meta = restore_step(manager, candidate, target)
            return state, meta, candidate
        except EquirlError:
            raise
        except Exception as err:  # orbax and tensorstore raise many kinds
            # TensorStore appends pages of details after ". See ": the first sentence says it.
            reason = " ".join(str(err).split()).split(". See ")[0][:200]
            if candidate == steps[-1]:
                raise EquirlError(f"checkpoint {where} is unreadable ({type(err).__name__}: {reason})") from None
            warn(f"checkpoint {where} is unreadable ({type(err).__name__}: {reason}); using the previous one")
    raise AssertionError("unreachable")


def drop_newer(manager, step: int) -> None:
    """Delete checkpoints after `step` (a resume from `step` saves those steps again)."""
    for newer in [s for s in manager.all_steps() if s > step]:
        manager.delete(newer)
