"""PPO over a batched, possibly mixed-body environment, as one compiled iteration.

An iteration: roll the policy out for `rollout_length` steps
(`equirl.envs.rollout.unroll`) over the environment (either physics backend), compute GAE advantages --
an episode cut by the time limit bootstraps from the value of its final
observation, one that terminated does not -- then run `epochs` passes of
shuffled minibatches through an optax optimiser (global-norm clipping, Adam).
With `normalize_rewards` the rewards are first divided by a running std of
the discounted return (stable-baselines3's VecNormalize).
The observation normaliser (symmetry-preserving) takes in the rollout's
observations before the gradient steps (as brax does), so the networks learn
on the statistics they will act with next; `epochs_use_collection_stats` merges
them in after instead (every ratio then starts at exactly 1).
With a `start` (`ppo.init_actor`) the policy and its normaliser begin as a given
policy's, and the policy is held for `actor_warmup_iterations` while the fresh
value function learns.

Data parallel on the environment's device mesh (`equirl.agents.distributed`;
one device is a mesh of one): environments and minibatches are split over the
devices, parameters replicated, and XLA averages the gradients. The shuffle
draws one global permutation, so the minibatches, and the losses up to float
rounding, do not depend on the number of devices.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from equirl.agents import distributed, normalization
from equirl.agents.config import PPOConfig
from equirl.agents.policy import (
    ActingState,
    Agent,
    body_one_hot,
    episode_metrics,
    flatten_time,
    initial_normalizer,
    make_act,
    maybe_normalize,
)
from equirl.agents.registry import AlgorithmSpec
from equirl.envs.base import Env
from equirl.envs.batched import EnvState
from equirl.envs.rollout import Step, episode_ends, unroll
from equirl.errors import ConfigError
from equirl.nn import Networks
from equirl.observation import Observation


class PPOParams(NamedTuple):
    actor: Any
    critic: Any


@struct.dataclass
class PPOState:
    params: PPOParams
    opt_state: Any
    normalizer: normalization.NormalizerState
    env_state: EnvState
    key: jax.Array
    env_steps: jax.Array  # environment steps taken so far (all envs)
    iteration: jax.Array
    # ppo.normalize_rewards only (None otherwise, so older checkpoints keep their shape)
    return_scale: normalization.ReturnScaleState | None = None


class Transition(NamedTuple):
    obs: Observation
    action: jax.Array  # the policy's sample before any tanh squashing (the action itself when unsquashed)
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array
    next_value: jax.Array  # V(final obs) where the time limit cut the episode, else 0


def gae(config: PPOConfig, tr: Transition, last_value: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Advantages and value targets, [T, B].

    The value after step t is V(s_{t+1}) unless the episode ended at t: then it
    is 0 if it terminated and V(final obs) if it was truncated. Advantages do
    not flow across episode boundaries.
    """
    following = jnp.concatenate([tr.value[1:], last_value[None]], 0)
    bootstrap = jnp.where(tr.done, tr.next_value, following)
    bootstrap = jnp.where(tr.terminated, 0.0, bootstrap)
    delta = tr.reward + config.gamma * bootstrap - tr.value
    carry_on = config.gamma * config.gae_lambda * (1.0 - tr.done.astype(delta.dtype))

    def back(adv_next, x):
        d, c = x
        adv = d + c * adv_next
        return adv, adv

    _, advantages = jax.lax.scan(back, jnp.zeros_like(last_value), (delta, carry_on), reverse=True)
    return advantages, advantages + tr.value


def make_ppo(
    env: Env, networks: Networks, config: PPOConfig, total_iterations: int, start: ActingState | None = None
) -> Agent:
    """A PPO `Agent` for `env`; `total_iterations` sets the learning-rate schedule; `start`: the
    actor parameters and normaliser to begin with (`equirl.agents.start.load_start`)."""
    mesh = env.mesh if env.mesh is not None else distributed.single_device_mesh()
    one_hot = body_one_hot(env.body_of_env, len(env.morphologies))
    batch = config.rollout_length * env.num_envs
    minibatch = batch // config.minibatches
    distributed.check_divisible("env.num_envs", env.num_envs, mesh.size)
    distributed.check_divisible(
        "minibatch size (env.num_envs * ppo.rollout_length / ppo.minibatches)", minibatch, mesh.size
    )
    updates = max(1, total_iterations) * config.epochs * config.minibatches
    rate = (
        optax.linear_schedule(config.learning_rate, 0.0, updates)
        if config.anneal_learning_rate
        else config.learning_rate
    )

    def chain(learning_rate):
        clip = optax.clip_by_global_norm(config.max_grad_norm)
        return optax.chain(clip, optax.adam(learning_rate, eps=config.adam_eps))

    adaptive = config.desired_kl > 0
    # An adaptive rate lives in the optimiser's state (optax.inject_hyperparams), so it is checkpointed.
    optimizer = optax.inject_hyperparams(chain)(learning_rate=rate) if adaptive else chain(rate)
    # RSL-RL keeps the rate >= 1e-5; a narrow started policy (sigma ~0.05) needs less, so a
    # lower starting rate lowers the floor.
    rate_floor = min(1e-5, config.learning_rate)
    norm = lambda state, obs: maybe_normalize(config.normalize_observations, state, obs)  # noqa: E731

    def init(key: jax.Array) -> PPOState:
        k_env, k_actor, k_critic, key = jax.random.split(key, 4)
        env_state = env.reset(k_env)
        params = PPOParams(networks.actor.init(k_actor, env_state.obs), networks.critic.init(k_critic, env_state.obs))
        normalizer = initial_normalizer()
        if start is not None:  # the optimiser's state depends on shapes only
            params, normalizer = params._replace(actor=start.params.actor), start.normalizer
        state = PPOState(
            params=params,
            opt_state=optimizer.init(params),
            normalizer=normalizer,
            env_state=env_state,
            key=key,
            env_steps=jnp.zeros((), jnp.int32),
            iteration=jnp.zeros((), jnp.int32),
            return_scale=normalization.return_scale_init(env.num_envs) if config.normalize_rewards else None,
        )
        return distributed.constrain_state(state, mesh)

    def rollout(state: PPOState):
        params, normalizer = state.params, state.normalizer

        def policy(obs, key, t):
            nobs = norm(normalizer, obs)
            dist = networks.actor.apply(params.actor, nobs)
            action, log_prob = dist.sample_pre_squash_and_log_prob(key)
            # The ratio is taken on the stored pre-squash sample; the environment gets the squashed one.
            return dist.squash_sample(action), (action, log_prob, networks.critic.apply(params.critic, nobs))

        def record(step: Step):
            (action, log_prob, value), after = step.extras, step.after
            # Only a truncated episode needs the value of its final observation.
            next_value = jax.lax.cond(
                jnp.any(after.truncated),
                lambda: jnp.where(
                    after.truncated,
                    networks.critic.apply(params.critic, norm(normalizer, after.info["final_obs"])),
                    0.0,
                ),
                lambda: jnp.zeros_like(value),
            )
            ends = episode_ends(after)
            tr = Transition(
                obs=step.obs,
                action=action,
                log_prob=log_prob,
                value=value,
                reward=after.reward * config.reward_scale,
                terminated=after.terminated,
                done=ends.done,
                next_value=next_value,
            )
            return tr, ends, after.reward

        constrain = lambda s: distributed.constrain(s, mesh)  # noqa: E731
        env_state, key, (transitions, ends, raw_reward) = unroll(
            env, state.env_state, policy, state.key, config.rollout_length, record, constrain
        )
        # [T, B] leaves: split along the environments.
        split = lambda x: distributed.constrain(x, mesh, 1)  # noqa: E731
        return env_state, key, split(transitions), split(ends), split(raw_reward)

    def loss_fn(params: PPOParams, normalizer, mb: Transition, advantages, targets, key):
        nobs = norm(normalizer, mb.obs)
        dist = networks.actor.apply(params.actor, nobs)
        log_prob = dist.pre_squash_log_prob(mb.action)
        ratio = jnp.exp(log_prob - mb.log_prob)
        if config.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        surrogate = jnp.minimum(
            ratio * advantages, jnp.clip(ratio, 1.0 - config.clip_epsilon, 1.0 + config.clip_epsilon) * advantages
        )
        policy_loss = -surrogate.mean()
        value = networks.critic.apply(params.critic, nobs)
        value_loss = 0.5 * jnp.mean(jnp.square(value - targets))
        entropy = dist.entropy_estimate(key).mean()  # exact unless tanh-squashed
        total = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
        stats = {
            "loss/policy": policy_loss,
            "loss/value": value_loss,
            "policy/entropy": entropy,
            "policy/approx_kl": jnp.mean((ratio - 1.0) - jnp.log(ratio)),
            "policy/clip_fraction": jnp.mean(jnp.abs(ratio - 1.0) > config.clip_epsilon),
        }
        return total, stats

    def iteration(state: PPOState) -> tuple[PPOState, dict]:
        env_state, key, tr, ends, raw_reward = rollout(state)
        return_scale = state.return_scale
        if config.normalize_rewards:
            return_scale, scaled = normalization.scale_rewards(return_scale, raw_reward, tr.done, config.gamma)
            tr = tr._replace(reward=scaled * config.reward_scale)
        last_value = networks.critic.apply(state.params.critic, norm(state.normalizer, env_state.obs))
        advantages, targets = gae(config, tr, last_value)
        data = flatten_time((tr, advantages, targets))

        # A started policy is held (zero gradient) while the fresh value function catches up.
        actor_moves = (state.iteration >= config.actor_warmup_iterations).astype(jnp.float32)

        def epoch(carry, k):
            params, opt_state = carry
            order = jax.random.permutation(k, batch)
            shuffled = jax.tree.map(lambda x: x[order].reshape((config.minibatches, minibatch) + x.shape[1:]), data)
            shuffled = distributed.constrain(shuffled, mesh, 1)  # each device takes a share of every minibatch

            def update(carry, xs):
                params, opt_state = carry
                mb, k_mb = xs
                grads, stats = jax.grad(loss_fn, has_aux=True)(params, normalizer, *mb, k_mb)
                if config.actor_warmup_iterations:  # otherwise the actor always moves: nothing to mask
                    grads = grads._replace(actor=jax.tree.map(lambda g: g * actor_moves, grads.actor))
                if adaptive:
                    kl = stats["policy/approx_kl"]
                    opt_state = _adapt_rate(opt_state, kl, config.desired_kl, actor_moves, rate_floor)
                    stats["optim/learning_rate"] = opt_state.hyperparams["learning_rate"]
                updates, opt_state = optimizer.update(grads, opt_state, params)
                stats["optim/grad_norm"] = optax.tree.norm(grads)
                return (optax.apply_updates(params, updates), opt_state), stats

            entropy_keys = jax.random.split(jax.random.fold_in(k, 1), config.minibatches)  # used only if squashed
            return jax.lax.scan(update, (params, opt_state), (shuffled, entropy_keys))

        # `update` above reads `normalizer` when the scan traces it, i.e. the value set here.
        normalizer = state.normalizer
        merged = normalization.update(normalizer, tr.obs) if config.normalize_observations else normalizer
        if not config.epochs_use_collection_stats:
            normalizer = merged
        key, k_epochs = jax.random.split(key)
        (params, opt_state), stats = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(k_epochs, config.epochs)
        )
        metrics = {k: v.mean() for k, v in stats.items()}
        metrics["reward/mean"] = raw_reward.mean()
        metrics["value/mean"] = tr.value.mean()
        metrics.update(episode_metrics(one_hot, ends))
        new_state = PPOState(
            params=params,
            opt_state=opt_state,
            normalizer=merged,
            env_state=env_state,
            key=key,
            env_steps=state.env_steps + batch,
            iteration=state.iteration + 1,
            return_scale=return_scale,
        )
        return distributed.constrain_state(new_state, mesh), distributed.replicate(metrics, mesh)

    return Agent(
        init=init, iteration=iteration, act=make_act(networks, config.normalize_observations), steps_per_iteration=batch
    )


def _adapt_rate(opt_state, kl, desired_kl: float, actor_moves, floor: float):
    """RSL-RL's adaptive schedule on the minibatch's KL from the collecting policy; not while the
    policy is held (its KL is 0 and the rate would only grow)."""
    rate = opt_state.hyperparams["learning_rate"]
    new = jnp.where(kl > 2.0 * desired_kl, rate / 1.5, jnp.where(kl < 0.5 * desired_kl, rate * 1.5, rate))
    new = jnp.where(actor_moves > 0, jnp.clip(new, floor, 1e-2), rate)
    return opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": new.astype(rate.dtype)})


def _check(config) -> None:
    batch = config.env.num_envs * config.ppo.rollout_length
    if batch % config.ppo.minibatches:
        raise ConfigError(
            f"ppo.minibatches={config.ppo.minibatches}: must divide env.num_envs * ppo.rollout_length = {batch}"
        )


def _make(config, env, networks, total_iterations) -> Agent:
    from equirl.agents.start import load_start

    source = config.ppo.init_actor
    start = load_start(source, networks, config, field="ppo.init_actor") if source else None
    return make_ppo(env, networks, config.ppo, total_iterations, start)


SPEC = AlgorithmSpec(
    name="ppo",
    make=_make,
    steps_per_env=lambda config: config.ppo.rollout_length,
    normalize_observations=lambda config: config.ppo.normalize_observations,
    check=_check,
    state_shape_fields=("ppo.desired_kl",),  # an adaptive rate adds to the optimiser's state
)
