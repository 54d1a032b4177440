"""SAC as an update rule of the off-policy skeleton (`equirl.agents.offpolicy`).

One gradient step: the twin-Q critic against Polyak-averaged target
networks; then, every `policy_delay` steps, the actor (maximising min Q minus
the entropy cost, against the updated critic) and the temperature alpha;
then the target networks.

Bodies differ in how many action dimensions they drive, so the entropy
target is per sample: `target_entropy_per_dim` times that sample's driven
dimensions (from obs.action_mask).

The critic step is a parameter of `make_rule`: CrossQ (`equirl.agents.crossq`)
keeps this actor and temperature and swaps in its own critic step.

Q "variables" are flax variable dicts: {"params"} here, {"params",
"batch_stats"} with CrossQ's batch renorm. Only "params" are optimised.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from equirl.agents.config import SACConfig
from equirl.agents.offpolicy import Batch, UpdateRule
from equirl.agents.registry import offpolicy_spec
from equirl.errors import ConfigError

STAT_NAMES = ("loss/critic", "loss/actor", "loss/alpha", "alpha", "policy/entropy", "q/mean")


class SACParams(NamedTuple):
    actor: Any
    q: Any  # flax variables of the twin Q
    target_q: Any  # Polyak average of q (CrossQ: unused, a copy of nothing)


class SACOptState(NamedTuple):
    actor: Any
    q: Any
    alpha: Any


class Learner(NamedTuple):
    """The part of the state gradient steps change."""

    params: SACParams
    opt_state: SACOptState
    log_alpha: jax.Array
    step: jax.Array  # gradient steps taken (int32), for the policy delay


def target_entropy(action_mask: jax.Array, per_dim: float) -> jax.Array:
    """Entropy target of each sample [...]: per_dim times its driven action dimensions."""
    return per_dim * jnp.sum(action_mask, axis=(-2, -1)).astype(jnp.float32)


def polyak(target: Any, online: Any, tau: float) -> Any:
    return optax.incremental_update(online, target, tau)


def adam(rate: float, max_grad_norm: float, beta1: float = 0.9) -> optax.GradientTransformation:
    # Flattened: one vector for all parameters, so clipping and Adam are a few kernels instead of a
    # few per parameter array (SET has dozens of small ones; on a CPU each kernel has a fixed cost).
    return optax.flatten(optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.adam(rate, b1=beta1)))


def apply_step(tx: optax.GradientTransformation, opt_state, params, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def with_params(variables: dict, params: Any) -> dict:
    return {**variables, "params": params}


def optimizers(config: SACConfig) -> SACOptState:
    return SACOptState(
        actor=adam(config.actor_learning_rate, config.max_grad_norm, config.adam_beta1),
        q=adam(config.critic_learning_rate, config.max_grad_norm, config.adam_beta1),
        alpha=adam(config.alpha_learning_rate, config.max_grad_norm, config.adam_beta1),
    )


def target_critic_step(networks, config: SACConfig, tx: optax.GradientTransformation):
    """The standard SAC critic step: TD targets from the target networks.

    step(learner, batch, key, alpha) -> (q variables, q optimiser state, loss, mean Q, next log-prob).
    """

    def loss_fn(q_params, learner: Learner, batch: Batch, key, alpha):
        next_action, next_log_prob = networks.actor.apply(learner.params.actor, batch.next_obs).sample_and_log_prob(
            seed=key
        )
        next_q = jnp.min(networks.q.apply(learner.params.target_q, batch.next_obs, next_action), -1)
        target = jax.lax.stop_gradient(batch.reward + batch.discount * (next_q - alpha * next_log_prob))
        q = networks.q.apply(with_params(learner.params.q, q_params), batch.obs, batch.action)  # [N, 2]
        loss = 0.5 * jnp.sum(jnp.mean(jnp.square(q - target[:, None]), 0))
        return loss, (q.mean(), next_log_prob)

    def step(learner: Learner, batch: Batch, key, alpha):
        q_vars = learner.params.q
        (loss, (q_mean, next_log_prob)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            q_vars["params"], learner, batch, key, alpha
        )
        params, opt = apply_step(tx, learner.opt_state.q, q_vars["params"], grads)
        return with_params(q_vars, params), opt, loss, q_mean, next_log_prob

    return step


def make_rule(
    networks, config: SACConfig, critic_step: Callable | None = None, targets: bool = True, prior: Any = None
) -> UpdateRule:
    """SAC's `UpdateRule`; `critic_step` (default: `target_critic_step`) and whether
    target networks are kept let CrossQ reuse the rest. `prior`: the starting actor's
    parameters (offpolicy.init_actor), the anchor of `config.prior_weight`."""
    tx = optimizers(config)
    anchored = prior is not None and config.prior_weight > 0
    critic = critic_step(networks, config, tx.q) if critic_step else target_critic_step(networks, config, tx.q)

    def init(key, obs, action) -> Learner:
        k_actor, k_q = jax.random.split(key)
        q_vars = dict(networks.q.init(k_q, obs, action))
        actor = networks.actor.init(k_actor, obs)
        log_alpha = jnp.log(jnp.asarray(config.initial_alpha, jnp.float32))
        return Learner(
            params=SACParams(actor=actor, q=q_vars, target_q=q_vars if targets else {}),
            opt_state=SACOptState(tx.actor.init(actor), tx.q.init(q_vars["params"]), tx.alpha.init(log_alpha)),
            log_alpha=log_alpha,
            step=jnp.zeros((), jnp.int32),
        )

    def prior_gap(dist, prior_action, obs) -> jax.Array:
        """[N] squared distance between the actor's deterministic action and the starting policy's."""
        gap = jnp.where(obs.action_mask, dist.mode() - prior_action, 0.0)
        return jnp.sum(jnp.square(gap), axis=(-2, -1))

    def actor_loss(actor_params, q_vars, alpha, obs, key, prior_action):
        dist = networks.actor.apply(actor_params, obs)
        action, log_prob = dist.sample_and_log_prob(seed=key)
        q = jnp.min(networks.q.apply(q_vars, obs, action), -1)  # eval mode: batch renorm uses running stats
        loss = jnp.mean(alpha * log_prob - q)
        gap = jnp.mean(prior_gap(dist, prior_action, obs)) if anchored else jnp.zeros((), jnp.float32)
        return loss + config.prior_weight * gap, log_prob

    def alpha_loss(log_alpha, log_prob, target):
        # Raises alpha while the entropy (-log_prob) is below its target.
        return -jnp.mean(log_alpha * jax.lax.stop_gradient(log_prob + target))

    def actor_and_alpha(learner: Learner, q_vars, batch: Batch, key, prior_action):
        alpha = jnp.exp(learner.log_alpha)
        (a_loss, log_prob), grads = jax.value_and_grad(actor_loss, has_aux=True)(
            learner.params.actor, q_vars, alpha, batch.obs, key, prior_action
        )
        actor, actor_opt = apply_step(tx.actor, learner.opt_state.actor, learner.params.actor, grads)
        target = target_entropy(batch.obs.action_mask, config.target_entropy_per_dim)
        al_loss, grads = jax.value_and_grad(alpha_loss)(learner.log_alpha, log_prob, target)
        log_alpha, alpha_opt = apply_step(tx.alpha, learner.opt_state.alpha, learner.log_alpha, grads)
        return actor, actor_opt, log_alpha, alpha_opt, a_loss, al_loss

    def skip_actor(learner: Learner, q_vars, batch, key, prior_action):
        zero = jnp.zeros((), jnp.float32)
        o = learner.opt_state
        return learner.params.actor, o.actor, learner.log_alpha, o.alpha, zero, zero

    def update(learner: Learner, batch: Batch, key: jax.Array):
        k_critic, k_actor = jax.random.split(key)
        alpha = jnp.exp(learner.log_alpha)
        q_vars, q_opt, c_loss, q_mean, next_log_prob = critic(learner, batch, k_critic, alpha)
        # The starting policy's actions on this batch, once per step (the loss and the logged gap share them).
        prior_action = networks.actor.apply(prior, batch.obs).mode() if anchored else None
        delayed = (learner.step % config.policy_delay == 0) & (learner.step >= config.actor_warmup_updates)
        actor, actor_opt, log_alpha, alpha_opt, a_loss, al_loss = jax.lax.cond(
            delayed, actor_and_alpha, skip_actor, learner, q_vars, batch, k_actor, prior_action
        )
        target_q = polyak(learner.params.target_q, q_vars, config.tau) if targets else learner.params.target_q
        new = Learner(
            params=SACParams(actor=actor, q=q_vars, target_q=target_q),
            opt_state=SACOptState(actor=actor_opt, q=q_opt, alpha=alpha_opt),
            log_alpha=log_alpha,
            step=learner.step + 1,
        )
        stats = {
            "loss/critic": c_loss,
            "loss/actor": a_loss,
            "loss/alpha": al_loss,
            "alpha": jnp.exp(log_alpha),
            "policy/entropy": -next_log_prob.mean(),
            "q/mean": q_mean,
        }
        if anchored:  # measured on every step (not only actor steps, whose values would be diluted in the mean)
            now = networks.actor.apply(actor, batch.obs)
            stats["policy/prior_gap"] = jnp.mean(prior_gap(now, prior_action, batch.obs))
        return new, stats

    def explore(learner: Learner, obs, key):
        return networks.actor.apply(learner.params.actor, obs).sample(seed=key)

    names = STAT_NAMES + (("policy/prior_gap",) if anchored else ())
    return UpdateRule(init=init, update=update, explore=explore, stat_names=names)


def _check(config) -> None:
    if config.network.q_norm == "batch_renorm":
        raise ConfigError(
            "network.q_norm=batch_renorm: SAC's critic never trains the renorm statistics "
            "(its target networks read them in eval mode); use algorithm=crossq, or q_norm=layer"
        )


SPEC = offpolicy_spec("sac", "sac", make_rule, _check, starts_from_policy=True)
