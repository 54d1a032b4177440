"""Off-policy targets and losses against hand computations on tiny batches:
n-step sums, no bootstrap on termination, bootstrap on truncation, and each
algorithm's critic loss; the divergence guard on synthetic log rows."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl.agents import crossq, offpolicy, replay, sac, td3
from equirl.agents.config import CrossQConfig, OffPolicyConfig, SACConfig, TD3Config
from equirl.agents.divergence import DivergenceGuard, add_q_bias
from equirl.errors import TrainingDiverged
from equirl.nn import NetworkConfig, make_networks
from helpers.synthetic import random_observation

GAMMA = 0.9

# -- n-step sampling ------------------------------------------------------------------------

# Two environments, 6 steps each, written time-major (row = 2 t + env).
# env 0: terminates at t=2, then a new episode truncated (time limit) at t=4.
# env 1: one long episode, nothing ends.
T_STEPS, ENVS = 6, 2
TERMINATED = {(2, 0)}
TRUNCATED = {(4, 0)}


def filled_buffer(capacity: int = 12) -> replay.ReplayBuffer:
    rows = T_STEPS * ENVS
    index = jnp.arange(rows, dtype=jnp.float32)
    t, env = np.divmod(np.arange(rows), ENVS)
    term = np.array([(a, b) in TERMINATED for a, b in zip(t, env)])
    done = term | np.array([(a, b) in TRUNCATED for a, b in zip(t, env)])
    data = offpolicy.Transition(
        obs=index,
        action=index,
        reward=1.0 + index,
        next_obs=index + 0.5,  # next_obs names its row
        terminated=jnp.asarray(term),
        done=jnp.asarray(done),
    )
    buffer = replay.init(jax.tree.map(lambda x: x[0], data), capacity)
    for t in range(T_STEPS):  # one time step of both environments at a time, as the agent writes them
        buffer = replay.insert(buffer, jax.tree.map(lambda x: x[ENVS * t : ENVS * (t + 1)], data))
    return buffer


def expected(row: int, n: int, newest: int):
    """(reward sum, next_obs, terminated, steps) of an n-step transition from `row`, by hand."""
    total, k, r = 0.0, 0, row
    while True:
        total += GAMMA**k * (1.0 + r)
        t, env = divmod(r, ENVS)
        ended = (t, env) in TERMINATED or (t, env) in TRUNCATED
        if ended or k + 1 == n or r + ENVS > newest:
            return total, r + 0.5, (t, env) in TERMINATED, k + 1
        k, r = k + 1, r + ENVS


@pytest.mark.parametrize("n", [1, 3])
def test_n_step_sums_stop_at_episode_ends_and_the_newest_row(n):
    buffer = filled_buffer()
    sample = replay.sample_n_step(buffer, jax.random.key(0), 400, n, GAMMA, ENVS)
    rows = np.asarray(sample.obs).astype(int)
    assert set(rows.tolist()) == set(range(12))
    for i, row in enumerate(rows):
        total, next_obs, term, steps = expected(row, n, newest=11)
        assert float(sample.reward[i]) == pytest.approx(total, rel=1e-6), row
        assert float(sample.next_obs[i]) == next_obs and bool(sample.terminated[i]) == term
        assert int(sample.steps[i]) == steps


def test_n_step_does_not_wrap_into_the_oldest_rows():
    # 12 rows into a ring of 8: rows 4..11 remain (positions 4..7, 0..3); the newest is row 11.
    buffer = filled_buffer(capacity=8)
    sample = replay.sample_n_step(buffer, jax.random.key(1), 400, 3, GAMMA, ENVS)
    for i, row in enumerate(np.asarray(sample.obs).astype(int)):
        total, next_obs, _, steps = expected(row, 3, newest=11)
        assert float(sample.next_obs[i]) == next_obs and int(sample.steps[i]) == steps


def test_termination_does_not_bootstrap_truncation_does():
    buffer = filled_buffer()
    config = OffPolicyConfig(gamma=GAMMA, n_step=3, reward_scale=2.0, batch_size=8, buffer_size=12)
    sample = replay.sample_n_step(buffer, jax.random.key(2), 400, 3, GAMMA, ENVS)
    batch = offpolicy.to_batch(sample, config)
    rows = np.asarray(sample.obs).astype(int)
    for i, row in enumerate(rows):
        total, _, term, steps = expected(row, 3, newest=11)
        assert float(batch.reward[i]) == pytest.approx(2.0 * total, rel=1e-6)
        assert float(batch.discount[i]) == pytest.approx(0.0 if term else GAMMA**steps, rel=1e-6)
    # Row 4 (t=2, env 0) terminates: no bootstrap. Row 8 (t=4, env 0) is cut by the time limit: it bootstraps.
    assert float(batch.discount[rows == 4][0]) == 0.0
    assert float(batch.discount[rows == 8][0]) == pytest.approx(GAMMA)


# -- losses by hand ---------------------------------------------------------------------------

LIMBS = 4


@pytest.fixture(scope="module")
def tiny():
    obs = random_observation(0, 6, LIMBS)
    next_obs = random_observation(1, 6, LIMBS)
    action = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, obs.action_mask.shape), jnp.float32)
    action = jnp.where(obs.action_mask, action, 0.0)
    batch = offpolicy.Batch(
        obs,
        action,
        jnp.asarray([1.0, -0.5, 2.0, 0.0, 0.3, 1.5]),
        next_obs,
        jnp.asarray([0.99, 0.0, 0.99**3, 0.99, 0.0, 0.99]),
    )
    return batch


def networks_for(**fields):
    return make_networks(NetworkConfig(kind="mlp", mlp_hidden=(16,), squash=True, **fields), LIMBS)


def twin_loss(q, target):
    q, target = np.asarray(q, np.float64), np.asarray(target, np.float64)
    return 0.5 * np.sum(np.mean((q - target[:, None]) ** 2, 0))


def test_sac_critic_loss_by_hand(tiny):
    nets = networks_for()
    rule = sac.make_rule(nets, SACConfig(initial_alpha=0.3))
    learner = rule.init(jax.random.key(0), tiny.obs, tiny.action)
    key = jax.random.key(9)
    _, stats = rule.update(learner, tiny, key)

    k_critic = jax.random.split(key)[0]
    a2, logp2 = nets.actor.apply(learner.params.actor, tiny.next_obs).sample_and_log_prob(seed=k_critic)
    next_q = np.min(np.asarray(nets.q.apply(learner.params.target_q, tiny.next_obs, a2)), -1)
    target = np.asarray(tiny.reward) + np.asarray(tiny.discount) * (next_q - 0.3 * np.asarray(logp2))
    q = nets.q.apply(learner.params.q, tiny.obs, tiny.action)
    assert float(stats["loss/critic"]) == pytest.approx(twin_loss(q, target), rel=1e-5)
    assert float(stats["q/mean"]) == pytest.approx(float(np.mean(q)), rel=1e-5)


def test_sac_actor_loss_and_gradient_by_hand(tiny):
    # The actor's step against its loss written out: mean(alpha log pi(a|s) - min Q'(s, a)),
    # Q' the critic after its step (the actor follows the updated critic).
    nets = networks_for()
    config = SACConfig(initial_alpha=0.3, actor_learning_rate=1e-3)
    rule = sac.make_rule(nets, config)
    learner = rule.init(jax.random.key(0), tiny.obs, tiny.action)
    key = jax.random.key(9)
    new, stats = rule.update(learner, tiny, key)

    def loss(params):
        a, logp = nets.actor.apply(params, tiny.obs).sample_and_log_prob(seed=jax.random.split(key)[1])
        return jnp.mean(0.3 * logp - jnp.min(nets.q.apply(new.params.q, tiny.obs, a), -1))

    value, grads = jax.value_and_grad(loss)(learner.params.actor)
    assert float(stats["loss/actor"]) == pytest.approx(float(value), rel=1e-5)
    # Adam's first step moves each parameter by lr * g / (|g| + eps): the sign of the hand gradient.
    for g, before, after in zip(
        jax.tree.leaves(grads), jax.tree.leaves(learner.params.actor), jax.tree.leaves(new.params.actor)
    ):
        g = np.asarray(g)
        big = np.abs(g) > 1e-6
        np.testing.assert_allclose(
            (np.asarray(before) - np.asarray(after))[big], 1e-3 * np.sign(g[big]), rtol=1e-2, atol=1e-7
        )


def test_td3_critic_loss_by_hand(tiny):
    nets = networks_for()
    config = TD3Config()
    rule = td3.make_rule(nets, config)
    learner = rule.init(jax.random.key(0), tiny.obs, tiny.action)
    key = jax.random.key(4)
    _, stats = rule.update(learner, tiny, key)

    dist = nets.actor.apply(learner.params.target_actor, tiny.next_obs)
    noise = np.clip(config.target_noise * np.asarray(jax.random.normal(key, tiny.action.shape)), -0.5, 0.5)
    a2 = np.where(np.asarray(dist.mask), np.clip(np.asarray(dist.mode()) + noise, -1, 1), 0.0)
    next_q = np.min(np.asarray(nets.q.apply(learner.params.target_q, tiny.next_obs, jnp.asarray(a2))), -1)
    target = np.asarray(tiny.reward) + np.asarray(tiny.discount) * next_q
    q = nets.q.apply(learner.params.q, tiny.obs, tiny.action)
    assert float(stats["loss/critic"]) == pytest.approx(twin_loss(q, target), rel=1e-5)


def test_crossq_critic_loss_by_hand_with_one_joint_pass(tiny):
    nets = networks_for(q_norm="batch_renorm", renorm_warmup=0)
    rule = crossq.make_rule(nets, CrossQConfig(initial_alpha=0.3))
    learner = rule.init(jax.random.key(0), tiny.obs, tiny.action)
    assert learner.params.target_q == {}  # no target network
    key = jax.random.key(5)
    new, stats = rule.update(learner, tiny, key)

    k_critic = jax.random.split(key)[0]
    a2, logp2 = nets.actor.apply(learner.params.actor, tiny.next_obs).sample_and_log_prob(seed=k_critic)
    cat = lambda a, b: jnp.concatenate([a, b], 0)  # noqa: E731
    joint, updated = nets.q.apply(
        learner.params.q, jax.tree.map(cat, tiny.obs, tiny.next_obs), cat(tiny.action, a2), mutable=["batch_stats"]
    )
    q, next_q = np.split(np.asarray(joint), 2)
    target = np.asarray(tiny.reward) + np.asarray(tiny.discount) * (next_q.min(-1) - 0.3 * np.asarray(logp2))
    assert float(stats["loss/critic"]) == pytest.approx(twin_loss(q, target), rel=1e-5)
    # The renorm statistics the update keeps are the joint batch's.
    for kept, joint_stats in zip(jax.tree.leaves(new.params.q["batch_stats"]), jax.tree.leaves(updated["batch_stats"])):
        np.testing.assert_allclose(kept, joint_stats, rtol=1e-6)
    # Two separate passes would normalise each half with its own statistics: another loss.
    q_sep, _ = nets.q.apply(learner.params.q, tiny.obs, tiny.action, mutable=["batch_stats"])
    assert not np.allclose(np.asarray(q_sep), q, atol=1e-4)


# -- the divergence guard ----------------------------------------------------------------------


def test_q_bias_is_mean_q_minus_the_monte_carlo_return():
    row = {"q/mean": 50.0, "q/mc_sum": 60.0, "q/mc_episodes": 2.0, "optim/learning": 1.0}
    add_q_bias(row)
    assert row == {"q/mean": 50.0, "q/mc_return": 30.0, "q/bias": 20.0, "optim/learning": 1.0}
    warming = {"q/mean": 0.0, "q/mc_sum": 60.0, "q/mc_episodes": 2.0, "optim/learning": 0.5}
    add_q_bias(warming)
    assert "q/bias" not in warming and warming["q/mc_return"] == 30.0


def test_guard_stops_on_non_finite_losses_and_on_a_sustained_bias():
    guard = DivergenceGuard(max_q_bias=100.0, window=3000)
    guard.check({"loss/critic": 1.0}, 1000)
    with pytest.raises(TrainingDiverged, match="at 2000 environment steps loss/critic = nan"):
        guard.check({"loss/critic": float("nan")}, 2000)

    def row(bias):
        return {"loss/critic": 1.0, "q/mean": 10.0 + bias, "q/mc_return": 10.0, "q/bias": bias}

    guard = DivergenceGuard(max_q_bias=100.0, window=3000)
    guard.check(row(150.0), 1000)
    guard.check(row(150.0), 2000)
    assert guard.suspect  # the driver writes no checkpoint now
    guard.check(row(50.0), 3000)  # back under the bound: the window starts again
    assert not guard.suspect
    guard.check(row(150.0), 4000)
    guard.check(row(150.0), 6000)
    with pytest.raises(TrainingDiverged, match=r"Q bias is 150.0 .* above run.max_q_bias=100 since 4000 steps"):
        guard.check(row(150.0), 7000)
    DivergenceGuard(max_q_bias=0.0, window=0).check(row(1e9), 1)  # 0 turns the bias check off
