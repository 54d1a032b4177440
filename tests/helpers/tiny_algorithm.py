"""A toy off-policy algorithm, registered by tests/test_registry.py to show that an
algorithm plugs in with one module: its "critic" fits Q = 0, so its loss is the
mean squared (scaled) reward, and a huge reward scale makes it diverge on purpose."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from equirl.agents.offpolicy import UpdateRule, random_actions
from equirl.agents.registry import offpolicy_spec


class Params(NamedTuple):
    actor: Any


class Learner(NamedTuple):
    params: Params
    updates: jax.Array


def make_rule(networks, config) -> UpdateRule:
    def init(key, obs, action):
        return Learner(Params(networks.actor.init(key, obs)), jnp.zeros((), jnp.int32))

    def update(learner: Learner, batch, key):
        loss = jnp.mean(jnp.square(batch.reward))
        return learner._replace(updates=learner.updates + 1), {"loss/critic": loss, "q/mean": jnp.zeros(())}

    def explore(learner, obs, key):
        return random_actions(key, obs.action_mask)

    return UpdateRule(init=init, update=update, explore=explore, stat_names=("loss/critic", "q/mean"))


SPEC = offpolicy_spec("tiny", "sac", make_rule)
