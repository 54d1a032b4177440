"""Starting a learner from a policy that already works (`offpolicy.init_actor`, `ppo.init_actor`).

Why: on the 3D hoppers every learner started from a random actor falls within about 200 steps
after hundreds of thousands of samples, while a distilled controller stands for most of an
episode. Fine-tuning starts the actor (and the observation normaliser it was trained with) from
such a policy; the critic starts fresh, so `<algorithm>.actor_warmup_updates` lets it learn the
starting policy's values before the actor moves, and `<algorithm>.prior_weight` keeps the actor
near where it started unless the critic pays for leaving.

    offpolicy.init_actor: hopper_set_balance          # a shipped controller (equirl pretrained)
    offpolicy.init_actor: runs/hopper_set_distill     # or any run directory with an actor
    ppo.init_actor: hopper_set_balance                # PPO: the value function starts fresh
"""

from __future__ import annotations

from pathlib import Path

import jax

from equirl.agents.policy import ActingState, ActorParams, acting_state
from equirl.agents.registry import spec
from equirl.errors import ConfigError
from equirl.observation import observation_shapes
from equirl.runs.checkpoints import CHECKPOINTS


def _source_policy(source: str, field: str):
    """(config, ActingState) of a run directory or of a shipped controller's name."""
    path = Path(source)
    if (path / CHECKPOINTS).is_dir():
        from equirl.agents.saved_runs import load_run

        config, state, _ = load_run(path)
        return config, jax.device_get(acting_state(state))
    # Shipped controllers sit with evaluation (they are read there for `equirl eval`); imported
    # only here, when a run starts from one.
    from equirl.evaluation import pretrained

    if source not in pretrained.names():
        shipped = ", ".join(pretrained.names()) or "none"
        raise ConfigError(
            f"{field}={source!r}: neither a run directory (no {CHECKPOINTS}/ in it) "
            f"nor a shipped controller (shipped: {shipped})"
        )
    policy = pretrained.load(source)
    return policy.config, policy.state


def _shapes(tree) -> list:
    return [(tuple(x.shape), str(x.dtype)) for x in jax.tree.leaves(tree)]


def load_start(source: str, networks, config, field: str = "offpolicy.init_actor") -> ActingState:
    """The actor parameters and normaliser a run of `config` (with `networks`) starts from.
    `field` names the setting in error messages. Raises ConfigError naming `source` when its
    actor does not fit this run's network."""
    theirs, state = _source_policy(source, field)
    template = jax.eval_shape(networks.actor.init, jax.random.PRNGKey(0), observation_shapes(config.env.max_limbs))
    actor = state.params.actor
    if jax.tree.structure(actor) != jax.tree.structure(template) or _shapes(actor) != _shapes(template):
        net, ours = theirs.network, config.network
        raise ConfigError(
            f"{field}={source!r}: its actor ({net.kind}, width {net.width}, depth {net.depth}, "
            f"max_limbs {theirs.env.max_limbs}) does not fit this run's ({ours.kind}, width {ours.width}, "
            f"depth {ours.depth}, max_limbs {config.env.max_limbs}); set network.* and env.max_limbs to its values"
        )
    normalizes = spec(config.algorithm).normalize_observations(config)
    if spec(theirs.algorithm).normalize_observations(theirs) != normalizes:
        raise ConfigError(
            f"{field}={source!r}: it was trained with observation normalisation "
            f"{'off' if normalizes else 'on'}, this run has it {'on' if normalizes else 'off'}"
        )
    return ActingState(ActorParams(actor), state.normalizer)
