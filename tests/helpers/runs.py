"""Tiny training configs and run-directory readers shared by the training tests."""

from __future__ import annotations

import csv

from equirl.agents.config import OffPolicyConfig, PPOConfig, RunConfig, TrainConfig
from equirl.agents.saved_runs import load_run
from equirl.envs.config import EnvConfig
from equirl.nn.config import NetworkConfig
from equirl.runs.checkpoints import CHECKPOINTS, METRICS_CSV

STEPS_PER_ITERATION = 4 * 8
ITERATIONS = 4


def tiny_config(out_dir, **run) -> TrainConfig:
    run = dict(
        dict(
            name="tiny",
            out_dir=str(out_dir),
            total_steps=ITERATIONS * STEPS_PER_ITERATION,
            checkpoint_every_steps=STEPS_PER_ITERATION,
            log_every_steps=STEPS_PER_ITERATION,
            keep_checkpoints=2,
            equivariance_every_steps=2 * STEPS_PER_ITERATION,
            progress=False,
        ),
        **run,
    )
    return TrainConfig(
        algorithm="ppo",
        env=EnvConfig(bodies=("hopper_3_shin",), num_envs=4, max_limbs=5),
        network=NetworkConfig(kind="mlp", mlp_hidden=(16, 16)),
        ppo=PPOConfig(rollout_length=8, epochs=2, minibatches=2),
        run=RunConfig(**run),
    )


def sac_config(out_dir, algorithm: str = "sac", **network) -> TrainConfig:
    return TrainConfig(
        algorithm=algorithm,
        env=EnvConfig(bodies=("hopper_3_shin",), num_envs=4, max_limbs=5),
        network=NetworkConfig(kind="mlp", mlp_hidden=(16, 16), squash=True, **network),
        offpolicy=OffPolicyConfig(buffer_size=256, batch_size=16, learning_starts=16, updates_per_iteration=2),
        run=RunConfig(
            name="sac",
            out_dir=str(out_dir),
            total_steps=4 * 8,
            checkpoint_every_steps=16,
            log_every_steps=16,
            equivariance_every_steps=32,
            progress=False,
        ),
    )


def load_checkpoint(run_dir):
    config, state, _ = load_run(run_dir)
    return config, state


def checkpoint_steps(run_dir) -> list[int]:
    folder = run_dir / CHECKPOINTS
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []


def read_csv(run_dir) -> list[dict]:
    with open(run_dir / METRICS_CSV, newline="") as handle:
        return list(csv.DictReader(handle))
