"""The off-policy skeleton with SAC, CrossQ and TD3: the replay buffer, the agent's iteration
on a mixed-body environment, and that each critic learns."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl.agents import offpolicy, replay, td3
from equirl.agents.config import OffPolicyConfig, SACConfig, TD3Config
from equirl.agents.normalization import normalize
from equirl.agents.sac import target_entropy
from equirl.errors import ConfigError
from equirl.nn import NetworkConfig, make_networks
from helpers.common import compile_fast
from helpers.launch import assert_same_losses, finish, launch_two_devices
from helpers.offpolicy import ENV, ITERATIONS, NETWORKS, RULES, SAC, make_agent


def tree_equal(a, b) -> bool:
    """Exact equality of two pytrees (on the host: eager jnp ops would each compile)."""

    def host(x):
        return np.asarray(jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x)

    return all(jax.tree.leaves(jax.tree.map(lambda x, y: np.array_equal(host(x), host(y)), a, b)))


# -- replay buffer --------------------------------------------------------------------


def test_replay_wraps_saturates_and_samples_what_was_stored():
    example = {"reward": jnp.zeros(()), "obs": {"v": jnp.zeros((2, 3)), "ok": jnp.zeros((), bool)}}
    buffer = replay.init(example, capacity=10)
    assert buffer.capacity == 10 and int(buffer.size) == 0

    def batch(start, n=4):  # rewards = global step index; v and ok derived from it
        r = jnp.arange(start, start + n, dtype=jnp.float32)
        return {"reward": r, "obs": {"v": jnp.broadcast_to(r[:, None, None], (n, 2, 3)), "ok": r > 0}}

    sizes = []
    for i in range(3):  # 12 items into 10 rows: the third batch wraps across the end
        buffer = replay.insert(buffer, batch(4 * i))
        sizes.append(int(buffer.size))
    assert sizes == [4, 8, 10]
    assert int(buffer.position) == 2
    np.testing.assert_array_equal(buffer.data["reward"], [10, 11, 2, 3, 4, 5, 6, 7, 8, 9])

    items = replay.sample(buffer, jax.random.key(0), 200)
    rewards = np.asarray(items["reward"])
    assert set(rewards.tolist()) == set(range(2, 12))  # the overwritten 0 and 1 are gone
    np.testing.assert_array_equal(items["obs"]["v"], np.broadcast_to(rewards[:, None, None], (200, 2, 3)))
    np.testing.assert_array_equal(items["obs"]["ok"], rewards > 0)


def test_replay_samples_only_filled_rows_and_rejects_oversized_batches():
    buffer = replay.init({"reward": jnp.zeros(())}, capacity=16)
    buffer = replay.insert(buffer, {"reward": jnp.arange(1.0, 4.0)})
    items = replay.sample(buffer, jax.random.key(1), 100)
    assert set(np.asarray(items["reward"]).tolist()) == {1.0, 2.0, 3.0}
    with pytest.raises(ConfigError):
        replay.insert(buffer, {"reward": jnp.zeros(17)})
    with pytest.raises(ConfigError):
        replay.init({"reward": jnp.zeros(())}, capacity=0)


# -- the agent ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def env(request, make_env):
    if "test_two_devices" in " ".join(item.name for item in request.session.items):
        request.getfixturevalue("two_device_sac")  # start it now: its compile overlaps these
    return make_env(**ENV).env


@pytest.fixture(scope="module")
def two_device_sac(tmp_path_factory):
    """The mlp run of the `run` fixture, on 2 devices (the SAC job of tests/test_distributed.py)."""
    out = tmp_path_factory.mktemp("sac_two_devices")
    process = launch_two_devices("sac", out)
    yield out, process
    if process.poll() is None:
        process.kill()
        process.wait()


# Every kind trains under SAC; the SET, transformer and heading-normalised MLP runs are
# `benchmark`-marked (pytest -m benchmark) to keep the default suite within its budget
# (SET trains under PPO in the default suite, and its Q-function is tested in tests/test_nn_*).
SLOW_KINDS = ("set", "transformer", "mlp_heading")


CASES = [("sac", k) for k in sorted(NETWORKS)] + [("crossq", "mlp"), ("td3", "mlp"), ("crossq", "set")]


@pytest.fixture(
    scope="module",
    params=[pytest.param(c, marks=pytest.mark.benchmark) if c[1] in SLOW_KINDS else c for c in CASES],
    ids=lambda c: "-".join(c),
)
def run(request, env):
    """(agent, networks, compiled iteration, [initial state, then after each iteration], [metrics]),
    for one algorithm and network kind."""
    agent, networks = make_agent(env, *request.param)
    key = jax.random.key(0)
    state = compile_fast(agent.init, key)(key)
    iteration = compile_fast(agent.iteration, state)
    states, metrics = [state], []
    for _ in range(ITERATIONS):
        state, m = iteration(state)
        states.append(state)
        metrics.append(jax.device_get(m))
    return agent, networks, iteration, states, metrics


def test_iterations_fill_the_buffer_and_learn(run, env):
    agent, _, _, states, metrics = run
    per_iteration = SAC.steps_per_iteration * env.num_envs
    assert agent.steps_per_iteration == per_iteration
    last = states[-1]
    assert int(last.env_steps) == ITERATIONS * per_iteration
    assert int(last.iteration) == ITERATIONS
    assert int(last.buffer.size) == SAC.buffer_size  # 24 transitions into 20 rows
    assert int(last.buffer.position) == (ITERATIONS * per_iteration) % SAC.buffer_size

    # The first iteration holds 8 < learning_starts=16 transitions: no update yet.
    learning = [float(m["optim/learning"]) for m in metrics]
    assert learning == [0.0, 1.0, 1.0]
    assert tree_equal(states[0].params, states[1].params)

    for m in metrics[1:]:
        for name in ("loss/critic", "loss/actor", "q/mean", "reward/mean", "q/mc_sum", "q/mc_episodes"):
            assert np.isfinite(m[name]), name
    assert not tree_equal(states[1].params.actor, last.params.actor)
    assert not tree_equal(states[1].params.q["params"], last.params.q["params"])
    learner = last.learner
    if hasattr(learner, "log_alpha"):  # SAC and CrossQ tune the temperature
        assert float(learner.log_alpha) != pytest.approx(float(states[0].learner.log_alpha), abs=1e-7)
    if isinstance(learner, td3.Learner):  # the target networks trail the online ones
        assert not tree_equal(last.params.target_actor, last.params.actor)
    if "batch_stats" in last.params.q:  # CrossQ: no target network, renorm statistics move in training
        assert last.params.target_q == {}
        assert not tree_equal(states[1].params.q["batch_stats"], last.params.q["batch_stats"])
    elif not isinstance(learner, td3.Learner):
        assert not tree_equal(last.params.q, last.params.target_q)
    assert metrics[0]["episodes/count"].shape == (len(env.morphologies),)


def test_iteration_is_a_pure_function_of_the_state(run):
    _, _, iteration, states, metrics = run
    again, m = iteration(states[-2])
    assert tree_equal(again, states[-1])
    assert float(m["loss/critic"]) == float(metrics[-1]["loss/critic"])


def test_stored_transitions_are_well_formed(run, env):
    _, _, _, states, _ = run
    data = states[-1].buffer.data
    mask = np.asarray(data.obs.action_mask)
    action = np.asarray(data.action)
    assert np.all(np.abs(action) <= 1.0)
    assert np.all(action[~mask] == 0.0)  # random and policy actions alike drive only real hinges
    # next_obs belongs to the same body as obs, also across an autoreset
    np.testing.assert_array_equal(data.next_obs.action_mask, data.obs.action_mask)
    assert data.terminated.dtype == jnp.bool_
    assert np.all(np.asarray(data.done)[np.asarray(data.terminated)])  # a termination ends the episode


def test_act_is_deterministic_or_sampled(run):
    agent, _, _, states, _ = run
    state = states[-1]
    obs = state.env_state.obs

    def both(state, obs, key):
        return agent.act(state, obs), agent.act(state, obs, key, deterministic=False)

    key = jax.random.key(3)
    mode, sampled = compile_fast(both, state, obs, key)(state, obs, key)
    assert mode.shape == obs.action_mask.shape
    assert np.all(np.abs(np.asarray(mode)) < 1.0)
    assert np.all(np.abs(np.asarray(sampled)) < 1.0)
    assert np.all(np.asarray(sampled)[~np.asarray(obs.action_mask)] == 0.0)
    assert not np.allclose(sampled, mode)


def test_td3_explores_around_its_deterministic_action(env):
    networks = make_networks(NETWORKS["mlp"], env.num_limbs)
    rule = td3.make_rule(networks, TD3Config(exploration_noise=0.1))
    obs = env.reset(jax.random.key(0)).obs
    learner = rule.init(jax.random.key(1), obs, jnp.zeros(obs.action_mask.shape))
    mean = np.asarray(networks.actor.apply(learner.params.actor, obs).mode())
    noisy = np.asarray(
        jax.jit(jax.vmap(lambda k: rule.explore(learner, obs, k)))(jax.random.split(jax.random.key(2), 64))
    )
    mask = np.asarray(obs.action_mask)
    assert np.all(noisy[:, ~mask] == 0.0) and np.all(np.abs(noisy) <= 1.0)
    spread = (noisy - mean)[:, mask]
    assert 0.08 < spread.std() < 0.12 and abs(spread.mean()) < 0.02


def test_target_entropy_is_minus_the_driven_dimensions(run, env):
    obs = run[3][0].env_state.obs
    driven = np.asarray(obs.action_mask).sum(axis=(-2, -1))
    target = target_entropy(obs.action_mask, SACConfig().target_entropy_per_dim)
    assert target.shape == (env.num_envs,)
    np.testing.assert_array_equal(target, -driven.astype(np.float32))
    # Two different bodies: two different targets, each minus its own action count.
    assert len(set(driven.tolist())) == 2
    np.testing.assert_array_equal(target_entropy(obs.action_mask, -0.5), -0.5 * driven)


def test_offpolicy_needs_a_squashed_actor(env):
    networks = make_networks(NetworkConfig(kind="mlp", mlp_hidden=(32, 32), squash=False), env.num_limbs)
    with pytest.raises(ConfigError, match="squash"):
        offpolicy.make_offpolicy(env, networks, SAC, RULES["sac"](networks))


def test_buffer_must_hold_an_iteration(env):
    with pytest.raises(ConfigError, match="buffer_size"):
        make_agent(env, "sac", "mlp", OffPolicyConfig(buffer_size=6, batch_size=4, steps_per_iteration=2))


def test_buffer_holds_whole_rows_of_environments(env):
    """An environment's steps are num_envs rows apart, also across the ring's wrap (n-step
    successors and mirror tables read them so): the capacity is rounded down to a multiple."""
    agent, _ = make_agent(env, "sac", "mlp", OffPolicyConfig(buffer_size=23, batch_size=4, steps_per_iteration=2))
    shapes = jax.eval_shape(agent.init, jax.random.key(0))
    assert env.num_envs == 4 and shapes.buffer.capacity == 20


# -- behaviour ------------------------------------------------------------------------


def test_critic_fits_a_fixed_batch(run, request):
    """Repeated updates on one batch drive its TD loss down (the critic learns)."""
    agent, networks, _, states, _ = run
    if networks.actor.config.kind != "mlp":
        pytest.skip("one network kind is enough")
    algorithm = request.node.callspec.id.split("-")[0]
    update = RULES[algorithm](networks).update
    state = states[-1]
    sample = replay.sample_n_step(state.buffer, jax.random.key(5), SAC.buffer_size, 1, 0.99, 4)
    batch = offpolicy.to_batch(sample, SAC)
    batch = batch._replace(
        obs=normalize(state.normalizer, batch.obs), next_obs=normalize(state.normalizer, batch.next_obs)
    )
    learner = state.learner

    def fit(learner, batch):
        step = lambda learner, _: update(learner, batch, jax.random.key(7))  # noqa: E731
        return jax.lax.scan(step, learner, None, length=200)[1]["loss/critic"]

    losses = np.asarray(compile_fast(fit, learner, batch)(learner, batch))
    assert np.all(np.isfinite(losses))
    # CrossQ bootstraps from the critic being fitted, so its loss levels off higher (about 0.2 of the start).
    assert losses[-10:].mean() < 0.3 * losses[:10].mean()


# -- data parallel --------------------------------------------------------------------


def test_two_devices_give_the_losses_of_one(run, two_device_sac, request):
    """The same run on a mesh of 2 devices: the same replay rows drawn, the same losses."""
    _, networks, _, _, metrics = run
    if request.node.callspec.id != "sac-mlp":
        pytest.skip("one algorithm and network kind is enough")
    out, process = two_device_sac
    code, _, err = finish(process)
    assert code == 0, err[-3000:]
    result = json.loads((out / "result.json").read_text())
    assert "envs" in result["buffer_sharding"] and result["buffer_size"] == SAC.buffer_size
    mine = {key: [m[key] for m in result["metrics"]] for key in result["metrics"][0]}
    reference = {key: [float(m[key]) for m in metrics] for key in metrics[0] if np.ndim(metrics[0][key]) == 0}
    assert mine["optim/learning"] == [0.0, 1.0, 1.0]
    worst = assert_same_losses(
        mine,
        reference,
        ("loss/critic", "loss/actor", "loss/alpha", "alpha", "policy/entropy", "q/mean", "reward/mean", "buffer/size"),
    )
    print("SAC, 2 devices vs 1, largest (absolute, relative) difference:", worst)
