"""The controllers shipped in the package: each loads, is equivariant, and steps a body;
`export` and `load` round-trip a run's policy exactly."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from equirl import equivariance as eq
from equirl.envs.bodies import resolve
from equirl.errors import ConfigError
from equirl.evaluation import evaluate, pretrained
from equirl.observation import Observation


def _observations(body: str, max_limbs: int) -> Observation:
    from equirl.envs.batched import BatchedEnv
    from equirl.envs.config import EnvConfig

    env = BatchedEnv(EnvConfig(bodies=(body,), num_envs=4, max_limbs=max_limbs))
    try:
        return env.reset(jax.random.PRNGKey(0)).obs
    finally:
        env.close()


def test_at_least_one_controller_is_shipped_with_its_card():
    shipped = pretrained.names()
    assert shipped, "no controller in equirl/evaluation/controllers"
    for name in shipped:
        card = pretrained.card(name)
        assert card["network"] == "set" and card["trained_on"] and card["budget"] and card["measured"], name
    assert all(name in pretrained.describe() for name in shipped)
    with pytest.raises(ConfigError, match="pretrained controller 'nope': not shipped"):
        pretrained.load("nope")
    # The benchmarks' "shipped name or run directory": a name loads the controller, anything
    # else is read as a run directory, and a bad one is refused naming both readings.
    assert pretrained.load_any(shipped[0]).run_dir == pretrained.CONTROLLERS / shipped[0]
    with pytest.raises(ConfigError, match="nope: no such run directory \\(nor a shipped controller: "):
        pretrained.load_any("nope")


@pytest.mark.parametrize("name", pretrained.names())
def test_a_shipped_controller_is_equivariant_and_steps_a_body(name):
    policy = pretrained.load(name)
    body = resolve(policy.config.env.bodies[0], max_limbs=policy.max_limbs)[0][0].name  # a training body
    obs = _observations(body, policy.max_limbs)
    act = jax.jit(lambda o: policy.act(policy.state, o))
    error = eq.finite_group_error(act, obs, jax.random.PRNGKey(1), num_samples=4)
    assert float(error) < 1e-4
    (result,) = evaluate(policy, [body], episodes=2, episode_length=50)
    assert result.ok and result.length_mean > 0 and np.isfinite(result.return_mean)


def test_the_quickstart_shows_a_controller_on_bodies_it_never_saw_when_one_is_shipped():
    from equirl.evaluation.quickstart import _held_out, _longest_lived
    from equirl.morphology.sgrl import ZERO_SHOT

    card = {"measured": {"walker_7_full": {"split": "train"}, "walker_6_right_foot": {"split": "held_out"}}}
    assert _held_out(card) == ["walker_6_right_foot"]
    assert _held_out({"measured": {"hopper_5_full": {"split": "train"}}}) == []
    # The video shows the controller that stays up longest, on its longest-lived training body.
    card["measured"]["walker_5_foot"] = {"split": "train", "episode_length": 300.0}
    card["measured"]["walker_7_full"]["episode_length"] = 100.0
    card["measured"]["walker_6_right_foot"]["episode_length"] = 900.0  # held out: not counted
    assert _longest_lived(card) == (200.0, "walker_5_foot")
    shipped = [name for name in pretrained.names() if _held_out(pretrained.card(name))]
    for name in shipped:  # every body it is shown on zero-shot is one the benchmark holds out of its family
        family = pretrained.card(name)["trained_on"][0].split("_")[0]
        assert set(_held_out(pretrained.card(name))) <= set(ZERO_SHOT[family])
