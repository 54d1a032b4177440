"""Baselines with the same interface as the SET networks.

- mlp: an MLP on the flattened, padded observation (vectors, scalars, limb
  mask, one-hot parent index of every limb slot). Tied to max_limbs. Not
  equivariant.
- mlp_heading: the same MLP after `canonicalize_heading`, which turns every
  vector about z so that the target direction points along +x. That makes it
  exactly invariant to rotations about z (canonicalisation), but not to
  reflections: a reflected scene canonicalises to the mirror image of the
  original one, since no handedness is fixed. (Why the target direction: the
  observation has no torso orientation -- the torso has no hinge axes -- and
  the target direction is a horizontal unit vector in every observation.)
- transformer: a plain pre-norm transformer over limbs, with the same tree
  bias, masking, width, depth and heads as SET, that reads each limb's vector
  coordinates as 24 ordinary scalars. Not equivariant.

All outputs are the invariant torques directly (no projection onto axes).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from equirl.errors import ConfigError
from equirl.nn.config import NetworkConfig, channel_indices
from equirl.nn.heads import (
    SMALL_INIT,
    LogStdHead,
    PooledValueHead,
    action_mask,
    fan_in_init,
    masked_actions,
    mean_init,
    q_norm,
    torque_distribution,
    twin,
)
from equirl.nn.tree_attention import TreeBias, attention_weights
from equirl.nn.vector_ops import input_scalars, masked_mean, vector_scale
from equirl.observation import SCALAR_NAMES, TARGET_CHANNEL, VECTOR_NAMES, Observation, hinge_rates

# --- canonicalisation ----------------------------------------------------------


def heading_rotation(obs: Observation) -> jax.Array:
    """[..., 3, 3]: the rotation about z taking the target direction to +x.

    The identity where the target direction has no horizontal part (it never
    happens in the environment; it keeps padding-only inputs finite).
    """
    d = masked_mean(obs.vectors[..., TARGET_CHANNEL, :], obs.limb_mask, axis=-2)
    sq = d[..., 0] ** 2 + d[..., 1] ** 2
    ok = sq > 0
    inv = jax.lax.rsqrt(jnp.where(ok, sq, 1.0))
    c = jnp.where(ok, d[..., 0] * inv, 1.0)
    s = jnp.where(ok, d[..., 1] * inv, 0.0)
    zero, one = jnp.zeros_like(c), jnp.ones_like(c)
    rows = [jnp.stack([c, s, zero], -1), jnp.stack([-s, c, zero], -1), jnp.stack([zero, zero, one], -1)]
    return jnp.stack(rows, -2)


def canonicalize_heading(obs: Observation) -> Observation:
    """Every vector turned into the target-direction frame (d -> +x)."""
    rot = heading_rotation(obs)
    return obs.replace(vectors=jnp.einsum("...ij,...lcj->...lci", rot, obs.vectors))


# --- MLP ---------------------------------------------------------------------------


def flatten_observation(
    obs: Observation,
    extra: jax.Array | None = None,
    fixed_scale: bool = True,
    vectors: tuple[int, ...] | None = None,
    scalars: tuple[int, ...] | None = None,
    parent: bool = True,
) -> jax.Array:
    """[..., F]: every limb slot's scaled vectors (`vector_scale`), scalars, mask and
    one-hot parent (unless `parent` is false; plus `extra` [..., L, E]), zeroed at padding;
    `vectors` / `scalars` pick channels by index (None: all)."""
    mask = obs.limb_mask
    num = mask.shape[-1]
    vec = obs.vectors * vector_scale(fixed_scale, obs.vectors.dtype)
    vec, sca = obs_channels(vec, vectors, -2), obs_channels(obs.scalars, scalars, -1)
    parts = [vec.reshape(vec.shape[:-2] + (-1,)), sca]
    if parent:
        parts.append(jax.nn.one_hot(obs.parent + 1, num + 1, dtype=obs.vectors.dtype))
    if extra is not None:
        parts.append(extra)
    per_limb = jnp.where(mask[..., None], jnp.concatenate(parts, -1), 0.0)
    per_limb = jnp.concatenate([per_limb, mask[..., None].astype(per_limb.dtype)], -1)
    return per_limb.reshape(per_limb.shape[:-2] + (-1,))


def obs_channels(x: jax.Array, index: tuple[int, ...] | None, axis: int) -> jax.Array:
    """The channels `index` of x along `axis` (None: x as it is)."""
    return x if index is None else jnp.take(x, jnp.asarray(index, jnp.int32), axis=axis)


def torso_vectors(obs: Observation, index: tuple[int, ...], fixed_scale: bool) -> jax.Array:
    """[..., 3 len(index)]: the torso's (the real limb without a parent) chosen vector channels."""
    vec = obs_channels(obs.vectors * vector_scale(fixed_scale, obs.vectors.dtype), index, -2)
    torso = (obs.parent == -1) & obs.limb_mask
    picked = jnp.sum(jnp.where(torso[..., None, None], vec, 0.0), -3)
    return picked.reshape(picked.shape[:-2] + (-1,))


class MLPBody(nn.Module):
    """Dense -> [norm] -> activation per hidden layer; `norm` (a Q network's config) adds
    config.q_norm after each Dense (after the activation with config.q_norm_after_activation,
    as sbx's CrossQ), and with batch renorm also on the input if config.q_input_norm (as CrossQ)."""

    hidden: tuple[int, ...]
    norm: NetworkConfig | None = None
    activation: str = "gelu"  # NetworkConfig.mlp_activation
    init_scale: float = 1.0  # NetworkConfig.mlp_init_scale (1: flax's LeCun normal)

    @nn.compact
    def __call__(self, x):
        if self.norm is not None and self.norm.q_norm == "batch_renorm" and self.norm.q_input_norm:
            x = q_norm(self.norm, "input_norm")(x)
        activation = getattr(nn, self.activation)
        for i, n in enumerate(self.hidden):
            x = nn.Dense(n, kernel_init=fan_in_init(self.init_scale), name=f"hidden_{i}")(x)
            norm = q_norm(self.norm, f"norm_{i}") if self.norm is not None else None
            if norm is None:
                x = activation(x)
            elif self.norm.q_norm_after_activation:
                x = norm(activation(x))
            else:
                x = activation(norm(x))
        return x


def _check_limbs(obs: Observation, max_limbs: int) -> None:
    num = obs.limb_mask.shape[-1]
    if num != max_limbs:
        raise ConfigError(
            f"max_limbs={max_limbs}: the MLP was built for that many limb slots, the observation has {num}"
        )


def _flat(module, obs: Observation, action: jax.Array | None = None) -> jax.Array:
    """The MLP kinds' input: the flattened observation (heading-canonicalised for
    mlp_heading) with the hinge rates if configured and the action (Q networks)."""
    _check_limbs(obs, module.max_limbs)
    obs = canonicalize_heading(obs) if module.heading else obs
    extra = [hinge_rates(obs)] if module.config.hinge_rate_inputs else []
    if action is not None:
        extra.append(action)
    extra = jnp.concatenate(extra, -1) if extra else None
    cfg = module.config
    flat = flatten_observation(
        obs,
        extra=extra,
        fixed_scale=cfg.fixed_vector_scales,
        vectors=channel_indices(cfg.mlp_vector_inputs, VECTOR_NAMES),
        scalars=channel_indices(cfg.mlp_scalar_inputs, SCALAR_NAMES),
        parent=cfg.mlp_parent_inputs,
    )
    if not cfg.mlp_torso_vector_inputs:
        return flat
    torso = torso_vectors(obs, channel_indices(cfg.mlp_torso_vector_inputs, VECTOR_NAMES), cfg.fixed_vector_scales)
    return jnp.concatenate([flat, torso], -1)


class MLPActor(nn.Module):
    """obs -> MaskedGaussian; heading=True canonicalises first (mlp_heading)."""

    config: NetworkConfig
    max_limbs: int
    heading: bool = False

    @nn.compact
    def __call__(self, obs: Observation):
        flat = _flat(self, obs)
        cfg = self.config
        x = MLPBody(cfg.mlp_hidden, activation=cfg.mlp_activation, init_scale=cfg.mlp_init_scale, name="body")(flat)
        shape = obs.limb_mask.shape + (3,)
        mean = nn.Dense(3 * self.max_limbs, kernel_init=mean_init(self.config), name="mean")(x).reshape(shape)
        if self.config.state_dependent_std:
            raw = nn.Dense(3 * self.max_limbs, kernel_init=SMALL_INIT, name="log_std")(x).reshape(shape)
        else:  # one learned log-std per action dimension, as stable-baselines3's PPO
            raw = jnp.broadcast_to(
                self.param("shared_log_std", nn.initializers.zeros, (3 * self.max_limbs,)),
                x.shape[:-1] + (3 * self.max_limbs,),
            ).reshape(shape)
        return torque_distribution(mean, raw, action_mask(obs), self.config)


class MLPCritic(nn.Module):
    config: NetworkConfig
    max_limbs: int
    heading: bool = False

    @nn.compact
    def __call__(self, obs: Observation) -> jax.Array:
        flat = _flat(self, obs)
        cfg = self.config
        x = MLPBody(cfg.mlp_hidden, activation=cfg.mlp_activation, init_scale=cfg.mlp_init_scale, name="body")(flat)
        return nn.Dense(1, kernel_init=fan_in_init(cfg.mlp_init_scale), name="value")(x)[..., 0]


class MLPQTrunk(nn.Module):
    config: NetworkConfig
    max_limbs: int
    heading: bool = False

    @nn.compact
    def __call__(self, obs: Observation, action: jax.Array) -> jax.Array:
        action = masked_actions(action, action_mask(obs))
        flat = _flat(self, obs, action)
        hidden = self.config.q_hidden or self.config.mlp_hidden
        body = MLPBody(hidden, norm=self.config, activation=self.config.mlp_activation, name="body")
        return nn.Dense(1, name="value")(body(flat))[..., 0]


MLPQ = twin(MLPQTrunk)


# --- plain transformer ------------------------------------------------------------


class TransformerBlock(nn.Module):
    config: NetworkConfig

    @nn.compact
    def __call__(self, h, bias, mask):
        cfg = self.config
        heads, dh = cfg.heads, cfg.width // cfg.heads
        s = nn.LayerNorm(name="norm_1")(h)

        def split(x):
            return x.reshape(x.shape[:-1] + (heads, dh))

        q, k, v = (split(nn.Dense(cfg.width, name=n)(s)) for n in ("query", "key", "value"))
        logits = jnp.einsum("...ihd,...jhd->...hij", q, k) / jnp.sqrt(dh)
        a = attention_weights(logits + bias, mask)
        message = jnp.einsum("...hij,...jhd->...ihd", a, v).reshape(h.shape)
        h = h + nn.Dense(cfg.width, name="out")(message)
        u = nn.gelu(nn.Dense(cfg.ff_multiplier * cfg.width, name="ff_in")(nn.LayerNorm(name="norm_2")(h)))
        return h + nn.Dense(cfg.width, name="ff_out")(u)


class TransformerEncoder(nn.Module):
    """obs -> per-limb features [..., L, D]; vector coordinates are plain inputs."""

    config: NetworkConfig

    @nn.compact
    def __call__(self, obs: Observation, extra_scalars=None):
        cfg = self.config
        mask = obs.limb_mask
        scale = vector_scale(cfg.fixed_vector_scales, obs.vectors.dtype)
        parts = [(obs.vectors * scale).reshape(obs.vectors.shape[:-2] + (-1,)), input_scalars(obs, cfg)]
        if extra_scalars is not None:
            parts.append(extra_scalars)
        tokens = jnp.where(mask[..., None], jnp.concatenate(parts, -1), 0.0)
        h = nn.Dense(cfg.width, name="embed_out")(nn.gelu(nn.Dense(cfg.width, name="embed_in")(tokens)))
        h = jnp.where(mask[..., None], h, 0.0)
        bias = TreeBias(cfg.heads, cfg.max_tree_distance, name="tree_bias")(obs.parent)
        for i in range(cfg.depth):  # padding is zeroed at the ends only, as in SET
            h = TransformerBlock(cfg, name=f"block_{i}")(h, bias, mask)
        return jnp.where(mask[..., None], nn.LayerNorm(name="final_norm")(h), 0.0)


class TransformerActor(nn.Module):
    config: NetworkConfig

    @nn.compact
    def __call__(self, obs: Observation):
        h = TransformerEncoder(self.config, name="encoder")(obs)
        mean = nn.Dense(3, kernel_init=mean_init(self.config), name="mean")(h)
        log_std = LogStdHead(self.config.state_dependent_std, name="log_std")(h)
        return torque_distribution(mean, log_std, action_mask(obs), self.config)


class TransformerCritic(nn.Module):
    config: NetworkConfig

    @nn.compact
    def __call__(self, obs: Observation) -> jax.Array:
        h = TransformerEncoder(self.config, name="encoder")(obs)
        return PooledValueHead(self.config.width, name="value")(h, obs.limb_mask)


class TransformerQTrunk(nn.Module):
    config: NetworkConfig

    @nn.compact
    def __call__(self, obs: Observation, action: jax.Array) -> jax.Array:
        action = masked_actions(action, action_mask(obs))
        h = TransformerEncoder(self.config, name="encoder")(obs, extra_scalars=action)
        return PooledValueHead(self.config.width, norm=self.config, name="value")(h, obs.limb_mask)


TransformerQ = twin(TransformerQTrunk)
