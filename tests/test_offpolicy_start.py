"""Starting an off-policy learner from a working policy (offpolicy.init_actor): the learner starts
from its actor and normaliser, the actor waits for the critic (actor_warmup_updates), the prior
term is the squared action distance to the starting policy, and mismatches are refused."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl.agents import offpolicy, sac
from equirl.agents.config import OffPolicyConfig, SACConfig, TrainConfig
from equirl.agents.policy import ActingState, ActorParams
from equirl.agents.start import load_start
from equirl.errors import ConfigError
from equirl.evaluation import pretrained
from equirl.nn import NetworkConfig, make_networks
from helpers.synthetic import random_observation

LIMBS = 4


@pytest.fixture(scope="module")
def tiny():
    obs = random_observation(0, 6, LIMBS)
    action = jnp.where(obs.action_mask, 0.5, 0.0)
    reward, discount = jnp.linspace(-1.0, 1.0, 6), jnp.full(6, 0.99)
    return offpolicy.Batch(obs, action, reward, random_observation(1, 6, LIMBS), discount)


def networks():
    return make_networks(NetworkConfig(kind="mlp", mlp_hidden=(16,), squash=True), LIMBS)


def test_the_actor_waits_for_the_critic_then_moves(tiny):
    nets = networks()
    rule = sac.make_rule(nets, SACConfig(actor_warmup_updates=2, actor_learning_rate=1e-2))
    learner = rule.init(jax.random.key(0), tiny.obs, tiny.action)
    update = jax.jit(rule.update)
    actors = [learner.params.actor]
    for i in range(3):
        learner, stats = update(learner, tiny, jax.random.key(i))
        actors.append(learner.params.actor)
        assert float(stats["loss/critic"]) > 0
    same = [all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(x), jax.tree.leaves(actors[0]))) for x in actors]
    assert same == [True, True, True, False]  # the critic stepped three times, the actor once


def test_the_prior_term_is_the_squared_action_distance_and_holds_the_actor(tiny):
    nets = networks()
    learner0 = sac.make_rule(nets, SACConfig()).init(jax.random.key(0), tiny.obs, tiny.action)
    prior = jax.tree.map(lambda x: x + 0.3, learner0.params.actor)  # a different policy to stay near

    mode = lambda p: np.asarray(nets.actor.apply(p, tiny.obs).mode())  # noqa: E731
    mask = np.asarray(tiny.obs.action_mask)
    gap = lambda p: np.mean(np.sum(np.where(mask, mode(p) - mode(prior), 0.0) ** 2, axis=(-2, -1)))  # noqa: E731

    def train(weight, steps=30):
        rule = sac.make_rule(nets, SACConfig(prior_weight=weight, actor_learning_rate=3e-3), prior=prior)
        learner, update, logged = learner0, jax.jit(rule.update), []
        for i in range(steps):
            learner, stats = update(learner, tiny, jax.random.key(i))
            logged.append(stats.get("policy/prior_gap"))
        return learner.params.actor, logged

    free, free_logged = train(0.0)
    held, held_logged = train(100.0)
    assert float(held_logged[-1]) == pytest.approx(gap(held), rel=1e-4)  # the gap after each step
    assert gap(held) < 0.2 * gap(learner0.params.actor)  # a heavy prior pulls the actor to the starting policy
    assert gap(free) > 0.5 * gap(learner0.params.actor)  # without it the actor goes its own way
    assert free_logged == [None] * len(free_logged)  # weight 0: no prior term, none reported


def test_a_run_starts_from_the_given_actor_and_normaliser(make_env):
    env = make_env(bodies=("hopper_3_shin",), num_envs=2, max_limbs=5).env
    nets = make_networks(NetworkConfig(kind="mlp", mlp_hidden=(16,), squash=True), env.num_limbs)
    config = OffPolicyConfig(buffer_size=32, batch_size=8, learning_starts=8)
    obs = env.reset(jax.random.key(0)).obs
    fresh = sac.make_rule(nets, SACConfig()).init(jax.random.key(5), obs, jnp.zeros(obs.action_mask.shape))
    normalizer = offpolicy.initial_normalizer()
    normalizer = normalizer.replace(count=jnp.asarray(7.0, normalizer.count.dtype))
    start = ActingState(ActorParams(fresh.params.actor), normalizer)
    agent = offpolicy.make_offpolicy(env, nets, config, sac.make_rule(nets, SACConfig()), start)
    state = jax.jit(agent.init)(jax.random.key(1))
    for a, b in zip(jax.tree.leaves(state.params.actor), jax.tree.leaves(fresh.params.actor)):
        np.testing.assert_array_equal(a, b)
    assert float(state.normalizer.count) == 7.0


def test_a_shipped_controller_loads_as_a_start_and_a_misfit_is_refused():
    name = pretrained.names()[0]
    policy = pretrained.load(name)
    config = dataclasses.replace(policy.config, algorithm="sac")
    start = load_start(name, make_networks(config.network, config.env.max_limbs), config)
    for a, b in zip(jax.tree.leaves(start.params.actor), jax.tree.leaves(policy.state.params.actor)):
        np.testing.assert_array_equal(a, b)
    narrow = dataclasses.replace(config.network, width=config.network.width // 2)
    with pytest.raises(ConfigError, match=f"init_actor={name!r}.*does not fit"):
        load_start(name, make_networks(narrow, config.env.max_limbs), config)
    with pytest.raises(ConfigError, match="neither a run directory"):
        load_start("no_such_controller", make_networks(config.network, config.env.max_limbs), config)


def test_starting_options_are_checked_before_anything_is_built():
    squashed = NetworkConfig(kind="mlp", squash=True)
    with pytest.raises(ConfigError, match="td3 cannot start from a given actor"):
        TrainConfig(algorithm="td3", network=squashed, offpolicy=OffPolicyConfig(init_actor="x"))
    with pytest.raises(ConfigError, match="prior_weight.*init_actor"):
        TrainConfig(algorithm="sac", network=squashed, sac=SACConfig(prior_weight=1.0))
    with pytest.raises(ConfigError, match="actor_warmup_updates"):
        SACConfig(actor_warmup_updates=-1)
