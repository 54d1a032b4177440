"""The subequivariant transformer (SET) over limbs.

Each limb carries scalar channels h [..., L, D] and 3D vector channels
Z [..., L, 3, C], kept apart. With g the network's fixed down direction and d
the target direction, a block does:

  invariants  s = [LayerNorm(h), asinh(Gram([Z W, g, d]))]        (per limb)
  attention   logits_ij = q_i.k_j / sqrt(dh) + <Zq_i, Zk_j> / sqrt(ck) + tree bias_ij
              (q, k, v from s; Zq, Zk channel mixes of Z: inner products of
              vectors of different limbs are invariants too)
              h_i += mix(sum_j a_ij v_j)          scalar messages, invariant
              Z_i += mix(sum_j a_ij [Z_j, g, d] Wv)  vector messages, equivariant
  feed-forward u = gelu(Dense(s)); h += Dense(u);
              Z += ([Z, g, d] A * c(u)) B          channel mixing with
                                                   coefficients from invariants

Every operation on Z is a linear map on channels, a product with an
invariant scalar, or an inner product; nothing adds a constant vector except g
(fixed by O_g(3)) and d (an input). So h is invariant and Z equivariant under
every rotation about z and reflection through a vertical plane -- and not
under tilts, because g is a constant of the network, not read from the input.
Limbs are a set: no positional encoding; the limb tree enters only through
the attention bias. Padding limbs are excluded from every softmax and zeroed
after every block.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from equirl.envs.task import Observation
from equirl.nn.config import NetworkConfig
from equirl.nn.tree_attention import TreeBias, attention_weights
from equirl.nn.vector_ops import GatedVectorMix, GramInvariants, VectorNorm, scaled_vectors, with_references

TARGET_CHANNEL = 2  # the observation's target-direction vector channel
AXIS_CHANNELS = slice(5, 8)  # the three world-frame hinge axes


def _zero_padding(h: jax.Array, z: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    return jnp.where(mask[..., None], h, 0.0), jnp.where(mask[..., None, None], z, 0.0)


class SETAttention(nn.Module):
    """Multi-head attention over limbs with invariant logits and equivariant vector messages."""

    config: NetworkConfig

    @nn.compact
    def __call__(self, s, zn, target, bias, mask):
        cfg = self.config
        heads, dh, ck = cfg.heads, cfg.width // cfg.heads, cfg.vector_key_channels
        lead = s.shape[:-1]  # [..., L]

        def split(x, n):
            return x.reshape(x.shape[:-1] + (heads, n))

        q = split(nn.Dense(cfg.width, name="query")(s), dh)
        k = split(nn.Dense(cfg.width, name="key")(s), dh)
        v = split(nn.Dense(cfg.width, name="value")(s), dh)
        zq = split(nn.Dense(heads * ck, use_bias=False, name="vector_query")(zn), ck)
        zk = split(nn.Dense(heads * ck, use_bias=False, name="vector_key")(zn), ck)
        logits = jnp.einsum("...ihd,...jhd->...hij", q, k) / jnp.sqrt(dh)
        logits += jnp.einsum("...ixhc,...jxhc->...hij", zq, zk) / jnp.sqrt(ck)
        a = attention_weights(logits + bias, mask)

        scalar_message = jnp.einsum("...hij,...jhd->...ihd", a, v).reshape(lead + (cfg.width,))
        cv = cfg.vector_channels // heads
        zv = split(nn.Dense(cfg.vector_channels, use_bias=False, name="vector_value")(with_references(zn, target)), cv)
        vector_message = jnp.einsum("...hij,...jxhc->...ixhc", a, zv).reshape(zn.shape)
        dh_out = nn.Dense(cfg.width, name="out")(scalar_message)
        dz_out = nn.Dense(cfg.vector_channels, use_bias=False, name="vector_out")(vector_message)
        return dh_out, dz_out


class SETBlock(nn.Module):
    """One pre-norm SET block: attention, then the feed-forward block, both residual."""

    config: NetworkConfig

    @nn.compact
    def __call__(self, h, z, target, bias, mask):
        cfg = self.config
        zn = VectorNorm(name="vector_norm_1")(z)
        s = jnp.concatenate(
            [nn.LayerNorm(name="norm_1")(h), GramInvariants(cfg.invariant_channels, name="invariants_1")(zn, target)], -1
        )
        dh, dz = SETAttention(cfg, name="attention")(s, zn, target, bias, mask)
        h, z = _zero_padding(h + dh, z + dz, mask)

        zn = VectorNorm(name="vector_norm_2")(z)
        s = jnp.concatenate(
            [nn.LayerNorm(name="norm_2")(h), GramInvariants(cfg.invariant_channels, name="invariants_2")(zn, target)], -1
        )
        u = nn.gelu(nn.Dense(cfg.ff_multiplier * cfg.width, name="ff_in")(s))
        h = h + nn.Dense(cfg.width, name="ff_out")(u)
        z = z + GatedVectorMix(cfg.vector_channels, cfg.vector_channels, name="ff_vectors")(zn, target, u)
        return _zero_padding(h, z, mask)


class SETEncoder(nn.Module):
    """Observation -> (h [..., L, D] invariant, Z [..., L, 3, C] equivariant, target [..., L, 3]).

    extra_scalars [..., L, S] and extra_vectors [..., L, 3, E] are optional
    per-limb inputs (the Q network passes the action through them); they must
    be invariant and equivariant respectively. Both outputs are normalised
    (LayerNorm, VectorNorm) and zero at padding limbs.
    """

    config: NetworkConfig

    @nn.compact
    def __call__(self, obs: Observation, extra_scalars=None, extra_vectors=None):
        cfg = self.config
        mask = obs.limb_mask
        v = scaled_vectors(obs.vectors, mask)  # [..., L, 3, 8]
        target = v[..., TARGET_CHANNEL]
        scalars = obs.scalars
        if extra_vectors is not None:
            v = jnp.concatenate([v, jnp.where(mask[..., None, None], extra_vectors, 0.0)], -1)
        if extra_scalars is not None:
            scalars = jnp.concatenate([scalars, extra_scalars], -1)
        scalars = jnp.where(mask[..., None], scalars, 0.0)

        z = nn.Dense(cfg.vector_channels, use_bias=False, name="embed_vectors")(v)
        inputs = jnp.concatenate([scalars, GramInvariants(cfg.invariant_channels, name="embed_invariants")(v, target)], -1)
        h = nn.Dense(cfg.width, name="embed_out")(nn.gelu(nn.Dense(cfg.width, name="embed_in")(inputs)))
        h, z = _zero_padding(h, z, mask)

        bias = TreeBias(cfg.heads, cfg.max_tree_distance, name="tree_bias")(obs.parent)
        for i in range(cfg.depth):
            h, z = SETBlock(cfg, name=f"block_{i}")(h, z, target, bias, mask)
        h = nn.LayerNorm(name="final_norm")(h)
        z = VectorNorm(name="final_vector_norm")(z)
        return _zero_padding(h, z, mask) + (target,)
