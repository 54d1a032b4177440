"""Distillation (DAgger): teachers label, the student learns their actions; bad teachers are refused."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

from equirl.agents import train as T
from equirl.agents.distill import distill_config
from equirl.errors import ConfigError
from equirl.evaluation import load_policy_for_eval, pretrained
from helpers.runs import read_csv, tiny_config

SMALL_SET = dict(width=16, depth=1, heads=2, vector_channels=4, invariant_channels=2, vector_key_channels=2)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny PPO run on hopper_3_shin (mlp, 5 limb slots): a deterministic policy to imitate."""
    out = tmp_path_factory.mktemp("teacher") / "run"
    T.train(tiny_config(out, equivariance_every_steps=0))
    return out


def student_config(teacher, out, **fields):
    config = distill_config([teacher], steps=40 * 4, name="student", out=str(out), num_envs=4)
    network = dataclasses.replace(config.network, **SMALL_SET)
    distill = dataclasses.replace(
        config.distill,
        buffer_size=64,
        batch_size=16,
        learning_starts=16,
        updates_per_iteration=4,
        learning_rate=3e-3,
        beta_decay_steps=64,
    )
    run = dataclasses.replace(
        config.run, log_every_steps=4, checkpoint_every_steps=80, equivariance_every_steps=80, progress=False
    )
    return dataclasses.replace(config, network=network, distill=distill, run=run, **fields)


def test_the_student_learns_the_teachers_actions(teacher, tmp_path):
    config = student_config(teacher, tmp_path / "student")
    assert config.env.bodies == ("hopper_3_shin",) and config.env.max_limbs == 5 and config.network.kind == "set"
    result = T.train(config)
    rows = read_csv(tmp_path / "student")
    losses = [float(r["distill/loss"]) for r in rows if float(r["optim/learning"]) == 1.0]
    assert len(losses) > 20 and np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    betas = [float(r["distill/beta"]) for r in rows]
    assert betas[0] > 0.9 and betas[-1] == 0.0  # the teacher hands over to the student
    assert float(rows[-1]["equivariance/policy"]) < 1e-4  # a SET student, checked by the run itself
    # The student is a run like any other: evaluation loads and acts with it.
    policy = load_policy_for_eval(tmp_path / "student")
    obs = result.state.env_state.obs
    action = jax.jit(policy.act)(policy.state, obs)
    assert action.shape == obs.action_mask.shape and np.all(np.abs(np.asarray(action)) <= 1.0)
    # Shipped as a pretrained controller (three small files), it acts exactly as the run does.
    card = {"trained_on": ["hopper_3_shin"], "budget": "160 steps", "measured": {}}
    folder = pretrained.export(tmp_path / "student", "tiny_student", card, folder=tmp_path / "controllers")
    assert sorted(p.name for p in folder.iterdir()) == sorted(pretrained.FILES)
    shipped = pretrained.load("tiny_student", folder=tmp_path / "controllers")
    np.testing.assert_allclose(jax.jit(shipped.act)(shipped.state, obs), action, atol=1e-6)
    assert pretrained.card("tiny_student", folder=tmp_path / "controllers")["env_steps"] == 160


def test_teachers_that_cannot_teach_are_refused(teacher, tmp_path):
    with pytest.raises(ConfigError, match="no such run directory|not a run directory"):
        distill_config([tmp_path / "nowhere"])
    with pytest.raises(ConfigError, match="distill.teachers: empty"):
        dataclasses.replace(
            student_config(teacher, tmp_path / "a"),
            distill=dataclasses.replace(student_config(teacher, tmp_path / "a").distill, teachers=()),
        )
    base = student_config(teacher, tmp_path / "b")
    cases = {
        "no teacher was trained on hopper_5_full": dataclasses.replace(
            base.env, bodies=("hopper_3_shin", "hopper_5_full")
        ),
        "is a mlp network for 5 limb slots; set env.max_limbs=5": dataclasses.replace(base.env, max_limbs=7),
        "trained on task v1, the student runs v2": dataclasses.replace(base.env, task="v2"),
    }
    for message, env in cases.items():
        config = dataclasses.replace(base, env=env)
        with pytest.raises(ConfigError, match=message.split(", the")[0]):
            env_, _, _ = T.build(config)
            env_.close()
