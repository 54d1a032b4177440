"""Policy and value networks: SET (equivariant) and three baselines, one interface.

    from equirl.nn import NetworkConfig, make_networks, init_networks

    nets = make_networks(NetworkConfig(kind="set"), max_limbs=16)
    params = init_networks(nets, key, obs)
    dist = nets.actor.apply(params.actor, obs)         # MaskedGaussian over [..., L, 3]
    value = nets.critic.apply(params.critic, obs)      # [...]
    q = nets.q.apply(params.q, obs, action)            # [..., 2] (twin)

Every kind takes an `equirl.observation.Observation` with any leading batch
shape. `kind` is a config value: "set", "mlp", "mlp_heading", "transformer".
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import flax.linen as nn
import jax

from equirl.errors import ConfigError
from equirl.nn.baselines import (
    MLPQ,
    MLPActor,
    MLPCritic,
    TransformerActor,
    TransformerCritic,
    TransformerQ,
    canonicalize_heading,
)
from equirl.nn.config import KINDS, NetworkConfig
from equirl.nn.distributions import MaskedGaussian
from equirl.nn.heads import count_parameters
from equirl.nn.set_networks import SETQ, SETActor, SETCritic

__all__ = [
    "KINDS",
    "MaskedGaussian",
    "NetworkConfig",
    "NetworkParams",
    "Networks",
    "canonicalize_heading",
    "count_parameters",
    "init_networks",
    "make_networks",
]


class Networks(NamedTuple):
    """actor(obs) -> MaskedGaussian; critic(obs) -> V [...]; q(obs, action) -> [..., 2]."""

    actor: nn.Module
    critic: nn.Module
    q: nn.Module


class NetworkParams(NamedTuple):
    actor: Any
    critic: Any
    q: Any


def make_networks(config: NetworkConfig, max_limbs: int) -> Networks:
    """The actor, critic and twin Q of `config.kind`.

    max_limbs: limb slots of the observations; the MLP kinds are built for
    exactly this many, the limb-set kinds (set, transformer) accept any number.
    """
    if not isinstance(config, NetworkConfig):
        raise ConfigError(f"config: expected a NetworkConfig, got {type(config).__name__}")
    if not isinstance(max_limbs, int) or isinstance(max_limbs, bool) or max_limbs < 1:
        raise ConfigError(f"max_limbs={max_limbs!r}: must be an integer >= 1")
    actor, critic, q = _networks(config, max_limbs)
    if config.q_kind != "same" or config.q_width:
        kind = config.kind if config.q_kind == "same" else config.q_kind
        q = _networks(dataclasses.replace(config, kind=kind, width=config.q_width or config.width), max_limbs)[2]
    return Networks(actor, critic, q)


def _networks(config: NetworkConfig, max_limbs: int) -> tuple[nn.Module, nn.Module, nn.Module]:
    if config.kind == "set":
        return SETActor(config), SETCritic(config), SETQ(config)
    if config.kind == "transformer":
        return TransformerActor(config), TransformerCritic(config), TransformerQ(config)
    heading = config.kind == "mlp_heading"
    return MLPActor(config, max_limbs, heading), MLPCritic(config, max_limbs, heading), MLPQ(config, max_limbs, heading)


def init_networks(networks: Networks, key: jax.Array, obs) -> NetworkParams:
    """Initialise all three from one key and an example observation (jitted:
    eager initialisation dispatches hundreds of small ops and is much slower)."""

    @jax.jit
    def init(key, obs):
        k_actor, k_critic, k_q = jax.random.split(key, 3)
        action = jax.numpy.zeros(obs.action_mask.shape, obs.vectors.dtype)
        return NetworkParams(
            networks.actor.init(k_actor, obs),
            networks.critic.init(k_critic, obs),
            networks.q.init(k_q, obs, action),
        )

    return init(key, obs)
