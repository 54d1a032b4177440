"""PPO: advantages, truncation, symmetry of the normalised policy, and training with every network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from equirl.agents import normalization
from equirl.agents.config import PPOConfig
from equirl.agents.policy import ActingState, ActorParams
from equirl.agents.ppo import Transition, gae, make_ppo
from equirl.envs.task import END_REASONS
from equirl.equivariance import distribution_summary, finite_group_error
from equirl.errors import ConfigError
from equirl.nn import NetworkConfig, make_networks
from helpers.common import compile_fast

TINY = dict(
    width=16, depth=1, heads=2, vector_channels=8, invariant_channels=4, vector_key_channels=2, mlp_hidden=(16, 16)
)


def _reference_gae(reward, value, last_value, terminated, truncated, final_value, gamma, lam):
    """Textbook GAE, one environment at a time, episode by episode."""
    t_len, b = reward.shape
    adv = np.zeros_like(reward)
    for j in range(b):
        running = 0.0
        for t in reversed(range(t_len)):
            if terminated[t, j]:
                next_v, running = 0.0, 0.0
            elif truncated[t, j]:
                next_v, running = final_value[t, j], 0.0
            else:
                next_v = value[t + 1, j] if t + 1 < t_len else last_value[j]
            delta = reward[t, j] + gamma * next_v - value[t, j]
            running = delta + gamma * lam * running
            adv[t, j] = running
    return adv


def test_gae_handles_termination_apart_from_truncation():
    rng = np.random.default_rng(0)
    t_len, b = 12, 5
    reward, value = rng.normal(size=(t_len, b)), rng.normal(size=(t_len, b))
    last_value, final_value = rng.normal(size=b), rng.normal(size=(t_len, b))
    terminated = rng.random((t_len, b)) < 0.15
    truncated = (rng.random((t_len, b)) < 0.15) & ~terminated
    done = terminated | truncated
    config = PPOConfig(gamma=0.97, gae_lambda=0.9)
    tr = Transition(
        obs=None,
        action=None,
        log_prob=None,
        value=jnp.asarray(value, jnp.float32),
        reward=jnp.asarray(reward, jnp.float32),
        terminated=jnp.asarray(terminated),
        done=jnp.asarray(done),
        next_value=jnp.asarray(np.where(truncated, final_value, 0.0), jnp.float32),
    )
    advantages, targets = gae(config, tr, jnp.asarray(last_value, jnp.float32))
    expected = _reference_gae(reward, value, last_value, terminated, truncated, final_value, 0.97, 0.9)
    np.testing.assert_allclose(advantages, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(targets, expected + value, rtol=1e-5, atol=1e-5)
    # A truncated step's advantage depends on V(final obs); a terminated one's does not.
    j = np.argwhere(truncated)
    assert len(j) and len(np.argwhere(terminated))


@pytest.fixture(scope="module")
def mixed_env(make_env):
    return make_env(bodies=("hopper_3_shin", "walker_7_full"), num_envs=4, max_limbs=7, episode_length=20)


@pytest.fixture(scope="module")
def ppo_runs(mixed_env):
    """kind -> (agent, networks, state before, state after 3 iterations, last metrics); each kind trained once."""
    runs = {}

    def run(kind):
        if kind not in runs:
            nets = make_networks(NetworkConfig(kind=kind, **TINY), max_limbs=7)
            agent = make_ppo(
                mixed_env.env, nets, PPOConfig(rollout_length=8, minibatches=2, epochs=2), total_iterations=3
            )
            state = compile_fast(agent.init, jax.random.PRNGKey(0))(jax.random.PRNGKey(0))
            iteration = compile_fast(agent.iteration, state)
            after = state
            for _ in range(3):
                after, metrics = iteration(after)
            runs[kind] = (agent, nets, state, after, metrics)
        return runs[kind]

    return run


# The baselines' runs are `benchmark`-marked (pytest -m benchmark) to keep the default suite
# within its 10 minutes; SET stays (SAC trains the plain MLP in the default suite).
@pytest.mark.parametrize(
    "kind", ["set"] + [pytest.param(k, marks=pytest.mark.benchmark) for k in ("mlp", "mlp_heading", "transformer")]
)
def test_ppo_trains_every_network_on_mixed_bodies(ppo_runs, kind):
    agent, _, before, state, metrics = ppo_runs(kind)
    assert int(state.env_steps) == 3 * 8 * 4 == 3 * agent.steps_per_iteration
    for name, value in metrics.items():
        assert np.all(np.isfinite(np.asarray(value))), name
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), before.params, state.params)
    assert max(jax.tree.leaves(moved)) > 0
    assert float(state.normalizer.count) > 0
    assert np.asarray(metrics["episodes/count"]).shape == (2,)  # one entry per body
    # Every ended episode is counted under at least one end reason or the time limit.
    ends = np.asarray(metrics["episodes/end_reasons"])
    assert ends.shape == (len(END_REASONS) + 1,) and ends.sum() >= np.asarray(metrics["episodes/count"]).sum()


def test_normalised_set_policy_stays_equivariant(ppo_runs):
    """The trained SET policy behind the symmetry-preserving normaliser is O_g(3)-equivariant."""
    _, nets, _, state, _ = ppo_runs("set")
    stats = state.normalizer
    # Statistics far from the identity, so the test would notice a per-coordinate scale.
    assert float(jnp.max(jnp.abs(jnp.sqrt(stats.vector_sq) - 1.0))) > 0.1
    obs = state.env_state.obs

    def summary(o):
        return distribution_summary(nets.actor.apply(state.params.actor, normalization.normalize(stats, o)))

    policy = compile_fast(summary, obs)
    error = finite_group_error(policy, obs, jax.random.PRNGKey(4), num_samples=8)
    assert float(error) < 1e-5

    # The same policy behind a per-coordinate scale is not equivariant.
    scale = jnp.asarray([1.0, 2.0, 0.5])
    broken = compile_fast(lambda o: summary(o.replace(vectors=o.vectors * scale)), obs)
    assert float(finite_group_error(broken, obs, jax.random.PRNGKey(4), num_samples=8)) > 1e-3


def test_normaliser_is_identity_before_any_data(mixed_env):
    obs = mixed_env.reset(jax.random.PRNGKey(0)).obs
    out = normalization.normalize(normalization.init(8, 17), obs)
    np.testing.assert_array_equal(out.vectors, jnp.where(obs.limb_mask[..., None, None], obs.vectors, 0.0))


@pytest.mark.benchmark  # a third PPO compile (~30 s); the exact ratio is checked in test_nn_distributions
def test_ppo_trains_a_tanh_squashed_policy(mixed_env):
    """PPO with network.squash: it steps the environment with tanh of its samples, takes its ratio
    from the stored pre-squash samples (exactness where tanh saturates: test_nn_distributions)
    and estimates the entropy, which has no closed form, from a sample."""
    nets = make_networks(NetworkConfig(kind="mlp", squash=True, log_std_init=0.5, **TINY), max_limbs=7)
    config = PPOConfig(rollout_length=8, minibatches=2, epochs=2, normalize_observations=False)
    agent = make_ppo(mixed_env.env, nets, config, total_iterations=2)
    state = compile_fast(agent.init, jax.random.PRNGKey(0))(jax.random.PRNGKey(0))
    iteration = compile_fast(agent.iteration, state)
    after, metrics = iteration(iteration(state)[0])
    for name, value in metrics.items():
        assert np.all(np.isfinite(np.asarray(value))), name
    assert float(metrics["policy/approx_kl"]) < 0.05
    assert float(metrics["policy/entropy"]) > 0.0  # the sampled estimate of a wide policy's entropy
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), state.params, after.params)
    assert max(jax.tree.leaves(moved)) > 0
    actions = agent.act(after, after.env_state.obs, jax.random.PRNGKey(1), deterministic=False)
    assert float(jnp.max(jnp.abs(actions))) <= 1.0


@pytest.mark.parametrize("collection_stats", [True, False])
def test_epochs_normalise_with_the_collection_statistics_when_asked(mixed_env, collection_stats):
    """With ppo.epochs_use_collection_stats the first gradient step sees the observations as the
    policy that collected them did, so its ratio is exactly 1; brax's order (the default) merges
    the rollout into the statistics first, and the ratio of an unchanged policy then moves."""
    # A mean layer at PyTorch's scale, so that the first policy depends on what it observes.
    nets = make_networks(NetworkConfig(kind="mlp", mean_init_scale=1 / 3, **TINY), max_limbs=7)
    config = PPOConfig(rollout_length=8, minibatches=1, epochs=1, epochs_use_collection_stats=collection_stats)
    agent = make_ppo(mixed_env.env, nets, config, total_iterations=1)
    state = compile_fast(agent.init, jax.random.PRNGKey(0))(jax.random.PRNGKey(0))
    after, metrics = compile_fast(agent.iteration, state)(state)
    kl = float(metrics["policy/approx_kl"])
    assert kl < 1e-6 if collection_stats else kl > 1e-3, kl
    # Either way the rollout ends up in the statistics the next rollout acts with.
    assert float(after.normalizer.count) > float(state.normalizer.count)


def test_ppo_starts_from_a_given_policy_and_holds_it_while_the_value_learns(mixed_env):
    """ppo.init_actor: the policy and normaliser begin as the given ones; with
    actor_warmup_iterations=1 the first iteration moves only the value function."""
    nets = make_networks(NetworkConfig(kind="mlp", **TINY), max_limbs=7)
    obs = mixed_env.reset(jax.random.PRNGKey(0)).obs
    given = nets.actor.init(jax.random.PRNGKey(9), obs)
    normalizer = normalization.init(8, 17)
    normalizer = normalizer.replace(count=jnp.asarray(7.0, normalizer.count.dtype))
    start = ActingState(ActorParams(given), normalizer)
    config = PPOConfig(rollout_length=8, minibatches=2, epochs=1, actor_warmup_iterations=1)
    agent = make_ppo(mixed_env.env, nets, config, total_iterations=2, start=start)
    state = compile_fast(agent.init, jax.random.PRNGKey(0))(jax.random.PRNGKey(0))
    same = lambda a, b: all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))  # noqa: E731
    assert same(state.params.actor, given) and float(state.normalizer.count) == 7.0
    iteration = compile_fast(agent.iteration, state)
    first, _ = iteration(state)
    assert same(first.params.actor, given) and not same(first.params.critic, state.params.critic)
    second, _ = iteration(first)
    assert not same(second.params.actor, given)


def test_ppo_names_its_own_setting_when_the_start_is_missing(mixed_env):
    from equirl.agents.config import TrainConfig
    from equirl.agents.ppo import SPEC

    config = TrainConfig(algorithm="ppo", ppo=PPOConfig(init_actor="no_such_policy"))
    nets = make_networks(config.network, config.env.max_limbs)
    with pytest.raises(ConfigError, match="ppo.init_actor='no_such_policy': neither a run directory"):
        SPEC.make(config, mixed_env.env, nets, 1)


@pytest.mark.parametrize("desired_kl, factor", [(1e-9, 1 / 1.5**2), (10.0, 1.5**2)])
def test_the_adaptive_rate_follows_the_kl_and_waits_while_the_policy_is_held(mixed_env, desired_kl, factor):
    """ppo.desired_kl: each minibatch divides the rate by 1.5 when its KL is above twice the target
    and multiplies it by 1.5 below half; a held policy (KL 0) leaves it alone."""
    nets = make_networks(NetworkConfig(kind="mlp", mean_init_scale=1 / 3, **TINY), max_limbs=7)
    config = PPOConfig(
        rollout_length=8, minibatches=2, epochs=1, learning_rate=3e-4, desired_kl=desired_kl, actor_warmup_iterations=1
    )
    agent = make_ppo(mixed_env.env, nets, config, total_iterations=2)
    state = compile_fast(agent.init, jax.random.PRNGKey(0))(jax.random.PRNGKey(0))
    iteration = compile_fast(agent.iteration, state)
    rate = lambda s: float(s.opt_state.hyperparams["learning_rate"])  # noqa: E731
    held, _ = iteration(state)
    assert rate(held) == pytest.approx(3e-4)
    moved, metrics = iteration(held)
    assert rate(moved) == pytest.approx(3e-4 * factor, rel=1e-5)
    assert float(metrics["optim/learning_rate"]) > 0
