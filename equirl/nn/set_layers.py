"""The subequivariant transformer (SET) over limbs.

Each limb carries scalar channels h [..., L, D] and 3D vector channels
Z [..., L, 3, C], kept apart. With g the network's fixed down direction and d
the target direction, a block does (pre-norm, residual):

  invariants   Zn = VectorNorm(Z)
               s = LayerNorm(h) + Dense(asinh(Gram([Zn W, g, d])))
  attention    per head, logits_ij = q_i.k_j / sqrt(dh) + <Zq_i, Zk_j> / sqrt(ck)
               + tree bias_ij, with q, k from s and Zq, Zk channel mixes of
               Zn (inner products of vectors of two limbs are invariant too);
               then
               dh_i = mix(sum_j a_ij v_j)                scalar messages
               dZ_i = mix(sum_j a_ij [Zn_j, g, d] Wv)    vector messages
  feed-forward u = gelu(Dense(s)); dh += Dense(u);
               dZ += (([Zn, g, d] A) * c(u)) B           vector channels mixed
                                                         with coefficients c
                                                         predicted from invariants
  h += dh;  Z += dZ      (attention and feed-forward in parallel, as in GPT-J/PaLM)

Every operation on Z is a linear map on channels, a product with an
invariant scalar, or an inner product, and the only vectors ever added are g
(fixed by O_g(3)) and d (an input). So h is invariant and Z equivariant under
every rotation about z and reflection through a vertical plane -- and not
under tilts, because g is a constant of the network, not read from the input
(an input's gravity channel is just one more vector).

Limbs are a set: there is no positional encoding, and the limb tree enters
only through the attention bias. Padding limbs are excluded as keys from
every softmax and zeroed at the embedding and the output.

Performance notes (XLA on CPU, where this was tuned): the blocks are
parallel (one norm, Gram matrix and projection each instead of two), and
padding is not re-zeroed inside the blocks: per-block selects made XLA fuse
and recompute the whole chain of vector-residual gradients in every consumer.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from equirl.nn.config import NetworkConfig
from equirl.nn.tree_attention import TreeBias, attention_weights
from equirl.nn.vector_ops import (
    GramInvariants,
    HeadsToVectors,
    VectorDense,
    VectorNorm,
    VectorsToHeads,
    gate,
    gram_features,
    input_scalars,
    polar_vectors,
)
from equirl.observation import TARGET_CHANNEL, Observation


def target_direction(obs: Observation) -> jax.Array:
    """The observation's target direction [..., L, 3] (a horizontal polar vector), zero at padding."""
    return jnp.where(obs.limb_mask[..., None], obs.vectors[..., TARGET_CHANNEL, :], 0.0)


def _zero_padding(h: jax.Array, z: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    return jnp.where(mask[..., None], h, 0.0), jnp.where(mask[..., None, None], z, 0.0)


class SETAttention(nn.Module):
    """Multi-head attention over limbs with invariant logits and equivariant vector messages.

    s: invariant features [..., L, D]; zn: normalised vectors [..., L, 3, C];
    target [..., L, 3]. Per head, the query and key are [scalar part, the
    head's vector channels flattened], so one dot product gives q.k plus the
    inner products of the vector queries and keys; the values likewise carry
    scalar and vector parts through one weighted sum. Vector queries and keys
    are mixes of Zn alone: adding g or d to them would only add per-limb
    invariant terms, which the scalar part already has.
    """

    config: NetworkConfig

    @nn.compact
    def __call__(self, s, zn, target, bias, mask):
        cfg = self.config
        heads, dh, ck = cfg.heads, cfg.width // cfg.heads, cfg.vector_key_channels
        cv = cfg.vector_channels // heads

        def scalar_heads(x):  # [..., L, H*n] -> [..., L, H, n]
            return x.reshape(x.shape[:-1] + (heads, -1))

        q = jnp.concatenate(
            [
                scalar_heads(nn.Dense(cfg.width, name="query")(s)) / jnp.sqrt(dh),
                VectorsToHeads(heads, ck, references=False, name="vector_query")(zn) / jnp.sqrt(ck),
            ],
            -1,
        )
        k = jnp.concatenate(
            [
                scalar_heads(nn.Dense(cfg.width, name="key")(s)),
                VectorsToHeads(heads, ck, references=False, name="vector_key")(zn),
            ],
            -1,
        )
        a = attention_weights(jnp.einsum("...ihd,...jhd->...hij", q, k) + bias, mask)
        v = jnp.concatenate(
            [
                scalar_heads(nn.Dense(cfg.width, name="value")(s)),
                VectorsToHeads(heads, cv, name="vector_value")(zn, target),
            ],
            -1,
        )
        message = jnp.einsum("...hij,...jhd->...ihd", a, v)
        scalar_message = message[..., :dh].reshape(message.shape[:-2] + (cfg.width,))
        dh_out = nn.Dense(cfg.width, name="out")(scalar_message)
        dz_out = HeadsToVectors(cfg.vector_channels, name="vector_out")(message[..., dh:])
        return dh_out, dz_out


class SETBlock(nn.Module):
    """One pre-norm SET block, attention and feed-forward in parallel.

    Both halves read the same normalised inputs (LayerNorm(h) plus projected
    Gram invariants, and the normalised vectors) and their updates are added
    to the residual streams together (the "parallel block" of GPT-J / PaLM):
    one norm, one Gram matrix and one invariant projection per block instead
    of two, for the same parameters.
    """

    config: NetworkConfig

    @nn.compact
    def __call__(self, h, z, target, bias, mask):
        cfg = self.config
        k, c = cfg.invariant_channels, cfg.vector_channels
        zn = VectorNorm(name="vector_norm")(z)
        # The Gram channels and the feed-forward's channels to gate come from one matmul.
        gram_in, to_gate = jnp.split(VectorDense(k + c, name="vector_in")(zn, target), [k], axis=-1)
        s = nn.LayerNorm(name="norm")(h) + nn.Dense(cfg.width, name="invariants")(gram_features(gram_in, target))
        dh, dz = SETAttention(cfg, name="attention")(s, zn, target, bias, mask)

        u = nn.gelu(nn.Dense(cfg.ff_multiplier * cfg.width, name="ff_in")(s))
        coefficients = nn.Dense(c, name="ff_coefficients")(u)
        h = h + dh + nn.Dense(cfg.width, name="ff_out")(u)
        z = z + dz + VectorDense(c, references=False, name="ff_vector_out")(gate(to_gate, coefficients))
        return h, z


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
        # Sliced from the observation: XLA may recompute `target` inside each of
        # its many consumers, and a slice is cheap to repeat.
        target = target_direction(obs)
        v = polar_vectors(obs.vectors, mask, target, cfg.fixed_vector_scales)  # [..., L, 3, 4 + 2 x 4]
        scalars = input_scalars(obs, cfg)
        if extra_vectors is not None:
            v = jnp.concatenate([v, jnp.where(mask[..., None, None], extra_vectors, 0.0)], -1)
        if extra_scalars is not None:
            scalars = jnp.concatenate([scalars, extra_scalars], -1)
        scalars = jnp.where(mask[..., None], scalars, 0.0)

        z = nn.Dense(cfg.vector_channels, use_bias=False, name="embed_vectors")(v)
        invariants = GramInvariants(cfg.invariant_channels, name="embed_invariants")(v, target)
        inputs = jnp.concatenate([scalars, invariants], -1)
        h = nn.Dense(cfg.width, name="embed_out")(nn.gelu(nn.Dense(cfg.width, name="embed_in")(inputs)))
        h, z = _zero_padding(h, z, mask)

        bias = TreeBias(cfg.heads, cfg.max_tree_distance, name="tree_bias")(obs.parent)
        # Padding is zeroed at the ends only: nothing reads it in between,
        # since padding keys are masked (see the module's performance notes).
        for i in range(cfg.depth):
            h, z = SETBlock(cfg, name=f"block_{i}")(h, z, target, bias, mask)
        h = nn.LayerNorm(name="final_norm")(h)
        z = VectorNorm(name="final_vector_norm")(z)
        return _zero_padding(h, z, mask) + (target,)
