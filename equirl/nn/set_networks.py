"""SET actor, critic and twin Q.

Actor: the encoder's vectors give two equivariant 3-vectors u = (u1, u2) per
limb (channels mixed with coefficients from invariants). A hinge axis a is an
axial vector; its polar images (down x a, target x a) turn with u, so the
torque mean <u1, down x a> + <u2, target x a> is invariant to rotations about
gravity and -- with the hinge relabelling of a physical mirror -- to
reflections. It is the torque vector tau = u1 x down + u2 x target (axial,
any direction) projected on the axis. The log-std comes from invariants.
Critic: invariant per-limb features averaged over real limbs, then an MLP.
Q(s, a): torques are invariant, so Q is too; the action enters as per-limb
scalars (the three torques) and as the polar images of the (axial) torque
vector sum_k a_k axis_k.

Channels transform by their parity (equirl.observation): polar ones as
v -> g v, angular velocity and hinge axes as v -> det(g) g v.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from equirl.nn.config import NetworkConfig
from equirl.nn.heads import (
    LogStdHead,
    PooledValueHead,
    action_mask,
    masked_actions,
    mean_init,
    torque_distribution,
    twin,
)
from equirl.nn.set_layers import SETEncoder, target_direction
from equirl.nn.vector_ops import GatedVectorMix, GramInvariants, polar_images
from equirl.observation import HINGE_AXES, Observation


def hinge_axes(obs: Observation) -> jax.Array:
    """World-frame hinge axes [..., L, 3 hinges, 3 coords] (axial), zero at padding."""
    return jnp.where(obs.limb_mask[..., None, None], obs.vectors[..., HINGE_AXES, :], 0.0)


class SETActor(nn.Module):
    """obs -> MaskedGaussian over [..., L, 3] torques.

    Methods: __call__ (the distribution), torque_vectors (u [..., L, 2, 3], the
    equivariant per-limb output before projection).
    """

    config: NetworkConfig

    def setup(self):
        cfg = self.config
        self.encoder = SETEncoder(cfg)
        self.readout_invariants = GramInvariants(cfg.invariant_channels)
        self.torque_vector = GatedVectorMix(cfg.vector_channels, 2, out_init=mean_init(cfg))
        self.log_std = LogStdHead(cfg.state_dependent_std)

    def _features(self, obs: Observation):
        h, z, target = self.encoder(obs)
        features = jnp.concatenate([h, self.readout_invariants(z, target)], -1)
        return features, jnp.swapaxes(self.torque_vector(z, target, features), -1, -2), target

    def torque_vectors(self, obs: Observation) -> jax.Array:
        return self._features(obs)[1]

    def __call__(self, obs: Observation):
        features, u, target = self._features(obs)
        images = polar_images(hinge_axes(obs), target)  # [..., L, 3 hinges, 2, 3]
        mean = jnp.einsum("...kpx,...px->...k", images, u)
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
        torque = jnp.einsum("...kx,...k->...x", hinge_axes(obs), action)  # [..., L, 3], axial
        images = jnp.swapaxes(polar_images(torque[..., None, :], target_direction(obs))[..., 0, :, :], -1, -2)
        h, z, target = SETEncoder(cfg, name="encoder")(obs, extra_scalars=action, extra_vectors=images)
        invariants = GramInvariants(cfg.invariant_channels, name="readout_invariants")(z, target)
        features = jnp.concatenate([h, invariants], -1)
        return PooledValueHead(cfg.width, norm=cfg, name="value")(features, obs.limb_mask)


SETQ = twin(SETQTrunk)
SETQ.__doc__ = "(obs, action) -> twin Q [..., 2]: two independent SETQTrunk copies."
