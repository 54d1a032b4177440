"""SAC over a batched, possibly mixed-body environment, as one compiled iteration.

An iteration: step every environment `steps_per_iteration` times with
`lax.scan` (uniform random torques on the driven dimensions until
`learning_starts` environment steps were taken, then samples of the
tanh-squashed policy), write the transitions into a device-resident replay
buffer, then -- once the buffer holds enough -- take `updates_per_iteration`
gradient steps: twin-Q critic against Polyak-averaged target networks, actor
maximising min Q minus the entropy cost, and automatic tuning of the
temperature alpha.

Bodies differ in how many action dimensions they drive, so the entropy
target is per sample: `target_entropy_per_dim` times that sample's driven
dimensions (from obs.action_mask).

The next observation stored is info["final_obs"], the one the step ended in,
so an autoreset never leaks the fresh episode's first observation into a
target; a terminated step does not bootstrap, a truncated one does.
Observations are stored raw and normalised when a batch is drawn, with the
statistics of the moment (the normaliser takes in each collected batch).

Data parallel on the environment's device mesh (`equirl.agents.distributed`;
one device is a mesh of one): environments, the replay buffer's rows and each
sampled batch are split over the devices, parameters replicated, and XLA
averages the gradients. Batches are drawn by global row index, so the samples,
and the losses up to float rounding, do not depend on the number of devices.

Jit the iteration with the state donated, `jax.jit(agent.iteration,
donate_argnums=0)`: otherwise XLA copies the whole replay buffer every
iteration to write one batch into it (20x slower with the default 200k
transitions).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from equirl.agents import distributed, normalization, replay
from equirl.agents.config import SACConfig
from equirl.agents.policy import (
    Agent,
    body_one_hot,
    episode_metrics,
    flatten_time,
    initial_normalizer,
    make_act,
    maybe_normalize,
)
from equirl.envs.batched import BatchedEnv, EnvState
from equirl.envs.task import Observation
from equirl.errors import ConfigError
from equirl.nn import Networks


class SACParams(NamedTuple):
    actor: Any
    q: Any
    target_q: Any  # Polyak average of q; never trained directly


class SACOptState(NamedTuple):
    actor: Any
    q: Any
    alpha: Any


class Transition(NamedTuple):
    """What the replay buffer stores: one item per environment step."""

    obs: Observation
    action: jax.Array
    reward: jax.Array  # raw (reward_scale is applied at update time)
    next_obs: Observation  # the observation the step ended in, before any autoreset
    terminated: jax.Array  # bool: do not bootstrap


@struct.dataclass
class SACState:
    params: SACParams
    opt_state: SACOptState
    log_alpha: jax.Array
    normalizer: normalization.NormalizerState
    buffer: replay.ReplayBuffer
    env_state: EnvState
    key: jax.Array
    env_steps: jax.Array  # environment steps taken so far (all envs)
    iteration: jax.Array


# What each gradient step reports (averaged over an iteration's steps).
STAT_NAMES = ("loss/critic", "loss/actor", "loss/alpha", "alpha", "policy/entropy", "q/mean")


class Learner(NamedTuple):
    """The part of the state gradient steps change."""

    params: SACParams
    opt_state: SACOptState
    log_alpha: jax.Array


def target_entropy(action_mask: jax.Array, per_dim: float) -> jax.Array:
    """Entropy target of each sample [...]: per_dim times its driven action dimensions."""
    return per_dim * jnp.sum(action_mask, axis=(-2, -1)).astype(jnp.float32)


def random_actions(key: jax.Array, action_mask: jax.Array) -> jax.Array:
    """Uniform torques in [-1, 1] on the driven dimensions, zero elsewhere."""
    return jnp.where(action_mask, jax.random.uniform(key, action_mask.shape, minval=-1.0, maxval=1.0), 0.0)


def polyak(target: Any, online: Any, tau: float) -> Any:
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def _adam(rate: float, max_grad_norm: float) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(rate))


def make_update(networks: Networks, config: SACConfig):
    """One SAC gradient step: update(learner, batch, key) -> (learner, stats).

    `batch` is a `Transition` whose observations are already normalised.
    Critic first, then actor (against the updated critic), then alpha (on the
    actor's log-probabilities), then the target networks.
    """
    optimizers = SACOptState(
        actor=_adam(config.actor_learning_rate, config.max_grad_norm),
        q=_adam(config.critic_learning_rate, config.max_grad_norm),
        alpha=_adam(config.alpha_learning_rate, config.max_grad_norm),
    )

    def critic_loss(q_params, target_q, actor_params, alpha, batch: Transition, key):
        next_action, next_log_prob = networks.actor.apply(actor_params, batch.next_obs).sample_and_log_prob(seed=key)
        next_q = jnp.min(networks.q.apply(target_q, batch.next_obs, next_action), -1)
        soft_value = next_q - alpha * next_log_prob
        keep = 1.0 - batch.terminated.astype(soft_value.dtype)
        target = jax.lax.stop_gradient(config.reward_scale * batch.reward + config.gamma * keep * soft_value)
        q = networks.q.apply(q_params, batch.obs, batch.action)  # [N, 2]
        loss = 0.5 * jnp.sum(jnp.mean(jnp.square(q - target[:, None]), 0))
        return loss, q.mean()

    def actor_loss(actor_params, q_params, alpha, obs: Observation, key):
        action, log_prob = networks.actor.apply(actor_params, obs).sample_and_log_prob(seed=key)
        q = jnp.min(networks.q.apply(q_params, obs, action), -1)
        return jnp.mean(alpha * log_prob - q), log_prob

    def alpha_loss(log_alpha, log_prob, target):
        # Raises alpha while the entropy (-log_prob) is below its target.
        return -jnp.mean(log_alpha * jax.lax.stop_gradient(log_prob + target))

    def step(tx, opt_state, params, grads):
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def update(learner: Learner, batch: Transition, key: jax.Array) -> tuple[Learner, dict]:
        params, opt, log_alpha = learner
        k_critic, k_actor = jax.random.split(key)
        alpha = jnp.exp(log_alpha)

        (c_loss, q_mean), grads = jax.value_and_grad(critic_loss, has_aux=True)(
            params.q, params.target_q, params.actor, alpha, batch, k_critic
        )
        q_params, q_opt = step(optimizers.q, opt.q, params.q, grads)

        (a_loss, log_prob), grads = jax.value_and_grad(actor_loss, has_aux=True)(
            params.actor, q_params, alpha, batch.obs, k_actor
        )
        actor_params, actor_opt = step(optimizers.actor, opt.actor, params.actor, grads)

        target = target_entropy(batch.obs.action_mask, config.target_entropy_per_dim)
        al_loss, grads = jax.value_and_grad(alpha_loss)(log_alpha, log_prob, target)
        log_alpha, alpha_opt = step(optimizers.alpha, opt.alpha, log_alpha, grads)

        learner = Learner(
            params=SACParams(actor=actor_params, q=q_params, target_q=polyak(params.target_q, q_params, config.tau)),
            opt_state=SACOptState(actor=actor_opt, q=q_opt, alpha=alpha_opt),
            log_alpha=log_alpha,
        )
        stats = {
            "loss/critic": c_loss,
            "loss/actor": a_loss,
            "loss/alpha": al_loss,
            "alpha": jnp.exp(log_alpha),
            "policy/entropy": -log_prob.mean(),
            "q/mean": q_mean,
        }
        return learner, stats

    return optimizers, update


def make_sac(env: BatchedEnv, networks: Networks, config: SACConfig) -> Agent:
    """A SAC `Agent` for `env`; `networks` must be built with squash=True."""
    if not getattr(networks.actor.config, "squash", False):
        raise ConfigError(
            "SAC needs a tanh-squashed actor: build its networks with squash=True "
            "(e.g. dataclasses.replace(network_config, squash=True))"
        )
    batch = config.steps_per_iteration * env.num_envs
    if batch > config.buffer_size:
        raise ConfigError(
            f"buffer_size={config.buffer_size}: smaller than one iteration's transitions "
            f"(steps_per_iteration * num_envs = {batch})"
        )
    mesh = env.mesh if env.mesh is not None else distributed.single_device_mesh()
    distributed.check_divisible("env.num_envs", env.num_envs, mesh.size)
    distributed.check_divisible("sac.batch_size", config.batch_size, mesh.size)
    distributed.check_divisible("sac.buffer_size", config.buffer_size, mesh.size)
    one_hot = body_one_hot(env.body_of_env, len(env.morphologies))
    optimizers, update = make_update(networks, config)
    ready_at = max(config.learning_starts, config.batch_size)  # buffer fill before learning
    norm = lambda state, obs: maybe_normalize(config.normalize_observations, state, obs)  # noqa: E731

    def init(key: jax.Array) -> SACState:
        k_env, k_actor, k_q, key = jax.random.split(key, 4)
        env_state = env.reset(k_env)
        obs = env_state.obs
        action = jnp.zeros(obs.action_mask.shape, jnp.float32)
        q_params = networks.q.init(k_q, obs, action)
        params = SACParams(actor=networks.actor.init(k_actor, obs), q=q_params, target_q=q_params)
        log_alpha = jnp.log(jnp.asarray(config.initial_alpha, jnp.float32))
        first = lambda x: x[0]  # noqa: E731
        example = Transition(
            obs=jax.tree.map(first, obs),
            action=action[0],
            reward=env_state.reward[0],
            next_obs=jax.tree.map(first, obs),
            terminated=env_state.terminated[0],
        )
        state = SACState(
            params=params,
            opt_state=SACOptState(
                actor=optimizers.actor.init(params.actor),
                q=optimizers.q.init(params.q),
                alpha=optimizers.alpha.init(log_alpha),
            ),
            log_alpha=log_alpha,
            normalizer=initial_normalizer(),
            buffer=replay.init(example, config.buffer_size),
            env_state=env_state,
            key=key,
            env_steps=jnp.zeros((), jnp.int32),
            iteration=jnp.zeros((), jnp.int32),
        )
        return distributed.constrain_state(state, mesh)

    def collect(state: SACState):
        actor, normalizer = state.params.actor, state.normalizer

        def step(carry, _):
            env_state, key, env_steps = carry
            key, k_random, k_policy = jax.random.split(key, 3)
            obs = env_state.obs
            # Both are cheap next to a physics step; pick one per iteration phase.
            explore = random_actions(k_random, obs.action_mask)
            policy = networks.actor.apply(actor, norm(normalizer, obs)).sample(seed=k_policy)
            action = jnp.where(env_steps < config.learning_starts, explore, policy)
            after = env.step(env_state, action)
            tr = Transition(
                obs=obs,
                action=action,
                reward=after.reward,
                next_obs=after.info["final_obs"],
                terminated=after.terminated,
            )
            done = after.terminated | after.truncated
            ep = (done, after.info["episode_return"], after.info["episode_length"], after.info["end_reasons"])
            return (distributed.constrain(after, mesh), key, env_steps + env.num_envs), (tr, ep)

        (env_state, key, _), (transitions, ep) = jax.lax.scan(
            step, (state.env_state, state.key, state.env_steps), None, length=config.steps_per_iteration
        )
        # [T, B] leaves: split along the environments.
        return env_state, key, distributed.constrain(transitions, mesh, 1), distributed.constrain(ep, mesh, 1)

    def learn(learner: Learner, buffer: replay.ReplayBuffer, normalizer, key: jax.Array):
        def one(learner, k):
            k_sample, k_update = jax.random.split(k)
            mb = distributed.constrain(replay.sample(buffer, k_sample, config.batch_size), mesh)
            mb = mb._replace(obs=norm(normalizer, mb.obs), next_obs=norm(normalizer, mb.next_obs))
            return update(learner, mb, k_update)

        learner, stats = jax.lax.scan(one, learner, jax.random.split(key, config.updates_per_iteration))
        return learner, {k: v.mean() for k, v in stats.items()}

    def skip(learner: Learner, buffer, normalizer, key):
        # Same outputs as `learn`, nothing changed: the buffer is still warming up.
        stats = {name: jnp.zeros((), jnp.float32) for name in STAT_NAMES}
        stats["alpha"] = jnp.exp(learner.log_alpha)
        return learner, stats

    def iteration(state: SACState) -> tuple[SACState, dict]:
        env_state, key, tr, (done, ep_return, ep_length, end_reasons) = collect(state)
        flat = flatten_time(tr)
        buffer = replay.insert(state.buffer, flat)
        normalizer = state.normalizer
        if config.normalize_observations:
            normalizer = normalization.update(normalizer, flat.obs)

        key, k_learn = jax.random.split(key)
        learner = Learner(state.params, state.opt_state, state.log_alpha)
        learning = buffer.size >= ready_at
        learner, metrics = jax.lax.cond(learning, learn, skip, learner, buffer, normalizer, k_learn)
        metrics["reward/mean"] = tr.reward.mean()
        metrics["buffer/size"] = buffer.size.astype(jnp.float32)
        metrics["optim/learning"] = learning.astype(jnp.float32)
        metrics.update(episode_metrics(one_hot, done, ep_return, ep_length, end_reasons))
        new_state = SACState(
            params=learner.params,
            opt_state=learner.opt_state,
            log_alpha=learner.log_alpha,
            normalizer=normalizer,
            buffer=buffer,
            env_state=env_state,
            key=key,
            env_steps=state.env_steps + batch,
            iteration=state.iteration + 1,
        )
        return distributed.constrain_state(new_state, mesh), distributed.replicate(metrics, mesh)

    return Agent(
        init=init, iteration=iteration, act=make_act(networks, config.normalize_observations), steps_per_iteration=batch
    )
