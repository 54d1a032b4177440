"""Shared by the world-model tests: one tiny dataset per test process, recorded through the CLI.

`tiny_dataset()` runs `equirl wm collect` once (hopper_3_shin and
walker_2_right_leg_left_knee, random torques, 2 environments, 2 shards) and
returns its folder; later calls reuse it. `tiny_batch(window, size)` cuts
windows from it. (No tests here: this module only shares the data.)
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

TINY_BODIES = ("hopper_3_shin", "walker_2_right_leg_left_knee")
TINY_STEPS = 80
TINY_SHARD_STEPS = 40


@functools.lru_cache(maxsize=None)
def tiny_dataset() -> Path:
    from equirl.cli import main

    out = Path(tempfile.mkdtemp(prefix="equirl_wm_")) / "data"
    code = main(["wm", "collect", "--out", str(out), "--bodies", *TINY_BODIES, "--envs", "2",
                 "--steps", str(TINY_STEPS), "--set", f"shard_steps={TINY_SHARD_STEPS}", "--set", "action_repeat=2"])
    assert code == 0
    return out


@functools.lru_cache(maxsize=None)
def tiny_data(window: int, split: str = "all"):
    from equirl.worldmodels.data import WindowDataset

    return WindowDataset.load(tiny_dataset(), window, split)


def tiny_batch(window: int, size: int, seed: int = 0):
    return tiny_data(window).sample(np.random.default_rng(seed), size)
