"""CrossQ (Bhatt et al., ICLR 2024) as an update rule of the off-policy skeleton.

SAC with three changes, each where it bites:
1. no target networks: the TD target reads the online critic;
2. batch renormalisation inside the critic (network.q_norm=batch_renorm,
   `equirl.nn.batch_renorm`), so its features stay normalised as the policy
   and the data drift;
3. one joint critic pass over [(s, a); (s', pi(s'))] in train mode. The two
   halves then share the batch statistics: a separate pass over (s', a')
   would normalise next-state features with other statistics than the ones
   Q(s, a) was fitted with, and the targets would be off. The next-state
   half is held constant in the gradient.

The actor and the temperature are SAC's (`equirl.agents.sac`); the actor
reads the critic in eval mode (running statistics), as acting does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from equirl.agents import sac
from equirl.agents.config import CrossQConfig
from equirl.agents.offpolicy import Batch
from equirl.agents.registry import offpolicy_spec
from equirl.errors import ConfigError


def joint_critic_step(networks, config: CrossQConfig, tx):
    """step(learner, batch, key, alpha) -> (q variables, q optimiser state, loss, mean Q, next log-prob)."""

    def loss_fn(q_params, learner: sac.Learner, batch: Batch, key, alpha):
        next_action, next_log_prob = networks.actor.apply(learner.params.actor, batch.next_obs).sample_and_log_prob(
            seed=key
        )
        both = lambda a, b: jnp.concatenate([a, b], 0)  # noqa: E731
        obs = jax.tree.map(both, batch.obs, batch.next_obs)
        action = both(batch.action, jax.lax.stop_gradient(next_action))
        q_all, updated = networks.q.apply(
            sac.with_params(learner.params.q, q_params), obs, action, mutable=["batch_stats"]
        )
        q, next_q = jnp.split(q_all, 2, axis=0)  # [N, 2] each
        next_v = jnp.min(next_q, -1) - alpha * next_log_prob
        target = jax.lax.stop_gradient(batch.reward + batch.discount * next_v)
        loss = 0.5 * jnp.sum(jnp.mean(jnp.square(q - target[:, None]), 0))
        return loss, (q.mean(), next_log_prob, updated["batch_stats"])

    def step(learner: sac.Learner, batch: Batch, key, alpha):
        q_vars = learner.params.q
        (loss, (q_mean, next_log_prob, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            q_vars["params"], learner, batch, key, alpha
        )
        params, opt = sac.apply_step(tx, learner.opt_state.q, q_vars["params"], grads)
        return {**q_vars, "params": params, "batch_stats": stats}, opt, loss, q_mean, next_log_prob

    return step


def make_rule(networks, config: CrossQConfig, prior=None):
    return sac.make_rule(networks, config, critic_step=joint_critic_step, targets=False, prior=prior)


def _check(config) -> None:
    if config.network.q_norm != "batch_renorm":
        raise ConfigError(
            f"network.q_norm={config.network.q_norm!r}: crossq is defined with batch renorm in the critic; "
            "set network.q_norm=batch_renorm"
        )


SPEC = offpolicy_spec("crossq", "crossq", make_rule, _check, starts_from_policy=True)
