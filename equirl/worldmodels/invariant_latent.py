"""A latent world model structured by group invariants (Shakerinava, Mondal, Ravanbakhsh, NeurIPS 2022).

The encoder f is NOT built equivariant: a plain transformer over limbs reads
each limb's vector coordinates as ordinary numbers and gives a latent
[..., L, latent_dim] per frame. The model never uses how the group acts on
observations; it only assumes that pairs of observations (x, x') and
(g.x, g.x') are related by the same, unknown g. An equivariant encoder (one
whose latent transforms by an orthogonal map) keeps the invariants of pairs
of latents -- distances |f(x) - f(x')| or inner products <f(x), f(x')> --
so `invariant_loss` penalises their change. The decoder (reconstruction)
keeps f injective, which rules out the trivial constant encoder and, by the
paper's argument, makes the induced latent action an equivariance.

Training pairs are consecutive frames (x_t, x_{t+1}) of a window; both get
the same element: a random O_g(3) element and translation per window,
composed with a random observer flow (at frame t the flow's exp(t nu) acts
on both members of the pair alike).

The world model: z_t = f(x_t); a latent transition z_{t+1} = z_t + T(z_t, a_t)
(a transformer over limbs with the action as a limb input); a decoder from
latents to the dynamic channels, and a head for the torso's displacement
from (z_t, z_{t+1}). observe encodes the last context frame (an observation
determines the physical state up to the horizontal position, so one frame
is enough); step advances the latent open loop. Loss over a window:
reconstruction_weight * reconstruction of every frame + the open-loop
prediction error of the frames after config.context + latent consistency
(the rolled-out latents against the encodings of the true frames) +
lambda * invariant loss.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from equirl.errors import ConfigError
from equirl.geometry import random_isometry
from equirl.nn.config import NetworkConfig
from equirl.nn.heads import SMALL_INIT
from equirl.nn.vector_ops import masked_mean
from equirl.observation import Observation
from equirl.worldmodels.common import masked_action, with_dynamic
from equirl.worldmodels.data import FlowRange
from equirl.worldmodels.flows import apply_flow
from equirl.worldmodels.interface import (
    DYNAMIC_SCALARS,
    DYNAMIC_VECTORS,
    FeatureStats,
    Frame,
    Sequence,
    WorldModel,
    WorldModelConfig,
    act_on_sequence,
    normalized_error,
)
from equirl.worldmodels.remul import (
    DYNAMIC_FEATURES,
    TORSO,
    LimbTransformer,
    check_window,
    limb_tokens,
    split_dynamic,
    tree_config,
)

INVARIANTS = ("distance", "inner_product")
# Observer flows applied to the pairs (yaw rate in rad/step; velocities move
# only the torso position, which the encoder does not read).
PAIR_FLOWS = FlowRange(max_yaw_rate=0.1, max_speed=0.05)
EPS = 1e-8


# --- the invariant loss, for any encoder -----------------------------------------------


def pair_invariant(z: jax.Array, z_pair: jax.Array, invariant: str = "distance") -> jax.Array:
    """Invariant of latent pairs over every axis after the first `batch_axes`:
    squared distance |z - z'|^2 or inner product <z, z'>. z, z_pair: [..., *latent]
    where the latent axes are everything after the leading [B, T]."""
    axes = tuple(range(2, z.ndim))
    if invariant == "distance":
        return jnp.sum(jnp.square(z - z_pair), axes)
    if invariant == "inner_product":
        return jnp.sum(z * z_pair, axes)
    raise ConfigError(f"invariant={invariant!r}: must be one of {INVARIANTS}")


def invariant_loss(
    encode: Callable[[Observation], jax.Array],
    x: Sequence,
    x_pair: Sequence,
    transform: Callable[[Sequence], Sequence],
    invariant: str = "distance",
) -> jax.Array:
    """Relative change of the latent pair invariants under a shared transformation.

    encode maps observations with leading [B, T] axes to latents [B, T, ...];
    (x, x_pair) are paired frame by frame; `transform` must act on both alike
    (the same element at the same frame). With I the pair invariant,

        mean (I(f(x), f(x')) - I(f(gx), f(gx')))^2 / mean (I(f(x), f(x'))^2 + I(f(gx), f(gx'))^2) / 2

    zero exactly when the invariants are kept (for example when f is
    equivariant with an orthogonal latent action), positive otherwise, and
    independent of the latent's scale (shrinking f cannot lower it).
    """
    before = pair_invariant(encode(x.obs), encode(x_pair.obs), invariant)
    after = pair_invariant(encode(transform(x).obs), encode(transform(x_pair).obs), invariant)
    scale = 0.5 * jnp.mean(jnp.square(before) + jnp.square(after))
    return jnp.mean(jnp.square(before - after)) / (scale + EPS)


def shared_transform(
    key: jax.Array, center: jax.Array, flows: FlowRange = PAIR_FLOWS
) -> Callable[[Sequence], Sequence]:
    """A random element per window (O_g(3) with reflections, a translation) after a
    random observer flow per window turning about `center` [B, 3]: called on two
    sequences of the same windows, it moves frame t of both by the same element."""
    k_g, k_flow = jax.random.split(key)
    batch = center.shape[0]
    g = random_isometry(k_g, (batch,))
    flow = flows.sample(k_flow, batch)
    return lambda seq: act_on_sequence(g, apply_flow(flow, seq, center=center))


# --- the model -----------------------------------------------------------------------


class LatentModel(nn.Module):
    """Encoder, transition, decoder and displacement head (methods; apply with method=...)."""

    config: NetworkConfig
    latent_dim: int
    stats: FeatureStats

    def setup(self):
        self.encoder = LimbTransformer(self.config)
        self.to_latent = nn.Dense(self.latent_dim)
        self.transition = LimbTransformer(self.config)
        self.latent_change = nn.Dense(self.latent_dim, kernel_init=SMALL_INIT)
        self.decoder_hidden = nn.Dense(self.config.width)
        self.decoder_out = nn.Dense(DYNAMIC_FEATURES)
        self.displacement_hidden = nn.Dense(self.config.width)
        self.displacement_out = nn.Dense(3, kernel_init=SMALL_INIT)

    def encode(self, obs: Observation) -> jax.Array:
        h = self.encoder(limb_tokens(obs, self.stats), obs.limb_mask, obs.parent)
        return jnp.where(obs.limb_mask[..., None], self.to_latent(h), 0.0)

    def advance(self, z: jax.Array, action: jax.Array, mask: jax.Array, parent: jax.Array) -> jax.Array:
        h = self.transition(jnp.concatenate([z, action], -1), mask, parent)
        return jnp.where(mask[..., None], z + self.latent_change(h), 0.0)

    def decode(self, z: jax.Array, last: Frame, position: jax.Array) -> Frame:
        """The frame whose latent is z: dynamic channels decoded, static ones from `last`."""
        vectors, scalars = split_dynamic(self.decoder_out(nn.gelu(self.decoder_hidden(z))))
        dv, ds = jnp.asarray(DYNAMIC_VECTORS), jnp.asarray(DYNAMIC_SCALARS)
        vectors = vectors * self.stats.vector_rms[dv][:, None]
        scalars = scalars * self.stats.scalar_std[ds] + self.stats.scalar_mean[ds]
        return with_dynamic(last, vectors, scalars, position)

    def displacement(self, z: jax.Array, z_next: jax.Array, mask: jax.Array) -> jax.Array:
        """The torso's displacement over the step, in metres."""
        pooled = [z[..., TORSO, :], z_next[..., TORSO, :], masked_mean(z, mask), masked_mean(z_next, mask)]
        out = self.displacement_out(nn.gelu(self.displacement_hidden(jnp.concatenate(pooled, -1))))
        return out * self.stats.displacement_rms

    def __call__(self, obs: Observation, action: jax.Array):  # for init: touches every part
        z = self.encode(obs)
        z_next = self.advance(z, action, obs.limb_mask, obs.parent)
        move = self.displacement(z, z_next, obs.limb_mask)
        return self.decode(z_next, Frame(obs, move), move)


class LatentCarry(NamedTuple):
    latent: jax.Array  # [B, L, latent_dim]
    last: Frame  # the last (observed or predicted) frame


class LatentParts(NamedTuple):
    """The world model and its encoder, encode(params, obs [B, T, ...]) -> [B, T, L, latent_dim]."""

    model: WorldModel
    encode: Callable


def make_invariant_latent(config: WorldModelConfig, stats: FeatureStats) -> WorldModel:
    """The invariant-regularised latent world model (module doc), options config.invariant_latent."""
    return invariant_latent_parts(config, stats).model


def invariant_latent_parts(config: WorldModelConfig, stats: FeatureStats, invariant: str = "distance") -> LatentParts:
    """The model and its encoder; `invariant`: "distance" or "inner_product" (see pair_invariant)."""
    if invariant not in INVARIANTS:
        raise ConfigError(f"invariant={invariant!r}: must be one of {INVARIANTS}")
    options = config.invariant_latent
    net = LatentModel(tree_config(config), options.latent_dim, stats)

    def encode(params, obs):
        return net.apply(params, obs, method=LatentModel.encode)

    def latent_step(params, z, frame: Frame, action):
        """(z', predicted frame) after `frame` (latent z) and `action`."""
        obs = frame.obs
        action = masked_action(obs, action)
        z_next = net.apply(params, z, action, obs.limb_mask, obs.parent, method=LatentModel.advance)
        move = net.apply(params, z, z_next, obs.limb_mask, method=LatentModel.displacement)
        return z_next, net.apply(params, z_next, frame, frame.torso_position + move, method=LatentModel.decode)

    def init(key, batch: Sequence):
        first = batch.frame(0)
        return net.init(key, first.obs, batch.actions[:, 0])

    def loss(params, batch: Sequence, key):
        check_window(config, batch)
        t_len, context = batch.length, config.context
        z = encode(params, batch.obs)  # [B, T, L, d]
        everything = Frame(batch.obs, batch.torso_position)
        decoded = net.apply(params, z, everything, batch.torso_position, method=LatentModel.decode)
        reconstruction = jnp.mean(normalized_error(decoded, everything, stats)["total"])

        # Open loop in latent space from the last context frame, as `rollout` runs it.
        def body(carry, action):
            z, frame = carry
            z_next, predicted = latent_step(params, z, frame, action)
            return (z_next, predicted), (z_next, predicted)

        swap = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731
        start = (z[:, context - 1], batch.frame(context - 1))
        _, (z_open, frames) = jax.lax.scan(body, start, swap(batch.actions[:, context - 1 : -1]))
        z_open, frames = swap(z_open), jax.tree.map(swap, frames)
        later = batch.frames(context, t_len)
        prediction = jnp.mean(normalized_error(frames, Frame(later.obs, later.torso_position), stats)["total"])
        target = jax.lax.stop_gradient(z[:, context:])
        consistency = jnp.sum(jnp.square(z_open - target)) / (jnp.sum(jnp.square(target)) + EPS)

        first, second = batch.frames(0, t_len - 1), batch.frames(1, t_len)
        transform = shared_transform(key, first.torso_position[:, 0])
        invariance = invariant_loss(lambda obs: encode(params, obs), first, second, transform, invariant)
        total = (
            options.reconstruction_weight * reconstruction
            + prediction
            + consistency
            + options.invariant_weight * invariance
        )
        metrics = {
            "loss/reconstruction": reconstruction,
            "loss/prediction": prediction,
            "loss/consistency": consistency,
            "loss/invariant": invariance,
            "loss/total": total,
        }
        return total, metrics

    def observe(params, context: Sequence) -> LatentCarry:
        last = context.frame(context.length - 1)
        return LatentCarry(encode(params, last.obs), last)

    def step(params, carry: LatentCarry, action):
        z_next, frame = latent_step(params, carry.latent, carry.last, action)
        return frame, LatentCarry(z_next, frame)

    return LatentParts(WorldModel(init=init, loss=loss, observe=observe, step=step), encode)
