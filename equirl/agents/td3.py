"""TD3 (Fujimoto et al., 2018) as an update rule of the off-policy skeleton.

The actor is deterministic: the squashed mean of the network's distribution
(its log-std head is unused). One gradient step: the twin-Q critic against
targets from the target actor, smoothed with clipped noise, and the minimum
of the two target critics; every `policy_delay` steps, the actor (maximising
the first critic) and both target networks (Polyak). Exploration adds
Gaussian noise of `exploration_noise` to the mean, clipped to [-1, 1].
Defaults are 3D-SGRL's published settings (`TD3Config`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from equirl.agents import sac
from equirl.agents.config import TD3Config
from equirl.agents.offpolicy import Batch, UpdateRule
from equirl.agents.registry import offpolicy_spec

STAT_NAMES = ("loss/critic", "loss/actor", "q/mean")


class TD3Params(NamedTuple):
    actor: Any
    q: Any
    target_actor: Any
    target_q: Any


class TD3OptState(NamedTuple):
    actor: Any
    q: Any


class Learner(NamedTuple):
    params: TD3Params
    opt_state: TD3OptState
    step: jax.Array  # int32 gradient steps taken


def noisy(action: jax.Array, mask: jax.Array, key: jax.Array, scale: float, clip: float | None = None) -> jax.Array:
    """action + N(0, scale^2) (noise clipped to +-clip if given), in [-1, 1], zero where not driven."""
    noise = scale * jax.random.normal(key, action.shape)
    if clip is not None:
        noise = jnp.clip(noise, -clip, clip)
    return jnp.where(mask, jnp.clip(action + noise, -1.0, 1.0), 0.0)


def make_rule(networks, config: TD3Config) -> UpdateRule:
    tx = TD3OptState(
        actor=sac.adam(config.actor_learning_rate, config.max_grad_norm),
        q=sac.adam(config.critic_learning_rate, config.max_grad_norm),
    )

    def policy(actor_params, obs):
        dist = networks.actor.apply(actor_params, obs)
        return dist.mode(), dist.mask

    def init(key, obs, action) -> Learner:
        k_actor, k_q = jax.random.split(key)
        actor, q = networks.actor.init(k_actor, obs), dict(networks.q.init(k_q, obs, action))
        return Learner(
            params=TD3Params(actor=actor, q=q, target_actor=actor, target_q=q),
            opt_state=TD3OptState(tx.actor.init(actor), tx.q.init(q["params"])),
            step=jnp.zeros((), jnp.int32),
        )

    def critic_loss(q_params, learner: Learner, batch: Batch, key):
        mean, mask = policy(learner.params.target_actor, batch.next_obs)
        next_action = noisy(mean, mask, key, config.target_noise, config.target_noise_clip)
        next_q = jnp.min(networks.q.apply(learner.params.target_q, batch.next_obs, next_action), -1)
        target = jax.lax.stop_gradient(batch.reward + batch.discount * next_q)
        q = networks.q.apply(sac.with_params(learner.params.q, q_params), batch.obs, batch.action)
        return 0.5 * jnp.sum(jnp.mean(jnp.square(q - target[:, None]), 0)), q.mean()

    def actor_loss(actor_params, q_vars, obs):
        action, _ = policy(actor_params, obs)
        return -jnp.mean(networks.q.apply(q_vars, obs, action)[..., 0])

    def actor_and_targets(learner: Learner, q_vars, batch: Batch):
        loss, grads = jax.value_and_grad(actor_loss)(learner.params.actor, q_vars, batch.obs)
        actor, opt = sac.apply_step(tx.actor, learner.opt_state.actor, learner.params.actor, grads)
        target_actor = sac.polyak(learner.params.target_actor, actor, config.tau)
        target_q = sac.polyak(learner.params.target_q, q_vars, config.tau)
        return actor, opt, target_actor, target_q, loss

    def skip(learner: Learner, q_vars, batch):
        p = learner.params
        return p.actor, learner.opt_state.actor, p.target_actor, p.target_q, jnp.zeros((), jnp.float32)

    def update(learner: Learner, batch: Batch, key: jax.Array):
        q_vars = learner.params.q
        (c_loss, q_mean), grads = jax.value_and_grad(critic_loss, has_aux=True)(q_vars["params"], learner, batch, key)
        q_params, q_opt = sac.apply_step(tx.q, learner.opt_state.q, q_vars["params"], grads)
        q_vars = sac.with_params(q_vars, q_params)
        delayed = (learner.step + 1) % config.policy_delay == 0
        actor, actor_opt, target_actor, target_q, a_loss = jax.lax.cond(
            delayed, actor_and_targets, skip, learner, q_vars, batch
        )
        new = Learner(
            params=TD3Params(actor=actor, q=q_vars, target_actor=target_actor, target_q=target_q),
            opt_state=TD3OptState(actor=actor_opt, q=q_opt),
            step=learner.step + 1,
        )
        return new, {"loss/critic": c_loss, "loss/actor": a_loss, "q/mean": q_mean}

    def explore(learner: Learner, obs, key):
        mean, mask = policy(learner.params.actor, obs)
        return noisy(mean, mask, key, config.exploration_noise)

    return UpdateRule(init=init, update=update, explore=explore, stat_names=STAT_NAMES)


SPEC = offpolicy_spec("td3", "td3", make_rule)
