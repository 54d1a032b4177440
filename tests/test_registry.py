"""Algorithms plug in: a toy one registered at run time trains through the unchanged driver,
and a learner driven into divergence is stopped with one message, its last checkpoint kept."""

from __future__ import annotations

import dataclasses

import pytest

from equirl.agents import registry
from equirl.agents import train as T
from equirl.errors import ConfigError, TrainingDiverged
from equirl.runs.checkpoints import CHECKPOINTS
from helpers.runs import read_csv, sac_config


@pytest.fixture(scope="module", autouse=True)
def tiny_registered():
    registry.register("tiny", "helpers.tiny_algorithm")
    yield
    registry.ALGORITHMS.pop("tiny")


def tiny_config(out, reward_scale: float = 1.0):
    config = sac_config(out, algorithm="tiny")
    # Learning from iteration 5 (20 transitions) on: the checkpoint at 16 steps is still warm-up.
    offpolicy = dataclasses.replace(config.offpolicy, reward_scale=reward_scale, learning_starts=20)
    run = dataclasses.replace(config.run, equivariance_every_steps=0)
    return dataclasses.replace(config, offpolicy=offpolicy, run=run)


def test_a_registered_algorithm_trains_through_the_driver(tmp_path):
    result = T.train(tiny_config(tmp_path))
    assert int(result.state.learner.updates) == 4 * 2  # 4 learning iterations x 2 updates
    rows = read_csv(tmp_path)
    assert [int(r["env_steps"]) for r in rows] == [16, 32]
    assert float(rows[-1]["loss/critic"]) > 0 and float(rows[-1]["optim/learning"]) == 1.0
    with pytest.raises(ConfigError, match="algorithm='nope': must be one of"):
        dataclasses.replace(tiny_config(tmp_path), algorithm="nope")


def test_a_diverging_learner_stops_and_keeps_its_last_good_checkpoint(tmp_path):
    config = tiny_config(tmp_path, reward_scale=1e30)  # squared: inf in float32
    with pytest.raises(TrainingDiverged) as stopped:
        T.train(config)
    message = str(stopped.value)
    assert "at 32 environment steps loss/critic = inf is not finite" in message
    assert "its last checkpoint (16 environment steps) stands" in message
    assert sorted(int(p.name) for p in (tmp_path / CHECKPOINTS).iterdir() if p.name.isdigit()) == [16]
