"""Typed, validated configuration of a world-model training run (configs/wm/*.yaml)."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from equirl.checks import check_bool, check_float, check_int
from equirl.config_io import apply_overrides, load_yaml
from equirl.errors import ConfigError
from equirl.worldmodels.interface import WorldModelConfig


@dataclasses.dataclass(frozen=True)
class WMDataConfig:
    """path: a dataset written by `equirl wm collect`; window: frames per training
    window (model.context of them are observed, the rest predicted open loop);
    test_fraction: the last part of every shard kept for evaluation;
    max_yaw_rate (rad/step), max_speed (m/step): random observer flows applied
    to training windows (0 and 0: none)."""

    path: str = "runs/wm/data/default"
    window: int = 16
    batch_size: int = 32
    test_fraction: float = 0.2
    max_yaw_rate: float = 0.0
    max_speed: float = 0.0

    def __post_init__(self):
        if not isinstance(self.path, str) or not self.path:
            raise ConfigError(f"data.path={self.path!r}: must be a dataset folder")
        check_int("data.window", self.window, 2)
        check_int("data.batch_size", self.batch_size, 1)
        check_float("data.test_fraction", self.test_fraction, 0.0, 0.9)
        check_float("data.max_yaw_rate", self.max_yaw_rate, 0.0)
        check_float("data.max_speed", self.max_speed, 0.0)


@dataclasses.dataclass(frozen=True)
class WMOptimConfig:
    learning_rate: float = 1e-3
    grad_clip: float = 1.0
    steps: int = 2000
    warmup_steps: int = 50

    def __post_init__(self):
        check_float("optim.learning_rate", self.learning_rate, 0.0, open_low=True)
        check_float("optim.grad_clip", self.grad_clip, 0.0, open_low=True)
        check_int("optim.steps", self.steps, 1)
        check_int("optim.warmup_steps", self.warmup_steps, 0)


@dataclasses.dataclass(frozen=True)
class WMRunConfig:
    """name: runs/wm/<name> unless out_dir is set; log_every and
    checkpoint_every in optimiser steps; eval_windows: test windows scored at
    each log."""

    name: str = "wm"
    out_dir: str | None = None
    seed: int = 0
    log_every: int = 50
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    eval_windows: int = 64
    progress: bool = True

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ConfigError(f"run.name={self.name!r}: must be a non-empty name without '/'")
        if self.out_dir is not None and (not isinstance(self.out_dir, str) or not self.out_dir):
            raise ConfigError(f"run.out_dir={self.out_dir!r}: must be a folder or null")
        check_int("run.seed", self.seed, 0)
        for name in ("log_every", "checkpoint_every", "keep_checkpoints", "eval_windows"):
            check_int(f"run.{name}", getattr(self, name), 1)
        check_bool("run.progress", self.progress)

    @property
    def directory(self) -> Path:
        return Path(self.out_dir) if self.out_dir else Path("runs") / "wm" / self.name


@dataclasses.dataclass(frozen=True)
class WMTrainConfig:
    data: WMDataConfig = dataclasses.field(default_factory=WMDataConfig)
    model: WorldModelConfig = dataclasses.field(default_factory=WorldModelConfig)
    optim: WMOptimConfig = dataclasses.field(default_factory=WMOptimConfig)
    run: WMRunConfig = dataclasses.field(default_factory=WMRunConfig)

    def __post_init__(self):
        for name, cls in (
            ("data", WMDataConfig),
            ("model", WorldModelConfig),
            ("optim", WMOptimConfig),
            ("run", WMRunConfig),
        ):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name}: expected a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        if self.model.context >= self.data.window:
            raise ConfigError(
                f"model.context={self.model.context}: must be less than data.window="
                f"{self.data.window} (at least one frame to predict)"
            )


def load_wm_config(path: str | os.PathLike, overrides=()) -> WMTrainConfig:
    """A WMTrainConfig from YAML with dotted key=value overrides (e.g. model.kind=gru)."""
    config = load_yaml(WMTrainConfig, path)
    return apply_overrides(config, list(overrides)) if overrides else config
