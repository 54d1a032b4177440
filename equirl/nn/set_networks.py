"""SET actor, critic and twin Q.

Actor: the encoder's vectors give one equivariant 3-vector u per limb
(channels mixed with coefficients from invariants); its inner products with
the limb's three world-frame hinge axes are the torque means -- invariant,
because u and the axes turn together. The log-std comes from invariants.
Critic: invariant per-limb features averaged over real limbs, then an MLP.
Q(s, a): torques are invariant, so Q is too; the action enters as per-limb
scalars (the three torques) and as one more vector channel, the torque
vector sum_k a_k axis_k.

Under the symmetry test every observation vector channel, hinge axes
included, transforms as v -> g v (all treated as polar vectors).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from equirl.envs.task import Observation
from equirl.nn.config import NetworkConfig
from equirl.nn.heads import (
    SMALL_INIT,
    LogStdHead,
    PooledValueHead,
    action_mask,
    masked_actions,
    torque_distribution,
    twin,
)
from equirl.nn.set_layers import AXIS_CHANNELS, SETEncoder
from equirl.nn.vector_ops import GatedVectorMix, GramInvariants


def hinge_axes(obs: Observation) -> jax.Array:
    """World-frame hinge axes [..., L, 3 hinges, 3 coords], zero at padding."""
    return jnp.where(obs.limb_mask[..., None, None], obs.vectors[..., AXIS_CHANNELS, :], 0.0)


class SETActor(nn.Module):
    """obs -> MaskedGaussian over [..., L, 3] torques.

    Methods: __call__ (the distribution), torque_vectors (u [..., L, 3], the
    equivariant per-limb output before projection).
    """

    config: NetworkConfig

    def setup(self):
        cfg = self.config
        self.encoder = SETEncoder(cfg)
        self.readout_invariants = GramInvariants(cfg.invariant_channels)
        self.torque_vector = GatedVectorMix(cfg.vector_channels, 1, out_init=SMALL_INIT)
        self.log_std = LogStdHead()

    def _features(self, obs: Observation):
        h, z, target = self.encoder(obs)
        features = jnp.concatenate([h, self.readout_invariants(z, target)], -1)
        return features, self.torque_vector(z, target, features)[..., 0]

    def torque_vectors(self, obs: Observation) -> jax.Array:
        return self._features(obs)[1]

    def __call__(self, obs: Observation):
        features, u = self._features(obs)
        mean = jnp.einsum("...kx,...x->...k", hinge_axes(obs), u)
        return torque_distribution(mean, self.log_std(features), action_mask(obs), self.config)


class SETCritic(nn.Module):
    """obs -> V(s) [...], invariant."""

    config: NetworkConfig

    @nn.compact
    def __call__(self, obs: Observation) -> jax.Array:
        cfg = self.config
        h, z, target = SETEncoder(cfg, name="encoder")(obs)
        invariants = GramInvariants(cfg.invariant_channels, name="readout_invariants")(z, target)
        features = jnp.concatenate([h, invariants], -1)
        return PooledValueHead(cfg.width, name="value")(features, obs.limb_mask)


class SETQTrunk(nn.Module):
    """(obs, action) -> one Q(s, a) [...]; use SETQ for the twin."""

    config: NetworkConfig

    @nn.compact
    def __call__(self, obs: Observation, action: jax.Array) -> jax.Array:
        cfg = self.config
        action = masked_actions(action, action_mask(obs))
        torque = jnp.einsum("...kx,...k->...x", hinge_axes(obs), action)[..., None]  # [..., L, 3, 1]
        h, z, target = SETEncoder(cfg, name="encoder")(obs, extra_scalars=action, extra_vectors=torque)
        invariants = GramInvariants(cfg.invariant_channels, name="readout_invariants")(z, target)
        features = jnp.concatenate([h, invariants], -1)
        return PooledValueHead(cfg.width, norm=cfg, name="value")(features, obs.limb_mask)


SETQ = twin(SETQTrunk)
SETQ.__doc__ = "(obs, action) -> twin Q [..., 2]: two independent SETQTrunk copies."
